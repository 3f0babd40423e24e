"""Prometheus metrics of the data plane (exposed by servicekit's /metrics of each project)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
    "Messages handled by the consumer, by outcome (applied, duplicate, stale, failed, dead_lettered)",
    ["queue", "event_type", "outcome"],
)
LAG = Histogram(
    "strangler_sync_end_to_end_lag_seconds",
    "From the event's occurred_at (owner commit) to applied in the follower",
    ["queue"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
