"""Gates across replicas: a list of proxy metric endpoints (summed), or a real Prometheus scraping two nginx planes."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import time

import pytest
import requests

from migrations_plan.errors import PlanFileError
from migrations_plan.gate_sources import PrometheusSource, prometheus_samples_fetch, proxy_samples_fetch
from migrations_plan.gates import PASS, UNKNOWN, Observation, gates_evaluate
from migrations_plan.loader import load_plan
from migrations_plan.metrics import MetricsUnavailable
from migrations_plan.services import plan_advance, plan_advance_when_ready
from migrations_plan.spec import Gate, Plan
from strangler_proxy.loader import load_route_file
from strangler_proxy.metrics import AdminServer, ProxyMetrics
from strangler_proxy.nginx.control import NginxInstance
from strangler_proxy.nginx.render import NginxOptions
from tests.strangler_proxy.planes import Client, stop_process, wait_for_port
from tests.strangler_proxy.upstreams import NamedUpstream, free_port
from tests.waiting import wait_until

from .conftest import write_routes
from .procs import REPO

PRODUCTS = "/api/products/"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def admin_metrics():
    metrics = ProxyMetrics()
    return metrics, AdminServer(metrics=metrics, diff_summary=dict).start()


def test_a_list_of_replicas_is_summed_and_one_missing_replica_is_no_data(routes_file):
    (a, server_a), (b, server_b) = admin_metrics(), admin_metrics()
    urls = tuple(f"http://127.0.0.1:{s.port}/metrics" for s in (server_a, server_b))
    try:
        a.shadow_comparisons.labels(route=PRODUCTS).inc(6)
        b.shadow_comparisons.labels(route=PRODUCTS).inc(6)
        b.shadow_diffs.labels(route=PRODUCTS).inc(3)
        plan = Plan(name="t", description="", service="catalog", routes=(PRODUCTS,), proxy_metrics=urls,
                    sync_projects=(), steps=())
        gates = (Gate("min_shadow_sample", 10), Gate("max_diff_rate", 0.5))
        observation = Observation(plan=plan, table=load_route_file(routes_file), entered_at=time.time())
        results = gates_evaluate(gates=gates, observation=observation)
        assert [(r.status, r.value) for r in results] == [(PASS, 12), (PASS, 0.25)]  # neither replica alone
        assert proxy_samples_fetch(source=urls).total("strangler_proxy_shadow_comparisons_total") == 12
    finally:
        server_b.stop()
    try:
        observation = Observation(plan=plan, table=load_route_file(routes_file), entered_at=time.time())
        results = gates_evaluate(gates=gates, observation=observation)
        assert [r.status for r in results] == [UNKNOWN, UNKNOWN]  # never a partial sum
    finally:
        server_a.stop()


@pytest.mark.parametrize(("value", "message"), [
    ("[]", "must be the proxy's /metrics URL"),
    ("[http://a/metrics, ftp://b]", "must be the proxy's /metrics URL"),
    ("{prometheus: localhost:9090}", "must be an http:// URL"),
    ("{promql: http://p:9090}", "proxy_metrics"),
])
def test_bad_sources_are_refused_with_the_line(tmp_path, routes_file, value, message):
    path = tmp_path / "p.yaml"
    path.write_text(f"plan: p\nservice: catalog\nroutes: [{PRODUCTS}]\nproxy_metrics: {value}\nsteps: []\n")
    with pytest.raises(PlanFileError, match=message):
        load_plan(str(path), routes=routes_file)


def test_prometheus_that_does_not_answer_is_no_data():
    with pytest.raises(MetricsUnavailable, match="ConnectionError"):
        prometheus_samples_fetch(url=f"http://127.0.0.1:{free_port()}")


PLAN = f"""\
plan: replicas
service: catalog
routes: [{PRODUCTS}]
proxy_metrics: {{prometheus: {{url}}}}
steps:
  - name: tighten
    kind: canary
    actions:
      - route: {PRODUCTS}
        set: {{timeout: 6}}
    gates: {{min_soak_seconds: 0}}
  - name: retire
    kind: retire
    actions:
      - route: {PRODUCTS}
        set: {{fallback: false}}
    gates: {{max_error_rate_increase: 0.01, max_p99_seconds: 5}}
"""


@pytest.fixture
def two_nginx_replicas(tmp_path, monkeypatch):
    """Two nginx planes of one route file (/api/products/ on the catalog), each with its metrics exporter."""
    monkeypatch.setenv("STRANGLER_VAR_DIR", str(tmp_path / "var"))
    monolith, catalog = NamedUpstream("monolith"), NamedUpstream("catalog")
    routes = write_routes(tmp_path / "routes.yaml", monolith=monolith.url, catalog=catalog.url)
    routes.write_text(routes.read_text().replace("mode: monolith\n    service: catalog\n    fallback: true\n"
                                                 "    timeout: 5", "mode: service\n    service: catalog\n"
                                                 "    fallback: true\n    timeout: 5", 1))
    table = load_route_file(routes)
    started, clients, exporters = [], [], []
    try:
        for name in ("a", "b"):
            port, admin, metrics_port = free_port(), free_port(), free_port()
            instance = NginxInstance(NginxOptions(runtime_dir=tmp_path / f"nginx-{name}", listen=f"127.0.0.1:{port}",
                                                  admin_listen=f"127.0.0.1:{admin}"))
            instance.reload(table)
            started.append(instance)
            wait_for_port(port)
            clients.append(Client(port))
            exporters.append((subprocess.Popen(
                [sys.executable, "-m", "strangler_proxy", "nginx-metrics", "--runtime-dir", str(instance.prefix),
                 "--listen", f"127.0.0.1:{metrics_port}"], cwd=REPO), metrics_port))
        for _, metrics_port in exporters:
            wait_for_port(metrics_port)
        yield routes, clients, [f"127.0.0.1:{p}" for _, p in exporters]
    finally:
        for process, _ in exporters:
            stop_process(process)
        for instance in started:
            instance.stop()
        monolith.close()
        catalog.close()


@pytest.fixture
def prometheus(tmp_path):
    def start(targets: list[str]) -> str:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(textwrap.dedent(f"""\
            global: {{scrape_interval: 1s, evaluation_interval: 1s}}
            scrape_configs:
              - job_name: strangler-proxy
                static_configs: [{{targets: {targets!r}}}]
            """))
        process = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                    f"--web.listen-address=127.0.0.1:{port}"],
                                   stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("wb"))
        processes.append(process)
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            try:
                return requests.get(url + "/-/ready", timeout=5).status_code == 200
            except requests.RequestException:
                return False

        wait_until(ready, what="prometheus to be ready")
        return url

    processes: list[subprocess.Popen] = []
    yield start
    for process in processes:
        stop_process(process)


@pytest.mark.nginx
@pytest.mark.prometheus
def test_a_plan_advances_on_what_prometheus_sums_over_two_nginx_replicas(tmp_path, two_nginx_replicas, prometheus,
                                                                         state_dir):
    routes, clients, targets = two_nginx_replicas
    url = prometheus(targets)
    (tmp_path / "plan.yaml").write_text(PLAN.replace("{url}", url))
    plan = load_plan(str(tmp_path / "plan.yaml"), routes=routes)
    assert plan.proxy_metrics == PrometheusSource(url=url)

    def scraped() -> bool:  # no series before the first request: wait for both scrapes to succeed
        return prometheus_samples_fetch(url=url, query="up").total("up") == 2

    wait_until(scraped, what="prometheus to scrape both replicas")
    plan_advance(plan=plan, routes=routes, actor="alice")  # the next step's window starts from Prometheus's sums now
    for client in clients:
        for _ in range(3):
            assert client.send("GET", PRODUCTS).served_by == "catalog"
            assert client.send("GET", "/elsewhere/").served_by == "monolith"

    def summed() -> bool:
        return prometheus_samples_fetch(url=url).total("strangler_proxy_requests_total", upstream="catalog") >= 6

    wait_until(summed, what="prometheus to sum 6 catalog answers over both replicas")
    done = plan_advance_when_ready(plan=plan, routes=routes, actor="alice", wait_seconds=60)
    gates = {g["kind"]: g for g in done["gates"]}
    assert gates["max_error_rate_increase"]["status"] == PASS and gates["max_p99_seconds"]["status"] == PASS
    assert "of 6 vs monolith" in gates["max_error_rate_increase"]["detail"]
    assert done["step"] == "retire"
    table = load_route_file(routes)
    assert not next(r for r in table.routes if r.prefix == PRODUCTS).fallback
    assert status_digests(routes) == {table.digest}  # both replicas took each step's route edit


def status_digests(routes) -> set[str]:
    from strangler_proxy.planes import plane_served_digest, planes_for

    records = planes_for(routes=routes)
    assert [r.kind for r in records] == ["nginx", "nginx"]
    return {plane_served_digest(record=r) for r in records}


def test_the_environment_names_every_plans_gate_source(tmp_path, monkeypatch):
    """$STRANGLER_PROXY_METRICS: one deployment's source (the nginx plane's exporter and diff endpoint, a
    Prometheus) for plan files written for another; a bad value is refused naming the variable."""
    plan = REPO / "migrations_plan/plans/catalog.yaml"
    routes = REPO / "deploy/routes.yaml"
    monkeypatch.setenv("STRANGLER_PROXY_METRICS", "[http://a:9113/metrics, http://b:8790/metrics]")
    assert load_plan(str(plan), routes=routes).proxy_metrics == ("http://a:9113/metrics", "http://b:8790/metrics")
    monkeypatch.setenv("STRANGLER_PROXY_METRICS", "{prometheus: http://prometheus:9090}")
    assert load_plan(str(plan), routes=routes).proxy_metrics == PrometheusSource(url="http://prometheus:9090")
    monkeypatch.setenv("STRANGLER_PROXY_METRICS", "ftp://nope")
    with pytest.raises(PlanFileError, match=r"\$STRANGLER_PROXY_METRICS:1: proxy_metrics"):
        load_plan(str(plan), routes=routes)
    monkeypatch.delenv("STRANGLER_PROXY_METRICS")
    assert load_plan(str(plan), routes=routes).proxy_metrics.endswith("/metrics")
