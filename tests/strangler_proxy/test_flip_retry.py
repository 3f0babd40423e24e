"""The mitmproxy plane sends again a write that an ownership flip refused (strangler_proxy.flip_retry).

The race, staged with real processes: a write is forwarded to the old owner (the monolith) before the hold, and
stays in its application; the route file then holds the route's writes; the old owner refuses the write with
409 not_owner (the fence landed); the route file then sends writes to the new owner and lifts the hold. The
client must get the new owner's answer (queue mode) or 503 write_hold + Retry-After (reject mode), never the
409. A 409 not_owner with no flip behind it (the table never changed) reaches the client as it is.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.migrations_plan.procs import free_port, start_proxy, stop
from tests.waiting import WAIT_TIMEOUT, wait_until

pytestmark = pytest.mark.slow

ROUTES = """\
upstreams:
  monolith: {monolith}
  catalog: {catalog}
monolith: monolith
settings:
  route_headers: true
  hold_retry_after: 2
  hold_queue_seconds: 120
routes:
  - prefix: /api/products/
    {methods}
    mode: service
    service: catalog
{hold}"""

NOT_OWNER = {"error": {"code": "not_owner", "message": "product writes are owned by catalog", "details": {}}}


class Owner:
    """An upstream that records writes; while `gate` is set up it keeps each write until the gate opens, then
    answers `status` with `body` (409 not_owner: the fence refused it, nothing written)."""

    def __init__(self, name: str, *, status: int, body: dict):
        self.name, self.status, self.body = name, status, body
        self.writes: list[bytes] = []
        self.arrived = threading.Event()
        self.answered = threading.Event()
        self.gate: threading.Event | None = None
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.writes.append(body)
                owner.arrived.set()
                if owner.gate is not None:
                    owner.gate.wait(WAIT_TIMEOUT)
                answer = json.dumps({**owner.body, "upstream": owner.name}).encode()
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
                owner.answered.set()

            def do_GET(self) -> None:  # noqa: N802 - health checks; never recorded
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format, *args):  # noqa: A002 - quiet tests
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Stage:
    def __init__(self, tmp_path):
        self.monolith = Owner("monolith", status=409, body=NOT_OWNER)
        self.catalog = Owner("catalog", status=201, body={"id": 1})
        self.routes = tmp_path / "routes.yaml"
        self.write_routes(writes_to="monolith", hold=None)
        self.port, self.admin = free_port(), free_port()
        self.process = start_proxy(self.routes, tmp_path, port=self.port, admin_port=self.admin)

    def write_routes(self, *, writes_to: str, hold: str | None) -> None:
        """The route file as a plan's flip step edits it; waits until the running proxy serves it."""
        text = ROUTES.format(monolith=self.monolith.url, catalog=self.catalog.url,
                             methods="methods: [GET, HEAD, OPTIONS]" if writes_to == "monolith" else "",
                             hold=f"    hold: {hold}\n" if hold else "")
        tmp = self.routes.with_name(".routes.tmp")
        tmp.write_text(text)
        tmp.replace(self.routes)
        if getattr(self, "process", None) is None:
            return
        digest = hashlib.sha256(text.encode()).hexdigest()
        wait_until(lambda: requests.get(f"http://127.0.0.1:{self.admin}/diffs", timeout=10).json()
                   ["route_table"]["digest"] == digest, what="the proxy to serve the edited route file")

    def post_in_background(self) -> dict:
        result: dict = {}

        def send():
            result["reply"] = requests.post(f"http://127.0.0.1:{self.port}/api/products/", json={"sku": "A-1"},
                                            timeout=WAIT_TIMEOUT * 2)

        result["thread"] = threading.Thread(target=send, daemon=True)
        result["thread"].start()
        return result

    def metric(self, name: str) -> float:
        text = requests.get(f"http://127.0.0.1:{self.admin}/metrics", timeout=10).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))

    def close(self) -> None:
        stop(self.process)
        self.monolith.close()
        self.catalog.close()


@pytest.fixture
def stage(tmp_path):
    staged = Stage(tmp_path)
    yield staged
    staged.close()


def _race(stage: Stage, hold: str) -> dict:
    """The write reaches the old owner, the hold starts, the old owner refuses it (fenced)."""
    stage.monolith.gate = threading.Event()
    sent = stage.post_in_background()
    assert stage.monolith.arrived.wait(WAIT_TIMEOUT), "the write never reached the old owner"
    stage.write_routes(writes_to="monolith", hold=hold)
    stage.monolith.gate.set()  # the fence has landed: 409 not_owner, nothing written
    return sent


def test_a_write_refused_by_the_flip_goes_to_the_new_owner_once_the_hold_lifts(stage):
    sent = _race(stage, "queue")
    assert stage.monolith.answered.wait(WAIT_TIMEOUT)
    sent["thread"].join(1)  # the proxy keeps the refused write while its path is held: no answer comes
    assert "reply" not in sent
    stage.write_routes(writes_to="catalog", hold=None)
    sent["thread"].join(WAIT_TIMEOUT * 2)
    reply = sent["reply"]
    assert reply.status_code == 201, reply.text
    assert reply.json()["upstream"] == "catalog" and reply.headers["X-Strangler-Upstream"] == "catalog"
    assert [json.loads(w) for w in stage.catalog.writes] == [{"sku": "A-1"}]  # the same write, once
    assert len(stage.monolith.writes) == 1
    assert stage.metric("strangler_proxy_write_resends_total") == 1


def test_reject_mode_answers_the_hold_instead_of_the_refusal(stage):
    sent = _race(stage, "reject")
    sent["thread"].join(WAIT_TIMEOUT * 2)
    reply = sent["reply"]
    assert reply.status_code == 503 and reply.headers["Retry-After"] == "2", reply.text
    assert reply.json()["error"]["code"] == "write_hold"
    assert stage.catalog.writes == []
    # the client's retry after the flip reaches the new owner
    stage.write_routes(writes_to="catalog", hold=None)
    again = requests.post(f"http://127.0.0.1:{stage.port}/api/products/", json={"sku": "A-1"}, timeout=WAIT_TIMEOUT)
    assert again.status_code == 201 and again.json()["upstream"] == "catalog"


def test_a_refusal_with_the_table_already_flipped_is_sent_again_at_once(stage):
    stage.monolith.gate = threading.Event()
    sent = stage.post_in_background()
    assert stage.monolith.arrived.wait(WAIT_TIMEOUT)
    stage.write_routes(writes_to="monolith", hold="reject")
    stage.write_routes(writes_to="catalog", hold=None)  # the whole flip happened while the write was inside
    stage.monolith.gate.set()
    sent["thread"].join(WAIT_TIMEOUT * 2)
    assert sent["reply"].status_code == 201 and sent["reply"].json()["upstream"] == "catalog"
    assert len(stage.catalog.writes) == 1


def test_a_refusal_without_a_flip_reaches_the_client(stage):
    reply = requests.post(f"http://127.0.0.1:{stage.port}/api/products/", json={"sku": "B-2"}, timeout=WAIT_TIMEOUT)
    assert reply.status_code == 409 and reply.json()["error"]["code"] == "not_owner"
    assert stage.catalog.writes == [] and stage.metric("strangler_proxy_write_resends_total") == 0
