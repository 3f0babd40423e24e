"""Data-plane tables: the outbox (producer side) and the inbox (consumer side) live in every project's own database.

Writes go through ``strangler_sync.services`` / ``strangler_sync.consumer`` only; no save() overrides or signals.
"""

from __future__ import annotations

import uuid

from django.db import models


class OutboxEvent(models.Model):
    """An event written in the same transaction as the change it describes; the relay publishes it later."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PUBLISHED = "published", "Published"
        DEAD = "dead", "Dead"  # gave up after MAX_ATTEMPTS; requeue from the admin

    message_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event_type = models.CharField(max_length=100)
    aggregate_type = models.CharField(max_length=60)
    aggregate_id = models.CharField(max_length=64)
    version = models.PositiveBigIntegerField()
    payload = models.JSONField()
    schema_version = models.PositiveSmallIntegerField(default=1)
    occurred_at = models.DateTimeField()
    origin = models.CharField(max_length=60)
    correlation_id = models.CharField(max_length=128, blank=True, default="")
    # W3C traceparent of the write that emitted the event ("" when none): the consumer continues that trace
    traceparent = models.CharField(max_length=55, blank=True, default="", db_default="")
    # The owner's ownership epoch of the aggregate type when the write committed (null: written by a capture
    # trigger or before epochs existed); followers refuse events older than the epoch they know.
    epoch = models.PositiveBigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.TextField(blank=True, default="")
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # The relay's claim query: pending rows due now, oldest first.
            models.Index(fields=["status", "next_attempt_at", "id"], name="outbox_due_idx"),
            # The claim's ORDER BY id over pending rows only: without it the scan walks the primary key
            # through every published row still kept (retention), a cost growing with the table.
            models.Index(fields=["id"], name="outbox_pending_idx", condition=models.Q(status="pending")),
            models.Index(fields=["aggregate_type", "aggregate_id", "version"], name="outbox_aggregate_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.aggregate_type}:{self.aggregate_id} v{self.version} ({self.status})"


class AggregateVersion(models.Model):
    """The last version issued per aggregate; bumped by one upsert that row-locks it until the write commits."""

    aggregate_type = models.CharField(max_length=60)
    aggregate_id = models.CharField(max_length=64)
    version = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["aggregate_type", "aggregate_id"], name="aggregate_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.aggregate_type}:{self.aggregate_id} v{self.version}"


class InboxMessage(models.Model):
    """One row per message a consumer handled (applied or skipped as stale): redeliveries are skipped."""

    class Outcome(models.TextChoices):
        APPLIED = "applied", "Applied"
        STALE = "stale", "Stale (an equal or newer version was already applied)"
        FENCED = "fenced", "Fenced (emitted under an ownership epoch older than this project knows)"

    message_id = models.UUIDField(unique=True)
    event_type = models.CharField(max_length=100)
    aggregate_type = models.CharField(max_length=60)
    aggregate_id = models.CharField(max_length=64)
    version = models.PositiveBigIntegerField()
    origin = models.CharField(max_length=60)
    correlation_id = models.CharField(max_length=128, blank=True, default="")
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["received_at"], name="inbox_received_idx")]

    def __str__(self) -> str:
        return f"{self.message_id} {self.event_type} {self.aggregate_type}:{self.aggregate_id} v{self.version}"


class AppliedVersion(models.Model):
    """The newest version a consumer applied per aggregate: older or equal versions are stale."""

    aggregate_type = models.CharField(max_length=60)
    aggregate_id = models.CharField(max_length=64)
    version = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["aggregate_type", "aggregate_id"], name="applied_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.aggregate_type}:{self.aggregate_id} applied v{self.version}"


class DeadLetter(models.Model):
    """A message the consumer gave up on (malformed, unknown type, handler kept failing); also sent to <queue>.dlq."""

    message_id = models.CharField(max_length=64, blank=True, default="")
    queue = models.CharField(max_length=200)
    event_type = models.CharField(max_length=100, blank=True, default="")
    body = models.TextField()
    error = models.TextField()
    attempts = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"dead letter {self.message_id or '?'} {self.event_type}: {self.error[:60]}"


class BackfillCheckpoint(models.Model):
    """The last id a backfill emitted per aggregate, so `sync_backfill --resume` continues after a crash."""

    aggregate_type = models.CharField(max_length=60, unique=True)
    last_id = models.BigIntegerField(null=True, blank=True)  # aggregates are keyed by integer ids
    emitted = models.PositiveBigIntegerField(default=0)
    finished = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"backfill {self.aggregate_type} after {self.last_id or '-'} ({self.emitted} emitted)"


class ReconcileState(models.Model):
    """Continuous reconciliation of one aggregate with one follower (``sync_reconcile``): running totals and the
    last pass, one row per pair so it never grows; read by ``/sync/reconcile/`` and ``/metrics``."""

    class Status(models.TextChoices):
        CLEAN = "clean", "Clean (0 differences)"
        REPAIRED = "repaired", "Differences found and re-emitted"
        FAILED = "failed", "Failed (verify or repair did not complete)"

    aggregate_type = models.CharField(max_length=60)
    follower = models.CharField(max_length=300)  # the follower's base URL
    passes = models.PositiveBigIntegerField(default=0)
    failed_passes = models.PositiveBigIntegerField(default=0)
    differences_found_total = models.PositiveBigIntegerField(default=0)
    repaired_total = models.PositiveBigIntegerField(default=0)
    last_status = models.CharField(max_length=12, choices=Status.choices)
    last_differences = models.PositiveBigIntegerField(default=0)
    last_repaired = models.PositiveBigIntegerField(default=0)
    last_duration_seconds = models.FloatField(default=0.0)
    last_finished_at = models.DateTimeField()
    last_error = models.TextField(blank=True, default="")
    last_clean_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["aggregate_type", "follower"], name="reconcile_state_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.aggregate_type} -> {self.follower}: {self.last_status}"


class Ownership(models.Model):
    """Who writes an aggregate type in this project's view, and since which epoch (``strangler_sync.ownership``).

    One row per aggregate type, in the project's own database: every write's transaction locks it (shared)
    and checks it, a flip locks it exclusively and moves ``epoch`` up by one (on every project of the
    migration, to the same number), so no write commits on the old owner after its flip.
    """

    aggregate_type = models.CharField(max_length=60, unique=True)
    owner = models.CharField(max_length=60)
    epoch = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.aggregate_type}: {self.owner} (epoch {self.epoch})"
