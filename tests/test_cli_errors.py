"""Every console script answers bad input with one line on stderr that gives the reason, no traceback, exit != 0.

Run as installed (the scripts next to this interpreter), with missing files, files that are not valid YAML or
JSON, unknown flags and missing arguments. Nothing here reaches a network: every case fails before it would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
MISSING = "/nonexistent/strangler-docs-test.yaml"


@pytest.fixture(scope="module")
def bad_yaml(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("cli") / "bad.yaml"
    path.write_text("upstreams: [\n", encoding="utf-8")
    return str(path)


URLS = ["--monolith", "http://127.0.0.1:9", "--service", "http://127.0.0.1:9"]
CASES = {
    "proxy unknown flag": ["strangler-proxy", "--bogus"],
    "proxy no command": ["strangler-proxy"],
    "proxy unknown command": ["strangler-proxy", "frobnicate"],
    "proxy check missing file": ["strangler-proxy", "check", MISSING],
    "proxy check bad yaml": ["strangler-proxy", "check", "{bad}"],
    "proxy table bad yaml": ["strangler-proxy", "table", "--routes", "{bad}"],
    "proxy explain missing argument": ["strangler-proxy", "explain", "GET"],
    "sync unknown flag": ["strangler-sync", "--bogus"],
    "sync verify missing options": ["strangler-sync", "verify"],
    "sync verify unknown flag": ["strangler-sync", "verify", "--bogus"],
    "plan unknown flag": ["strangler-plan", "--bogus"],
    "plan check missing file": ["strangler-plan", "check", MISSING],
    "plan check bad yaml": ["strangler-plan", "check", "{bad}"],
    "plan advance unknown plan": ["strangler-plan", "advance", "no-such-plan"],
    "plan schema unwritable": ["strangler-plan", "schema", "--out", MISSING],
    "proxy schema unwritable": ["strangler-proxy", "schema", "--out", MISSING],
    "replay unknown flag": ["strangler-replay", "--bogus"],
    "replay missing file": ["strangler-replay", MISSING, *URLS],
    "replay bad recording": ["strangler-replay", "{bad}", *URLS],
    "replay bad route file": ["strangler-replay", "{bad}", *URLS, "--routes", "{bad}"],
    "dashboard unknown flag": ["strangler-dashboard", "--bogus"],
    "dashboard missing stack": ["strangler-dashboard", "--stack", MISSING],
    "dashboard bad stack": ["strangler-dashboard", "--stack", "{bad}"],
    "dashboard missing route file": ["strangler-dashboard", "--routes", MISSING, "--port", "0"],
    "dashboard bad port": ["strangler-dashboard", "--port", "eighty"],
    "proxy nginx-metrics bad listen": ["strangler-proxy", "nginx-metrics", "--listen", "bogus"],
    "diff endpoint unknown flag": ["python", "-m", "strangler_proxy.diff_endpoint", "--bogus"],
    "diff endpoint missing route file": ["python", "-m", "strangler_proxy.diff_endpoint", "--routes", MISSING],
    "recording no command": ["python", "-m", "strangler_proxy.recording"],
    "recording missing file": ["python", "-m", "strangler_proxy.recording", "replay", MISSING, "--to",
                               "http://127.0.0.1:9"],
}
# strangler_sync's management commands, run in the example project (usage errors come before any check or database)
MANAGE = {
    "relay unknown flag": ["sync_relay", "--bogus"],
    "consume bad batch": ["sync_consume", "--batch", "many"],
    "verify missing options": ["sync_verify"],
    "backfill missing aggregate": ["sync_backfill"],
    "reconcile bad interval": ["sync_reconcile", "--aggregate", "a", "--source", "s", "--follower", "f",
                               "--every", "x"],
    "ownership unknown flag": ["sync_ownership", "--bogus"],
    "capture migration no app": ["sync_capture_migration"],
}
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("argv", CASES.values(), ids=CASES.keys())
def test_bad_input_is_one_line_with_a_reason(argv, bad_yaml, tmp_path):
    env = {**os.environ, "STRANGLER_VAR_DIR": str(tmp_path), "PYTHONWARNINGS": "ignore"}
    command = [str(BIN / argv[0]), *(arg.replace("{bad}", bad_yaml) for arg in argv[1:])]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert_one_line(done)


@pytest.mark.parametrize("argv", MANAGE.values(), ids=MANAGE.keys())
def test_management_command_usage_errors_are_one_line(argv, tmp_path):
    env = {**os.environ, "STRANGLER_VAR_DIR": str(tmp_path), "PYTHONWARNINGS": "ignore",
           "DJANGO_SETTINGS_MODULE": "monolith.settings"}
    done = subprocess.run([sys.executable, "manage.py", *argv], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    assert_one_line(done)


def assert_one_line(done: subprocess.CompletedProcess) -> None:
    lines = done.stderr.splitlines()
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr
    assert len(lines) == 1, done.stderr
    assert len(lines[0].split(":")) >= 2 and len(lines[0]) > 20, lines  # a reason, not just "error"
