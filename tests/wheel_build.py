"""Building the published wheel once per test session, and running its commands away from the repository.

Shared by tests/test_wheel.py (the wheel's contents, installed with no extras) and tests/test_adopt_guide.py
(docs/guide/adopt.md run verbatim on a third-party app); ``wheel_file`` reaches both through tests/conftest.py so
the session builds it once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTALL_TIMEOUT = 900  # seconds: a cold pip cache on a busy shared box


def run(argv: list, *, cwd: Path, env: dict | None = None, timeout: float = 300, check: bool = True):
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


def repository_files() -> list[str]:
    listed = run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT).stdout
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


@pytest.fixture(scope="session")
def wheel_file(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("wheel-source")
    for name in repository_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel-dist")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, source], cwd=out,
        timeout=INSTALL_TIMEOUT)
    [wheel] = out.glob("strangler_fig-*.whl")
    return wheel


def clean_env(**extra: str) -> dict[str, str]:
    """The environment minus anything that would put the repository or its settings in reach."""
    dropped = {"PYTHONPATH", "DJANGO_SETTINGS_MODULE", "STRANGLER_VAR_DIR", "STRANGLER_ROUTES", "STRANGLER_PLANS_DIR",
               "VIRTUAL_ENV", "PYTHONHOME", "DATABASE_URL", "CELERY_BROKER_URL", "STRANGLER_SYNC_VERIFY_TOKEN",
               "STRANGLER_SYNC_NAMESPACE"}  # dev.py gives each test session a namespace of its own
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(PYTHONNOUSERSITE="1", PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


