"""Apply a step's actions and undo them: route edits (route file), ownership (strangler_sync), commands.

Each applied action yields a change record (JSON) with what undoing it needs; a step whose Nth action fails
has its earlier actions undone in reverse order before the error is raised, so nothing is half-applied.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from migrations_plan.errors import ActionFailed, PlanConflict
from migrations_plan.ownership_flip import hold_seconds_observe, ownership_current, ownership_flip
from migrations_plan.routefile import route_file_apply
from migrations_plan.spec import Action, CommandAction, OwnershipChange, Plan, RouteEdit, Step
from servicekit.files import file_write_atomic
from strangler_proxy.loader import DEFAULT_ROUTE_FILE
from strangler_proxy.planes import PlaneError, planes_follow


def routes_writable(path: Path) -> Path:
    """The route file plans may write: never the packaged default (copy it under var/ and point at the copy)."""
    if path.resolve() == DEFAULT_ROUTE_FILE.resolve():
        raise PlanConflict(f"refusing to edit the packaged route file {path}; copy it (e.g. to var/routes.yaml) "
                           "and run the proxy and the plan with --routes / STRANGLER_ROUTES pointing at the copy")
    return path


def _route_edit(*, routes: Path, prefix: str, changes: dict) -> dict:
    """Set the route's keys, then have every plane of the file serve it (nginx: render, test, swap, reload).

    When a plane does not take it, the file's previous text is put back (and the planes follow it back) before
    ActionFailed is raised: the edit is not applied anywhere. Returns the keys' previous values.
    """
    path = routes_writable(routes)
    text = path.read_text(encoding="utf-8")
    before = route_file_apply(path=path, prefix=prefix, changes=changes)
    try:
        planes_follow(routes=path)
    except PlaneError as exc:
        file_write_atomic(path=path, data=text)
        try:
            planes_follow(routes=path)
            restored = "the route file is restored and every plane serves it"
        except PlaneError as again:
            restored = f"the route file is restored, but a plane did not follow it back: {again}"
        raise ActionFailed(f"route {prefix}: {exc}; {restored}") from exc
    return before


def django_settings_setup(*, settings: str, workdir: Path | None) -> None:
    """Set Django up in this process with `settings` (importable from `workdir`, put first on sys.path).

    ActionFailed when it cannot load, or when Django is already set up with other settings.
    """
    from django.apps import apps

    current = os.environ.get("DJANGO_SETTINGS_MODULE")
    if apps.ready:
        if current != settings:
            raise ActionFailed(f"Django is already set up with {current}, not {settings}")
        return
    os.environ["DJANGO_SETTINGS_MODULE"] = settings
    if workdir is not None and str(workdir) not in sys.path:
        sys.path.insert(0, str(workdir))
    import django

    try:
        django.setup()
    except Exception as exc:  # an unimportable or broken settings module: nothing is applied
        raise ActionFailed(f"cannot load the settings {settings}: {type(exc).__name__}: {exc}") from exc


def _django_ready(plan: Plan) -> None:
    """Ownership goes through strangler_sync's own service, under the settings the plan names (its ownership file)."""
    if plan.settings is None:
        raise ActionFailed(f"plan {plan.name} names no `settings`: cannot change ownership")
    django_settings_setup(settings=plan.settings, workdir=plan.workdir)


def _ownership_set(plan: Plan, owners: dict[str, str], routes: Path) -> dict:
    """The fenced flip over HTTP on every project of `sync_projects` (migrations_plan.ownership_flip); a plan
    without them flips in this process's database under its `settings` (one database shared by every project)."""
    if plan.sync_projects:
        return ownership_flip(projects=plan.sync_projects, routes=routes, owners=owners)
    _django_ready(plan)
    from strangler_sync.ownership import ownership_set

    for aggregate, owner in owners.items():
        ownership_set(aggregate_type=aggregate, owner=owner)
    return {}


def _ownership_get(plan: Plan, aggregates: list[str], routes: Path) -> dict[str, str]:
    if plan.sync_projects:
        return ownership_current(projects=plan.sync_projects, routes=routes, aggregates=aggregates)
    _django_ready(plan)
    from strangler_sync.ownership import ownership_owner_get

    return {aggregate: ownership_owner_get(aggregate_type=aggregate) for aggregate in aggregates}


def _run(plan: Plan, argv: list[str], timeout: float) -> None:
    argv = [sys.executable if part == "{python}" else part for part in argv]
    shown = " ".join(argv)
    # Each manage.py picks its own settings module; an inherited one (ours, for ownership) would override it.
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    try:
        done = subprocess.run(argv, cwd=plan.workdir or plan.source.resolve().parent, env=env, capture_output=True,
                              text=True, timeout=timeout)
    except FileNotFoundError:
        raise ActionFailed(f"{shown}: command not found") from None
    except subprocess.TimeoutExpired:
        raise ActionFailed(f"{shown}: still running after {timeout:g}s (killed)") from None
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise ActionFailed(f"{shown}: exit {done.returncode}: {last[:300]}")


def action_apply(*, plan: Plan, action: Action, routes: Path) -> dict:
    if isinstance(action, RouteEdit):
        after = dict(action.changes)
        before = _route_edit(routes=routes, prefix=action.prefix, changes=after)
        return {"type": "route", "prefix": action.prefix, "before": before, "after": after}
    if isinstance(action, OwnershipChange):
        after = dict(action.owners)
        before = _ownership_get(plan, list(after), routes)
        flipped = _ownership_set(plan, after, routes)
        return {"type": "ownership", "before": before, "after": after, **flipped}
    assert isinstance(action, CommandAction)
    _run(plan, list(action.argv), action.timeout)
    return {"type": "run", "argv": list(action.argv), "undo": list(action.undo) if action.undo else None,
            "timeout": action.timeout}


def change_undo(*, plan: Plan, change: dict, routes: Path) -> None:
    if change["type"] == "hold":  # a report, not an action
        return
    if change["type"] == "route":
        _route_edit(routes=routes, prefix=change["prefix"], changes=change["before"])
    elif change["type"] == "ownership":
        _ownership_set(plan, change["before"], routes)
    elif change["undo"]:
        _run(plan, change["undo"], change.get("timeout", 600.0))


def change_redo(*, plan: Plan, change: dict, routes: Path) -> None:
    if change["type"] == "hold":
        return
    if change["type"] == "route":
        _route_edit(routes=routes, prefix=change["prefix"], changes=change["after"])
    elif change["type"] == "ownership":
        _ownership_set(plan, change["after"], routes)
    else:
        _run(plan, change["argv"], change.get("timeout", 600.0))


def change_describe(change: dict, *, undone: bool = False) -> str:
    """`route /api/products/: mode 'monolith' -> 'shadow'`; with undone=True the arrow points back."""
    old, new = ("after", "before") if undone else ("before", "after")
    if change["type"] == "route":
        return f"route {change['prefix']}: " + ", ".join(
            f"{k} {change[old][k]!r} -> {change[new][k]!r}" for k in change["after"])
    if change["type"] == "ownership":
        epochs = change.get("epochs") or {}
        return "ownership " + ", ".join(
            f"{a} {change[old][a]} -> {change[new][a]}" + (f" (epoch {epochs[a]})" if a in epochs and not undone
                                                          else "") for a in change["after"])
    if change["type"] == "hold":
        return f"writes held on {', '.join(change['routes'])} for {change['seconds']:.3f}s"
    if undone:
        return "ran " + " ".join(change["undo"]) if change["undo"] else "nothing to undo for " + " ".join(
            change["argv"])
    return "ran " + " ".join(change["argv"])


def _hold_record(changes: list[dict], times: list[float]) -> dict | None:
    """A `hold` record when route edits of the step set `hold` and later lifted it: the writes' hold length as
    the planes served it (from the edit that held, each waited until every plane served it, to the lift)."""
    held = [(i, c["prefix"]) for i, c in enumerate(changes) if c["type"] == "route" and c["after"].get("hold")]
    lifted = [i for i, c in enumerate(changes)
              if c["type"] == "route" and "hold" in c["after"] and not c["after"]["hold"]]
    if not held or not lifted or max(lifted) < held[0][0]:
        return None
    return {"type": "hold", "routes": [prefix for _i, prefix in held],
            "seconds": round(times[max(lifted)] - times[held[-1][0]], 3)}


def step_apply(*, plan: Plan, step: Step, routes: Path) -> list[dict]:
    """Apply every action in order; on a failure undo the ones already applied (reverse order), then raise.

    When route edits hold writes (`hold`) and a later one lifts the hold, a `hold` record says how long."""
    changes: list[dict] = []
    times: list[float] = []
    for index, action in enumerate(step.actions, start=1):
        try:
            changes.append(action_apply(plan=plan, action=action, routes=routes))
            times.append(time.monotonic())
        except ActionFailed as exc:
            undo_errors = _undo_all(plan, changes, routes)
            undone = f"undid the {len(changes)} earlier action(s)" if changes else "nothing was applied"
            if undo_errors:
                undone = f"undoing the earlier actions failed too: {'; '.join(undo_errors)}"
            raise ActionFailed(f"step {step.name}: action {index} ({action.describe()}) failed: {exc}; "
                               f"{undone}") from exc
    hold = _hold_record(changes, times)
    if hold is not None:
        changes.append(hold)
        hold_seconds_observe(plan=plan.name, step=step.name, seconds=hold["seconds"])
    return changes


def _undo_all(plan: Plan, changes: list[dict], routes: Path) -> list[str]:
    errors = []
    for change in reversed(changes):
        try:
            change_undo(plan=plan, change=change, routes=routes)
        except ActionFailed as exc:
            errors.append(str(exc))
    return errors


def step_undo(*, plan: Plan, name: str, changes: list[dict], routes: Path) -> None:
    """Undo a step's changes in reverse order; if one fails, redo the ones already undone, then raise."""
    undone: list[dict] = []
    for change in reversed(changes):
        try:
            change_undo(plan=plan, change=change, routes=routes)
        except ActionFailed as exc:
            for again in reversed(undone):
                change_redo(plan=plan, change=again, routes=routes)
            raise ActionFailed(f"rolling back {name}: undoing '{change_describe(change)}' failed: {exc}; "
                               f"the step stays applied") from exc
        undone.append(change)
