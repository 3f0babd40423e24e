"""Run the monolith and the catalog service as real processes (their own manage.py, own settings, own DB)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

REPO = Path(__file__).resolve().parents[3]
MONOLITH_MANAGE = REPO / "manage.py"
CATALOG_MANAGE = REPO / "extracted" / "catalog" / "manage.py"
SHARED_HOST = "shop.test"  # both sides see the Host a proxy would forward, so absolute URLs match


def project_env(*, workdir: Path, **overrides: str) -> dict[str, str]:
    """The environment of a child project: SQLite files in workdir, nothing shared with the developer's var/."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CATALOG_DATABASE_URL",
                                                              "DJANGO_SETTINGS_MODULE", "CELERY_BROKER_URL"}}
    env.update(
        STRANGLER_VAR_DIR=str(workdir / "var"),
        ALLOWED_HOSTS=f"127.0.0.1,localhost,{SHARED_HOST}",
        DEBUG="1",
        LOG_LEVEL="WARNING",
        **overrides,
    )
    return env


def manage(script: Path, *args: str, env: dict[str, str], timeout: float = 120) -> str:
    result = subprocess.run(
        [sys.executable, str(script), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(f"{script.name} {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """`manage.py runserver --noreload` on a free port, ready once /healthz answers."""

    def __init__(self, script: Path, *, env: dict[str, str], log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, str(script), "runserver", "--noreload", "--nothreading", f"127.0.0.1:{self.port}"],
            cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.log = log

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urlopen(f"{self.url}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except (URLError, OSError):
                time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
