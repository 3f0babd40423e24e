"""Where each plan stands, the history log and the control-plane lock, behind a small storage interface.

``PlanStore`` is what the control plane needs from storage: read a plan's state, replace it only if nobody
changed it since it was read (compare-and-set on ``PlanState.revision``), append to and read the history,
and one exclusive lock around commands that change anything. ``FileStore`` (the default) keeps them in a
directory: ``<plan>.json`` (replaced atomically), ``history.jsonl`` (appended), ``.lock`` (flock).

The store is chosen by ``$STRANGLER_PLAN_STORE``: a ``file:///dir`` URL or a plain directory path; else
``$STRANGLER_PLAN_STATE_DIR``; else ``plans/`` under the var dir (``$STRANGLER_VAR_DIR``). A URL scheme no
store implements is refused with a one-line error rather than ignored.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from migrations_plan.errors import PlanConflict, PlanError
from servicekit.env import VAR_DIR
from servicekit.files import file_write_atomic

STORE_ENV = "STRANGLER_PLAN_STORE"
STATE_DIR_ENV = "STRANGLER_PLAN_STATE_DIR"


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
    revision: int = 0  # bumped by every save; a save of an older revision is refused (compare-and-set)

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

    @classmethod
    def from_dict(cls, data: dict) -> PlanState:
        data = dict(data)
        data["applied"] = [AppliedStep(**item) for item in data.get("applied", [])]
        return cls(**data)


class PlanStore(Protocol):
    """Storage of the control plane's state; every implementation is safe for concurrent commands."""

    def get(self, plan: str) -> PlanState | None: ...

    def compare_and_set(self, state: PlanState) -> None:
        """Save `state` if the stored revision is still `state.revision` (then bump it); else PlanConflict."""

    def history_append(self, entry: dict) -> None: ...

    def history_entries(self) -> list[dict]: ...

    def lock(self, *, wait_seconds: float) -> AbstractContextManager[None]:
        """Exclusive lock of the control plane; PlanConflict when another command holds it past wait_seconds."""


@contextmanager
def _flock(path: Path, *, wait_seconds: float, busy: str) -> Iterator[object]:
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
                    raise PlanConflict(busy.format(holder=holder)) from None
                time.sleep(0.05)
        try:
            yield handle
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class FileStore:
    """One directory: ``<plan>.json`` per plan, ``history.jsonl``, ``.lock``."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"FileStore({str(self.directory)!r})"

    def path(self, plan: str) -> Path:
        return self.directory / f"{plan}.json"

    def get(self, plan: str) -> PlanState | None:
        path = self.path(plan)
        try:
            return PlanState.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, KeyError) as exc:  # hand-edited or truncated: never guess where the plan is
            raise PlanConflict(f"{path}: unreadable plan state ({type(exc).__name__}: {exc}); restore it from "
                               f"history.jsonl or remove it to start the plan over") from exc

    def compare_and_set(self, state: PlanState) -> None:
        path = self.path(state.plan)
        # A lock of its own (not the control lock, which the caller may hold on another descriptor).
        with _flock(path.with_name(f".{path.name}.lock"), wait_seconds=30,
                    busy=f"{path}: another save is still running ({{holder}})"):
            stored = self.get(state.plan)
            found = stored.revision if stored is not None else 0
            if found != state.revision:
                raise PlanConflict(f"plan {state.plan} changed since it was read (revision {found}, "
                                   f"not {state.revision}); nothing was saved, run the command again")
            saved = PlanState.from_dict({**state.as_dict(), "revision": state.revision + 1})
            file_write_atomic(path=path, data=json.dumps(saved.as_dict(), indent=2) + "\n")
            state.revision = saved.revision

    def history_append(self, entry: dict) -> None:
        path = self.directory / "history.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:  # one write() per line: appends do not interleave
            handle.write(json.dumps(entry, sort_keys=True) + "\n")

    def history_entries(self) -> list[dict]:
        try:
            lines = (self.directory / "history.jsonl").read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    @contextmanager
    def lock(self, *, wait_seconds: float = 0.0) -> Iterator[None]:
        with _flock(self.directory / ".lock", wait_seconds=wait_seconds,
                    busy="another plan command is running ({holder}); nothing was changed") as handle:
            try:
                handle.seek(0)
                handle.truncate()
                handle.write(f"pid {os.getpid()} since {datetime.now(UTC).isoformat(timespec='seconds')}")
                handle.flush()
                yield
            finally:
                handle.seek(0)
                handle.truncate()


def plan_store() -> PlanStore:
    """The store the environment selects (see the module docstring)."""
    url = os.environ.get(STORE_ENV)
    if url:
        parts = urlsplit(url)
        if parts.scheme == "file":
            return FileStore(Path(unquote(parts.path)))
        if not parts.scheme:
            return FileStore(Path(url))
        raise PlanError(f"{STORE_ENV}={url}: unknown plan store {parts.scheme!r} (supported: file:///dir or a path)")
    explicit = os.environ.get(STATE_DIR_ENV)
    return FileStore(Path(explicit) if explicit else Path(os.environ.get("STRANGLER_VAR_DIR") or VAR_DIR) / "plans")


def state_load(*, plan: str) -> PlanState | None:
    return plan_store().get(plan)


def state_save(*, state: PlanState) -> None:
    """Save the state read earlier (compare-and-set on its revision; bumps `state.revision`)."""
    plan_store().compare_and_set(state)


def history_append(*, plan: str, actor: str, action: str, result: str, step: str | None = None,
                   reason: str = "", gates: list[dict] | None = None, changes: list[dict] | None = None) -> dict:
    """One JSON line per change or refusal: who, when, what, the gate values it was decided on."""
    entry = {
        "at": datetime.now(UTC).isoformat(timespec="milliseconds"), "actor": actor, "plan": plan,
        "action": action, "step": step, "result": result, "reason": reason, "gates": gates or [],
        "changes": changes or [],
    }
    plan_store().history_append(entry)
    return entry


def history_read(*, plan: str | None = None) -> list[dict]:
    return [e for e in plan_store().history_entries() if plan is None or e["plan"] == plan]


def control_lock(*, wait_seconds: float = 0.0) -> AbstractContextManager[None]:
    """Exclusive lock of the control plane; PlanConflict when another command holds it past wait_seconds."""
    return plan_store().lock(wait_seconds=wait_seconds)
