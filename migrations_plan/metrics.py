"""Read Prometheus text (the proxy admin's /metrics, a project's /metrics) into plain samples.

A ``Samples`` is a list of (name, labels, value); helpers sum or select by labels. Counters are cumulative
since the process started, so gates work on the difference from a baseline taken when the step began.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests
from prometheus_client.parser import text_string_to_metric_families

Sample = tuple[str, dict[str, str], float]


class MetricsUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class Samples:
    rows: tuple[Sample, ...]

    @classmethod
    def parse(cls, text: str) -> Samples:
        rows = []
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                rows.append((sample.name, dict(sample.labels), float(sample.value)))
        return cls(rows=tuple(rows))

    def select(self, name: str, **labels: str | tuple[str, ...]) -> list[Sample]:
        out = []
        for row_name, row_labels, value in self.rows:
            if row_name != name:
                continue
            if all(row_labels.get(k) in (v if isinstance(v, tuple) else (v,)) for k, v in labels.items()):
                out.append((row_name, row_labels, value))
        return out

    def total(self, name: str, **labels: str | tuple[str, ...]) -> float:
        return sum(value for _, _, value in self.select(name, **labels))

    def as_json(self) -> list:
        return [[name, labels, value] for name, labels, value in self.rows]

    @classmethod
    def from_json(cls, data: list | None) -> Samples:
        return cls(rows=tuple((name, dict(labels), float(value)) for name, labels, value in data or ()))


def metrics_fetch(*, url: str, timeout: float = 5.0) -> Samples:
    """GET a Prometheus text endpoint; MetricsUnavailable when it does not answer 200."""
    try:
        response = requests.get(url, timeout=timeout)
    except requests.RequestException as exc:
        raise MetricsUnavailable(f"{url}: {type(exc).__name__}") from exc
    if response.status_code != 200:
        raise MetricsUnavailable(f"{url} answered {response.status_code}")
    return Samples.parse(response.text)


def histogram_quantile(buckets: list[tuple[float, float]], quantile: float) -> float | None:
    """Upper bound of the bucket holding the quantile, from cumulative (le, count) pairs; None without data."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = quantile * buckets[-1][1]
    for upper, count in buckets:
        if count >= rank:
            return upper
    return buckets[-1][0]
