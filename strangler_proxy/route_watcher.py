"""Polls a route file and swaps in each changed, valid version whole (the mitmproxy plane's hot reload)."""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path

from strangler_proxy.loader import RouteFileError, parse_route_text

logger = logging.getLogger("strangler_proxy")


class RouteFileWatcher:
    """Polls the route file; a changed, valid file is swapped in whole, an invalid one is logged once."""

    def __init__(self, path: Path, *, on_table, on_error, interval: float = 0.25, digest: str = ""):
        self.path = path
        self.interval = interval
        self._on_table = on_table
        self._on_error = on_error
        self._last_stat: tuple[int, int] | None = self._stat()
        self._last_digest = digest
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="strangler-route-watch", daemon=True)

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def start(self) -> RouteFileWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=2)

    def check(self, *, force: bool = False) -> None:
        stat = self._stat()
        if stat is None or (stat == self._last_stat and not force):
            return
        self._last_stat = stat
        try:
            content = self.path.read_bytes()
        except OSError:
            return
        digest = hashlib.sha256(content).hexdigest()
        if digest == self._last_digest:
            return  # touched, not changed; or the same bad content we already reported
        self._last_digest = digest
        try:
            table = parse_route_text(content.decode("utf-8"), source=str(self.path))
        except UnicodeDecodeError:
            self._on_error(RouteFileError(str(self.path), 0, "file", "not UTF-8"))
        except RouteFileError as exc:
            self._on_error(exc)
        else:
            self._on_table(table)

    def _run(self) -> None:
        polls = 0
        while not self._stop.wait(self.interval):
            polls += 1
            try:
                # Two same-size writes within the filesystem's timestamp granularity look unchanged to stat:
                # compare the content itself about once a second as well.
                self.check(force=polls % max(1, round(1 / self.interval)) == 0)
            except Exception:  # the watcher must outlive any surprise; the table in use stays valid
                logger.exception("route file watcher failed on %s", self.path)
