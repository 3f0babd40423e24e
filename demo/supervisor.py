"""Start processes in their own process groups, wait for their health checks, and stop every one of them."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM if the supervisor dies without cleaning up (kill -9), so no orphans."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the process-group cleanup still applies
        pass


class StartupError(RuntimeError):
    """A process of the stack exited or never became healthy while starting."""


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen
    health_url: str | None = None
    restart: bool = False
    env: dict[str, str] = field(default_factory=dict)
    restarts: list[float] = field(default_factory=list)  # monotonic times of recent restarts
    reported_exit: bool = field(default=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Supervisor:
    """Owns every process it starts: each in its own session (process group), output to a log file."""

    def __init__(self, *, cwd: Path, log_dir: Path, env: dict[str, str]):
        self.cwd = cwd
        self.log_dir = log_dir
        self.env = env
        self.children: list[Child] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, argv: list[str], *, env: dict[str, str] | None = None,
              health_url: str | None = None, restart: bool = False) -> Child:
        log_path = self.log_dir / f"{name}.log"
        child = Child(name=name, argv=argv, log_path=log_path, process=self._spawn(argv, env or {}, log_path),
                      health_url=health_url, restart=restart, env=env or {})
        self.children.append(child)
        return child

    def _spawn(self, argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
        with open(log_path, "ab") as log:
            return subprocess.Popen(
                argv, cwd=self.cwd, env={**self.env, **env}, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent,
            )

    def restart(self, child: Child, *, limit: int = 5, window: float = 60.0) -> bool:
        """Start an exited child again, at most `limit` times per `window` seconds (no crash loop)."""
        now = time.monotonic()
        child.restarts = [t for t in child.restarts if now - t < window]
        if len(child.restarts) >= limit:
            return False
        _signal_group(child.pid, signal.SIGKILL)  # whatever the old group left behind
        child.restarts.append(now)
        child.process = self._spawn(child.argv, child.env, child.log_path)
        child.reported_exit = False
        return True

    def exited(self) -> list[Child]:
        """Children that exited since the last call."""
        gone = [c for c in self.children if not c.reported_exit and c.process.poll() is not None]
        for child in gone:
            child.reported_exit = True
        return gone

    def wait_healthy(self, *, timeout: float) -> None:
        """Every child with a health URL answers 2xx; any child exiting meanwhile fails the start."""
        pending = [c for c in self.children if c.health_url]
        deadline = time.monotonic() + timeout
        while pending:
            for child in self.children:
                if child.process.poll() is not None:
                    raise StartupError(f"{child.name} exited with code {child.process.returncode} while starting; "
                                       f"last lines of {child.log_path}:\n{child.log_tail()}")
            pending = [c for c in pending if not http_ok(c.health_url)]
            if not pending:
                return
            if time.monotonic() > deadline:
                names = ", ".join(f"{c.name} ({c.health_url})" for c in pending)
                raise StartupError(f"not healthy after {timeout:.0f}s: {names}")
            time.sleep(0.2)

    def stop_all(self, *, grace: float = 10.0) -> None:
        """SIGTERM every process group (newest first), then SIGKILL whatever is left after the grace period."""
        for child in reversed(self.children):
            _signal_group(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in reversed(self.children):
            try:
                child.process.wait(timeout=max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        # The group leader may be gone while something it started (mitmdump under `strangler-proxy run`) is not.
        for child in self.children:
            _signal_group(child.pid, signal.SIGKILL)
            if child.process.poll() is None:
                child.process.wait(timeout=5)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def http_ok(url: str, *, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False
