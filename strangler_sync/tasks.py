"""Celery tasks: publish on commit, a periodic sweep (beat) as fallback, and retention cleanup.

Beat schedule a project adds (the monolith does)::

    CELERY_BEAT_SCHEDULE = {
        "strangler-sync-sweep": {"task": "strangler_sync.relay_sweep", "schedule": 5.0},
        "strangler-sync-cleanup": {"task": "strangler_sync.cleanup", "schedule": 3600.0},
    }
"""

from __future__ import annotations

from servicekit.optional import optional_import
from strangler_sync.relay import Relay, relay_gauges_update

shared_task = optional_import("celery", extra="celery", needed_for="strangler_sync.tasks").shared_task


@shared_task(name="strangler_sync.relay_publish_pending", ignore_result=True)
def relay_publish_pending() -> int:
    relay = Relay()
    try:
        return relay.drain()
    finally:
        relay.close()


@shared_task(name="strangler_sync.relay_sweep", ignore_result=True)
def relay_sweep() -> int:
    """Publishes whatever on_commit triggers missed (worker down, broker down at commit time)."""
    published = relay_publish_pending()
    relay_gauges_update()
    return published


@shared_task(name="strangler_sync.cleanup", ignore_result=True)
def cleanup() -> dict:
    from strangler_sync.consumer import inbox_cleanup
    from strangler_sync.services import outbox_cleanup

    return {"outbox_deleted": outbox_cleanup(), "inbox_deleted": inbox_cleanup()}
