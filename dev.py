#!/usr/bin/env python3
"""Developer entry point: `python3 dev.py demo` runs the demo, `python3 dev.py test` runs every check.

Needs only Python 3.11+: the first run creates .venv and installs the project into it, later runs
reinstall only when pyproject.toml changed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
VENV_PY = VENV / "bin" / "python"
# The wheel holds only the toolkit; the storefront example (monolith, extracted, demo, deploy) is imported from
# the repository root, which this file in the venv's site-packages puts on sys.path of every .venv process.
EXAMPLE_PTH = "strangler-example.pth"

# Each Django project is its own pytest session (Django settings are process-wide).
# (name, settings module, test paths, pytest args)
TEST_SUITES: list[tuple[str, str, list[str]]] = [
    ("monolith+planes", "monolith.settings", ["tests"]),
    ("extracted-catalog", "extracted.catalog.settings", ["tests/extracted/catalog"]),
    ("extracted-inventory", "extracted.inventory.settings", ["tests/extracted/inventory"]),
    ("extracted-reviews", "extracted.reviews.settings", ["tests/extracted/reviews"]),
]
# Paths that belong to other suites and must not be collected by the first one.
TEST_IGNORES: list[str] = ["tests/extracted"]


def _in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def bootstrap() -> None:
    """Create .venv and install the project (editable, with the dev extra) when needed."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this file is run by whatever python3 the user has
        sys.exit(f"error: Python 3.11+ is required, this is {sys.version.split()[0]}")
    stamp_value = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    stamp = VENV / ".installed"
    if not VENV_PY.exists():
        print("dev.py: creating .venv", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    if not stamp.exists() or stamp.read_text() != stamp_value:
        print("dev.py: installing the project into .venv (first run takes a minute)", flush=True)
        subprocess.run([str(VENV_PY), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
        subprocess.run([str(VENV_PY), "-m", "pip", "install", "-q", "-e", f"{ROOT}[dev]"], check=True)
        stamp.write_text(stamp_value)
    if not any(VENV.glob(f"lib/python3*/site-packages/{EXAMPLE_PTH}")):
        purelib = subprocess.run([str(VENV_PY), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 check=True, capture_output=True, text=True).stdout.strip()
        (Path(purelib) / EXAMPLE_PTH).write_text(f"{ROOT}\n")


def reexec_in_venv() -> None:
    if not _in_venv():
        bootstrap()
        os.execv(str(VENV_PY), [str(VENV_PY), str(Path(__file__).resolve()), *sys.argv[1:]])


def run_tests(extra: list[str]) -> int:
    os.chdir(ROOT)
    # Tests get their own var dir (SQLite files, broker folders, ownership file), so a run never mixes with
    # the demo's state under var/ and two runs never share one.
    own_var = "STRANGLER_VAR_DIR" not in os.environ
    if own_var:
        os.environ["STRANGLER_VAR_DIR"] = tempfile.mkdtemp(prefix="strangler-test-var-")
    try:
        return _run_checks(extra)
    finally:
        if own_var:
            shutil.rmtree(os.environ.pop("STRANGLER_VAR_DIR"), ignore_errors=True)


def _run_checks(extra: list[str]) -> int:
    print("== ruff", flush=True)
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "."])
    if lint.returncode != 0:
        print("ruff found problems (fix them or run: .venv/bin/ruff check --fix .)", flush=True)
        return lint.returncode
    worst = 0
    for name, settings, paths in TEST_SUITES:
        # A private basetemp: pytest otherwise shares /tmp/pytest-of-<user>/ and deletes the oldest of its
        # numbered folders, which pulled the folder from under a long test while another session ran.
        basetemp = Path(os.environ["STRANGLER_VAR_DIR"]) / f"pytest-{name}"
        args = [sys.executable, "-m", "pytest", f"--ds={settings}", f"--basetemp={basetemp}", *paths]
        if name == TEST_SUITES[0][0]:
            args += [f"--ignore={p}" for p in TEST_IGNORES]
        print(f"== pytest: {name} ({settings})", flush=True)
        code = subprocess.run([*args, *extra]).returncode
        if code == 5:  # no tests collected in this suite (e.g. filtered by -k): not a failure
            code = 0
        worst = worst or code
    return worst


def run_demo(extra: list[str]) -> int:
    """The whole stack on the embedded default until Ctrl-C (demo/run.py: what it starts and how it stops)."""
    os.chdir(ROOT)
    from demo.run import main as demo_main

    return demo_main(extra)


def main() -> int:
    commands = {"demo": run_demo, "test": run_tests}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print("usage: python3 dev.py {demo|test} [args...]", file=sys.stderr)
        return 2
    reexec_in_venv()
    return commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
