"""strangler_sync: the data plane of a strangler-fig migration (one reusable Django app, installed by every project).

How data moves::

    owner's write service ──(same transaction)──> OutboxEvent row
        └─ on_commit ─> relay (Celery task / `sync_relay`) ─ publisher confirms ─> topic exchange "strangler.events"
             routing key "<aggregate_type>.<action>" ─> each subscriber's queue
                 └─> `sync_consume` in the follower: InboxMessage (dedupe) + AppliedVersion (version guard)
                     + the registered handler, all in one transaction; ack after commit.

Public API (what a project uses):

* settings: ``STRANGLER_SYNC = {...}`` in the project's settings (see ``strangler_sync.conf``); ``manage.py
  check`` reports a misconfiguration (``strangler_sync.checks``).
* ``strangler_sync.aggregates.Aggregate``: declare each aggregate (model, key of any type, fields, schema
  versions, snapshot) and list it in ``STRANGLER_SYNC["AGGREGATES"]``; ``AGGREGATE.event("updated")`` names
  its events (the emitting project owns those constants).
* ``strangler_sync.services.event_publish(*, event_type, aggregate_type, aggregate_id, payload)``
  inside the write's ``transaction.atomic()``.
* ``strangler_sync.snapshots.aggregate_payload(*, aggregate_type, instance)``: the canonical payload of a row.
* ``@strangler_sync.handlers.sync_handler(INVOICE.event("updated"), ...)`` in the consuming project's
  ``<app>/sync_handlers.py`` (autodiscovered); handlers receive ``event: SyncEvent``.
* ``strangler_sync.ownership.ownership_require_owner(*, aggregate_type)`` before accepting a write (409
  ``NotOwner``; ``strangler_sync.middleware.NotOwnerMiddleware`` for plain Django views).
* ``path("sync/", include("strangler_sync.urls"))``: checksum endpoints used by ``sync_verify``.
* management commands: ``sync_relay``, ``sync_consume``, ``sync_backfill``, ``sync_verify``, ``sync_ownership``.
"""
