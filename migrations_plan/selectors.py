"""Reads of the control plane: where a plan stands and what its gates say now (no changes, no lock)."""

from __future__ import annotations

import time
from pathlib import Path

from migrations_plan.gates import GateResult, Observation, gates_evaluate
from migrations_plan.metrics import Samples
from migrations_plan.spec import Plan, Step
from migrations_plan.state import PlanState, state_load
from strangler_proxy.loader import load_route_file


def plan_state_get(*, plan: Plan) -> PlanState:
    """The saved state, or the state of a plan nobody has moved yet (not saved by reading)."""
    return state_load(plan=plan.name) or PlanState(plan=plan.name, started_at=time.time())


def plan_next_step(*, plan: Plan, state: PlanState) -> Step | None:
    return plan.steps[state.position] if state.position < len(plan.steps) else None


def plan_current_step(*, plan: Plan, state: PlanState) -> Step | None:
    return plan.steps[state.position - 1] if state.position else None


def plan_observation(*, plan: Plan, state: PlanState, routes: Path, pending: Step | None = None) -> Observation:
    return Observation(plan=plan, table=load_route_file(routes), entered_at=state.entered_at,
                       baseline=Samples.from_json(state.baseline), pending=pending)


def plan_gates_next(*, plan: Plan, state: PlanState, routes: Path) -> list[GateResult]:
    """The next step's gates, measured over the current step's window."""
    step = plan_next_step(plan=plan, state=state)
    if step is None:
        return []
    return gates_evaluate(gates=step.gates, observation=plan_observation(plan=plan, state=state, routes=routes,
                                                                         pending=step))


def plan_gates_watch(*, plan: Plan, state: PlanState, routes: Path) -> list[GateResult]:
    """The current step's watch gates (what `plan watch` rolls back on)."""
    step = plan_current_step(plan=plan, state=state)
    if step is None or not step.watch:
        return []
    return gates_evaluate(gates=step.watch, observation=plan_observation(plan=plan, state=state, routes=routes))


def plan_status(*, plan: Plan, routes: Path) -> dict:
    """Everything `plan status` shows, as JSON-ready data (also what a dashboard reads)."""
    state = plan_state_get(plan=plan)
    current = plan_current_step(plan=plan, state=state)
    upcoming = plan_next_step(plan=plan, state=state)
    return {
        "plan": plan.name,
        "source": str(plan.source),
        "position": state.position,
        "steps": [{"name": s.name, "description": s.description, "applied": i < state.position,
                   "reversible": s.reversible} for i, s in enumerate(plan.steps)],
        "current": current.name if current else None,
        "entered_at": state.entered_at,
        "next": upcoming.name if upcoming else None,
        "finished": upcoming is None,
        "frozen": state.frozen,
        "gates": [r.as_dict() for r in plan_gates_next(plan=plan, state=state, routes=routes)],
        "watch": [r.as_dict() for r in plan_gates_watch(plan=plan, state=state, routes=routes)],
    }
