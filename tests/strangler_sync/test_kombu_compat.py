"""strangler_sync's filesystem broker on the kombu releases pyproject.toml allows (5.5.4 and later).

kombu 5.5.x has no ``filesystem.Channel._exchange_file`` (5.6 added it); the channel once called it and every
relay on kombu 5.5 failed. It now locates the binding table itself, and whatever else of kombu's filesystem
transport it builds on is checked when a connection is made, failing with the names of what is missing.
"""

from __future__ import annotations

import types

import pytest
from kombu import Connection, Producer, Queue, binding
from kombu.transport import filesystem

from strangler_sync.broker import (
    FILESYSTEM_PRIVATE_API,
    AtomicFilesystemChannel,
    AtomicFilesystemTransport,
    BrokerIncompatible,
    filesystem_api_check,
    filesystem_api_missing,
    sync_exchange,
)
from tests.strangler_sync.conftest import filesystem_options


class Kombu55Channel(AtomicFilesystemChannel):
    """The channel as on kombu 5.5.4, whose filesystem Channel has no ``_exchange_file``."""

    def __getattribute__(self, name):
        if name == "_exchange_file":
            raise AttributeError(f"'Channel' object has no attribute {name!r}")
        return super().__getattribute__(name)


class Kombu55Transport(AtomicFilesystemTransport):
    Channel = Kombu55Channel


def test_binding_publishing_and_consuming_need_no_exchange_file_method(tmp_path):
    exchange = sync_exchange()
    queue = Queue("compat.sync.catalog", exchange=exchange, durable=True,
                  bindings=[binding(exchange, routing_key="product.*")])
    options = filesystem_options(tmp_path / "broker")
    with Connection("filesystem://", transport=Kombu55Transport, transport_options=options) as connection:
        channel = connection.channel()
        exchange(channel).declare()
        queue(channel).declare()
        Producer(channel, exchange=exchange, serializer="json").publish({"n": 1}, routing_key="product.updated")
        assert channel.get_table(exchange.name)  # the binding table, read back under its lock
    received = []
    with Connection("filesystem://", transport=Kombu55Transport, transport_options=options) as connection:
        with connection.Consumer(queue, callbacks=[lambda body, message: (received.append(body), message.ack())],
                                 accept=["json"]):
            connection.drain_events(timeout=10)
    assert received == [{"n": 1}]


def test_the_table_file_stays_inside_the_control_folder(tmp_path):
    options = filesystem_options(tmp_path / "broker")
    with Connection("filesystem://", transport=AtomicFilesystemTransport, transport_options=options) as connection:
        channel = connection.channel()
        assert channel.exchange_table_file("strangler.events").parent == tmp_path / "broker" / "control"
        for bad in ("", "..", "../escape", "a/b"):
            with pytest.raises(ValueError, match="invalid exchange name"):
                channel.exchange_table_file(bad)


def test_the_installed_kombu_has_everything_the_channel_uses():
    assert filesystem_api_missing() == []
    filesystem_api_check()


def test_a_kombu_without_what_the_channel_uses_is_named_in_the_error(monkeypatch):
    # a kombu release whose filesystem module lost its lock helpers and whose Channel lost _queue_bind
    old_module = types.SimpleNamespace(**{name: getattr(filesystem, name) for name in
                                          FILESYSTEM_PRIVATE_API["kombu.transport.filesystem"] if name != "lock"})
    old_channel = type("Channel", (), {name: None for name in FILESYSTEM_PRIVATE_API[
        "kombu.transport.filesystem.Channel"] if name != "_queue_bind"})
    old_module.Channel = old_channel
    assert filesystem_api_missing(module=old_module) == [
        "kombu.transport.filesystem.lock", "kombu.transport.filesystem.Channel._queue_bind"]
    monkeypatch.setattr("strangler_sync.broker.filesystem", old_module)
    with pytest.raises(BrokerIncompatible, match=r"lacks kombu\.transport\.filesystem\.lock, .*_queue_bind"):
        filesystem_api_check()
