"""Prometheus metrics of the data plane (exposed by servicekit's /metrics of each project)."""

from __future__ import annotations

import math

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

OUTBOX_BACKLOG = Gauge("strangler_sync_outbox_backlog", "Pending outbox rows", ["origin"])
OUTBOX_OLDEST_PENDING_AGE = Gauge(
    "strangler_sync_outbox_oldest_pending_age_seconds", "Age of the oldest pending outbox row", ["origin"]
)
OUTBOX_DEAD = Gauge("strangler_sync_outbox_dead", "Outbox rows that gave up (status dead)", ["origin"])
PUBLISHED = Counter("strangler_sync_published_total", "Events confirmed by the broker", ["origin", "event_type"])
PUBLISH_FAILURES = Counter("strangler_sync_publish_failures_total", "Failed publish attempts", ["origin"])
DEAD_ROWS = Counter("strangler_sync_outbox_died", "Outbox rows that became dead", ["origin"])
CONSUMED = Counter(
    "strangler_sync_consumed_total",
    "Messages handled by the consumer, by outcome (applied, duplicate, stale, fenced, failed, dead_lettered)",
    ["queue", "event_type", "outcome"],
)
LAG = Histogram(
    "strangler_sync_end_to_end_lag_seconds",
    "From the event's occurred_at (owner commit) to applied in the follower",
    ["queue"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


class ReconcileCollector:
    """``sync_reconcile``'s totals, read from the project's database at scrape time: the passes run in another
    process, so in-process counters of the web process would never move."""

    def describe(self):  # no database access at registration
        return []

    def collect(self):
        from django.db import DatabaseError

        from strangler_sync.reconcile import reconcile_states

        try:
            states = reconcile_states()
        except DatabaseError:  # not migrated yet: no reconcile series rather than a failed scrape
            return
        labels = ["aggregate", "follower"]
        found = CounterMetricFamily("strangler_sync_reconcile_differences_found",
                                    "Differences sync_reconcile found (before repair)", labels=labels)
        repaired = CounterMetricFamily("strangler_sync_reconcile_repaired", "Keys sync_reconcile re-emitted",
                                       labels=labels)
        failed = CounterMetricFamily("strangler_sync_reconcile_failed_passes",
                                     "sync_reconcile passes that could not verify or repair", labels=labels)
        age = GaugeMetricFamily("strangler_sync_reconcile_last_clean_age_seconds",
                                "Seconds since the last pass that found 0 differences (+Inf: none yet)", labels=labels)
        for state in states:
            key = [state["aggregate"], state["follower"]]
            found.add_metric(key, state["differences_found_total"])
            repaired.add_metric(key, state["repaired_total"])
            failed.add_metric(key, state["failed_passes"])
            clean_age = state["last_clean_age_seconds"]
            age.add_metric(key, math.inf if clean_age is None else clean_age)
        yield from (found, repaired, failed, age)


REGISTRY.register(ReconcileCollector())
