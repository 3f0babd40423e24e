"""The nginx plane in the foreground, following its route file: `strangler-proxy nginx-run` (a container's command).

Renders, tests and installs the config, runs nginx with ``daemon off`` as a child, registers the plane with the
planes registry as one that reloads itself, then polls the route file (every ``poll`` seconds, by inode, size and
mtime, as the mitmproxy addon's watcher does) and reloads nginx when the file's digest changes: render,
``nginx -t``, atomic swap, graceful reload; a refused file is logged and the running config keeps serving, so
its admin listener keeps answering the old digest. This is how a control plane in another container (which can
neither signal nor start this nginx) moves traffic: it edits the shared route file and waits until the plane's
digest URL answers the new digest (strangler_proxy.planes.planes_follow), undoing its edit when it never does.

SIGTERM or SIGINT: nginx is stopped gracefully (SIGQUIT) and the plane unregistered; when nginx dies on its own,
this process exits with its code (the container restarts).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

from strangler_proxy.loader import RouteFileError, load_route_file
from strangler_proxy.nginx.control import NginxError, NginxInstance, nginx_binary
from strangler_proxy.nginx.render import DIGEST_PATH, NginxOptions
from strangler_proxy.planes import plane_register, plane_unregister

logger = logging.getLogger("strangler_proxy.nginx.follow")


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def digest_url_of(*, options: NginxOptions, admin_url: str | None) -> str | None:
    """Where other processes ask this plane its digest: ``admin_url`` (e.g. http://proxy:8082 in compose, where the
    listener binds 0.0.0.0) else the admin listener's own address; None without an admin listener."""
    if admin_url:
        return admin_url.rstrip("/") + DIGEST_PATH
    if options.admin_listen is None:
        return None
    host, _, port = options.admin_listen.rpartition(":")
    return f"http://{'127.0.0.1' if host in ('', '0.0.0.0', '*') else host}:{port}{DIGEST_PATH}"


class FollowingPlane:
    """One nginx master as a child process, reloaded whenever the route file's digest changes."""

    def __init__(self, *, routes: Path, options: NginxOptions, admin_url: str | None = None, poll: float = 1.0):
        self.routes = Path(routes).resolve()
        self.instance = NginxInstance(options, reloads_itself=True,
                                      digest_url=digest_url_of(options=options, admin_url=admin_url))
        self.poll = poll
        self.served: str | None = None  # digest of the config nginx runs
        self.process: subprocess.Popen | None = None
        self.stopping = threading.Event()

    def start(self) -> None:
        """Install the current file's config and start nginx; NginxError / RouteFileError when it cannot."""
        table = load_route_file(self.routes)
        conf = self.instance.install(table)
        self.process = subprocess.Popen([nginx_binary(), "-p", f"{self.instance.prefix}/", "-c", str(conf),
                                         "-g", "daemon off;"])
        self.served = table.digest
        plane_register(record=self.instance.plane_record(routes=self.routes))

    def check(self) -> str | None:
        """Reload when the file's digest changed; returns what was done (None: nothing to do)."""
        try:
            table = load_route_file(self.routes)
        except RouteFileError as exc:
            logger.error("strangler: %s not reloaded, nginx keeps serving %s: %s", self.routes,
                         (self.served or "")[:12], exc)
            return None
        if table.digest == self.served:
            return None
        try:
            done = self.instance.reload(table)  # the master is running: render, nginx -t, swap, nginx -s reload
        except NginxError as exc:
            logger.error("strangler: nginx refused %s (%s), it keeps serving %s", self.routes, exc,
                         (self.served or "")[:12])
            plane_register(record=replace(self.instance.plane_record(routes=self.routes), refused_digest=table.digest,
                                          refused_reason=str(exc)))
            return None
        self.served = table.digest  # instance.reload registered the plane as serving it
        logger.warning("strangler: %s: %s", table.digest[:12], done)
        return done

    def follow(self) -> int:
        """Poll until stopped or nginx exits; returns the exit code."""
        assert self.process is not None
        stamp = _stamp(self.routes)
        while not self.stopping.wait(self.poll):
            if self.process.poll() is not None:
                logger.error("strangler: nginx exited with %s", self.process.returncode)
                plane_unregister(kind="nginx", key=str(self.instance.prefix))
                return self.process.returncode or 1
            now = _stamp(self.routes)
            if now != stamp:
                stamp = now
                self.check()
        return self.stop()

    def stop(self, timeout: float = 10.0) -> int:
        plane_unregister(kind="nginx", key=str(self.instance.prefix))
        if self.process is None or self.process.poll() is not None:
            return 0
        self.process.send_signal(signal.SIGQUIT)  # graceful: in-flight requests finish
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            self.process.wait(timeout=timeout)
        return 0


def plane_run(*, routes: Path, options: NginxOptions, admin_url: str | None = None, poll: float = 1.0) -> int:
    """Run the following plane until SIGTERM/SIGINT; one-line error and exit 1 when it cannot start."""
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(message)s")
    plane = FollowingPlane(routes=routes, options=options, admin_url=admin_url, poll=poll)
    signal.signal(signal.SIGTERM, lambda *_: plane.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: plane.stopping.set())
    try:
        plane.start()
    except (NginxError, RouteFileError) as exc:
        print(f"error: nginx plane not started: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"nginx plane on {options.listen} serving {plane.routes} ({plane.served[:12]}), following it every "
          f"{poll:g}s", flush=True)
    return plane.follow()
