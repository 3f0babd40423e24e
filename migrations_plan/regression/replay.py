"""Replay requests against both sides and aggregate the differences per endpoint (the JSON summary)."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from migrations_plan.regression.compare import Exchange, SideBySide, describe_difference
from migrations_plan.regression.requests_file import ReplayRequest
from strangler_proxy.diffing import generalise_path
from strangler_proxy.fetch import UpstreamError
from strangler_proxy.spec import SAFE_METHODS

EXAMPLES_PER_ENDPOINT = 3
WORST_FIELDS = 10
_BODY_PREVIEW = 4000
_ID_SEGMENT = re.compile(r"/(\d+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?=/|$)")


def endpoint_of(method: str, path: str) -> str:
    """``GET /api/products/17/?x=1`` -> ``GET /api/products/{id}/``: what rates are grouped by."""
    bare = path.split("?", 1)[0].split("#", 1)[0]
    return f"{method} {_ID_SEGMENT.sub('/{id}', bare)}"


@dataclass
class EndpointStats:
    endpoint: str
    route: str
    compared: int = 0
    differing: int = 0
    errors: int = 0
    fields: Counter = field(default_factory=Counter)  # generalised path -> exchanges where it differed
    examples: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "endpoint": self.endpoint,
            "route": self.route,
            "compared": self.compared,
            "differing": self.differing,
            "diff_rate": round(self.differing / self.compared, 4) if self.compared else None,
            "errors": self.errors,
            "worst_fields": [{"path": p, "count": n} for p, n in self.fields.most_common(WORST_FIELDS)],
            "examples": self.examples,
        }


def _preview(body: bytes) -> str:
    """The body for the report: indented when it is JSON (so both sides line up), cut at a few KB."""
    try:
        text = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        text = body.decode("utf-8", "replace")
    return text[:_BODY_PREVIEW] + ("…" if len(text) > _BODY_PREVIEW else "")


def _example(exchange: Exchange, differences) -> dict:
    return {
        "method": exchange.method,
        "path": exchange.path,
        "differences": [{**d.as_dict(), "text": describe_difference(d.path, d.kind, d.expected, d.actual)}
                        for d in differences[:20]],
        "monolith": {"status": exchange.monolith.status, "body": _preview(exchange.monolith.body)},
        "service": {"status": exchange.service.status, "body": _preview(exchange.service.body)},
    }


def replay_run(
    *, comparer: SideBySide, requests: Sequence[ReplayRequest], allow_unsafe: bool = False,
    progress: Callable[[], None] | None = None, workers: int = 1,
) -> dict:
    """Send each request to both sides; the summary counts differences only after all noise is learned.

    Noise learned late (a field that first varied on the 50th call) still applies to the first 49: every
    exchange is kept until the end and its differences are filtered against the final noise of its route.
    With ``workers`` > 1 requests overlap (safe methods only: writes must keep their recorded order).
    """
    if workers > 1 and allow_unsafe:
        raise ValueError("unsafe methods are replayed in order: use one worker with allow_unsafe")
    started = time.time()
    skipped: Counter = Counter()
    exchanges: list[Exchange] = []
    stats: dict[str, EndpointStats] = {}

    def attempt(request: ReplayRequest) -> Exchange | UpstreamError | None:
        if request.method not in SAFE_METHODS and not allow_unsafe:
            return None
        try:
            return comparer.compare(request.method, request.path, headers=request.headers, body=request.body)
        except UpstreamError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="replay") as pool:
        for request, outcome in zip(requests, pool.map(attempt, requests), strict=True):
            endpoint = endpoint_of(request.method, request.path)
            if outcome is None:
                skipped[request.method] += 1
            elif isinstance(outcome, UpstreamError):
                route = comparer.route_for(request.method, request.path)
                entry = stats.setdefault(endpoint, EndpointStats(endpoint, route.label if route else "default"))
                entry.errors += 1
                if len(entry.examples) < EXAMPLES_PER_ENDPOINT:
                    entry.examples.append({"method": request.method, "path": request.path, "error": str(outcome)})
            else:
                exchanges.append(outcome)
                stats.setdefault(endpoint, EndpointStats(endpoint, outcome.route))
            if progress is not None:
                progress()
    suppressed_by: Counter = Counter()  # (route, noise rule) -> exchanges in which it hid differences
    for exchange in exchanges:
        entry = stats[endpoint_of(exchange.method, exchange.path)]
        entry.compared += 1
        filtered = comparer.noise.noise_filter(
            exchange.route, (*exchange.result.differences, *exchange.result.suppressed), count=False)
        suppressed_by.update((exchange.route, rule) for rule in filtered.rules)
        differences = filtered.kept
        if not differences:
            continue
        entry.differing += 1
        entry.fields.update({generalise_path(d.path) for d in differences})
        if len(entry.examples) < EXAMPLES_PER_ENDPOINT:
            entry.examples.append(_example(exchange, differences))
    endpoints = sorted(stats.values(), key=lambda e: (-(e.differing / e.compared if e.compared else 0), e.endpoint))
    compared = sum(e.compared for e in endpoints)
    differing = sum(e.differing for e in endpoints)
    return {
        "started_at": round(started, 3),
        "seconds": round(time.time() - started, 3),
        "monolith": comparer.monolith_url,
        "service": comparer.service_url,
        "routes_file": comparer.table.source,
        "requests": len(requests),
        "compared": compared,
        "differing": differing,
        "diff_rate": round(differing / compared, 4) if compared else None,
        "errors": sum(e.errors for e in endpoints),
        "skipped_unsafe": dict(skipped),
        "noise": comparer.noise.snapshot(),
        # Each learned rule with its evidence and the compared exchanges of this run it hid differences in.
        "noise_rules": [{**rule, "suppressed": suppressed_by[(rule["route"], rule["path"])]}
                        for rule in comparer.noise.rules()],
        "endpoints": [e.as_dict() for e in endpoints],
    }
