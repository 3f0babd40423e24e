#!/usr/bin/env python3
"""Developer entry point: `python3 dev.py demo` runs the demo, `python3 dev.py test` runs every check.

Needs only Python 3.11+: the first run creates .venv and installs the project into it, later runs
reinstall only when pyproject.toml changed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
VENV_PY = VENV / "bin" / "python"
# The wheel holds only the toolkit; the storefront example (monolith, extracted, demo, deploy) is imported from
# the repository root, which this file in the venv's site-packages puts on sys.path of every .venv process.
EXAMPLE_PTH = "strangler-example.pth"

# Each Django project is its own pytest session (Django settings are process-wide), and the storefront's suite is
# split along its folders so the sessions can run side by side: most of their time is spent waiting on the
# servers, brokers and databases they start, not on the CPU. Longest first, so the short ones fill in at the end.
# (name, settings module, test paths, folders to leave out)
TEST_SUITES: list[tuple[str, str, list[str], list[str]]] = [
    ("plans", "monolith.settings", ["tests/migrations_plan"], []),
    ("sync", "monolith.settings", ["tests/strangler_sync"], []),
    # every top-level test module, and any folder no other suite names
    ("stack", "monolith.settings", ["tests"], ["tests/extracted", "tests/migrations_plan", "tests/strangler_sync",
                                               "tests/strangler_proxy", "tests/monolith", "tests/servicekit"]),
    ("planes+apps", "monolith.settings", ["tests/strangler_proxy", "tests/monolith", "tests/servicekit"], []),
    ("extracted-catalog", "extracted.catalog.settings", ["tests/extracted/catalog"], []),
    ("extracted-inventory", "extracted.inventory.settings", ["tests/extracted/inventory"], []),
    ("extracted-reviews", "extracted.reviews.settings", ["tests/extracted/reviews"], []),
]
# Sessions at once: $STRANGLER_TEST_JOBS, else 2 (1 runs them one after another with their output live).
DEFAULT_JOBS = 2


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
    jobs_text = os.environ.get("STRANGLER_TEST_JOBS", str(DEFAULT_JOBS))
    if not jobs_text.isdigit() or int(jobs_text) < 1:
        print(f"error: STRANGLER_TEST_JOBS must be a positive integer, not {jobs_text!r}", file=sys.stderr)
        return 2
    jobs = int(jobs_text)
    var = Path(os.environ["STRANGLER_VAR_DIR"])
    waiting = [_suite_run(name, settings, paths, ignores, extra, var=var, live=jobs == 1)
               for name, settings, paths, ignores in TEST_SUITES]
    running: list[SuiteRun] = []
    results: list[SuiteRun] = []
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                running.append(waiting.pop(0).start())
            for run in [r for r in running if r.finished()]:
                running.remove(run)
                results.append(run.report())
            time.sleep(0.2)
    except KeyboardInterrupt:
        for run in running:
            run.interrupt()
        raise
    print("\n== summary", flush=True)
    for run in results:
        print(f"  {run.name:22} {'ok' if run.code == 0 else f'FAILED (exit {run.code})':18} {run.seconds:7.0f} s")
    return next((run.code for run in results if run.code), 0)


class SuiteRun:
    """One pytest session: its own var dir, basetemp, test-database suffix and sync namespace, so sessions running
    side by side share no SQLite file, PostgreSQL test database or broker queue."""

    def __init__(self, name: str, args: list[str], *, what: str, var: Path, live: bool) -> None:
        self.name, self.args, self.what, self.live = name, args, what, live
        self.var = var / f"suite-{name}"
        self.log = var / f"suite-{name}.log"
        self.process: subprocess.Popen | None = None
        self.code = 0
        self.started = self.seconds = 0.0

    def start(self) -> SuiteRun:
        self.var.mkdir(parents=True, exist_ok=True)
        tag = "".join(c for c in self.name if c.isalnum())
        env = {**os.environ, "STRANGLER_VAR_DIR": str(self.var),
               # pytest-django appends it to every test database's name (its tox-parallel support)
               "TOX_PARALLEL_ENV": tag,
               "STRANGLER_SYNC_NAMESPACE": os.environ.get("STRANGLER_SYNC_NAMESPACE") or f"t{tag}{os.getpid()}"}
        print(f"== pytest: {self.name} ({self.what}){'' if self.live else ': started'}", flush=True)
        output = None if self.live else self.log.open("w")  # noqa: SIM115 - closed in report()
        self.started = time.monotonic()
        self.process = subprocess.Popen(self.args, env=env, stdout=output, stderr=subprocess.STDOUT if output else None)
        self._output = output
        return self

    def finished(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def report(self) -> SuiteRun:
        self.seconds = time.monotonic() - self.started
        self.code = self.process.returncode
        if self.code == 5:  # no tests collected in this suite (e.g. filtered by -k): not a failure
            self.code = 0
        if self._output is not None:
            self._output.close()
            print(f"\n== pytest: {self.name}: {'ok' if self.code == 0 else 'FAILED'} in {self.seconds:.0f} s",
                  flush=True)
            sys.stdout.write(self.log.read_text(errors="replace"))
            sys.stdout.flush()
        return self

    def interrupt(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _suite_run(name: str, settings: str, paths: list[str], ignores: list[str], extra: list[str], *, var: Path,
               live: bool) -> SuiteRun:
    # A private basetemp: pytest otherwise shares /tmp/pytest-of-<user>/ and deletes the oldest of its numbered
    # folders, which pulled the folder from under a long test while another session ran.
    args = [sys.executable, "-m", "pytest", f"--ds={settings}", f"--basetemp={var / f'pytest-{name}'}", *paths,
            *[f"--ignore={p}" for p in ignores], *extra]
    return SuiteRun(name, args, what=f"{settings}: {' '.join(paths)}", var=var, live=live)


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
