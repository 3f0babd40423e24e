"""Record proxied traffic as JSON lines (one exchange per line) so it can be replayed against a service later.

Secrets never reach the file: credential headers are replaced by ``"[redacted]"``. Bodies are stored as
text when they are UTF-8 and as base64 otherwise (``body_encoding`` says which).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

REDACTED = "[redacted]"
SECRET_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-csrftoken",
    "x-strangler-force",
})


def redact_headers(headers: Iterable[tuple[str, str]], *, extra_secret: Iterable[str] = ()) -> list[list[str]]:
    """Header pairs (order and repeats kept) with credential values replaced."""
    secret = SECRET_HEADERS | {h.lower() for h in extra_secret}
    return [[name, REDACTED if name.lower() in secret else value] for name, value in headers]


def encode_body(body: bytes | None) -> tuple[str, str]:
    """(encoding, text): "utf-8" when the body is valid UTF-8, else "base64"."""
    if not body:
        return "utf-8", ""
    try:
        return "utf-8", body.decode("utf-8")
    except UnicodeDecodeError:
        return "base64", base64.b64encode(body).decode("ascii")


def decode_body(encoding: str, text: str) -> bytes:
    return base64.b64decode(text) if encoding == "base64" else text.encode("utf-8")


def exchange_record(
    *, method: str, path: str, request_headers: Iterable[tuple[str, str]], request_body: bytes | None,
    status: int | None, upstream: str | None, route: str, request_id: str | None, started_at: float,
    upstream_seconds: float | None, total_seconds: float | None, response_bytes: int | None = None,
    error: str | None = None, extra_secret_headers: Iterable[str] = (),
) -> dict:
    encoding, body = encode_body(request_body)
    return {
        "ts": round(started_at, 6),
        "request_id": request_id,
        "method": method,
        "path": path,
        "headers": redact_headers(request_headers, extra_secret=extra_secret_headers),
        "body_encoding": encoding,
        "body": body,
        "status": status,
        "upstream": upstream,
        "route": route,
        "timings": {"upstream_seconds": upstream_seconds, "total_seconds": total_seconds},
        "response_bytes": response_bytes,
        "error": error,
    }


class Recorder:
    """Appends records to a JSON-lines file; safe to call from several threads."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # Line-buffered so a crash loses at most the line being written.
        self._file = self.path.open("a", encoding="utf-8", buffering=1)
        self.written = 0

    def write(self, record: Mapping) -> None:
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str)
        with self._lock:
            if self._file.closed:
                return
            self._file.write(line + "\n")
            self.written += 1

    def close(self) -> None:
        with self._lock:
            self._file.close()


def read_recording(path: str | Path) -> Iterator[dict]:
    """The records of a recording, skipping a torn last line."""
    with Path(path).open(encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except ValueError:
                continue
