"""Settings accessor: ``sync_settings()`` reads ``settings.STRANGLER_SYNC`` lazily (``override_settings`` works).

Keys (all optional; defaults below)::

    STRANGLER_SYNC = {
        "ORIGIN": PROJECT_NAME,                 # this project's name, stamped on every event it emits
        "EXCHANGE": "strangler.events",         # topic exchange
        "BROKER_URL": CELERY_BROKER_URL,        # sqlite-queue:// by default (sqlite_transport), amqp://...
                                                # in production; filesystem:// (kombu's) still works
        "BROKER_TRANSPORT_OPTIONS": CELERY_BROKER_TRANSPORT_OPTIONS,  # kombu transport options (the
                                                # embedded brokers poll every $STRANGLER_SYNC_POLL_INTERVAL, 0.05 s)
        "BATCH_SIZE": 500,                      # outbox rows a relay claims per transaction
                                                # ($STRANGLER_SYNC_BATCH_SIZE)
        "MESSAGE_BATCH": 100,                   # events per broker message: a message carries a JSON
                                                # array of envelopes of one routing key; 1 = one
                                                # envelope object per message ($STRANGLER_SYNC_MESSAGE_BATCH)
        "MAX_ATTEMPTS": 8,                      # broker refusals (nacks) before a row is dead
        "BACKOFF_BASE": 1.0, "BACKOFF_MAX": 300.0,   # seconds; exponential with jitter
        "RETENTION_DAYS": 7,                    # published outbox rows / inbox rows kept this long
        "OWNERSHIP_FILE": $STRANGLER_OWNERSHIP_FILE or var/ownership.json,  # who owns writes of each
                                                # aggregate (JSON or YAML), under $STRANGLER_VAR_DIR by default
        "DEFAULT_OWNER": "monolith",            # owner of every aggregate the file does not name
        "AGGREGATES": [],                       # dotted paths to strangler_sync.aggregates.Aggregate
                                                # declarations (or the objects), e.g. ["myshop.events.INVOICE"]:
                                                # what this project emits, follows, snapshots, backfills, verifies
        "QUEUE": "sync.<ORIGIN>",               # this project's consumer queue
        "SUBSCRIPTIONS": [],                    # routing-key patterns this project consumes, e.g. ["invoice.*"]
        "SUBSCRIBERS": {},                      # queues the relay declares+binds before publishing, e.g.
                                                # {"sync.billing": ["invoice.*"]}: nothing is lost before a
                                                # follower's first start
        "CONSUMER_MAX_ATTEMPTS": 5,             # handler attempts before a message goes to <QUEUE>.dlq
        "RELAY_TRIGGER": "celery",              # "celery": on_commit sends the relay task; "none": sweep only
        "CHECKSUM_ENGINE": "auto",              # verify's row hashes: in SQL on PostgreSQL, else Python;
                                                # "python" forces Python ($STRANGLER_SYNC_CHECKSUM_ENGINE)
        "NAMESPACE": $STRANGLER_SYNC_NAMESPACE or "",  # prefix of the exchange and every queue name, so
                                                # test runs / environments sharing one broker never meet
        "VERIFY_TOKEN": $STRANGLER_SYNC_VERIFY_TOKEN or "",  # what /sync/checksums/ callers must send
                                                # (Authorization: Bearer); unset: it answers no one
    }
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from servicekit import env
from strangler_sync.aggregates import Aggregate
from strangler_sync.verify import VERIFY_TOKEN_ENV

# every key the docstring above documents: ``manage.py check`` reports any other (strangler_sync.checks)
KNOWN_KEYS = frozenset({
    "ORIGIN", "EXCHANGE", "BROKER_URL", "BROKER_TRANSPORT_OPTIONS", "BATCH_SIZE", "MESSAGE_BATCH", "MAX_ATTEMPTS",
    "BACKOFF_BASE", "BACKOFF_MAX", "RETENTION_DAYS", "OWNERSHIP_FILE", "DEFAULT_OWNER", "AGGREGATES", "QUEUE",
    "SUBSCRIPTIONS", "SUBSCRIBERS", "CONSUMER_MAX_ATTEMPTS", "RELAY_TRIGGER", "CHECKSUM_ENGINE", "NAMESPACE",
    "VERIFY_TOKEN",
})


@dataclass(frozen=True)
class SyncSettings:
    origin: str
    exchange: str
    broker_url: str
    broker_transport_options: dict
    batch_size: int
    message_batch: int
    max_attempts: int
    backoff_base: float
    backoff_max: float
    retention_days: int
    ownership_file: Path
    default_owner: str
    aggregates: dict[str, Aggregate]
    queue: str
    subscriptions: list[str]
    subscribers: dict[str, list[str]]
    consumer_max_attempts: int
    relay_trigger: str
    verify_token: str = field(repr=False, default="")
    raw: dict = field(repr=False, default_factory=dict)

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.queue}.dlq"

    def aggregate(self, name: str) -> Aggregate:
        from strangler_sync.errors import UnknownAggregate

        try:
            return self.aggregates[name]
        except KeyError:
            raise UnknownAggregate(
                f"aggregate {name!r} is not declared in STRANGLER_SYNC['AGGREGATES']",
                details={"aggregate": name, "known": sorted(self.aggregates)},
            ) from None


def _aggregates(entries) -> dict[str, Aggregate]:
    """Resolve the AGGREGATES list (dotted paths or Aggregate objects); ImproperlyConfigured names the bad entry."""
    if not isinstance(entries, list | tuple):
        raise ImproperlyConfigured(
            "STRANGLER_SYNC['AGGREGATES'] must be a list of dotted paths to strangler_sync.aggregates.Aggregate "
            f"declarations, not {type(entries).__name__}"
        )
    result: dict[str, Aggregate] = {}
    for entry in entries:
        declared = entry
        if isinstance(entry, str):
            try:
                declared = import_string(entry)
            except ImportError as exc:
                raise ImproperlyConfigured(f"STRANGLER_SYNC['AGGREGATES']: cannot import {entry!r} ({exc})") from None
        if not isinstance(declared, Aggregate):
            raise ImproperlyConfigured(
                f"STRANGLER_SYNC['AGGREGATES']: {entry!r} is a {type(declared).__name__}, not an Aggregate"
            )
        if declared.name in result:
            raise ImproperlyConfigured(f"STRANGLER_SYNC['AGGREGATES']: aggregate {declared.name!r} is listed twice")
        result[declared.name] = declared
    return result


def _build() -> SyncSettings:
    raw = dict(getattr(settings, "STRANGLER_SYNC", {}) or {})
    origin = raw.get("ORIGIN") or getattr(settings, "PROJECT_NAME", "django")
    broker_url = raw.get("BROKER_URL") or getattr(settings, "CELERY_BROKER_URL", None) or "sqlite-queue://"
    transport_options = raw.get("BROKER_TRANSPORT_OPTIONS")
    if transport_options is None:
        transport_options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None)
        if transport_options is None:
            transport_options = env.broker_transport_options(broker_url)
    transport_options = dict(transport_options)
    if broker_url.startswith(("filesystem://", "sqlite-queue://")):
        # kombu polls the folder once a second by default: too slow for a replication lag budget.
        transport_options.setdefault("polling_interval", float(os.environ.get("STRANGLER_SYNC_POLL_INTERVAL", 0.05)))
    ownership_file = raw.get("OWNERSHIP_FILE") or os.environ.get("STRANGLER_OWNERSHIP_FILE") or (
        env.VAR_DIR / "ownership.json"
    )
    namespace = raw.get("NAMESPACE", os.environ.get("STRANGLER_SYNC_NAMESPACE", ""))

    def named(name: str) -> str:
        return f"{namespace}.{name}" if namespace else name

    queue = named(raw.get("QUEUE") or f"sync.{origin}")
    return SyncSettings(
        origin=origin,
        exchange=named(raw.get("EXCHANGE", "strangler.events")),
        broker_url=broker_url,
        broker_transport_options=dict(transport_options),
        batch_size=int(raw.get("BATCH_SIZE", os.environ.get("STRANGLER_SYNC_BATCH_SIZE", 500))),
        message_batch=max(1, int(raw.get("MESSAGE_BATCH", os.environ.get("STRANGLER_SYNC_MESSAGE_BATCH", 100)))),
        max_attempts=int(raw.get("MAX_ATTEMPTS", 8)),
        backoff_base=float(raw.get("BACKOFF_BASE", 1.0)),
        backoff_max=float(raw.get("BACKOFF_MAX", 300.0)),
        retention_days=int(raw.get("RETENTION_DAYS", 7)),
        ownership_file=Path(ownership_file),
        default_owner=raw.get("DEFAULT_OWNER", "monolith"),
        aggregates=_aggregates(raw.get("AGGREGATES", [])),
        queue=queue,
        subscriptions=list(raw.get("SUBSCRIPTIONS", [])),
        subscribers={named(q): list(p) for q, p in (raw.get("SUBSCRIBERS") or {}).items()},
        consumer_max_attempts=int(raw.get("CONSUMER_MAX_ATTEMPTS", 5)),
        relay_trigger=raw.get("RELAY_TRIGGER", "celery"),
        verify_token=str(raw.get("VERIFY_TOKEN") or os.environ.get(VERIFY_TOKEN_ENV, "")),
        raw=raw,
    )


_cached: SyncSettings | None = None


def sync_settings() -> SyncSettings:
    global _cached
    if _cached is None:
        _cached = _build()
    return _cached


def _reload(*, setting, **kwargs):
    global _cached
    if setting in {"STRANGLER_SYNC", "CELERY_BROKER_URL", "CELERY_BROKER_TRANSPORT_OPTIONS", "PROJECT_NAME"}:
        _cached = None


setting_changed.connect(_reload)
