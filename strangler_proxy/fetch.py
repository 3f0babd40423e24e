"""HTTP/1.1 clients for upstream calls: a blocking one (shadows, the diff endpoint) and an asyncio one (the addon's
service-bound requests, sent from mitmproxy's event loop without a thread hop).

Connections are kept alive per upstream (per thread, or per event loop); a pooled connection the server has
closed is detected before reuse (like urllib3 does), and a reused connection that fails before any answer byte
is retried once on a fresh one, so keep-alive never turns into a spurious failure.
"""

from __future__ import annotations

import asyncio
import http.client
import select
import ssl
import threading
import weakref
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


class UnsendableRequest(ValueError):
    """The request cannot be sent as given (it would not be one well-framed request); nothing was sent."""


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
            # As bytes: the value as the client sent it (see _request_head); http.client would re-encode as latin-1.
            connection.putheader(name, value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value)
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


_NO_BODY_STATUSES = frozenset({204, 304})
_MAX_HEAD_BYTES = 65536  # status line + headers; more is a protocol error (as for http.client's line limit)
_MAX_IDLE_PER_UPSTREAM = 64


class _Retry(Exception):
    """A reused keep-alive connection failed before the first answer byte: send again on a fresh one."""


class AsyncUpstreamClient:
    """``UpstreamClient.fetch`` as a coroutine on asyncio streams: same request bytes, same answers and errors.

    ``timeout`` bounds connecting and every wait for the next piece of the answer (as the blocking client's
    socket timeout does). Idle connections are pooled per event loop, so a client outliving a loop (tests run
    each hook in its own ``asyncio.run``) never touches a dead loop's sockets.
    """

    def __init__(self) -> None:
        self._pools: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._ssl: ssl.SSLContext | None = None

    def _idle(self, base_url: str) -> list:
        pools = self._pools.setdefault(asyncio.get_running_loop(), {})
        return pools.setdefault(base_url, [])

    async def _open(self, base_url: str):
        parts = urlsplit(base_url)
        tls = None
        if parts.scheme == "https":
            tls = self._ssl = self._ssl or ssl.create_default_context()
        port = parts.port or (443 if tls else 80)
        return await asyncio.open_connection(parts.hostname, port, ssl=tls, limit=_MAX_HEAD_BYTES)

    async def fetch(
        self, *, base_url: str, method: str, path: str, headers: Iterable[tuple[str, str]] = (),
        body: bytes | None = None, timeout: float = 30.0, host_header: str | None = None,
    ) -> HttpResponseData:
        """Send one request to ``base_url`` (``http://host:port``) and read the whole response."""
        head = _request_head(method, path, headers, body, host_header or urlsplit(base_url).netloc)
        payload = head + (body or b"")
        idle = self._idle(base_url)
        while True:
            reused = bool(idle)
            try:
                async with asyncio.timeout(timeout) as deadline:
                    if reused:
                        reader, writer = idle.pop()
                        if reader.at_eof() or writer.is_closing():  # the server closed it while idle
                            writer.close()
                            continue
                    else:
                        reader, writer = await self._open(base_url)
                    try:
                        response, keep = await _exchange(reader, writer, payload, method, reused, deadline, timeout)
                    except BaseException:
                        writer.close()
                        raise
            except _Retry:
                continue
            except TimeoutError as exc:
                raise UpstreamError("timeout", f"{base_url}: no answer within {timeout:g}s") from exc
            except ConnectionRefusedError as exc:
                raise UpstreamError("connect", f"{base_url}: connection refused") from exc
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                    http.client.HTTPException) as exc:
                raise UpstreamError("protocol", f"{base_url}: {exc.__class__.__name__}: {exc}") from exc
            except OSError as exc:
                raise UpstreamError("connect", f"{base_url}: {exc.__class__.__name__}: {exc}") from exc
            if keep and len(idle) < _MAX_IDLE_PER_UPSTREAM:
                idle.append((reader, writer))
            else:
                writer.close()
            return response


def _request_head(method: str, path: str, headers: Iterable[tuple[str, str]], body: bytes | None,
                  host: str) -> bytes:
    """What UpstreamClient._exchange has http.client send: Host first, no Accept-Encoding of its own.

    Raises UnsendableRequest (before anything is sent) when a piece would break the framing.
    """
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    for name, value in headers:
        lowered = name.lower()
        if lowered in HOP_BY_HOP or lowered in _SET_BY_CLIENT:
            continue
        lines.append(f"{name}: {value}")
    if body or method not in ("GET", "HEAD", "OPTIONS", "DELETE"):
        lines.append(f"Content-Length: {len(body or b'')}")
    text = "\r\n".join(lines)
    breaks = len(lines) - 1
    if text.count("\n") != breaks or text.count("\r") != breaks or "\0" in text:
        raise UnsendableRequest("a CR, LF or NUL inside the request line or a header would split the request")
    # The strings are mitmproxy's decoding of the bytes the client sent (UTF-8 with surrogateescape): encoding
    # them back the same way sends exactly those bytes, whatever they are (latin-1 could not hold `€` or `\xff`).
    return (text + "\r\n\r\n").encode("utf-8", "surrogateescape")


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes, method: str,
                    reused: bool, deadline, timeout: float) -> tuple[HttpResponseData, bool]:
    loop = asyncio.get_running_loop()
    try:
        writer.write(payload)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
    except (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError) as exc:
        partial = getattr(exc, "partial", b"")
        if reused and not partial:
            raise _Retry from exc
        if isinstance(exc, asyncio.IncompleteReadError) and not partial:
            raise http.client.RemoteDisconnected("Remote end closed connection without response") from exc
        raise
    deadline.reschedule(loop.time() + timeout)
    status, reason, version, pairs = _parse_head(head)
    while 100 <= status < 200 and status != 101:  # interim answers (100 Continue, 103 Early Hints): skip
        head = await reader.readuntil(b"\r\n\r\n")
        deadline.reschedule(loop.time() + timeout)
        status, reason, version, pairs = _parse_head(head)
    lowered = {}
    for name, value in pairs:
        key = name.lower()
        lowered[key] = f"{lowered[key]}, {value}" if key in lowered else value
    connection_tokens = {t.strip().lower() for t in lowered.get("connection", "").split(",")}
    keep = "close" not in connection_tokens and (version == "HTTP/1.1" or "keep-alive" in connection_tokens)
    if status == 101:  # the connection now speaks another protocol: never reuse it
        body, keep = b"", False
    elif method == "HEAD" or status in _NO_BODY_STATUSES:
        body = b""
    elif "chunked" in lowered.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader, deadline, loop, timeout)
    elif "content-length" in lowered:
        length = int(lowered["content-length"].split(",")[0].strip())
        if length < 0:
            raise ValueError(f"negative Content-Length {length}")
        body = await reader.readexactly(length)
    else:  # delimited by the server closing the connection
        chunks = []
        while chunk := await reader.read(65536):
            chunks.append(chunk)
            deadline.reschedule(loop.time() + timeout)
        body, keep = b"".join(chunks), False
    return HttpResponseData.from_pairs(status=status, reason=reason, header_pairs=pairs, body=body), keep


def _parse_head(head: bytes) -> tuple[int, str, str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise http.client.BadStatusLine(lines[0][:100])
    pairs: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t" and pairs:  # obsolete line folding: continues the previous value
            pairs[-1] = (pairs[-1][0], f"{pairs[-1][1]} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise ValueError(f"malformed header line {line[:100]!r}")
        pairs.append((name, value.strip()))
    return int(code), reason.strip(), version, pairs


async def _read_chunked(reader: asyncio.StreamReader, deadline, loop, timeout: float) -> bytes:
    chunks = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers: read and dropped
                pass
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)  # CRLF after the chunk
        deadline.reschedule(loop.time() + timeout)


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
