"""docker-compose.yml's commands without Docker, on this machine's real PostgreSQL, RabbitMQ and nginx.

Every service of the compose file (but the optional seed) is started with its own command and environment,
rewritten only where a container differs from a shared host: service host names become 127.0.0.1, ports
become private ones, database names and the RabbitMQ vhost become throwaway ones, /var/lib/strangler and the
mounted route file become temp paths. The databases are made by the compose file's own init script, and
readiness is the compose health checks themselves. Then a product created in the monolith must be served
through nginx by the catalog service once the relay (Celery worker) and the consumer have synced it; and the
control plane walks the catalog plan forward to its 50 % canary and back, over two nginx replicas that follow
the route file, its gates asking the Prometheus that scrapes both replicas' exporters and the diff endpoint.

It makes its own databases on the PostgreSQL server (marker postgres_server), so it runs in CI's first pass,
whatever Django's own database is; prometheus is Debian's binary with the compose file's config, rewritten.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import requests
import yaml

from tests.test_compose import OUR_IMAGE, REQUIRED_SECRETS, ROUTES_IN_CONTAINER, SERVICES, interpolate
from tests.waiting import WAIT_TIMEOUT, wait_until

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"

pytestmark = [pytest.mark.postgres_server, pytest.mark.rabbitmq, pytest.mark.nginx, pytest.mark.prometheus,
              pytest.mark.slow, pytest.mark.timeout(900)]
# the compose services that are not our image but run here from the host's binaries
HOST_BINARIES = {"prometheus": "prometheus"}
# what the walk needs of the plan: seconds of soak, a small shadow sample (the plan reads them from the environment)
WALK_ENV = {"CATALOG_SOAK_SECONDS": "1", "CATALOG_MIN_SHADOW_SAMPLE": "20"}

# Create the product the way monolith.catalog.services does, with its event in the same transaction (the
# product's capture triggers write it; the fallback below only matters on a checkout without them).
CREATE_PRODUCT = """
import json
from django.db import transaction
from monolith.catalog.services import product_create
from strangler_sync.models import OutboxEvent
from strangler_sync.services import event_publish
from strangler_sync.snapshots import aggregate_payload
with transaction.atomic():
    product = product_create(sku="STACK-{tag}", name="Stack test {tag}", price="12.50")
    if not OutboxEvent.objects.filter(aggregate_type="product", aggregate_id=str(product.id)).exists():
        event_publish(event_type="product.created", aggregate_type="product", aggregate_id=product.id,
                      payload=aggregate_payload(aggregate_type="product", instance=product))
print("CREATED" + json.dumps({{"id": product.id}}))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class HostStack:
    """The compose services as host processes; every container-specific value is mapped to a private one."""

    def __init__(self, tmp: Path, rabbitmq_url: str):
        self.tmp = tmp
        self.var = tmp / "var"
        self.var.mkdir()
        tag = uuid.uuid4().hex[:8]
        self.tag = tag
        # container port -> private host port (every container has its own network namespace; we do not)
        self.ports = {port: free_port() for port in ("8000", "8001", "8002", "8003", "8790", "8080", "8082", "9113",
                                                     "9090", "8795")}
        self.databases = {name: f"stack_{tag}_{name}" for name in SERVICES["postgres"]["environment"][
            "STRANGLER_DATABASES"].split()}
        self.vhost = f"stack_{tag}"
        parsed = urlsplit(rabbitmq_url)
        self.broker = urlunsplit((parsed.scheme, parsed.netloc, f"/{self.vhost}", "", ""))
        self.routes = tmp / "routes.yaml"
        self.processes: dict[str, subprocess.Popen] = {}
        self.secret = "stack-test-" + uuid.uuid4().hex
        # the second nginx replica: its own listen port, admin listener, runtime dir and exporter
        self.replica = {"listen": free_port(), "admin": free_port(), "exporter": free_port()}

    # -- mapping container values to host values ----------------------------------------------------------
    def host_port(self, host: str, port: str) -> str:
        return f"127.0.0.1:{self.ports[port]}"

    def rewrite(self, value: str) -> str:
        value = interpolate(str(value), {**REQUIRED_SECRETS, "SECRET_KEY": self.secret})
        value = value.replace(ROUTES_IN_CONTAINER, str(self.routes)).replace("/var/lib/strangler", str(self.var))
        value = re.sub(r"\b0\.0\.0\.0:(\d+)\b", lambda m: self.host_port("", m.group(1)), value)
        # http://<compose service or the container's own 127.0.0.1>:<port> -> this machine's private port
        hosts = "|".join(re.escape(h) for h in ["127.0.0.1", *SERVICES])
        return re.sub(rf"http://(?:{hosts}):(\d+)\b", lambda m: f"http://{self.host_port('', m.group(1))}", value)

    def env_of(self, service: str, overrides: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL") and k not in (
            "DJANGO_SETTINGS_MODULE", "CELERY_BROKER_URL", "STRANGLER_SYNC_NAMESPACE")}
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}{os.pathsep}/usr/sbin"
        env["PYTHONUNBUFFERED"] = "1"
        env["STRANGLER_VAR_DIR"] = str(self.var)  # the Dockerfile's ENV
        for name, value in (SERVICES[service].get("environment") or {}).items():
            value = self.rewrite(value)
            if name.endswith("DATABASE_URL"):
                url = urlsplit(value)
                value = f"postgres://postgres@127.0.0.1:5432/{self.databases[url.path.lstrip('/')]}"
            elif name == "CELERY_BROKER_URL":
                value = self.broker
            elif name == "WEB_CONCURRENCY":
                value = "1"  # two shared cores: one worker per web process is enough to prove the command
            env[name] = value
        return {**env, **(overrides or {})}

    def argv_of(self, command: list[str]) -> list[str]:
        argv = [self.rewrite(arg) for arg in command]
        for i in range(1, len(argv)):  # `--host 0.0.0.0 --port N` (the dashboard's form of a listen address)
            if argv[i - 1] == "--host" and argv[i] == "0.0.0.0":
                argv[i] = "127.0.0.1"
            elif argv[i - 1] == "--port" and argv[i] in self.ports:
                argv[i] = str(self.ports[argv[i]])
        if argv[0].startswith("--config.file="):  # the prometheus image's entrypoint, here the host's binary
            data = self.tmp / "prometheus-data"
            argv = ["prometheus", *(f"--config.file={self.prometheus_config[0]}" if a.startswith("--config.file=")
                                    else f"--storage.tsdb.path={data}" if a.startswith("--storage.tsdb.path=")
                                    else a for a in argv)]
        if argv[0] == "python":
            argv[0] = sys.executable
        elif argv[0] in ("gunicorn", "celery"):
            argv[0] = str(BIN / argv[0])
        return argv

    # -- lifecycle ------------------------------------------------------------------------------------------
    def prepare(self) -> None:
        script = ROOT / "deploy/postgres/init-databases.sh"
        env = {**os.environ, "PGHOST": "127.0.0.1", "POSTGRES_USER": "postgres",
               "STRANGLER_DATABASES": " ".join(self.databases.values())}
        subprocess.run(["sh", str(script)], env=env, check=True, capture_output=True, timeout=60)
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", self.vhost], check=True, capture_output=True, timeout=60)
        subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*"],
                       check=True, capture_output=True, timeout=60)
        table = yaml.safe_load((ROOT / "deploy/routes.yaml").read_text())
        for name, upstream in table["upstreams"].items():
            url = upstream["url"] if isinstance(upstream, dict) else upstream
            port = urlsplit(url).port
            new = f"http://{self.host_port(name, str(port))}"
            table["upstreams"][name] = {**upstream, "url": new} if isinstance(upstream, dict) else new
        host, _, port = table["settings"]["diff_endpoint"].partition(":")
        table["settings"]["diff_endpoint"] = self.host_port(host, port)
        self.routes.write_text(yaml.safe_dump(table, sort_keys=False))
        # the compose Prometheus config, its targets on this machine's ports (and the second replica's exporter)
        volume = next(v for v in SERVICES["prometheus"]["volumes"] if v.startswith("./"))
        config = yaml.safe_load((ROOT / volume.split(":")[0]).read_text())
        for job in config["scrape_configs"]:
            for group in job["static_configs"]:
                group["targets"] = [self.host_port(*target.split(":")) for target in group["targets"]]
        self.prometheus_config = (self.tmp / "prometheus.yml", volume.split(":")[1])
        config["scrape_configs"][0]["static_configs"][0]["targets"].append(f"127.0.0.1:{self.replica['exporter']}")
        config["global"]["scrape_interval"] = "1s"  # the compose file's 5 s, shortened so the walk takes seconds
        self.prometheus_config[0].write_text(yaml.safe_dump(config))

    def run_job(self, service: str) -> None:
        spec = SERVICES[service]
        result = subprocess.run(self.argv_of(spec["command"]), cwd=ROOT, env=self.env_of(service),
                                capture_output=True, text=True, timeout=240)
        assert result.returncode == 0, f"{service}: {result.stdout[-2000:]}\n{result.stderr[-3000:]}"

    def start(self, service: str, *, name: str | None = None, env: dict[str, str] | None = None,
              argv: list[str] | None = None) -> None:
        """Start a compose service (or, named otherwise, a replica of it with other variables or arguments)."""
        name = name or service
        log = open(self.tmp / f"{name}.log", "w")  # noqa: SIM115 - the process writes it until the end
        self.processes[name] = subprocess.Popen(
            argv or self.argv_of(SERVICES[service]["command"]), cwd=ROOT, env=self.env_of(service, env), stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )

    def start_second_replica(self) -> None:
        """proxy-2 and its exporter: the proxy's command on other ports and another runtime dir, same route file."""
        runtime = str(self.var / "nginx-2")
        self.start("proxy", name="proxy-2", env={
            "PROXY_LISTEN": f"127.0.0.1:{self.replica['listen']}", "NGINX_RUNTIME_DIR": runtime,
            "PROXY_ADMIN_LISTEN": f"127.0.0.1:{self.replica['admin']}",
            "PROXY_ADMIN_URL": f"http://127.0.0.1:{self.replica['admin']}"})
        argv = self.argv_of(SERVICES["proxy-metrics"]["command"])
        argv[argv.index("--runtime-dir") + 1] = runtime
        argv[argv.index("--listen") + 1] = f"127.0.0.1:{self.replica['exporter']}"
        self.start("proxy-metrics", name="proxy-metrics-2", argv=argv)

    def healthy(self, service: str) -> bool:
        if service == "prometheus":  # the image's wget check, asked here without wget
            try:
                return requests.get(f"http://127.0.0.1:{self.ports['9090']}/-/ready", timeout=5).status_code == 200
            except requests.RequestException:
                return False
        test = SERVICES[service]["healthcheck"]["test"]
        if test[0] == "CMD":
            argv = self.argv_of(test[1:])
        else:  # CMD-SHELL: the container's hostname is this machine's
            argv = ["sh", "-c", self.rewrite(test[1]).replace("$HOSTNAME", socket.gethostname())]
        env = self.env_of(service)
        return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, timeout=60).returncode == 0

    def log(self, service: str) -> str:
        return (self.tmp / f"{service}.log").read_text(errors="replace")[-3000:]

    def wait_healthy(self, services: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(services)
        while pending:
            for service, process in self.processes.items():
                assert process.poll() is None, f"{service} exited {process.returncode}:\n{self.log(service)}"
            pending = [s for s in pending if not self.healthy(s)]
            if pending:
                assert time.monotonic() < deadline, f"not healthy: {pending}\n" + "\n".join(
                    f"== {s}\n{self.log(s)}" for s in pending if s in self.processes)
                time.sleep(0.5)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)

    def cleanup(self) -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            for name in self.databases.values():
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", self.vhost], capture_output=True, timeout=60)


@pytest.fixture
def stack(tmp_path, rabbitmq_url):
    if shutil.which("rabbitmqctl") is None:
        pytest.fail("rabbitmqctl is needed to make a private RabbitMQ vhost")
    host = HostStack(tmp_path, rabbitmq_url)
    try:
        host.prepare()
        yield host
    finally:
        host.stop()
        host.cleanup()


def test_compose_commands_run_the_stack_without_docker(stack):
    jobs = [name for name, spec in SERVICES.items()
            if spec.get("image") == OUR_IMAGE and spec.get("restart") == "no" and not spec.get("profiles")]
    assert sorted(jobs) == sorted(n for n in SERVICES if n.endswith(("-migrate", "-collectstatic")))
    for job in jobs:
        stack.run_job(job)
    long_running = [name for name, spec in SERVICES.items()
                    if spec.get("image") == OUR_IMAGE and name not in jobs and not spec.get("profiles")]
    # in compose order of dependencies: the webs and the diff endpoint, the proxy (two replicas), then what reads
    # the proxies: their exporters, Prometheus, the control plane
    front = ["proxy", "proxy-metrics", "control-plane"]
    assert sorted(s for s in long_running if s in front) == sorted(front)
    for service in long_running:
        if service not in front:
            stack.start(service)
    backends = [s for s in long_running if s not in front and "healthcheck" in SERVICES[s]]
    stack.wait_healthy(backends, timeout=240)
    stack.start("proxy")
    stack.wait_healthy(["proxy"], timeout=60)
    stack.start_second_replica()
    for service in ("proxy-metrics", *HOST_BINARIES, "control-plane"):
        stack.start(service)
    stack.wait_healthy(["proxy-metrics", *HOST_BINARIES, "control-plane"], timeout=120)

    proxy = f"http://127.0.0.1:{stack.ports['8080']}"
    monolith = f"http://127.0.0.1:{stack.ports['8000']}"
    home = requests.get(f"{proxy}/healthz", timeout=10)
    assert home.status_code == 200 and home.headers["X-Strangler-Upstream"] == "monolith"
    # the storefront's static files come from gunicorn (WhiteNoise over the collected files), DEBUG off
    css = requests.get(f"{proxy}/static/storefront/site.css", timeout=10)
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
    assert css.content == (ROOT / "monolith/static/storefront/site.css").read_bytes()

    result = subprocess.run([sys.executable, "manage.py", "shell", "-c", CREATE_PRODUCT.format(tag=stack.tag)],
                            cwd=ROOT, env=stack.env_of("monolith"), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    product_id = json.loads(result.stdout.split("CREATED", 1)[1])["id"]
    expected = requests.get(f"{monolith}/api/products/{product_id}/", timeout=10).json()

    # relay task on commit (worker), else the beat's 5 s sweep; then the consumer
    deadline = time.monotonic() + WAIT_TIMEOUT
    while True:
        through_nginx = requests.get(f"{proxy}/api/products/{product_id}/", timeout=10)
        if through_nginx.status_code == 200 and through_nginx.headers["X-Strangler-Upstream"] == "catalog":
            break
        assert time.monotonic() < deadline, (
            f"product {product_id} never served by catalog: {through_nginx.status_code} "
            f"{dict(through_nginx.headers)}\n== worker\n{stack.log('monolith-worker')}\n"
            f"== consumer\n{stack.log('catalog-consumer')}")
        time.sleep(0.3)
    assert through_nginx.json() == expected
    assert through_nginx.headers["X-Strangler-Route"] == "/api/products/"
    rating = requests.get(f"{proxy}/api/products/{product_id}/rating/", timeout=10)
    assert rating.status_code == 200 and rating.headers["X-Strangler-Upstream"] == "monolith"

    # writes go to the owner through nginx: anonymous is refused by the monolith, not by the follower
    write = requests.post(f"{proxy}/api/products/", json={}, timeout=10)
    assert write.status_code == 403 and write.headers["X-Strangler-Upstream"] == "monolith"

    # categories are shadowed: nginx mirrors to the diff endpoint, which compares monolith and catalog
    categories = requests.get(f"{proxy}/api/categories/", timeout=10)
    assert categories.status_code == 200 and categories.headers["X-Strangler-Upstream"] == "monolith"
    diffs_url = f"http://127.0.0.1:{stack.ports['8790']}/diffs"
    deadline = time.monotonic() + WAIT_TIMEOUT
    while "/api/categories/" not in json.dumps(requests.get(diffs_url, timeout=5).json()):
        assert time.monotonic() < deadline, requests.get(diffs_url, timeout=5).text
        time.sleep(0.3)

    catalog_plan_walk(stack, product_id)

    for service, process in stack.processes.items():
        assert process.poll() is None, f"{service} died:\n{stack.log(service)}"


def catalog_plan_walk(stack: HostStack, product_id: int) -> None:
    """The control plane walks the catalog plan to its 50 % canary and back; both nginx replicas follow each step,
    and the gates read Prometheus, which scrapes both replicas' exporters and the diff endpoint."""
    control = stack.env_of("control-plane", WALK_ENV)
    proxies = [f"http://127.0.0.1:{stack.ports['8080']}", f"http://127.0.0.1:{stack.replica['listen']}"]
    prometheus = f"http://127.0.0.1:{stack.ports['9090']}"
    routes_before = yaml.safe_load(stack.routes.read_text())

    def plan(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "migrations_plan", *args], cwd=ROOT, env=control,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"plan {' '.join(args)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def reads(count: int) -> dict[tuple[int, str], int]:
        """Reads of both catalog routes through both replicas, as distinct sticky users; who answered."""
        seen: dict[tuple[int, str], int] = {}
        for i in range(count):
            for proxy in proxies:
                for path in (f"/api/products/{product_id}/", "/api/categories/"):
                    answer = requests.get(f"{proxy}{path}", headers={"X-User-Id": f"walker{i}"}, timeout=15)
                    key = (answer.status_code, answer.headers.get("X-Strangler-Upstream"))
                    seen[key] = seen.get(key, 0) + 1
        return seen

    def served_by(upstream: str) -> None:
        for proxy in proxies:  # new connections: old workers may hold a kept-alive one until they see the reload
            wait_until(lambda proxy=proxy: requests.get(f"{proxy}/api/products/{product_id}/", timeout=15).headers.get(
                "X-Strangler-Upstream") == upstream, what=f"{proxy} to send product reads to {upstream}")

    for step in ("deploy", "backfill", "verify"):
        assert f"({step})" in plan("advance", "catalog", "--wait", "120").splitlines()[0]
    plan("advance", "catalog", "--wait", "120")  # shadow: both replicas followed before advance returned
    served_by("monolith")
    assert set(reads(15)) == {(200, "monolith")}  # 60 reads, each mirrored to the diff endpoint and compared
    # canary-10's gates: the shadow sample and diff rate, from the diff endpoint's series in Prometheus
    assert "(canary-10)" in plan("advance", "catalog", "--wait", "120").splitlines()[0]
    seen = reads(30)
    assert set(seen) == {(200, "monolith"), (200, "catalog")}, seen
    # canary-50's gates: error rate and p99 of the service, summed by Prometheus over both replicas' exporters
    targets = requests.get(f"{prometheus}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
    assert len(targets) == 3 and {t["health"] for t in targets} == {"up"}, targets
    wait_until(lambda: len(requests.get(f"{prometheus}/api/v1/query", timeout=10, params={
        "query": 'count by (instance) (strangler_proxy_requests_total{upstream="catalog"})'}).json()["data"][
        "result"]) == 2, what="Prometheus to have the catalog's answers from both replicas")
    assert "(canary-50)" in plan("advance", "catalog", "--wait", "120").splitlines()[0]
    status = plan("status", "catalog")
    assert "canary-50" in status, status

    for step in ("canary-50", "canary-10", "shadow", "verify", "backfill", "deploy"):
        assert plan("rollback", "catalog").startswith(f"catalog: rolled back {step},")
    assert yaml.safe_load(stack.routes.read_text()) == routes_before
    served_by("catalog")
    # both replicas serve the file as it is now, as the proxy's own status command says
    argv = stack.argv_of([*SERVICES["proxy"]["command"][:-1], "status"])
    shown = subprocess.run(argv, cwd=ROOT, env=stack.env_of("proxy"), capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and shown.stdout.count(" current") == 2, shown.stdout + shown.stderr
