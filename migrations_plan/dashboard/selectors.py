"""Everything the dashboard shows, read from its sources into one JSON-ready snapshot (no writes).

Sources: the route file (``strangler_proxy.loader``), the proxy admin's ``/metrics`` and ``/diffs``, each
project's ``/sync/relay/`` (strangler_sync's relay state) and ``/metrics`` endpoints, and the plans
(``migrations_plan.selectors.plan_status``: current step and gate values, exactly what ``plan status`` shows).
A source that does not answer is reported as such; its numbers are never shown as zero.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from migrations_plan.metrics import MetricsUnavailable, Samples, histogram_quantile, metrics_fetch
from migrations_plan.relay_state import relay_state_fetch
from strangler_proxy.loader import RouteFileError, load_route_file
from strangler_proxy.spec import DEFAULT_ROUTE_LABEL, RouteTable

REQUESTS = "strangler_proxy_requests_total"


def _is_error(status: str) -> bool:
    return status == "error" or status.startswith("5")


def _routes_section(table: RouteTable) -> list[dict]:
    return [{
        "route": route.label,
        "match": route.match,
        "methods": sorted(route.methods) if route.methods else None,
        "mode": route.mode,
        "service": route.service,
        "weight": route.weight if route.mode == "canary" else None,
        "shadow_sample": route.shadow.sample if route.shadow else (1.0 if route.mode == "shadow" else None),
        "fallback": route.fallback,
        "line": route.line,
    } for route in table.routes]


def _traffic_section(samples: Samples, table: RouteTable) -> list[dict]:
    """Per route (and the default), requests per upstream with share and error rate, shadow diffs, fallbacks."""
    labels = [r.label for r in table.routes] + [DEFAULT_ROUTE_LABEL]
    seen = {s["route"] for _, s, _ in samples.select(REQUESTS)} | \
        {s["route"] for _, s, _ in samples.select("strangler_proxy_shadow_comparisons_total")}
    labels += sorted(seen - set(labels))  # routes the proxy still counts but the file no longer has
    out = []
    for label in labels:
        by_upstream: dict[str, dict] = {}
        for _, series, value in samples.select(REQUESTS, route=label):
            entry = by_upstream.setdefault(series["upstream"], {"requests": 0.0, "errors": 0.0})
            entry["requests"] += value
            if _is_error(series["status"]):
                entry["errors"] += value
        total = sum(e["requests"] for e in by_upstream.values())
        compared = samples.total("strangler_proxy_shadow_comparisons_total", route=label)
        differed = samples.total("strangler_proxy_shadow_diffs_total", route=label)
        if not total and not compared and label not in {r.label for r in table.routes}:
            continue
        upstreams = [{
            "upstream": name,
            "requests": int(e["requests"]),
            "share": round(e["requests"] / total, 4) if total else None,
            "errors": int(e["errors"]),
            "error_rate": round(e["errors"] / e["requests"], 4) if e["requests"] else None,
        } for name, e in sorted(by_upstream.items())]
        errors = sum(e["errors"] for e in by_upstream.values())
        out.append({
            "route": label,
            "requests": int(total),
            "upstreams": upstreams,
            "error_rate": round(errors / total, 4) if total else None,
            "shadow_comparisons": int(compared),
            "shadow_diffs": int(differed),
            "diff_rate": round(differed / compared, 4) if compared else None,
            "shadow_errors": int(samples.total("strangler_proxy_shadow_errors_total", route=label)),
            "fallbacks": int(samples.total("strangler_proxy_fallbacks_total", route=label)),
        })
    return out


def _breakers(samples: Samples) -> dict[str, str]:
    names = {0: "closed", 1: "half-open", 2: "open"}
    return {s["upstream"]: names.get(int(v), str(v)) for _, s, v in samples.select("strangler_proxy_breaker_state")}


def proxy_section(*, admin_url: str | None, table: RouteTable, timeout: float = 5.0) -> dict:
    if not admin_url:
        return {"error": "no proxy admin URL given (--proxy-admin)"}
    try:
        samples = metrics_fetch(url=f"{admin_url}/metrics", timeout=timeout)
    except MetricsUnavailable as exc:
        return {"error": f"proxy metrics unavailable: {exc}"}
    top_fields: dict[str, dict] = {}
    try:
        diffs = requests.get(f"{admin_url}/diffs", timeout=timeout).json()
        top_fields = {route: data.get("top_fields", {}) for route, data in diffs.get("routes", {}).items()}
    except (requests.RequestException, ValueError):
        pass  # the counters above are what matters; top fields are a bonus
    traffic = _traffic_section(samples, table)
    for row in traffic:
        row["top_fields"] = top_fields.get(row["route"], {})
    return {"traffic": traffic, "breakers": _breakers(samples),
            "rejections": int(samples.total("strangler_proxy_rejections_total"))}


def sync_probe(*, base_url: str, timeout: float = 10.0) -> dict:
    """One project's outbox and dead letters, from its own ``/sync/relay/`` endpoint."""
    try:
        return relay_state_fetch(base_url=base_url, timeout=timeout)
    except MetricsUnavailable as exc:
        return {"error": str(exc)}


def metrics_endpoint(*, url: str, timeout: float = 5.0) -> dict:
    """What a project's /metrics says about the data plane and its own HTTP errors (only series it has)."""
    try:
        samples = metrics_fetch(url=url, timeout=timeout)
    except MetricsUnavailable as exc:
        return {"error": str(exc)}
    out: dict = {}
    for key, name in (("backlog", "strangler_sync_outbox_backlog"),
                      ("oldest_pending_age_seconds", "strangler_sync_outbox_oldest_pending_age_seconds"),
                      ("outbox_dead", "strangler_sync_outbox_dead")):
        if samples.select(name):
            out[key] = samples.total(name)
    if samples.select("strangler_sync_consumed_total"):
        out["dead_letters"] = int(samples.total("strangler_sync_consumed_total", outcome="dead_lettered"))
        out["consumed"] = int(samples.total("strangler_sync_consumed_total"))
    buckets: dict[float, float] = {}
    for _, series, value in samples.select("strangler_sync_end_to_end_lag_seconds_bucket"):
        buckets[float(series["le"])] = buckets.get(float(series["le"]), 0.0) + value
    p99 = histogram_quantile(list(buckets.items()), 0.99)
    if p99 is not None:
        out["end_to_end_lag_p99_seconds"] = p99
    http = samples.select("django_http_requests_total")
    if http:
        total = sum(v for _, _, v in http)
        errors = sum(v for _, s, v in http if s["status"].startswith("5"))
        out["http_requests"] = int(total)
        out["http_error_rate"] = round(errors / total, 4) if total else None
    return out


def plans_section(*, routes: Path, names: Sequence[str] | None) -> list[dict]:
    from migrations_plan.errors import PlanError
    from migrations_plan.loader import load_plan, plan_names
    from migrations_plan.selectors import plan_status

    out = []
    for name in names if names is not None else plan_names():
        try:
            out.append(plan_status(plan=load_plan(name, routes=routes), routes=routes))
        except PlanError as exc:
            out.append({"plan": name, "error": str(exc)})
    return out


def _merge_by_project(results) -> list[dict]:
    """One row per project: the numbers of all its sources, and which source failed how."""
    rows: dict[str, dict] = {}
    for name, source, found in results:
        row = rows.setdefault(name, {"project": name, "sources": [], "errors": []})
        row["sources"].append(source)
        if "error" in found:
            row["errors"].append(f"{source}: {found['error']}")
        else:
            row.update({k: v for k, v in found.items() if k not in row})
    return list(rows.values())


def dashboard_snapshot(
    *, routes: Path, proxy_admin: str | None, sync_projects: Mapping[str, str] | None = None,
    metrics: Mapping[str, str] | None = None, plans: Sequence[str] | None = None,
) -> dict:
    """The whole page's data. ``sync_projects``: name -> base URL (/sync/relay/); ``metrics``: name -> /metrics URL."""
    taken = time.time()
    try:
        table = load_route_file(routes)
    except RouteFileError as exc:
        return {"taken_at": taken, "error": f"route file: {exc}"}
    # Each source waits on a process or a socket: ask them all at once, so the page costs the slowest one.
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="dashboard") as pool:
        probes = [(name, url, pool.submit(sync_probe, base_url=url)) for name, url in (sync_projects or {}).items()]
        scrapes = [(name, url, pool.submit(metrics_endpoint, url=url)) for name, url in (metrics or {}).items()]
        proxy = pool.submit(proxy_section, admin_url=proxy_admin, table=table)
        plan_rows = pool.submit(plans_section, routes=routes, names=plans)
        data_plane = _merge_by_project((name, source, future.result()) for name, source, future in probes + scrapes)
        return {
            "taken_at": taken,
            "routes_file": table.source,
            "routes_digest": table.digest[:12],
            "routes": _routes_section(table),
            "proxy": proxy.result(),
            "data_plane": data_plane,
            "plans": plan_rows.result(),
            "seconds": round(time.time() - taken, 3),
        }
