"""Read the requests to replay: the proxy's recording (JSON lines) or a plain file of ``METHOD /path`` lines.

Each non-blank line is one request. A line starting with ``{`` is a JSON object with at least ``method``
and ``path`` (``headers`` as ``[[name, value], ...]``, ``body`` with ``body_encoding`` — exactly what
``strangler_proxy.recording`` writes; redacted credential headers are left out). Any other line is
``METHOD /path`` (``#`` starts a comment line). A line that is neither is an error naming file and line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from strangler_proxy.recording import REDACTED, decode_body

_TEXT_LINE = re.compile(r"^([A-Za-z]+)\s+(/\S*)$")


class RequestsFileError(ValueError):
    """str() is ``file:line: reason`` (line 0: the file itself)."""

    def __init__(self, path: str, line: int, reason: str):
        super().__init__(f"{path}:{line}: {reason}")


@dataclass(frozen=True)
class ReplayRequest:
    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    line: int = 0


def _from_json(text: str, source: str, number: int) -> ReplayRequest | None:
    try:
        record = json.loads(text)
    except ValueError as exc:
        raise RequestsFileError(source, number, f"not valid JSON: {exc.msg}") from None
    if not isinstance(record, dict):
        raise RequestsFileError(source, number, "a JSON line must be an object")
    method, path = record.get("method"), record.get("path")
    if not isinstance(method, str) or not re.fullmatch(r"[A-Za-z]+", method):
        raise RequestsFileError(source, number, "a JSON line needs \"method\" (e.g. \"GET\")")
    if not isinstance(path, str) or not path.startswith("/"):
        raise RequestsFileError(source, number, "a JSON line needs \"path\" starting with '/'")
    if record.get("upstream") == "proxy":
        return None  # the proxy answered it itself (refusal): nothing upstream to compare
    headers = record.get("headers") or []
    if not isinstance(headers, list) or not all(isinstance(h, list | tuple) and len(h) == 2 for h in headers):
        raise RequestsFileError(source, number, "\"headers\" must be a list of [name, value] pairs")
    try:
        body = decode_body(record.get("body_encoding", "utf-8"), record.get("body") or "") or None
    except ValueError as exc:
        raise RequestsFileError(source, number, f"body does not decode: {exc}") from None
    kept = tuple((str(n), str(v)) for n, v in headers if v != REDACTED)
    return ReplayRequest(method.upper(), path, kept, body, number)


def requests_read(*, path: str | Path) -> list[ReplayRequest]:
    """Every request of the file, in order; raises RequestsFileError on the first bad line."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RequestsFileError(source, 0, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RequestsFileError(source, 0, f"cannot read: {exc}") from None
    out: list[ReplayRequest] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("{"):
            request = _from_json(line, source, number)
            if request is not None:
                out.append(request)
            continue
        match = _TEXT_LINE.match(line)
        if match is None:
            raise RequestsFileError(source, number, f"expected 'METHOD /path' or a JSON object, got {line[:60]!r}")
        out.append(ReplayRequest(match.group(1).upper(), match.group(2), line=number))
    if not out:
        raise RequestsFileError(source, 0, "no requests in the file")
    return out
