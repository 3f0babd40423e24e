"""The nginx plane's access log, set by the route file's settings.access_log: buffered (default), unbuffered, off."""

from __future__ import annotations

import time

import pytest

from strangler_proxy.loader import parse_route_text
from strangler_proxy.nginx.render import NginxOptions, render_nginx
from tests.strangler_proxy.planes import Client, start_nginx
from tests.strangler_proxy.upstreams import NamedUpstream, free_port
from tests.waiting import WAIT_TIMEOUT


def table(monolith_url: str = "http://127.0.0.1:8000", access_log: str | None = None):
    settings = f"settings: {{access_log: {access_log}}}\n" if access_log else ""
    return parse_route_text(f"upstreams:\n  monolith: {monolith_url}\nmonolith: monolith\n{settings}",
                            source="log.yaml")


def access_log_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines()
             if line.strip().startswith("access_log ") and "strangler_metrics" not in line]  # the exporter's log
    assert len(lines) == 1, lines  # one http-level directive; no server or location overrides it
    return lines[0].split("#")[0].strip()


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (None, "access_log {run}/access.log strangler buffer=64k flush=1s;"),
        ("buffered", "access_log {run}/access.log strangler buffer=64k flush=1s;"),
        ("unbuffered", "access_log {run}/access.log strangler;"),
        ("off", "access_log off;"),
        ('"off"', "access_log off;"),
    ],
)
def test_the_setting_picks_the_access_log_directive(tmp_path, setting, expected):
    text = render_nginx(table(access_log=setting), NginxOptions(runtime_dir=tmp_path))
    assert access_log_line(text) == expected.format(run=tmp_path.resolve())


@pytest.fixture
def monolith():
    upstream = NamedUpstream("monolith")
    yield upstream
    upstream.close()


def serve_one_request(monolith, tmp_path, access_log: str, request_id: str, *, follow_up: str | None = None):
    """Start nginx with the setting, send one request; (its access log path, when the answer arrived).

    With ``follow_up``, a second request goes on the same keep-alive connection once the first is answered: nginx
    runs the first one's log phase when it frees that request, before it reads the next one on the connection.
    """
    runtime = tmp_path / access_log
    instance = start_nginx(table(monolith.url, access_log), runtime, free_port(), override_secret=None)
    client = Client(int(instance.options.listen.rsplit(":", 1)[1]))
    try:
        sent = time.monotonic()
        reply = client.send("GET", "/api/orders/1", {"X-Request-ID": request_id})
        assert (reply.status, reply.served_by) == (200, "monolith")
        if follow_up is not None:
            assert client.send("GET", "/api/orders/2", {"X-Request-ID": follow_up}).status == 200
        return instance, runtime / "access.log", sent
    finally:
        client.close()


def wait_for_line(log, needle: str, timeout: float = WAIT_TIMEOUT) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = log.read_text() if log.exists() else ""
        if needle in text:
            return text
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} not in {log} after {timeout}s")


@pytest.mark.nginx
def test_buffered_log_is_written_by_the_flush_timer_not_per_request(monolith, tmp_path):
    instance, log, sent = serve_one_request(monolith, tmp_path, "buffered", "log-buffered-1")
    try:
        text = log.read_text() if log.exists() else ""
        # A per-request write would be there already; a buffered line only after flush=1s.
        assert "log-buffered-1" not in text or time.monotonic() - sent >= 1.0, text
        line = wait_for_line(log, "id=log-buffered-1")
        assert "route=default upstream=127.0.0.1:" in line
    finally:
        instance.stop()


@pytest.mark.nginx
def test_unbuffered_log_is_written_per_request(monolith, tmp_path):
    instance, log, _sent = serve_one_request(monolith, tmp_path, "unbuffered", "log-unbuffered-1",
                                             follow_up="log-unbuffered-2")
    try:
        # Written in the first request's log phase, which ended before the second was read: no flush timer,
        # and nothing this test would have to time.
        text = log.read_text()
        assert "id=log-unbuffered-1" in text and "route=default" in text, text
    finally:
        instance.stop()


@pytest.mark.nginx
def test_off_writes_no_access_log(monolith, tmp_path):
    instance, log, _sent = serve_one_request(monolith, tmp_path, "off", "log-off-1")
    instance.stop()  # a stopping nginx flushes every log buffer
    assert not log.exists() or log.read_text() == ""
