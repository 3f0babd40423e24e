"""Changes to a plan: advance, rollback, freeze/unfreeze, watch. Each holds the control lock and writes history."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from migrations_plan.actions import change_describe, routes_writable, step_apply, step_undo
from migrations_plan.errors import ActionFailed, GatesBlocked, PlanConflict
from migrations_plan.gate_sources import proxy_samples_fetch
from migrations_plan.gates import FAIL, PASS, gates_pass
from migrations_plan.metrics import MetricsUnavailable
from migrations_plan.selectors import (
    plan_current_step,
    plan_gates_next,
    plan_gates_watch,
    plan_next_step,
    plan_state_get,
)
from migrations_plan.spec import Plan
from migrations_plan.state import AppliedStep, PlanState, control_lock, history_append, state_save

# Route edits reach the proxy by its hot reload (polled every 0.25 s): start the new window after that.
RELOAD_SETTLE_SECONDS = 0.6


def _baseline(plan: Plan) -> list:
    """Proxy counters now, the start of the next window (empty when the proxy does not answer: from zero)."""
    try:
        return proxy_samples_fetch(source=plan.proxy_metrics).as_json()
    except MetricsUnavailable:
        return []


def _movable(plan: Plan, state: PlanState) -> None:
    if state.frozen:
        frozen = state.frozen
        raise PlanConflict(f"plan {plan.name} is frozen (by {frozen['by']}: {frozen['reason']}); "
                           f"run 'unfreeze {plan.name}' first")


def _load_or_start(plan: Plan) -> PlanState:
    state = plan_state_get(plan=plan)
    if not state.started_baseline and not state.applied:
        state.started_baseline = _baseline(plan)
    return state


def plan_advance(*, plan: Plan, routes: Path, actor: str, record_refusal: bool = True) -> dict:
    """Apply the next step if every one of its gates passes; otherwise change nothing and say why."""
    routes_writable(routes)
    with control_lock():
        state = _load_or_start(plan)
        _movable(plan, state)
        step = plan_next_step(plan=plan, state=state)
        if step is None:
            raise PlanConflict(f"plan {plan.name} is finished: all {len(plan.steps)} steps are applied")
        results = plan_gates_next(plan=plan, state=state, routes=routes)
        gates = [r.as_dict() for r in results]
        if not gates_pass(results):
            blocking = [r for r in results if r.status != PASS]
            reason = "; ".join(f"{r.kind} {r.status}" + (f" ({r.detail})" if r.detail else "") for r in blocking)
            if record_refusal:
                history_append(plan=plan.name, actor=actor, action="advance", result="refused", step=step.name,
                               reason=reason, gates=gates)
            raise GatesBlocked(f"{plan.name}: step {step.name} not applied: {reason}")
        try:
            changes = step_apply(plan=plan, step=step, routes=routes)
        except ActionFailed as exc:
            history_append(plan=plan.name, actor=actor, action="advance", result="failed", step=step.name,
                           reason=str(exc), gates=gates)
            raise
        if any(c["type"] == "route" for c in changes):
            time.sleep(RELOAD_SETTLE_SECONDS)
        state.applied.append(AppliedStep(step=step.name, at=time.time(), by=actor, changes=changes,
                                         baseline=_baseline(plan)))
        state_save(state=state)
        history_append(plan=plan.name, actor=actor, action="advance", result="applied", step=step.name,
                       gates=gates, changes=changes)
        return {"plan": plan.name, "step": step.name, "position": state.position, "gates": gates,
                "changes": [change_describe(c) for c in changes]}


def plan_advance_when_ready(*, plan: Plan, routes: Path, actor: str, wait_seconds: float,
                            interval: float = 1.0) -> dict:
    """plan_advance, re-checking the gates every `interval` seconds for up to `wait_seconds` (one history entry)."""
    deadline = time.monotonic() + wait_seconds
    while True:
        last_try = time.monotonic() + interval > deadline
        try:
            return plan_advance(plan=plan, routes=routes, actor=actor, record_refusal=last_try)
        except GatesBlocked:
            if last_try:
                raise
        time.sleep(interval)


def _rollback_locked(*, plan: Plan, state: PlanState, routes: Path, actor: str, reason: str,
                     allow_irreversible: bool, action: str = "rollback", gates: list[dict] | None = None) -> dict:
    if not state.applied:
        raise PlanConflict(f"plan {plan.name} has no applied step to roll back")
    applied = state.applied[-1]
    irreversible = [c for c in applied.changes if c["type"] == "ownership"]
    if irreversible and not allow_irreversible:
        what = "; ".join(change_describe(c) for c in irreversible)
        raise PlanConflict(
            f"step {applied.step} is not reversible by rollback ({what}: writes may already have happened there); "
            f"freeze the plan ('freeze {plan.name} --reason ...'), or flip back deliberately with "
            f"--allow-irreversible once the relays are drained")
    step_undo(plan=plan, name=applied.step, changes=applied.changes, routes=routes)
    state.applied.pop()
    if state.applied:
        # the previous step is current again: its window starts now
        state.applied[-1].at = time.time()
        state.applied[-1].baseline = _baseline(plan)
    else:
        state.started_at, state.started_baseline = time.time(), _baseline(plan)
    state_save(state=state)
    history_append(plan=plan.name, actor=actor, action=action, result="rolled_back", step=applied.step,
                   reason=reason, gates=gates, changes=applied.changes)
    return {"plan": plan.name, "step": applied.step, "position": state.position,
            "changes": [change_describe(c, undone=True) for c in reversed(applied.changes)]}


def plan_rollback(*, plan: Plan, routes: Path, actor: str, reason: str = "", allow_irreversible: bool = False) -> dict:
    """Undo the last applied step's actions in reverse order (refused for ownership flips unless allowed)."""
    routes_writable(routes)
    with control_lock():
        state = _load_or_start(plan)
        _movable(plan, state)
        return _rollback_locked(plan=plan, state=state, routes=routes, actor=actor, reason=reason,
                                allow_irreversible=allow_irreversible)


def plan_freeze(*, plan: Plan, actor: str, reason: str) -> dict:
    """Stop the plan where it is: advance, rollback and watch refuse until it is unfrozen."""
    with control_lock():
        state = _load_or_start(plan)
        if state.frozen:
            raise PlanConflict(f"plan {plan.name} is already frozen (by {state.frozen['by']}: "
                               f"{state.frozen['reason']})")
        state.frozen = {"at": time.time(), "by": actor, "reason": reason}
        state_save(state=state)
        history_append(plan=plan.name, actor=actor, action="freeze", result="frozen", reason=reason,
                       step=state.applied[-1].step if state.applied else None)
        return {"plan": plan.name, "frozen": state.frozen}


def plan_unfreeze(*, plan: Plan, actor: str, reason: str = "") -> dict:
    with control_lock():
        state = _load_or_start(plan)
        if not state.frozen:
            raise PlanConflict(f"plan {plan.name} is not frozen")
        state.frozen = None
        state_save(state=state)
        history_append(plan=plan.name, actor=actor, action="unfreeze", result="unfrozen", reason=reason,
                       step=state.applied[-1].step if state.applied else None)
        return {"plan": plan.name, "frozen": None}


def plan_watch(*, plan: Plan, routes: Path, actor: str, interval: float, max_seconds: float,
               report: Callable[[str], None] = print) -> dict:
    """Check the current step's watch gates every `interval` seconds for `max_seconds`.

    A failed gate rolls the step back on its own (or freezes the plan when the step is not reversible),
    with the failing gates as the reason. Unknown or waiting gates are reported and never act.
    """
    routes_writable(routes)
    state = plan_state_get(plan=plan)
    _movable(plan, state)
    step = plan_current_step(plan=plan, state=state)
    if step is None or not step.watch:
        raise PlanConflict(f"plan {plan.name}: the current step ({step.name if step else 'none'}) has no watch gates")
    position = state.position
    deadline = time.monotonic() + max_seconds
    while True:
        results = plan_gates_watch(plan=plan, state=state, routes=routes)
        report(f"{plan.name} {step.name}: " + "; ".join(r.line() for r in results))
        failed = [r for r in results if r.status == FAIL]
        if failed:
            reason = "watch: " + "; ".join(r.line() for r in failed)
            gates = [r.as_dict() for r in results]
            with control_lock(wait_seconds=30):
                state = plan_state_get(plan=plan)
                if state.position != position or state.frozen:
                    raise PlanConflict(f"plan {plan.name} moved or was frozen while watching; not acting")
                if step.reversible:
                    done = _rollback_locked(plan=plan, state=state, routes=routes, actor=actor, reason=reason,
                                            allow_irreversible=False, action="watch-rollback", gates=gates)
                    return {"outcome": "rolled_back", "reason": reason, **done}
                state.frozen = {"at": time.time(), "by": actor, "reason": f"{reason} (step not reversible)"}
                state_save(state=state)
                history_append(plan=plan.name, actor=actor, action="watch-freeze", result="frozen",
                               step=step.name, reason=reason, gates=gates)
                return {"outcome": "frozen", "reason": reason, "plan": plan.name, "step": step.name}
        if time.monotonic() + interval > deadline:
            return {"outcome": "held", "plan": plan.name, "step": step.name,
                    "reason": f"no watch gate failed in {max_seconds:g}s"}
        time.sleep(interval)
