"""Where each plan stands (a JSON state file per plan), the history log (JSON lines) and the control-plane lock.

Files live in ``$STRANGLER_PLAN_STATE_DIR``, else ``$STRANGLER_VAR_DIR/plans``, else ``var/plans``:
``<plan>.json`` (replaced atomically), ``history.jsonl`` (appended), ``.lock`` (flock held by the command
that changes anything, so two ``plan advance`` runs can never both apply).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from migrations_plan.errors import PlanConflict
from migrations_plan.routefile import write_atomically
from servicekit.env import REPO_ROOT

STATE_DIR_ENV = "STRANGLER_PLAN_STATE_DIR"


def state_dir() -> Path:
    explicit = os.environ.get(STATE_DIR_ENV)
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("STRANGLER_VAR_DIR") or REPO_ROOT / "var") / "plans"


@dataclass
class AppliedStep:
    step: str
    at: float
    by: str
    changes: list[dict]  # what each action did, with what undoing it needs (see actions.py)
    baseline: list = field(default_factory=list)  # proxy samples when the step began (Samples.as_json)


@dataclass
class PlanState:
    plan: str
    started_at: float
    started_baseline: list = field(default_factory=list)
    applied: list[AppliedStep] = field(default_factory=list)
    frozen: dict | None = None  # {"at", "by", "reason"}

    @property
    def position(self) -> int:
        return len(self.applied)

    @property
    def entered_at(self) -> float:
        return self.applied[-1].at if self.applied else self.started_at

    @property
    def baseline(self) -> list:
        return self.applied[-1].baseline if self.applied else self.started_baseline

    def as_dict(self) -> dict:
        return asdict(self)


def state_path(plan: str) -> Path:
    return state_dir() / f"{plan}.json"


def state_load(*, plan: str) -> PlanState | None:
    path = state_path(plan)
    try:
        data = json.loads(path.read_text())
        data["applied"] = [AppliedStep(**item) for item in data.get("applied", [])]
        return PlanState(**data)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError, KeyError) as exc:  # hand-edited or truncated: never guess where the plan is
        raise PlanConflict(f"{path}: unreadable plan state ({type(exc).__name__}: {exc}); restore it from "
                           f"history.jsonl or remove it to start the plan over") from exc


def state_save(*, state: PlanState) -> None:
    write_atomically(state_path(state.plan), json.dumps(state.as_dict(), indent=2) + "\n")


def history_path() -> Path:
    return state_dir() / "history.jsonl"


def history_append(*, plan: str, actor: str, action: str, result: str, step: str | None = None,
                   reason: str = "", gates: list[dict] | None = None, changes: list[dict] | None = None) -> dict:
    """One JSON line per change or refusal: who, when, what, the gate values it was decided on."""
    entry = {
        "at": datetime.now(UTC).isoformat(timespec="milliseconds"), "actor": actor, "plan": plan,
        "action": action, "step": step, "result": result, "reason": reason, "gates": gates or [],
        "changes": changes or [],
    }
    path = history_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:  # one write() per line: appends do not interleave
        handle.write(json.dumps(entry, sort_keys=True) + "\n")
    return entry


def history_read(*, plan: str | None = None) -> list[dict]:
    try:
        lines = history_path().read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    entries = [json.loads(line) for line in lines if line.strip()]
    return [e for e in entries if plan is None or e["plan"] == plan]


@contextmanager
def control_lock(*, wait_seconds: float = 0.0) -> Iterator[None]:
    """Exclusive lock of the control plane; PlanConflict when another command holds it past wait_seconds."""
    path = state_dir() / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "unknown"
                    raise PlanConflict(f"another plan command is running ({holder}); nothing was changed") from None
                time.sleep(0.1)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} since {datetime.now(UTC).isoformat(timespec='seconds')}")
            handle.flush()
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
