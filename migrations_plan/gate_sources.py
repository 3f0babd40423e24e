"""Where the gates read proxy metrics: one proxy's /metrics, several replicas' (summed), or a Prometheus server.

A plan's ``proxy_metrics`` is one of:
  - ``http://proxy-admin:8081/metrics``: one proxy (either plane: the nginx plane's exporter has the same names);
  - a list of such URLs: proxy replicas, each counting its share; samples with the same name and labels are
    summed. One replica not answering makes the source unavailable (its gates ``unknown``): never a partial sum;
  - ``{prometheus: http://prometheus:9090}``: a Prometheus server scraping the replicas, asked over its HTTP API
    (``/api/v1/query``) for the gate metrics summed over every scraped instance, as Flagger and Argo Rollouts do.
Each gives the same ``Samples`` the gates take a baseline of and subtract from, so every gate works on any of
them. A replica that restarts lowers the sum; the gates then measure that series from zero (as for one proxy).
"""

from __future__ import annotations

from dataclasses import dataclass

import requests

from migrations_plan.metrics import MetricsUnavailable, Samples, metrics_fetch

# What the gates read (gates.py); the rest of a proxy's metrics is not fetched from Prometheus.
GATE_METRICS = ("strangler_proxy_requests_total", "strangler_proxy_request_seconds_bucket",
                "strangler_proxy_fallbacks_total", "strangler_proxy_shadow_comparisons_total",
                "strangler_proxy_shadow_diffs_total")
GATE_LABELS = ("route", "upstream", "status", "le", "reason")
GATE_QUERY = (f"sum by (__name__, {', '.join(GATE_LABELS)}) "
              f"({{__name__=~\"{'|'.join(GATE_METRICS)}\"}})")


@dataclass(frozen=True)
class PrometheusSource:
    url: str  # base URL of the Prometheus server, e.g. http://127.0.0.1:9090

    def __str__(self) -> str:
        return f"prometheus {self.url}"


ProxyMetricsSource = str | tuple[str, ...] | PrometheusSource


def prometheus_samples_fetch(*, url: str, query: str = GATE_QUERY, timeout: float = 5.0) -> Samples:
    """An instant PromQL query's vector as samples (labels a series lacks are left out, as in the text format)."""
    endpoint = url.rstrip("/") + "/api/v1/query"
    try:
        response = requests.get(endpoint, params={"query": query}, timeout=timeout)
    except requests.RequestException as exc:
        raise MetricsUnavailable(f"{endpoint}: {type(exc).__name__}") from exc
    try:
        body = response.json()
    except ValueError:
        raise MetricsUnavailable(f"{endpoint} answered {response.status_code}, not JSON") from None
    if response.status_code != 200 or body.get("status") != "success":
        raise MetricsUnavailable(f"{endpoint} answered {response.status_code}: {body.get('error', 'no result')}")
    rows = []
    for series in body["data"]["result"]:
        labels = {k: v for k, v in series["metric"].items() if k != "__name__" and v != ""}
        rows.append((series["metric"]["__name__"], labels, float(series["value"][1])))
    return Samples(rows=tuple(rows))


def samples_sum(parts: list[Samples]) -> Samples:
    """Samples of several replicas, those with the same name and labels added up."""
    summed: dict[tuple, float] = {}
    for part in parts:
        for name, labels, value in part.rows:
            key = (name, tuple(sorted(labels.items())))
            summed[key] = summed.get(key, 0.0) + value
    return Samples(rows=tuple((name, dict(labels), value) for (name, labels), value in summed.items()))


def proxy_samples_fetch(*, source: ProxyMetricsSource) -> Samples:
    """The proxy metrics the gates read, from whichever source the plan names."""
    if isinstance(source, PrometheusSource):
        return prometheus_samples_fetch(url=source.url)
    if isinstance(source, str):
        return metrics_fetch(url=source)
    return samples_sum([metrics_fetch(url=url) for url in source])
