"""Gate evaluation: each gate's value now, read over HTTP from the proxy's metrics and each project's endpoints.

A gate is ``pass``, ``fail`` (a limit is exceeded), ``waiting`` (a minimum is not reached yet) or
``unknown`` (no data: the source did not answer, or there was no traffic to measure). Only ``pass``
lets a plan advance; ``plan watch`` rolls back on ``fail`` only.

Proxy counters are measured over the window since the current step began: ``Observation`` takes the
proxy samples saved then (``baseline``) and subtracts them (a restarted proxy, whose counters went
down, is measured from zero).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import requests

from migrations_plan.coverage import (
    coverage_missing,
    recorded_endpoints,
    schema_endpoints,
    schema_fetch,
    table_after_step,
)
from migrations_plan.gate_sources import proxy_samples_fetch
from migrations_plan.metrics import MetricsUnavailable, Samples, histogram_quantile
from migrations_plan.reconcile_state import reconcile_state_fetch
from migrations_plan.relay_state import relay_state_fetch, sync_base_url
from migrations_plan.spec import Gate, Plan, Step
from strangler_proxy.spec import RouteTable
from strangler_sync.verify import VerifyError, verify_aggregate

PASS, FAIL, WAITING, UNKNOWN = "pass", "fail", "waiting", "unknown"
P99 = 0.99


@dataclass
class GateResult:
    kind: str
    status: str
    value: float | None
    threshold: float
    detail: str = ""

    def line(self) -> str:
        shown = "no data" if self.value is None else f"{self.value:.4g}"
        op = ">=" if self.kind.startswith("min_") else "<="
        text = f"{self.status.upper():<7} {self.kind} = {shown} (needs {op} {self.threshold:g})"
        return text + (f": {self.detail}" if self.detail else "")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Observation:
    """Everything gates read, fetched lazily once per evaluation."""

    plan: Plan
    table: RouteTable
    entered_at: float  # when the current step began (epoch seconds)
    baseline: Samples = field(default_factory=lambda: Samples(rows=()))
    now: float = field(default_factory=time.time)
    pending: Step | None = None  # the step these gates guard, not applied yet (its route edits are not in table)
    _proxy: Samples | MetricsUnavailable | None = None
    _sync: dict[str, dict | MetricsUnavailable] = field(default_factory=dict)

    def proxy(self) -> Samples:
        if self._proxy is None:
            try:
                self._proxy = proxy_samples_fetch(source=self.plan.proxy_metrics)
            except MetricsUnavailable as exc:
                self._proxy = exc
        if isinstance(self._proxy, MetricsUnavailable):
            raise self._proxy
        return self._proxy

    def sync(self, project: str) -> dict:
        """The project's relay state (its /sync/relay/ answer), fetched once per evaluation."""
        if project not in self._sync:
            try:
                self._sync[project] = relay_state_fetch(base_url=sync_base_url(project=project, table=self.table))
            except MetricsUnavailable as exc:
                self._sync[project] = exc
        found = self._sync[project]
        if isinstance(found, MetricsUnavailable):
            raise found
        return found

    def series_deltas(self, name: str, **labels) -> list[tuple[dict[str, str], float]]:
        """Each matching counter series with its increase since the baseline."""
        out = []
        for _, series, value in self.proxy().select(name, **labels):
            before = sum(v for _, s, v in self.baseline.select(name) if s == series)
            out.append((series, value - before if value >= before else value))
        return out

    def delta(self, name: str, **labels) -> float:
        """Counter increase since the baseline, over every series matching labels."""
        return sum(value for _, value in self.series_deltas(name, **labels))

    def histogram_delta(self, name: str, **labels) -> list[tuple[float, float]]:
        by_le: dict[float, float] = {}
        now = self.proxy()
        for _, series, value in now.select(f"{name}_bucket", **labels):
            before = sum(v for _, s, v in self.baseline.select(f"{name}_bucket") if s == series)
            le = float(series["le"])
            by_le[le] = by_le.get(le, 0.0) + (value - before if value >= before else value)
        return list(by_le.items())


def _judge(gate: Gate, value: float | None, detail: str = "") -> GateResult:
    if value is None:
        return GateResult(gate.kind, UNKNOWN, None, gate.threshold, detail or "no data")
    if gate.direction == "min":
        status = PASS if value >= gate.threshold else WAITING
    else:
        status = PASS if value <= gate.threshold else FAIL
    return GateResult(gate.kind, status, value, gate.threshold, detail)


def _routes(o: Observation) -> tuple[str, ...]:
    return o.plan.routes


def _shadow_sample(o: Observation, gate: Gate) -> GateResult:
    count = o.delta("strangler_proxy_shadow_comparisons_total", route=_routes(o))
    return _judge(gate, count, "shadow comparisons since this step began")


def _diff_rate(o: Observation, gate: Gate) -> GateResult:
    compared = o.delta("strangler_proxy_shadow_comparisons_total", route=_routes(o))
    if compared == 0:
        return _judge(gate, None, "no shadow comparisons since this step began")
    differed = o.delta("strangler_proxy_shadow_diffs_total", route=_routes(o))
    return _judge(gate, differed / compared, f"{differed:g} of {compared:g} comparisons differed")


def _errors(o: Observation, upstream: str, routes: tuple[str, ...] | None) -> tuple[float, float]:
    """(5xx or failed, all) requests an upstream answered since the baseline."""
    labels: dict = {"upstream": upstream}
    if routes is not None:
        labels["route"] = routes
    errors = total = 0.0
    for series, value in o.series_deltas("strangler_proxy_requests_total", **labels):
        total += value
        if series["status"] == "error" or series["status"].startswith("5"):
            errors += value
    return errors, total


def _error_rate_increase(o: Observation, gate: Gate) -> GateResult:
    routes = _routes(o)
    service, monolith = o.plan.service, o.table.monolith
    errors, answered = _errors(o, service, routes)
    # Requests the monolith served because the service failed are service failures, not monolith traffic.
    fell_back = o.delta("strangler_proxy_fallbacks_total", route=routes, upstream=service)
    refused = o.delta("strangler_proxy_requests_total", route=routes, upstream="proxy", status="503")
    attempts = answered + fell_back + refused
    if attempts == 0:
        return _judge(gate, None, f"no requests to {service} since this step began")
    service_rate = (errors + fell_back + refused) / attempts
    mono_errors, mono_total = _errors(o, monolith, routes)
    mono_total -= fell_back
    scope = "on these routes"
    if mono_total <= 0:  # every request of these routes goes to the service now: compare with the whole monolith
        mono_errors, mono_total = _errors(o, monolith, None)
        mono_total -= fell_back
        scope = "on all routes"
    if mono_total <= 0:
        return _judge(gate, None, f"{service} error rate {service_rate:.2%}, but no monolith traffic to compare")
    mono_rate = max(0.0, mono_errors) / mono_total
    return _judge(gate, max(0.0, service_rate - mono_rate),
                  f"{service} {service_rate:.2%} of {attempts:g} vs monolith {mono_rate:.2%} {scope}")


def _p99(o: Observation, gate: Gate) -> GateResult:
    buckets = o.histogram_delta("strangler_proxy_request_seconds", route=_routes(o), upstream=o.plan.service)
    value = histogram_quantile(buckets, P99)
    count = max((c for _, c in buckets), default=0)
    return _judge(gate, value, f"p99 of {count:g} requests {o.plan.service} answered (bucket upper bound)"
                  if value is not None else f"no requests answered by {o.plan.service} since this step began")


def _relay(o: Observation, gate: Gate) -> GateResult:
    if not o.plan.sync_projects:
        return _judge(gate, None, "the plan names no sync_projects")
    key = "oldest_pending_age_seconds" if gate.kind == "max_relay_lag_seconds" else "backlog"
    values, parts = [], []
    for project in o.plan.sync_projects:
        try:
            value = float(o.sync(project)[key])
        except MetricsUnavailable as exc:
            return _judge(gate, None, str(exc))
        values.append(value)
        parts.append(f"{project} {value:g}")
    value = max(values) if gate.kind == "max_relay_lag_seconds" else sum(values)
    return _judge(gate, value, ", ".join(parts))


def _reconcile(o: Observation, gate: Gate) -> GateResult:
    """Worst age of the last clean sync_reconcile pass of the plan's service (its upstream URL is the follower),
    read from the sync projects; fails outright while a latest pass found differences or failed."""
    follower = o.table.upstreams[o.plan.service].url.rstrip("/")
    ages, not_clean = [], []
    for project in o.plan.sync_projects:
        try:
            passes = reconcile_state_fetch(base_url=sync_base_url(project=project, table=o.table))
        except MetricsUnavailable as exc:
            return _judge(gate, None, str(exc))
        for entry in passes:
            if str(entry["follower"]).rstrip("/") != follower:
                continue
            if entry["status"] != "clean":
                not_clean.append(f"{entry['aggregate']} last pass {entry['status']}"
                                 + (f": {entry['error']}" if entry.get("error")
                                    else f" ({entry['differences']} difference(s))"))
            ages.append(entry["last_clean_age_seconds"])
    if not ages:
        return _judge(gate, None, f"no sync_reconcile pass of {follower} recorded by the plan's sync_projects")
    worst = None if None in ages else max(ages)
    if not_clean or worst is None:
        return GateResult(gate.kind, FAIL, worst, gate.threshold, "; ".join(not_clean) or "no clean pass yet")
    return _judge(gate, worst, f"{len(ages)} aggregate(s) clean, oldest clean pass {worst:.0f}s ago")


def _verify(o: Observation, gate: Gate) -> GateResult:
    source = o.table.upstreams[o.table.monolith].url
    follower = o.table.upstreams[o.plan.service].url
    total, parts = 0, []
    for aggregate in gate.aggregates:
        try:
            result = verify_aggregate(source=source, follower=follower, aggregate=aggregate, timeout=60)
        except VerifyError as exc:
            return _judge(gate, None, f"verify {aggregate}: {exc}")
        total += result.differences
        parts.append(f"{aggregate}: {result.source_count}/{result.follower_count} rows, "
                     f"{result.differences} difference(s)")
    return _judge(gate, total, "; ".join(parts))


def _coverage(o: Observation, gate: Gate) -> GateResult:
    table = table_after_step(o.table, o.pending)
    monolith_url, service_url = table.upstreams[table.monolith].url, table.upstreams[o.plan.service].url
    try:
        monolith = schema_endpoints(schema_fetch(url=monolith_url + gate.schema_path))
        implemented = schema_endpoints(schema_fetch(url=service_url + gate.schema_path))
    except MetricsUnavailable as exc:
        return _judge(gate, None, f"OpenAPI schema unavailable: {exc}")
    if gate.recording is not None:
        try:
            monolith += recorded_endpoints(path=gate.recording, monolith=table.monolith)
        except OSError as exc:
            return _judge(gate, None, f"recording {gate.recording}: {exc.strerror or exc}")
    missing, sent = coverage_missing(table=table, service=o.plan.service, monolith=monolith,
                                     implemented=implemented)
    if missing:
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        shown = ", ".join(str(e) for e in missing[:10]) + more
        return _judge(gate, len(missing), f"{o.plan.service} lacks {shown}")
    return _judge(gate, 0, f"{o.plan.service} implements all {sent} path+method pairs of the monolith it is sent")


def _soak(o: Observation, gate: Gate) -> GateResult:
    return _judge(gate, max(0.0, o.now - o.entered_at), "seconds since this step began")


def _healthy(o: Observation, gate: Gate) -> GateResult:
    down = []
    for name in gate.upstreams:
        upstream = o.table.upstreams[name]
        try:
            status = requests.get(upstream.url + upstream.health_path, timeout=5).status_code
        except requests.RequestException as exc:
            status = type(exc).__name__
        if status != 200:
            down.append(f"{name} {status}")
    return _judge(gate, len(down), ", ".join(down) or "all answer 200")


EVALUATORS = {
    "min_shadow_sample": _shadow_sample,
    "max_diff_rate": _diff_rate,
    "max_error_rate_increase": _error_rate_increase,
    "max_p99_seconds": _p99,
    "max_relay_lag_seconds": _relay,
    "max_relay_backlog": _relay,
    "verify": _verify,
    "max_reconcile_clean_age_seconds": _reconcile,
    "min_soak_seconds": _soak,
    "healthy": _healthy,
    "coverage": _coverage,
}


def gates_evaluate(*, gates: tuple[Gate, ...], observation: Observation) -> list[GateResult]:
    results = []
    for gate in gates:
        try:
            results.append(EVALUATORS[gate.kind](observation, gate))
        except MetricsUnavailable as exc:
            results.append(_judge(gate, None, f"metrics unavailable: {exc}"))
    return results


def gates_pass(results: list[GateResult]) -> bool:
    return all(result.status == PASS for result in results)
