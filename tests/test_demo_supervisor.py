"""The demo's process supervisor: whole process groups stop, stubborn ones are killed, crashes restart within limits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from demo.supervisor import StartupError, Supervisor
from tests.waiting import WAIT_TIMEOUT

ROOT = Path(__file__).resolve().parent.parent


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _group(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def _wait(predicate, timeout: float = WAIT_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def supervisor(tmp_path):
    sup = Supervisor(cwd=tmp_path, log_dir=tmp_path / "logs", env=dict(os.environ))
    yield sup
    sup.stop_all(grace=1)


def test_stop_all_ends_every_process_of_every_group(supervisor):
    first = supervisor.start("with-grandchild", ["sh", "-c", "sleep 300 & sleep 300 & wait"])
    stubborn = supervisor.start("ignores-term", ["sh", "-c", "trap '' TERM; sleep 300 & wait"])
    assert _wait(lambda: len(_group(first.pid)) == 3 and len(_group(stubborn.pid)) == 2)
    members = _group(first.pid) + _group(stubborn.pid)
    started = time.monotonic()
    supervisor.stop_all(grace=0.5)
    assert time.monotonic() - started < WAIT_TIMEOUT  # killed after the grace, not the 300 s of `sleep 300`
    assert [pid for pid in members if _alive(pid)] == []
    assert first.process.returncode is not None and stubborn.process.returncode is not None


def test_a_child_exiting_while_starting_fails_the_start(supervisor, tmp_path):
    supervisor.start("web", ["sh", "-c", "echo boom; exit 3"], health_url="http://127.0.0.1:9/readyz")
    with pytest.raises(StartupError, match=r"web exited with code 3 while starting;[\s\S]*boom"):
        supervisor.wait_healthy(timeout=10)


def test_never_healthy_times_out(supervisor):
    supervisor.start("silent", ["sleep", "300"], health_url="http://127.0.0.1:9/readyz")
    with pytest.raises(StartupError, match="not healthy after 1s: silent"):
        supervisor.wait_healthy(timeout=1)


def test_restarts_are_limited(supervisor):
    child = supervisor.start("crashy", ["sh", "-c", "exit 1"], restart=True)
    child.process.wait()
    assert supervisor.exited() == [child]
    assert supervisor.exited() == []  # reported once
    assert supervisor.restart(child, limit=2, window=60)
    child.process.wait()
    assert supervisor.restart(child, limit=2, window=60)
    child.process.wait()
    assert not supervisor.restart(child, limit=2, window=60)  # a crash loop stays down
    assert (supervisor.log_dir / "crashy.log").exists()


def test_children_die_with_a_killed_supervisor(tmp_path):
    """kill -9 of the demo itself cannot run its cleanup: the children get SIGTERM from the kernel instead."""
    script = textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from demo.supervisor import Supervisor
        sup = Supervisor(cwd=Path({str(tmp_path)!r}), log_dir=Path({str(tmp_path / "logs")!r}), env=dict(os.environ))
        child = sup.start("sleeper", ["sleep", "300"])
        print(child.pid, flush=True)
        time.sleep(300)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child_pid = int(parent.stdout.readline())
    assert _alive(child_pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=5)
    assert _wait(lambda: not _alive(child_pid)), "the child outlived its supervisor"
