"""Blocking HTTP/1.1 client for upstream calls (service requests, fallbacks, shadows, the diff endpoint).

Connections are kept alive per thread and per upstream; a pooled connection the server has closed is
detected before reuse (like urllib3 does), so keep-alive never turns into a spurious failure.
"""

from __future__ import annotations

import http.client
import select
import threading
from collections.abc import Iterable
from urllib.parse import urlsplit

from strangler_proxy.diffing import HttpResponseData

# Never forwarded on a fresh connection (RFC 9110 7.6.1), plus what http.client sets itself.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
    "proxy-authenticate", "proxy-authorization",
})
_SET_BY_CLIENT = frozenset({"host", "content-length"})


class UpstreamError(Exception):
    """The upstream could not be reached or did not answer in time."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason  # "connect", "timeout", "protocol"


def _dropped(connection: http.client.HTTPConnection) -> bool:
    sock = connection.sock
    if sock is None:
        return True
    # An idle keep-alive socket is readable only when the peer closed it (or sent garbage).
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


class UpstreamClient:
    def __init__(self) -> None:
        self._local = threading.local()

    def _pool(self) -> dict[str, http.client.HTTPConnection]:
        pool = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = {}
        return pool

    def _connection(self, base_url: str, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        pool = self._pool()
        connection = pool.pop(base_url, None)
        if connection is not None and not _dropped(connection):
            connection.timeout = timeout
            connection.sock.settimeout(timeout)
            return connection, True
        if connection is not None:
            connection.close()
        parts = urlsplit(base_url)
        connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        return connection_class(parts.hostname, parts.port, timeout=timeout), False

    def fetch(
        self, *, base_url: str, method: str, path: str, headers: Iterable[tuple[str, str]] = (),
        body: bytes | None = None, timeout: float = 30.0, host_header: str | None = None,
    ) -> HttpResponseData:
        """Send one request to ``base_url`` (``http://host:port``) and read the whole response."""
        headers = list(headers)
        connection, reused = self._connection(base_url, timeout)
        try:
            try:
                response = self._exchange(connection, base_url, method, path, headers, body, host_header)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                if not reused:
                    raise
                # The server closed the pooled connection between our check and the send: one fresh try.
                connection.close()
                connection, reused = self._connection(base_url, timeout)
                response = self._exchange(connection, base_url, method, path, headers, body, host_header)
        except TimeoutError as exc:
            connection.close()
            raise UpstreamError("timeout", f"{base_url}: no answer within {timeout:g}s") from exc
        except ConnectionRefusedError as exc:
            connection.close()
            raise UpstreamError("connect", f"{base_url}: connection refused") from exc
        except http.client.HTTPException as exc:
            connection.close()
            raise UpstreamError("protocol", f"{base_url}: {exc.__class__.__name__}: {exc}") from exc
        except OSError as exc:
            connection.close()
            raise UpstreamError("connect", f"{base_url}: {exc.__class__.__name__}: {exc}") from exc
        return response

    def _exchange(
        self, connection: http.client.HTTPConnection, base_url: str, method: str, path: str,
        headers: list[tuple[str, str]], body: bytes | None, host_header: str | None,
    ) -> HttpResponseData:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", host_header or urlsplit(base_url).netloc)
        for name, value in headers:
            lowered = name.lower()
            if lowered in HOP_BY_HOP or lowered in _SET_BY_CLIENT:
                continue
            connection.putheader(name, value)
        if body or method not in ("GET", "HEAD", "OPTIONS", "DELETE"):
            connection.putheader("Content-Length", str(len(body or b"")))
        connection.endheaders(body or None)
        raw = connection.getresponse()
        data = raw.read() if method != "HEAD" else b""
        if method == "HEAD":
            raw.close()
        response = HttpResponseData.from_pairs(
            status=raw.status, reason=raw.reason, header_pairs=raw.getheaders(), body=data,
        )
        if raw.will_close:
            connection.close()
        else:
            self._pool()[base_url] = connection
        return response


_default_client = UpstreamClient()


def upstream_fetch(
    *, base_url: str, method: str, path: str, headers: Iterable[tuple[str, str]] = (), body: bytes | None = None,
    timeout: float = 30.0, host_header: str | None = None,
) -> HttpResponseData:
    """``UpstreamClient.fetch`` on a process-wide client."""
    return _default_client.fetch(
        base_url=base_url, method=method, path=path, headers=headers, body=body, timeout=timeout,
        host_header=host_header,
    )
