"""The nginx plane's metrics for the gates: tail the JSON metrics log nginx writes, count, serve /metrics.

nginx writes one JSON line per request (render.py's `strangler_metrics` log_format: route label, upstream name,
status, request time, the upstream a fallback left, the breaker's state); this exporter reads the new lines every
poll and counts them into a ``ProxyMetrics``, so the nginx plane exports the mitmproxy plane's metric names and labels
(strangler_proxy_requests_total, strangler_proxy_request_seconds, strangler_proxy_fallbacks_total,
strangler_proxy_breaker_state, strangler_proxy_read_your_writes_total, ...) and the plan gates read either plane the
same way. The breaker gauge is what the last line through that service's breaker said, 0 closed or 2 open (nginx
shows no half-open); requests an open breaker sent straight to the monolith count as fallbacks with reason
breaker_open, as on the mitmproxy plane.

Why an access-log tailer and not a module inside nginx (bench/proxy_bench.py rows nginx-rendered,
nginx-rendered-nometrics, nginx-rendered-lua; numbers in docs/guide/run-nginx.md):
  - Debian bookworm packages no traffic-status module (no libnginx-mod-http-vts); prometheus-nginx-exporter
    reads stub_status only: connection totals, no route, upstream, status or latency;
  - libnginx-mod-http-lua counting in a shared dict (count, latency bucket, sum per request, as
    nginx-lua-prometheus does) measured no cheaper in CPU per request than the log and this exporter together
    (1.07-1.27 x the config without either, vs 1.03-1.19 x), adds a package and LuaJIT to every proxy host,
    and runs in every worker on every request, where a bug in metric code hurts the traffic;
  - the buffered log costs nginx one write() per 64 KiB of lines (no per-request syscall), and the parsing
    happens in this separate process, off the request path; lines reach the counters within ~1 s (flush=1s),
    which gates measuring windows of minutes do not notice.
A rotated or truncated log is followed: a new inode or a shorter file is read from its start.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from strangler_proxy.breaker import BreakerState
from strangler_proxy.metrics import AdminServer, ProxyMetrics
from strangler_proxy.nginx.render import BREAKER_CLOSED, BREAKER_OPEN, BREAKER_TRIPPED, METRICS_LOG

logger = logging.getLogger(__name__)

_EMPTY = ("", "-")
# What the metrics log's breaker_state says (render.breaker_upstreams) as the mitmproxy plane's states: nginx
# has no half-open one, a service tried again after the window is closed when it answers, open when it fails.
_BREAKER_STATES = {BREAKER_CLOSED: BreakerState.CLOSED, BREAKER_TRIPPED: BreakerState.OPEN,
                   BREAKER_OPEN: BreakerState.OPEN}


def _fallback_reason(tried: str, connect: str) -> str:
    """The mitmproxy plane's reasons: connect, timeout, status_NNN; from the first try's status/connect time."""
    first_status = tried.split(",")[0].split(":")[0].strip()
    first_connect = connect.split(",")[0].split(":")[0].strip()
    if first_status == "504":
        return "timeout"
    if first_status == "502" and first_connect in _EMPTY:
        return "connect"
    return f"status_{first_status}"


def metrics_line_count(*, metrics: ProxyMetrics, line: str | bytes, count: int = 1) -> bool:
    """Count one metrics-log line (`count` times: that many identical lines); False (and nothing counted) when it
    is not one of ours."""
    try:
        entry = json.loads(line)
        status, seconds = str(entry["status"]), float(entry["seconds"])
        route, upstream, failed = entry["route"], entry["upstream"], entry.get("failed", "")
    except (ValueError, KeyError, TypeError):
        return False
    if route in _EMPTY or upstream in _EMPTY:  # nginx answered itself (a refused request line, an unknown host)
        metrics.rejections.labels(reason=f"status_{status}").inc(count)
        return True
    breaker, breaker_state = entry.get("breaker", ""), entry.get("breaker_state", "")
    if breaker not in _EMPTY and breaker_state in _BREAKER_STATES:
        metrics.breaker_changed(breaker, _BREAKER_STATES[breaker_state])
    if breaker_state == BREAKER_OPEN:  # skipped: the mitmproxy plane's fallback for an open breaker
        metrics.fallbacks.labels(route=route, upstream=breaker, reason="breaker_open").inc(count)
    elif breaker_state == BREAKER_TRIPPED:  # the service's try failed and its backup, the monolith, answered
        _fallback_count(metrics, route=route, failed=breaker, entry=entry, count=count)
    elif failed not in _EMPTY:  # the answer was a 5xx and error_page sent the request to the monolith
        _fallback_count(metrics, route=route, failed=failed, entry=entry, count=count)
    if entry.get("ryw") == "pinned":  # this plane pins for the window: it never learns the follower caught up
        metrics.read_your_writes.labels(route=route, side="owner", reason="pinned").inc(count)
    metrics.request_answered(route=route, upstream=upstream, status=status, seconds=seconds, count=count)
    return True


def _fallback_count(metrics: ProxyMetrics, *, route: str, failed: str, entry: dict, count: int) -> None:
    reason = _fallback_reason(entry.get("tried", ""), entry.get("connect", ""))
    metrics.fallbacks.labels(route=route, upstream=failed, reason=reason).inc(count)
    metrics.upstream_failures.labels(upstream=failed,
                                     reason="5xx" if reason.startswith("status_") else reason).inc(count)


class MetricsLogTail:
    """Reads the lines appended to the metrics log since the last poll (whole lines only) and counts them."""

    def __init__(self, path: Path, metrics: ProxyMetrics):
        self.path = Path(path)
        self.metrics = metrics
        self._inode: int | None = None
        self._offset = 0
        self._partial = b""
        self.skipped = 0  # lines that were not ours (logged once per distinct line and poll)

    def poll(self) -> int:
        """Count what was appended; returns how many lines were counted."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return 0  # nginx has not written yet
        if stat.st_ino != self._inode or stat.st_size < self._offset:
            self._inode, self._offset, self._partial = stat.st_ino, 0, b""
        if stat.st_size == self._offset:
            return 0
        with open(self.path, "rb") as handle:
            handle.seek(self._offset)
            data = handle.read(stat.st_size - self._offset)
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        # Most lines repeat exactly (same route, upstream, status; request times in milliseconds): each distinct
        # line is parsed and counted once with its number of copies, in the order of its last copy, so the breaker
        # gauge ends on what the newest line through each breaker said, as line by line would.
        copies = collections.Counter(lines)
        last = {raw: index for index, raw in enumerate(lines)}
        counted = 0
        for raw in sorted(copies, key=last.__getitem__):
            if not raw.strip():
                continue
            if metrics_line_count(metrics=self.metrics, line=raw.decode("utf-8", "replace"), count=copies[raw]):
                counted += copies[raw]
            else:
                self.skipped += copies[raw]
                logger.warning("strangler: %s: not a metrics line (%d alike): %.200s", self.path, copies[raw], raw)
        return counted

    def follow(self, stop: threading.Event, interval: float = 0.25) -> None:
        while not stop.is_set():
            self.poll()
            stop.wait(interval)


def listen_address(value: str) -> str:
    """argparse type of --listen: PORT or HOST:PORT, refused in one line before anything starts."""
    port = value.rpartition(":")[2]
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected PORT or HOST:PORT, got {value!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runtime-dir", default=None, metavar="DIR",
                        help="the nginx instance's runtime dir, holding metrics.log (default: var/nginx)")
    parser.add_argument("--listen", default="127.0.0.1:9113", metavar="HOST:PORT", type=listen_address,
                        help="where /metrics is served (default: %(default)s)")


def main(args: argparse.Namespace) -> int:
    """Serve the nginx plane's /metrics until SIGTERM or Ctrl-C."""
    if args.runtime_dir:
        runtime = Path(args.runtime_dir)
    else:
        from servicekit.env import VAR_DIR

        runtime = VAR_DIR / "nginx"
    host, _, port = args.listen.rpartition(":")
    metrics = ProxyMetrics()
    tail = MetricsLogTail(runtime.resolve() / METRICS_LOG, metrics)
    try:
        server = AdminServer(metrics=metrics, diff_summary=lambda: {"plane": "nginx", "log": str(tail.path)},
                             host=host or "127.0.0.1", port=int(port)).start()
    except OSError as exc:
        print(f"strangler-proxy nginx-metrics: error: cannot listen on {args.listen}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"serving the nginx plane's metrics from {tail.path} on http://{host or '127.0.0.1'}:{server.port}/metrics",
          flush=True)
    try:
        tail.follow(stop)
    except KeyboardInterrupt:
        pass
    server.stop()
    return 0
