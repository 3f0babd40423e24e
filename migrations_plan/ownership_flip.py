"""The fenced ownership flip, driven over HTTP (``/sync/ownership/`` of every project in the plan's sync_projects).

1. fence the old owner: ``POST`` owner=new at epoch max+1 to it first; its row lock waits for the writes in
   flight, after which it refuses every write of the type (409 not_owner);
2. drain: the new owner's version watermark reaches the old owner's (``/sync/ownership/?watermarks=``):
   everything the old owner wrote has been applied there (no new owner among the projects: its outbox
   backlog, ``/sync/relay/``, reaches 0);
3. flip every other project to the same owner and epoch (the new owner starts taking writes).

Clients never see the 409s of steps 1-3 when the plan holds the moved routes' writes at the proxy around this
action (route edits ``set: {hold: reject}`` before it and ``set: {hold: null}`` after it; step_apply reports
the hold's length). A write the mitmproxy plane forwarded just before the hold, refused by the fence, is sent
again by the proxy (strangler_proxy.flip_retry); with an nginx plane the flip first waits flip_settle_seconds.
When the drain does not finish within $STRANGLER_FLIP_DRAIN_TIMEOUT seconds (120) the old owner is flipped back
(epoch + 1 again) and ActionFailed raised: nothing is half-applied. The control plane needs no project code,
settings, database or shared disk: only the base URLs and the verify token.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import requests

from migrations_plan.errors import ActionFailed
from migrations_plan.metrics import MetricsUnavailable
from migrations_plan.relay_state import relay_state_fetch, sync_base_url, sync_endpoint_get
from strangler_proxy.loader import load_route_file
from strangler_proxy.planes import planes_for
from strangler_sync.verify import VERIFY_TOKEN_ENV

logger = logging.getLogger(__name__)

OWNERSHIP_PATH = "/sync/ownership/"
DRAIN_TIMEOUT = float(os.environ.get("STRANGLER_FLIP_DRAIN_TIMEOUT", "120"))
SETTLE_ENV = "STRANGLER_FLIP_SETTLE_SECONDS"
# Before fencing, when an nginx plane serves the route file: a write it forwarded just before the hold and still
# in the old owner's application, before its transaction, gets this long to commit there (else its 409
# not_owner reaches the client: nginx can neither send it again nor tell that 409 from others). Not exact.
NGINX_SETTLE_SECONDS = 1.0


def _states(bases: list[str], aggregates: list[str]) -> dict[str, dict]:
    """base URL -> {"project", "owners": {aggregate: (owner, epoch)}, "watermarks": {...}}."""
    found = {}
    for base in bases:
        try:
            url, data = sync_endpoint_get(base_url=base, path=f"{OWNERSHIP_PATH}?watermarks={','.join(aggregates)}")
            found[base] = {"project": data["project"], "watermarks": data["watermarks"],
                           "owners": {o["aggregate"]: (o["owner"], o["epoch"]) for o in data["owners"]}}
        except (MetricsUnavailable, KeyError, TypeError) as exc:
            raise ActionFailed(f"ownership of {base}: {exc}") from exc
    return found


def _post(base: str, *, aggregate: str, owner: str, epoch: int) -> None:
    token = os.environ.get(VERIFY_TOKEN_ENV, "")
    if not token:
        raise ActionFailed(f"no verify token: set ${VERIFY_TOKEN_ENV} (the projects' STRANGLER_SYNC['VERIFY_TOKEN'])")
    url = base.rstrip("/") + OWNERSHIP_PATH
    try:
        response = requests.post(url, json={"aggregate": aggregate, "owner": owner, "epoch": epoch},
                                 headers={"Authorization": f"Bearer {token}"}, timeout=60)
    except requests.RequestException as exc:
        raise ActionFailed(f"{url}: {type(exc).__name__}") from exc
    if response.status_code != 200:
        raise ActionFailed(f"{url} answered {response.status_code}: {response.text[:300]}")


def _owner_of(states: dict[str, dict], aggregate: str, default: str = "monolith") -> tuple[str, int]:
    """(owner, epoch) by the project with the newest epoch for the aggregate."""
    seen = [s["owners"][aggregate] for s in states.values() if aggregate in s["owners"]]
    return max(seen, key=lambda item: item[1]) if seen else (default, 0)


def _drained(bases: list[str], *, old: str, new_base: str | None, aggregates: list[str], deadline: float) -> None:
    while True:
        states = _states(bases, aggregates)
        old_base = next((b for b, s in states.items() if s["project"] == old), None)
        # the watermarks are the precise test; without a new owner to compare, the old owner's outbox must empty
        backlog = relay_state_fetch(base_url=old_base)["backlog"] if old_base and new_base is None else 0
        behind = [a for a in aggregates if old_base and new_base
                  and states[new_base]["watermarks"][a] < states[old_base]["watermarks"][a]]
        if backlog == 0 and not behind:
            return
        if time.monotonic() > deadline:
            raise ActionFailed(f"drain of {old}: backlog {backlog}, new owner behind on {', '.join(behind) or '-'} "
                               f"after {DRAIN_TIMEOUT:g}s")
        time.sleep(0.1)


def flip_settle_seconds(*, routes: Path) -> float:
    """Seconds the flip waits between the hold and the fence: $STRANGLER_FLIP_SETTLE_SECONDS when set; else
    NGINX_SETTLE_SECONDS when an nginx plane is registered for the route file, 0 when only mitmproxy planes are
    (they send a write the fence refused again themselves: strangler_proxy.flip_retry)."""
    configured = os.environ.get(SETTLE_ENV, "").strip()
    if configured:
        try:
            seconds = float(configured)
        except ValueError:
            raise ActionFailed(f"${SETTLE_ENV}: {configured!r} is not a number of seconds") from None
        if not 0 <= seconds <= 60:
            raise ActionFailed(f"${SETTLE_ENV}: {configured} is not between 0 and 60 seconds")
        return seconds
    return NGINX_SETTLE_SECONDS if any(p.kind == "nginx" for p in planes_for(routes=routes)) else 0.0


def _bases(projects: tuple[str, ...], routes: Path) -> list[str]:
    table = load_route_file(routes)
    return [sync_base_url(project=p, table=table) for p in projects]


def ownership_current(*, projects: tuple[str, ...], routes: Path, aggregates: list[str]) -> dict[str, str]:
    """{aggregate: owner} as the project with the newest epoch says."""
    states = _states(_bases(projects, routes), sorted(aggregates))
    return {a: _owner_of(states, a)[0] for a in aggregates}


def ownership_flip(*, projects: tuple[str, ...], routes: Path, owners: dict[str, str]) -> dict:
    """Flip `owners` ({aggregate: new owner}) on every project, fenced and drained. Returns
    ``{"epochs": {aggregate: epoch}, "flip_seconds": s, "settle_seconds": s}`` (epochs empty when every project
    already agreed)."""
    bases = _bases(projects, routes)
    aggregates = sorted(owners)
    states = _states(bases, aggregates)
    before = {a: _owner_of(states, a)[0] for a in aggregates}
    epochs = {a: max([0, *(s["owners"].get(a, ("", 0))[1] for s in states.values())]) + 1 for a in aggregates}
    moving = [a for a in aggregates if before[a] != owners[a]
              or any(s["owners"].get(a, ("", -1)) != (owners[a], epochs[a] - 1) for s in states.values())]
    if not moving:
        return {"epochs": {}, "flip_seconds": 0.0, "settle_seconds": 0.0}
    by_project = {s["project"]: b for b, s in states.items()}
    started = time.monotonic()
    settle = flip_settle_seconds(routes=routes)
    if settle > 0:
        time.sleep(settle)
    for old in sorted({before[a] for a in moving}):
        group = [a for a in moving if before[a] == old]
        if old in by_project:  # 1. fence the old owner first
            for aggregate in group:
                _post(by_project[old], aggregate=aggregate, owner=owners[aggregate], epoch=epochs[aggregate])
        new_bases = {by_project.get(owners[a]) for a in group}
        try:
            for new_base in new_bases:  # 2. drain it into the new owner(s)
                _drained(bases, old=old, new_base=new_base, aggregates=group,
                         deadline=time.monotonic() + DRAIN_TIMEOUT)
        except ActionFailed:
            if old in by_project:  # give the writes back to the old owner, at a newer epoch still
                for aggregate in group:
                    _post(by_project[old], aggregate=aggregate, owner=old, epoch=epochs[aggregate] + 1)
            raise
        for aggregate in group:  # 3. everyone else follows
            for project, base in by_project.items():
                if project != old:
                    _post(base, aggregate=aggregate, owner=owners[aggregate], epoch=epochs[aggregate])
    return {"epochs": {a: epochs[a] for a in moving}, "flip_seconds": round(time.monotonic() - started, 3),
            "settle_seconds": settle}


def hold_seconds_observe(*, plan: str, step: str, seconds: float) -> None:
    """The plan's record of a write hold: logged (plan output and history carry the `hold` change record; the
    proxy's strangler_proxy_write_hold_seconds is the metric)."""
    logger.warning("plan %s step %s: writes held %.3fs", plan, step, seconds)
