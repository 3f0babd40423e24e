"""Broker topology and connections (kombu): one durable topic exchange, one durable queue per subscriber.

Why the relay declares the subscribers' queues and bindings itself (``SUBSCRIBERS``): a topic exchange
drops messages no queue is bound to yet, so an event published before the follower's consumer first
started would be lost. kombu's virtual transports add a second trap: the exchange *type* lives in the
declaring process's memory (``Channel.state.exchanges``), so a publisher that never declared the exchange
routes with the default ``direct`` type, matching "product.updated" literally against the "product.*"
binding and delivering nothing. (The filesystem transport keeps the binding *table* in
``control_folder/<exchange>.exchange``, shared by all processes; the type is not.) Declaring exchange,
queues and bindings from config in the relay before its first publish fixes both, on every transport.
"""

from __future__ import annotations

from kombu import Connection, Exchange, Queue, binding

from strangler_sync.conf import sync_settings

ATTEMPTS_HEADER = "x-sync-attempts"
ERROR_HEADER = "x-sync-error"


def broker_connection(*, url: str | None = None) -> Connection:
    config = sync_settings()
    return Connection(url or config.broker_url, transport_options=dict(config.broker_transport_options))


def sync_exchange() -> Exchange:
    return Exchange(sync_settings().exchange, type="topic", durable=True)


def subscriber_queue(*, name: str, patterns: list[str]) -> Queue:
    exchange = sync_exchange()
    return Queue(name, exchange=exchange, bindings=[binding(exchange, routing_key=p) for p in patterns], durable=True)


def dead_letter_queue(*, name: str) -> Queue:
    """<queue>.dlq: bound to nothing, published to directly via the default exchange."""
    return Queue(name, durable=True)


def consumer_queue() -> Queue:
    config = sync_settings()
    return subscriber_queue(name=config.queue, patterns=config.subscriptions)


def topology_declare(*, channel, include_own_queue: bool = False) -> None:
    """Declare the exchange and every configured subscriber queue with its bindings (idempotent)."""
    config = sync_settings()
    sync_exchange()(channel).declare()
    queues = dict(config.subscribers)
    if include_own_queue and config.subscriptions:
        queues.setdefault(config.queue, config.subscriptions)
    for name, patterns in queues.items():
        subscriber_queue(name=name, patterns=patterns)(channel).declare()
    if include_own_queue:
        dead_letter_queue(name=config.dead_letter_queue)(channel).declare()


def routing_key_for(*, aggregate_type: str, event_type: str) -> str:
    return f"{aggregate_type}.{event_type.rsplit('.', 1)[-1]}"
