"""Record proxied traffic as JSON lines (one exchange per line) and replay it against a service later.

Secrets never reach the file: credential headers are replaced by ``"[redacted]"`` (and left out on replay).
Bodies are stored as text when they are UTF-8 and as base64 otherwise (``body_encoding`` says which).

    python -m strangler_proxy.recording replay var/proxy/record.jsonl --to http://127.0.0.1:8001
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from servicekit.cli_parser import OneLineErrorParser

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

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


@dataclass
class ReplayReport:
    total: int = 0
    sent: int = 0
    skipped: int = 0  # unsafe methods (unless asked for) and exchanges the proxy itself answered
    same_status: int = 0
    mismatches: list[dict] = field(default_factory=list)  # status differs from the recorded one
    errors: list[dict] = field(default_factory=list)  # the target did not answer


def recording_replay(
    *, path: str | Path, base_url: str, methods: frozenset[str] = SAFE_METHODS, timeout: float = 10.0,
) -> ReplayReport:
    """Send every recorded request (of ``methods``) to ``base_url``; compare status codes with the recording."""
    from strangler_proxy.fetch import UpstreamClient, UpstreamError

    client = UpstreamClient()
    report = ReplayReport()
    for record in read_recording(path):
        report.total += 1
        if record.get("method") not in methods or record.get("upstream") in (None, "proxy"):
            report.skipped += 1
            continue
        headers = [(name, value) for name, value in record.get("headers", []) if value != REDACTED]
        body = decode_body(record.get("body_encoding", "utf-8"), record.get("body", "")) or None
        try:
            response = client.fetch(base_url=base_url, method=record["method"], path=record["path"],
                                    headers=headers, body=body, timeout=timeout)
        except UpstreamError as exc:
            report.errors.append({"path": record["path"], "error": str(exc)})
            continue
        report.sent += 1
        if response.status == record.get("status"):
            report.same_status += 1
        else:
            report.mismatches.append({"method": record["method"], "path": record["path"],
                                      "recorded": record.get("status"), "replayed": response.status})
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="python -m strangler_proxy.recording", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    replay = sub.add_parser("replay", help="replay a recording against a base URL and compare status codes")
    replay.add_argument("file")
    replay.add_argument("--to", required=True, metavar="URL", help="e.g. http://127.0.0.1:8001")
    replay.add_argument("--all-methods", action="store_true", help="also replay POST/PUT/PATCH/DELETE (writes!)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    methods = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"}) if args.all_methods \
        else SAFE_METHODS
    try:
        report = recording_replay(path=args.file, base_url=args.to, methods=methods)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"python -m strangler_proxy.recording: error: {args.file}: {getattr(exc, 'strerror', None) or exc}",
              file=sys.stderr)
        return 2
    print(f"{report.total} recorded, {report.sent} replayed, {report.skipped} skipped, "
          f"{report.same_status} same status, {len(report.mismatches)} different, {len(report.errors)} errors")
    for mismatch in report.mismatches[:20]:
        print(f"  {mismatch['method']} {mismatch['path']}: recorded {mismatch['recorded']}, got {mismatch['replayed']}")
    for error in report.errors[:20]:
        print(f"  {error['path']}: {error['error']}")
    return 0 if not report.mismatches and not report.errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
