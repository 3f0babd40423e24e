"""Event type names are ``<aggregate>.<action>``, derived from each project's declarations
(``strangler_sync.aggregates.Aggregate.event``); the project that emits an event owns its constant.

Events carry the aggregate's full state after the change (not a delta), so a follower can apply the
newest version it sees and drop older ones (see ``strangler_sync.consumer``).
"""

from strangler_sync.aggregates import DELETED, SNAPSHOT

SNAPSHOT_ACTION = SNAPSHOT


def snapshot_event_type(aggregate_type: str) -> str:
    return f"{aggregate_type}.{SNAPSHOT_ACTION}"


def is_delete(event_type: str) -> bool:
    return event_type.endswith(f".{DELETED}")
