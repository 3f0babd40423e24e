"""docs/guide/adopt.md, executed: its ```sh adopt``` blocks run verbatim, in order, in one bash, in a folder outside
the repository, with the built wheel as the toolkit and django-taggit from the package index.

Nothing of the repository is on the path: the guide makes its own virtualenv and installs the wheel there
(``$STRANGLER_FIG`` names the wheel file, as the guide says). The guide starts servers and a consumer in
the background and stops them itself; the test kills its process group whatever happens.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time

import pytest

from tests.wheel_build import ROOT, clean_env

GUIDE = ROOT / "docs" / "guide" / "adopt.md"
BLOCK = re.compile(r"^```sh adopt\n(.*?)^```$", re.MULTILINE | re.DOTALL)
GUIDE_TIMEOUT = 900  # seconds: the pip install dominates, and a cold cache on a busy shared box is slow

pytestmark = [pytest.mark.slow, pytest.mark.installed_wheel]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def guide_script() -> str:
    blocks = BLOCK.findall(GUIDE.read_text(encoding="utf-8"))
    assert len(blocks) >= 5, f"{GUIDE}: expected the guide's ```sh adopt``` blocks, found {len(blocks)}"
    return "\n".join(blocks)


def test_the_guide_declares_its_blocks_in_order():
    script = guide_script()
    steps = ["pip install", "manage.py migrate", "manage.py check", "strangler-plan scaffold", "sync_backfill",
             "sync_relay --once", "sync_consume", "sync_verify", "strangler-proxy run", "strangler-plan advance",
             "strangler-plan status", "kill"]
    positions = [script.find(step) for step in steps]
    assert -1 not in positions and positions == sorted(positions), dict(zip(steps, positions, strict=True))


def test_the_adoption_guide_runs_verbatim_on_a_third_party_app(wheel_file, tmp_path, capsys):
    assert ROOT not in tmp_path.parents
    (tmp_path / "guide.sh").write_text(guide_script(), encoding="utf-8")
    env = clean_env(STRANGLER_FIG=str(wheel_file), TAGSITE_PORT=str(free_port()), TAGSVC_PORT=str(free_port()),
                    PROXY_PORT=str(free_port()), PROXY_ADMIN_PORT=str(free_port()))
    env.pop("STRANGLER_OWNERSHIP_FILE", None)  # the guide's state folder holds it
    started = time.monotonic()
    process = subprocess.Popen(["bash", "-eu", "-o", "pipefail", "guide.sh"], cwd=tmp_path, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=GUIDE_TIMEOUT)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # whatever the guide left running, if it stopped half-way
        except ProcessLookupError:
            pass
    elapsed = time.monotonic() - started
    with capsys.disabled():  # the number the closing note quotes
        print(f"\nadoption guide: {elapsed:.0f}s")
    logs = "".join(f"\n--- {log.name}\n{log.read_text()[-3000:]}" for log in sorted(tmp_path.glob("*.log")))
    # pip's warnings about the machine's package index come first and can fill a screen: show the end
    shown = f"{output[-6000:]}{logs}"
    assert process.returncode == 0, f"the guide exited {process.returncode}\n{shown}"
    assert "backfill tag: 5 snapshot(s) written to the outbox" in output, shown
    assert "published 5 event(s)" in output, shown
    verified = re.findall(r"tag: source [^\n]*", output)
    assert verified and re.match(r"tag: source 5 rows, follower 5 rows, 0/\d+ buckets differ, 0 difference\(s\)",
                                 verified[-1]), f"sync_verify said {verified}\n{shown}"
    # the plan ran to its end: /tags/ is the service's alone
    assert "[x] 8. retire-monolith-path" in output, shown
    route = (tmp_path / "routes.yaml").read_text()
    assert "mode: service" in route and "fallback: false" in route and "methods:" not in route, route
    # the toolkit came from the wheel into the guide's own virtualenv, not from the repository
    [installed] = (tmp_path / "venv" / "lib").glob("python3*/site-packages/strangler_sync/__init__.py")
    assert (tmp_path / "tagsvc" / "tagsvc_service" / "migrations" / "0001_initial.py").is_file()
    # after the flip the service publishes to the host's own queue (its settings name it), not to "sync.monolith"
    service_settings = (tmp_path / "tagsvc" / "tagsvc_service" / "settings.py").read_text()
    assert '"SUBSCRIBERS": {"sync.tagsite": ["tag.*"]}' in service_settings, service_settings
    assert installed.is_file()
