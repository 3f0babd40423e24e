"""Raw-socket HTTP helpers for the traffic-plane tests: a recording upstream with a strict parser, a raw client."""

from __future__ import annotations

import socket
import threading

import h11


class RecordingUpstream:
    """A raw TCP server parsing each connection with h11: records every request, bytes that follow one (a
    pipelined or smuggled request: neither plane pipelines), and protocol errors."""

    def __init__(self, name: str):
        self.name = name
        self.requests: list[dict] = []
        self.problems: list[str] = []
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.problems.clear()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        parser = h11.Connection(h11.SERVER)
        current: dict | None = None
        with conn:
            try:
                while True:
                    event = parser.next_event()
                    if event is h11.NEED_DATA:
                        data = conn.recv(65536)
                        parser.receive_data(data)
                        if not data:
                            return
                        continue
                    if isinstance(event, h11.ConnectionClosed):
                        return
                    if isinstance(event, h11.Request):
                        current = {"method": event.method, "target": event.target, "body": b"",
                                   "headers": [(k.lower(), v) for k, v in event.headers.raw_items()]}
                    elif isinstance(event, h11.Data):
                        current["body"] += event.data
                    elif isinstance(event, h11.EndOfMessage):
                        with self._lock:
                            self.requests.append(current)
                            trailing, _ = parser.trailing_data
                            if trailing:
                                self.problems.append(f"bytes after the request: {trailing[:80]!r}")
                        body = f'{{"upstream": "{self.name}"}}'.encode()
                        conn.sendall(parser.send(h11.Response(status_code=200, headers=[
                            ("Content-Type", "application/json"), ("Content-Length", str(len(body)))])))
                        conn.sendall(parser.send(h11.Data(data=body)) + parser.send(h11.EndOfMessage()))
                        parser.start_next_cycle()
            except h11.ProtocolError as exc:
                with self._lock:
                    self.problems.append(f"protocol error: {exc}")
            except OSError:
                return

    def close(self) -> None:
        self._sock.close()


def exchange(port: int, raw: bytes, timeout: float = 20.0) -> tuple[int | None, bytes]:
    """Send raw bytes on a fresh connection: status and body of the first answer (None: closed without one)."""
    status, _, body = exchange_with_headers(port, raw, timeout)
    return status, body


def exchange_with_headers(port: int, raw: bytes, timeout: float = 20.0) -> tuple[int | None, dict[str, str], bytes]:
    """``exchange`` plus the answer's headers (lowercased names, the last of repeated ones)."""
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))  # move h11 to awaiting a response
    client.send(h11.EndOfMessage())
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        status, headers, body = None, {}, b""
        while True:
            try:
                event = client.next_event()
            except h11.RemoteProtocolError:
                return status, headers, body
            if event is h11.NEED_DATA:
                try:
                    data = sock.recv(65536)
                except (ConnectionResetError, TimeoutError):
                    return status, headers, body
                client.receive_data(data)
                if not data:
                    return status, headers, body
            elif isinstance(event, h11.Response):
                status = event.status_code
                headers = {name.decode().lower(): value.decode("latin-1") for name, value in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return status, headers, body


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for the server to close ``sock`` (whatever it sends first is read and
    dropped); False when it is still open then."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True
