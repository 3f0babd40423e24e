"""shadow: copies go to the other upstream off the request path; the monolith is always the expected side."""

from __future__ import annotations

import itertools
import json
import threading
import urllib.request

import pytest

from strangler_proxy.diffing import HttpResponseData
from strangler_proxy.metrics import AdminServer, ProxyMetrics
from strangler_proxy.shadow import SHADOW_HEADER, DiffStore, ShadowJob, ShadowRunner
from strangler_proxy.spec import DiffRules
from tests.waiting import REQUEST_TIMEOUT, WAIT_TIMEOUT, wait_until

from .upstream_servers import UpstreamServer, json_answer


@pytest.fixture
def monolith():
    counter = itertools.count()
    server = UpstreamServer(
        "monolith",
        lambda m, p, h, b: json_answer(200, {"items": [{"id": 1, "price": "9.99"}], "request_no": next(counter)}),
    ).start()
    yield server
    server.stop()


@pytest.fixture
def service():
    server = UpstreamServer(
        "catalog", lambda m, p, h, b: json_answer(200, {"items": [{"id": 1, "price": "9.99"}], "request_no": -1}),
    ).start()
    yield server
    server.stop()


def make_job(monolith, service, *, primary="monolith", shadow="catalog", primary_response=None, method="GET",
             rules=None, route="/api/products/"):
    return ShadowJob(
        route=route, rules=rules or DiffRules(), method=method, path="/api/products/?page=1",
        headers=(("Accept", "application/json"), ("X-Request-ID", "rid-7")), body=None, monolith="monolith",
        primary=primary, shadow=shadow, upstream_urls={"monolith": monolith.url, "catalog": service.url},
        primary_response=primary_response, request_id="rid-7", timeout=REQUEST_TIMEOUT,
    )


def test_shadow_copy_is_marked_and_noise_from_two_monolith_calls_is_not_a_diff(monolith, service, tmp_path):
    store = DiffStore(samples_path=tmp_path / "diffs.jsonl")
    runner = ShadowRunner(store=store)
    primary = HttpResponseData.from_pairs(status=200, header_pairs=[("Content-Type", "application/json")],
                                          body=json.dumps({"items": [{"id": 1, "price": "9.99"}],
                                                           "request_no": 100}).encode())
    result = runner.run(make_job(monolith, service, primary_response=primary))
    assert result.equal and result.noise_skipped == ("$.request_no",)
    sent = service.received()[0]
    assert sent["path"] == "/api/products/?page=1"
    assert sent["headers"][SHADOW_HEADER.lower()] == "1" and sent["headers"]["x-request-id"] == "rid-7"
    assert len(monolith.received()) == 1  # only the noise call; the primary answer was given
    assert store.summary()["routes"]["/api/products/"]["comparisons"] == 1
    assert not (tmp_path / "diffs.jsonl").exists() or (tmp_path / "diffs.jsonl").read_text() == ""
    runner.shutdown()


def test_real_difference_is_counted_and_sampled_with_monolith_as_expected(monolith, service, tmp_path):
    service.handler = lambda m, p, h, b: json_answer(200, {"items": [{"id": 1, "price": "10.00"}], "request_no": 5})
    store = DiffStore(samples_path=tmp_path / "diffs.jsonl", max_samples_per_route=2)
    runner = ShadowRunner(store=store)
    # Service is primary (mode service with the monolith as shadow): the monolith answer is still "expected".
    for _ in range(3):
        served = HttpResponseData.from_pairs(
            status=200, header_pairs=[("Content-Type", "application/json")],
            body=json.dumps({"items": [{"id": 1, "price": "10.00"}], "request_no": 5}).encode())
        result = runner.run(make_job(monolith, service, primary="catalog", shadow="monolith", primary_response=served))
    assert [(d.path, d.expected, d.actual) for d in result.differences] == [("$.items[0].price", "9.99", "10.00")]
    summary = store.summary()
    assert summary["routes"]["/api/products/"] | {"top_fields": None} == {
        "comparisons": 3, "diffs": 3, "diff_rate": 1.0, "errors": 0, "dropped": 0, "top_fields": None}
    assert summary["routes"]["/api/products/"]["top_fields"] == {"$.items[0].price": 3}
    lines = [json.loads(line) for line in (tmp_path / "diffs.jsonl").read_text().splitlines()]
    assert len(lines) == 2  # bounded sample
    assert lines[0]["expected_upstream"] == "monolith" and lines[0]["actual_upstream"] == "catalog"
    runner.shutdown()


def test_both_sides_are_fetched_when_no_primary_answer_is_given(monolith, service):
    runner = ShadowRunner(store=DiffStore())
    result = runner.run(make_job(monolith, service, rules=DiffRules(learn_noise=False)))
    assert [d.path for d in result.differences] == ["$.request_no"]
    assert len(monolith.received()) == 1 and len(service.received()) == 1
    runner.shutdown()


def test_unsafe_methods_never_get_a_second_monolith_call(monolith, service):
    runner = ShadowRunner(store=DiffStore())
    runner.run(make_job(monolith, service, method="POST", primary_response=HttpResponseData(200, {}, b"")))
    assert len(monolith.received()) == 0 and len(service.received()) == 1
    runner.shutdown()


def test_submit_returns_at_once_and_drops_when_saturated(monolith, service):
    release, answered = threading.Event(), threading.Event()

    def slow(m, p, h, b):
        release.wait(WAIT_TIMEOUT)
        answered.set()
        return json_answer(200, {})

    service.handler = slow
    errors = []
    store = DiffStore()
    runner = ShadowRunner(store=store, max_workers=1, max_pending=2, on_error=lambda job, reason: errors.append(reason))
    accepted = [runner.submit(make_job(monolith, service, rules=DiffRules(learn_noise=False))) for _ in range(4)]
    assert not answered.is_set()  # a submit that waited for the shadow would return only after release
    assert accepted == [True, True, False, False]
    assert errors == ["dropped", "dropped"]
    release.set()
    wait_until(lambda: not runner.pending, interval=0.01, what="the shadows to finish")
    assert store.summary()["routes"]["/api/products/"]["comparisons"] == 2
    assert store.summary()["routes"]["/api/products/"]["dropped"] == 2
    runner.shutdown()


def test_unreachable_shadow_is_an_error_not_a_crash(monolith):
    store = DiffStore()
    runner = ShadowRunner(store=store)
    dead = UpstreamServer("dead").start()
    dead.stop()  # port now refuses connections
    job = make_job(monolith, dead, primary_response=HttpResponseData(200, {}, b""))
    assert runner.submit(job)
    wait_until(lambda: not runner.pending, interval=0.01, what="the shadow to fail")
    assert store.summary()["routes"]["/api/products/"]["errors"] == 1
    runner.shutdown()


def test_admin_server_serves_metrics_and_diff_summary(monolith, service):
    metrics = ProxyMetrics()
    store = DiffStore()
    runner = ShadowRunner(store=store, on_compared=lambda job, r: (
        metrics.shadow_comparisons.labels(route=job.route).inc(),
        not r.equal and metrics.shadow_diffs.labels(route=job.route).inc()))
    runner.run(make_job(monolith, service, rules=DiffRules(learn_noise=False)))
    metrics.requests.labels(route="/api/products/", upstream="monolith", status="200").inc()
    admin = AdminServer(metrics=metrics, diff_summary=store.summary).start()
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{admin.port}/metrics", timeout=REQUEST_TIMEOUT).read().decode()
        assert 'strangler_proxy_shadow_diffs_total{route="/api/products/"} 1.0' in text
        assert 'strangler_proxy_requests_total{route="/api/products/",status="200",upstream="monolith"} 1.0' in text
        diffs_url = f"http://127.0.0.1:{admin.port}/diffs"
        summary = json.loads(urllib.request.urlopen(diffs_url, timeout=REQUEST_TIMEOUT).read())
        assert summary["comparisons"] == 1 and summary["diffs"] == 1
        assert summary["recent"][0]["differences"][0]["path"] == "$.request_no"
    finally:
        admin.stop()
        runner.shutdown()
