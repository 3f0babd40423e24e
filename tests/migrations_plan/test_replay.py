"""`strangler-replay` against a live monolith and a live catalog service whose copy of one product differs.

Inputs: a plain `METHOD /path` file and a real recording made by `strangler-proxy run --record`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from migrations_plan.regression.cli import main as replay_main
from tests.extracted.catalog.live import free_port
from tests.migrations_plan import procs
from tests.migrations_plan.sidebyside_live import SHARED_HOST, live_pair_start, proxy_start

# x-request-id is compared on purpose: each side makes a new one per request, so only noise learning
# (the monolith asked twice) keeps it from counting as a difference.
ROUTES = """
upstreams:
  monolith: {monolith}
  catalog: {service}
monolith: monolith
routes:
  - prefix: /api/products/
    mode: monolith
    service: catalog
    diff: {{headers: [content-type, x-request-id]}}
  - prefix: /api/categories/
    mode: monolith
    service: catalog
    diff: {{headers: [content-type]}}
"""


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("replay")
    started = live_pair_start(workdir=workdir, rename_in_service={1: "Renamed In The Service"})
    routes = workdir / "routes.yaml"
    routes.write_text(ROUTES.format(monolith=started.monolith.url, service=started.service.url))
    yield started, routes
    started.stop()


def _replay(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "migrations_plan.regression", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def test_replay_of_a_requests_file_reports_per_endpoint_rates_fields_and_examples(pair, tmp_path):
    live, routes = pair
    others = [pid for pid in live.product_ids if pid != 1][:4]
    lines = ["# a comment", "GET /api/products/1/", *(f"GET /api/products/{pid}/" for pid in others),
             "GET /api/products/?page_size=50&ordering=price", "GET /api/products/?min_price=99999", "",
             "GET /api/categories/", "POST /api/products/", "DELETE /api/products/2/"]
    requests_file = tmp_path / "requests.txt"
    requests_file.write_text("\n".join(lines) + "\n")
    done = _replay(str(requests_file), "--monolith", live.monolith.url, "--service", live.service.url,
                   "--routes", str(routes), "--host", SHARED_HOST, "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # differences found
    assert "replay: 100%" in done.stderr and "10/10" in done.stderr  # the progress bar ran to the end
    assert done.stdout.splitlines()[0] == ("10 requests: 8 compared, 2 differing (25.0%), 0 errors, 2 unsafe skipped, "
                                          "0 sent to no service skipped")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (summary["compared"], summary["differing"], summary["errors"]) == (8, 2, 0)
    assert summary["skipped_unsafe"] == {"POST": 1, "DELETE": 1}
    assert summary["noise"] == {"/api/products/": ["header:x-request-id"]}
    # Seven GETs on /api/products/: each taught the rule again and had its request id difference hidden.
    assert [(r["route"], r["path"], r["kinds"], r["evidence"], r["suppressed"]) for r in summary["noise_rules"]] == [
        ("/api/products/", "header:x-request-id", ["changed"], 7, 7)]
    endpoints = {e["endpoint"]: e for e in summary["endpoints"]}
    assert set(endpoints) == {"GET /api/products/{id}/", "GET /api/products/", "GET /api/categories/"}
    detail = endpoints["GET /api/products/{id}/"]
    assert (detail["compared"], detail["differing"], detail["diff_rate"]) == (5, 1, 0.2)
    assert detail["worst_fields"] == [{"path": "$.name", "count": 1}]
    example = detail["examples"][0]
    assert example["path"] == "/api/products/1/"
    assert example["differences"][0]["text"].startswith('$.name: monolith "')
    assert json.loads(example["service"]["body"])["name"] == "Renamed In The Service"
    assert json.loads(example["monolith"]["body"])["name"] != "Renamed In The Service"
    listing = endpoints["GET /api/products/"]
    assert (listing["compared"], listing["differing"]) == (2, 1)  # only the page holding product 1 differs
    assert listing["worst_fields"] == [{"path": "$.results[*].name", "count": 1}]
    assert endpoints["GET /api/categories/"]["differing"] == 0
    # worst endpoints first
    assert [e["endpoint"] for e in summary["endpoints"]][-1] == "GET /api/categories/"

    html = (tmp_path / "out" / "report.html").read_text()
    assert '<b id="differing">2</b>' in html and '<b id="compared">8</b>' in html
    assert "<code>GET /api/products/{id}/</code>" in html and "$.results[*].name (1)" in html
    assert "Renamed In The Service" in html
    assert ("<td><code>/api/products/</code></td><td><code>header:x-request-id</code></td><td>changed</td>"
            "<td class=num>7</td><td class=num>7</td><td>yes</td>") in html
    # self-contained: no scripts, no external stylesheets, images or links
    assert "<script" not in html and "src=" not in html and "<link" not in html and "href=" not in html


def test_parallel_workers_give_the_same_summary(pair, tmp_path):
    live, routes = pair
    lines = [f"GET /api/products/{pid}/" for pid in live.product_ids[:12]] + ["GET /api/categories/"] * 4
    (tmp_path / "r.txt").write_text("\n".join(lines) + "\n")
    results = []
    for workers in ("1", "4"):
        out = tmp_path / workers
        assert replay_main([str(tmp_path / "r.txt"), "--monolith", live.monolith.url, "--service", live.service.url,
                            "--routes", str(routes), "--host", SHARED_HOST, "--out", str(out), "--quiet",
                            "--workers", workers]) == 1
        summary = json.loads((out / "summary.json").read_text())
        results.append({k: summary[k] for k in ("requests", "compared", "differing", "errors", "noise", "endpoints")})
    assert results[0] == results[1]
    assert (results[0]["compared"], results[0]["differing"]) == (16, 1)


def test_without_noise_learning_the_request_id_header_counts(pair, tmp_path):
    live, routes = pair
    (tmp_path / "r.txt").write_text("GET /api/products/2/\nGET /api/products/3/\nGET /api/categories/\n")
    code = replay_main([str(tmp_path / "r.txt"), "--monolith", live.monolith.url, "--service", live.service.url,
                        "--routes", str(routes), "--host", SHARED_HOST, "--out", str(tmp_path), "--quiet",
                        "--no-learn-noise"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert code == 1 and summary["noise"] == {}
    detail = next(e for e in summary["endpoints"] if e["endpoint"] == "GET /api/products/{id}/")
    assert detail["differing"] == 2 and detail["worst_fields"] == [{"path": "header:x-request-id", "count": 2}]


def test_unsafe_methods_only_with_allow_unsafe(pair, tmp_path):
    live, routes = pair
    (tmp_path / "r.txt").write_text("POST /api/categories/\nGET /api/categories/\n")
    args = [str(tmp_path / "r.txt"), "--monolith", live.monolith.url, "--service", live.service.url,
            "--routes", str(routes), "--host", SHARED_HOST, "--out", str(tmp_path), "--quiet"]
    assert replay_main(args) == 0
    assert json.loads((tmp_path / "summary.json").read_text())["compared"] == 1
    # An anonymous create is refused identically by both sides (nothing is written).
    assert replay_main([*args, "--allow-unsafe"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["compared"] == 2 and summary["skipped_unsafe"] == {}
    assert any(e["endpoint"] == "POST /api/categories/" and e["compared"] == 1 for e in summary["endpoints"])
    # A write is never sent to the monolith twice, so nothing is learned from it: its request id differs.
    (tmp_path / "r.txt").write_text("POST /api/products/\n")
    assert replay_main([*args, "--allow-unsafe"]) == 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["noise"] == {} and summary["endpoints"][0]["worst_fields"] == [
        {"path": "header:x-request-id", "count": 1}]


@pytest.mark.slow
def test_replay_of_a_real_proxy_recording(pair, tmp_path):
    """Record through `strangler-proxy run --record`, then replay the recording file as it is."""
    live, routes = pair
    record = tmp_path / "record.jsonl"
    proxy, proxy_url, _admin = proxy_start(routes=routes, workdir=tmp_path, extra=("--record", str(record)))
    try:
        for path in ("/api/products/1/", "/api/products/2/", "/api/categories/", "/api/products/?min_price=99999"):
            # a credential the monolith knows no scheme for: anonymous on both sides, and redacted in the recording
            assert requests.get(proxy_url + path, headers={"Authorization": "Bearer opaque"}, timeout=10).ok
        assert requests.post(proxy_url + "/api/products/", json={}, timeout=10).status_code in (401, 403)
    finally:
        procs.stop(proxy)
    recorded = [json.loads(line) for line in record.read_text().splitlines()]
    assert [r["path"] for r in recorded][0] == "/healthz"  # the readiness probe went through the proxy too
    assert [r["method"] for r in recorded[1:]] == ["GET"] * 4 + ["POST"]
    assert recorded[1]["headers"].count(["Authorization", "[redacted]"]) == 1
    out = tmp_path / "out"
    code = replay_main([str(record), "--monolith", live.monolith.url, "--service", live.service.url,
                        "--routes", str(routes), "--host", SHARED_HOST, "--out", str(out), "--quiet"])
    summary = json.loads((out / "summary.json").read_text())
    assert code == 1
    assert (summary["requests"], summary["compared"], summary["differing"]) == (6, 4, 1)
    assert summary["skipped_unsafe"] == {"POST": 1}
    assert summary["skipped_not_routed"] == 1  # /healthz: no route sends it to a service
    assert "GET /healthz" not in {e["endpoint"] for e in summary["endpoints"]}
    bad = next(e for e in summary["endpoints"] if e["differing"])
    assert bad["endpoint"] == "GET /api/products/{id}/" and bad["examples"][0]["path"] == "/api/products/1/"


def _one_line_error(capsys, argv: list[str]) -> str:
    assert replay_main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith("strangler-replay: error: ")
    return lines[0].removeprefix("strangler-replay: error: ")


def test_bad_input_is_one_line_and_exit_2(pair, tmp_path, capsys):
    live, routes = pair
    sides = ["--monolith", live.monolith.url, "--service", live.service.url, "--routes", str(routes),
             "--out", str(tmp_path / "out")]
    missing = tmp_path / "missing.txt"
    assert _one_line_error(capsys, [str(missing), *sides]) == f"{missing}:0: no such file"
    text = tmp_path / "bad.txt"
    text.write_text("GET /api/products/\n\nFETCH\n")
    assert _one_line_error(capsys, [str(text), *sides]) == \
        f"{text}:3: expected 'METHOD /path' or a JSON object, got 'FETCH'"
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text('{"method": "GET", "path": "/api/products/"}\n{"method": "GET", "path": \n')
    assert _one_line_error(capsys, [str(jsonl), *sides]).startswith(f"{jsonl}:2: not valid JSON: ")
    jsonl.write_text('{"method": "GET"}\n')
    assert _one_line_error(capsys, [str(jsonl), *sides]) == f"""{jsonl}:1: a JSON line needs "path" starting with '/'"""
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    assert _one_line_error(capsys, [str(empty), *sides]) == f"{empty}:0: no requests in the file"

    good = tmp_path / "good.txt"
    good.write_text("GET /api/categories/\n")
    nobody = f"http://127.0.0.1:{free_port()}"
    assert _one_line_error(capsys, [str(good), "--monolith", live.monolith.url, "--service", nobody,
                                    "--routes", str(routes)]) == f"service is unreachable: {nobody}: connection refused"
    assert _one_line_error(capsys, [str(good), "--monolith", "127.0.0.1:8000", "--service", live.service.url]) == \
        "--monolith: expected a base URL like http://127.0.0.1:8000, got '127.0.0.1:8000'"
    assert _one_line_error(capsys, [str(good), *sides[:4], "--routes", str(tmp_path / "nope.yaml")]) == \
        f"{tmp_path / 'nope.yaml'}:0: file: No such file or directory"
    assert _one_line_error(capsys, [str(good), *sides, "--route", "/api/nope/"]).endswith(
        "no route with prefix '/api/nope/' (routes: /api/products/, /api/categories/)")
    assert _one_line_error(capsys, [str(good), *sides, "--workers", "2", "--allow-unsafe"]) == \
        "--allow-unsafe replays writes in their recorded order: it needs --workers 1"
    unrouted = tmp_path / "unrouted.txt"
    unrouted.write_text("GET /healthz\nGET /cart/\n")
    assert _one_line_error(capsys, [str(unrouted), *sides]) == \
        f"{unrouted}: none of its 2 requests is sent to a service by a route of {routes}"
    assert not (tmp_path / "out").exists()  # nothing written on bad input


def test_console_script_is_installed(tmp_path):
    done = subprocess.run([sys.executable, "-c", "import shutil,sys; print(shutil.which('strangler-replay', "
                           "path=sys.prefix + '/bin'))"], capture_output=True, text=True)
    script = done.stdout.strip()
    assert script != "None"
    missing = tmp_path / "x.txt"
    run = subprocess.run([script, str(missing), "--monolith", "http://127.0.0.1:9", "--service", "http://127.0.0.1:9"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and run.stderr == f"strangler-replay: error: {missing}:0: no such file\n"


class _HangsUpExceptOnHealthz(BaseHTTPRequestHandler):
    """A service that is up (/healthz answers) but drops every other request without an answer."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/healthz":
            body = b'{"status":"ok"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.close_connection = True

    def log_message(self, format, *args):  # noqa: A002 - quiet tests
        pass


def test_requests_the_service_does_not_answer_are_errors_with_examples(pair, tmp_path):
    live, routes = pair
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HangsUpExceptOnHealthz)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    broken = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        (tmp_path / "r.txt").write_text("GET /api/categories/\nGET /api/products/2/\nGET /api/products/3/\n")
        code = replay_main([str(tmp_path / "r.txt"), "--monolith", live.monolith.url, "--service", broken,
                            "--routes", str(routes), "--out", str(tmp_path), "--quiet"])
    finally:
        server.shutdown()
        server.server_close()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert code == 1
    assert (summary["compared"], summary["errors"]) == (0, 3)
    detail = next(e for e in summary["endpoints"] if e["endpoint"] == "GET /api/products/{id}/")
    assert detail["errors"] == 2 and detail["diff_rate"] is None
    assert detail["examples"][0]["error"].startswith(f"{broken}: RemoteDisconnected")
    assert "RemoteDisconnected" in (tmp_path / "report.html").read_text()
