"""The asyncio upstream client sends the same bytes and reads the same answers as the blocking one, on real sockets.

A scripted HTTP server (one thread per connection) answers by path: content-length, chunked with trailers,
close-delimited, interim 100, repeated headers, idle connections the server drops, silence, garbage.
"""

from __future__ import annotations

import asyncio
import socket
import socketserver
import threading
import time

import pytest

from strangler_proxy.fetch import AsyncUpstreamClient, UpstreamClient, UpstreamError

ANSWERS = {
    "/length": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{\"a\": 1}\n",
    "/chunked": (b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-Kind: chunked\r\n\r\n"
                 b"4;ext=1\r\nabcd\r\n3\r\nefg\r\n0\r\nX-Trailer: t\r\n\r\n"),
    "/close": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
    "/http10": b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "/continue": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone",
    "/cookies": b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n",
    "/folded": b"HTTP/1.1 200 OK\r\nX-Folded: one\r\n  two\r\nContent-Length: 0\r\n\r\n",
    "/empty": b"HTTP/1.1 204 No Content\r\nX-Empty: yes\r\n\r\n",
    "/error": b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy",
    "/garbage": b"SPDY/9 what\r\n\r\n",
}


class ScriptedServer:
    def __init__(self, *, drop_idle: bool = False):
        self.requests: list[bytes] = []
        self.connections = 0
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer.connections += 1
                buffer = b""
                while True:
                    while b"\r\n\r\n" not in buffer:
                        data = self.request.recv(65536)
                        if not data:
                            return
                        buffer += data
                    head, _, buffer = buffer.partition(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    while len(buffer) < length:
                        buffer += self.request.recv(65536)
                    body, buffer = buffer[:length], buffer[length:]
                    outer.requests.append(head + b"\r\n\r\n" + body)
                    path = head.split(b" ")[1].decode()
                    if path == "/silent":
                        time.sleep(3)
                        return
                    if path == "/head":
                        self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
                    else:
                        self.request.sendall(ANSWERS.get(path, ANSWERS["/length"]))
                    if path in ("/close", "/http10", "/garbage") or outer.drop_idle:
                        return

        self.drop_idle = drop_idle
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server():
    s = ScriptedServer()
    yield s
    s.stop()


def both(server: ScriptedServer, **request):
    """The same request through the blocking and the asyncio client: (blocking answer, async answer, bytes sent)."""
    sync_answer = UpstreamClient().fetch(base_url=server.url, **request)
    sync_sent = server.requests[-1]
    async_answer = asyncio.run(AsyncUpstreamClient().fetch(base_url=server.url, **request))
    async_sent = server.requests[-1]
    assert async_sent == sync_sent
    return sync_answer, async_answer


@pytest.mark.parametrize("request_args", [
    {"method": "GET", "path": "/length?q=1", "headers": [("Accept", "application/json"), ("X-Request-ID", "r1"),
                                                         ("Connection", "keep-alive"), ("Host", "ignored")]},
    {"method": "POST", "path": "/chunked", "headers": [("Content-Type", "application/json")], "body": b'{"x": 1}'},
    {"method": "POST", "path": "/length", "body": None},
    {"method": "DELETE", "path": "/length"},
    {"method": "GET", "path": "/close", "host_header": "shop.example:8080"},
    {"method": "GET", "path": "/http10"},
    {"method": "GET", "path": "/continue"},
    {"method": "GET", "path": "/cookies"},
    {"method": "GET", "path": "/empty"},
    {"method": "GET", "path": "/error"},
    {"method": "HEAD", "path": "/head"},
])
def test_same_bytes_sent_and_same_answer_read_as_the_blocking_client(server, request_args):
    sync_answer, async_answer = both(server, **request_args)
    assert async_answer == sync_answer


def test_chunked_body_is_joined_and_repeated_headers_kept_apart(server):
    answer = asyncio.run(AsyncUpstreamClient().fetch(base_url=server.url, method="GET", path="/chunked"))
    assert (answer.status, answer.reason, answer.body) == (201, "Created", b"abcdefg")
    cookies = asyncio.run(AsyncUpstreamClient().fetch(base_url=server.url, method="GET", path="/cookies"))
    assert [v for k, v in cookies.header_pairs if k == "Set-Cookie"] == ["a=1", "b=2"]
    # Obsolete line folding becomes one space (RFC 9112 5.2); http.client would keep the CRLF inside the value.
    folded = asyncio.run(AsyncUpstreamClient().fetch(base_url=server.url, method="GET", path="/folded"))
    assert folded.header("X-Folded") == "one two"


def test_connections_are_reused_and_a_dropped_idle_one_is_retried_on_a_fresh_one():
    keeping, dropping = ScriptedServer(), ScriptedServer(drop_idle=True)
    try:
        async def three(url: str) -> list[int]:
            client = AsyncUpstreamClient()
            statuses = []
            for _ in range(3):
                statuses.append((await client.fetch(base_url=url, method="GET", path="/length")).status)
                await asyncio.sleep(0.05)  # lets the dropping server's close arrive (or not) before the next send
            return statuses

        assert asyncio.run(three(keeping.url)) == [200, 200, 200]
        assert keeping.connections == 1
        assert asyncio.run(three(dropping.url)) == [200, 200, 200]
        assert dropping.connections == 3
    finally:
        keeping.stop()
        dropping.stop()


def test_failures_are_upstream_errors_with_the_blocking_clients_reasons(server):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # bound, not listening: refused
    client = AsyncUpstreamClient()
    with pytest.raises(UpstreamError) as refused:
        asyncio.run(client.fetch(base_url=dead, method="GET", path="/"))
    assert refused.value.reason == "connect"

    with pytest.raises(UpstreamError) as silent:  # the server closes without an answer after 3 s: not a timeout
        asyncio.run(client.fetch(base_url=server.url, method="GET", path="/silent", timeout=0.3))
    assert silent.value.reason == "timeout"

    for blocking in (False, True):
        with pytest.raises(UpstreamError) as garbage:
            if blocking:
                UpstreamClient().fetch(base_url=server.url, method="GET", path="/garbage")
            else:
                asyncio.run(client.fetch(base_url=server.url, method="GET", path="/garbage"))
        assert garbage.value.reason == "protocol"


def test_both_clients_send_header_bytes_as_the_client_sent_them_and_refuse_line_breaks():
    from strangler_proxy.fetch import UnsendableRequest
    from tests.strangler_proxy.raw_http import RecordingUpstream

    upstream = RecordingUpstream("service")
    try:
        # mitmproxy's str view of the raw bytes (UTF-8 with surrogateescape): e-acute, euro, a lone 0xff.
        value = b"cr\xc3\xa8me \xe2\x82\xac caf\xff".decode("utf-8", "surrogateescape")
        UpstreamClient().fetch(base_url=upstream.url, method="GET", path="/x", headers=[("X-Note", value)])
        asyncio.run(AsyncUpstreamClient().fetch(base_url=upstream.url, method="GET", path="/x",
                                                headers=[("X-Note", value)]))
        assert [dict(r["headers"])[b"x-note"] for r in upstream.requests] == [b"cr\xc3\xa8me \xe2\x82\xac caf\xff"] * 2
        with pytest.raises(UnsendableRequest):
            asyncio.run(AsyncUpstreamClient().fetch(base_url=upstream.url, method="GET", path="/x",
                                                    headers=[("X-Note", "a\r\nX-Injected: 1")]))
        assert len(upstream.requests) == 2
    finally:
        upstream.close()
