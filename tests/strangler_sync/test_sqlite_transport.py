"""The embedded default broker (``sqlite-queue://``): a message leaves only when acked, whoever dies holding it.

Each test uses its own SQLite file. Other processes are real (``python -c``), killed with SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from kombu import Connection, Exchange, Producer, Queue, binding

from strangler_sync import sqlite_transport
from strangler_sync.broker import broker_connection
from tests.strangler_sync.processes import REPO, wait_for

EXCHANGE = Exchange("t.events", type="topic", durable=True)


def _queue(name: str, *patterns: str) -> Queue:
    return Queue(name, exchange=EXCHANGE, bindings=[binding(EXCHANGE, routing_key=p) for p in patterns], durable=True)


def _connection(path, **options) -> Connection:
    return Connection("sqlite-queue://", transport_options={"database": str(path), "polling_interval": 0.01,
                                                             **options})


def _publish(path, bodies, routing_key="product.updated") -> None:
    with _connection(path) as connection:
        # no declare in this connection: the exchange's type and bindings come from the file
        producer = Producer(connection.channel(), exchange=EXCHANGE, serializer="json", auto_declare=False)
        for body in bodies:
            producer.publish(body, routing_key=routing_key)


def _consume(path, queue: Queue, *, ack=True, timeout=0.3, **options) -> list:
    received = []

    def on_message(body, message):
        received.append(body)
        if ack:
            message.ack()

    with _connection(path, **options) as connection, connection.Consumer(queue, callbacks=[on_message]):
        while True:
            try:
                connection.drain_events(timeout=timeout)
            except TimeoutError:
                return received


def _declare(path, *queues: Queue) -> None:
    with _connection(path) as connection:
        channel = connection.channel()
        for queue in queues:
            queue(channel).declare()


def test_the_url_selects_the_transport_and_kombu_knows_the_scheme(tmp_path):
    assert broker_connection(url="sqlite-queue://", transport_options={"database": str(tmp_path / "b")}) \
        .transport_cls is sqlite_transport.Transport
    assert type(_connection(tmp_path / "b").transport) is sqlite_transport.Transport  # what Celery resolves


def test_topic_routing_to_several_queues_across_connections(tmp_path):
    db = tmp_path / "broker.sqlite3"
    catalog, everything = _queue("q.catalog", "product.*"), _queue("q.all", "product.*", "order.*")
    _declare(db, catalog, everything)
    _publish(db, [{"n": n} for n in range(5)])
    _publish(db, [{"order": 1}], routing_key="order.created")
    assert _consume(db, catalog) == [{"n": n} for n in range(5)]
    assert _consume(db, everything) == [{"n": n} for n in range(5)] + [{"order": 1}]
    assert _consume(db, catalog) == []  # acked: gone


def test_unacked_requeued_and_rejected_messages(tmp_path):
    db = tmp_path / "broker.sqlite3"
    queue = _queue("q", "product.*")
    _declare(db, queue)
    _publish(db, [{"n": n} for n in range(4)])
    seen = []

    def on_message(body, message):
        seen.append(body["n"])
        if body["n"] == 0:
            message.ack()
        elif body["n"] == 1 and seen.count(1) == 1:
            message.requeue()  # back at once, in its place
        elif body["n"] == 2:
            message.reject()  # dropped
        # 3: never acked; closing the connection gives it back

    with _connection(db) as connection, connection.Consumer(queue, callbacks=[on_message]):
        for _ in range(5):
            connection.drain_events(timeout=2)
    assert seen == [0, 1, 1, 2, 3]
    assert _consume(db, queue) == [{"n": 1}, {"n": 3}]  # 1 was delivered again above but not acked


def test_prefetch_bounds_the_unacked_messages_a_channel_holds(tmp_path):
    db = tmp_path / "broker.sqlite3"
    queue = _queue("q", "product.*")
    _declare(db, queue)
    _publish(db, [{"n": n} for n in range(10)])
    held = []
    with _connection(db) as connection, connection.Consumer(queue, callbacks=[lambda b, m: held.append(m)],
                                                            prefetch_count=3):
        with pytest.raises(TimeoutError):
            for _ in range(10):
                connection.drain_events(timeout=0.3)
        assert len(held) == 3
        held[0].ack()
        connection.drain_events(timeout=2)
        assert len(held) == 4


CONSUMER = """
import sys, time
from kombu import Connection, Exchange, Queue, binding
import strangler_sync.sqlite_transport  # registers sqlite-queue://
ex = Exchange("t.events", type="topic", durable=True)
queue = Queue("q", exchange=ex, bindings=[binding(ex, routing_key="product.*")], durable=True)
held = []
with Connection("sqlite-queue://", transport_options={{"database": {db!r}, "polling_interval": 0.01}}) as c:
    with c.Consumer(queue, callbacks=[lambda b, m: held.append(m)], prefetch_count={prefetch}):
        while len(held) < {prefetch}:
            c.drain_events(timeout=30)
        print(len(held), flush=True)
        time.sleep(600)  # holds them unacked until killed
"""


def _holder(db, prefetch: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", CONSUMER.format(db=str(db), prefetch=prefetch)], cwd=REPO, stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == str(prefetch)  # it holds them
    return process


def test_messages_held_by_a_consumer_killed_9_are_redelivered(tmp_path):
    db = tmp_path / "broker.sqlite3"
    queue = _queue("q", "product.*")
    _declare(db, queue)
    _publish(db, [{"n": n} for n in range(8)])
    holder = _holder(db, prefetch=5)
    try:
        # while it lives, its leases hold: only the 3 it did not take are visible
        assert _consume(db, queue, ack=False) == [{"n": n} for n in range(5, 8)]
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
        # the lease has 10 minutes left: the owner's dropped lock, not the expiry, gives them back
        received = wait_for(lambda: _consume(db, queue, visibility_timeout=600), timeout=60, what="redelivery")
        assert sorted(b["n"] for b in received) == list(range(8))
        assert _consume(db, queue) == []
    finally:
        holder.kill()
        holder.wait()


def test_a_lease_expires_when_its_live_holder_never_acks(tmp_path):
    db = tmp_path / "broker.sqlite3"
    queue = _queue("q", "product.*")
    _declare(db, queue)
    _publish(db, [{"n": 1}])
    with _connection(db, visibility_timeout=0.5) as hung, hung.Consumer(queue, callbacks=[lambda b, m: None]):
        hung.drain_events(timeout=2)  # received, never acked, connection still open
        assert _consume(db, queue, ack=False) == []
        time.sleep(0.6)  # past the lease the hung connection took (timestamps, not a race)
        assert _consume(db, queue) == [{"n": 1}]


PARALLEL_CONSUMER = """
import json, sys
from kombu import Connection, Exchange, Queue, binding
import strangler_sync.sqlite_transport  # registers sqlite-queue://
ex = Exchange("t.events", type="topic", durable=True)
queue = Queue("q", exchange=ex, bindings=[binding(ex, routing_key="product.*")], durable=True)
got = []
with Connection("sqlite-queue://", transport_options={{"database": {db!r}, "polling_interval": 0.01}}) as c:
    with c.Consumer(queue, callbacks=[lambda b, m: (got.append(b["n"]), m.ack())], prefetch_count=10):
        while True:
            try:
                c.drain_events(timeout=3)
            except TimeoutError:
                break
print(json.dumps(got))
"""


def test_parallel_consumers_never_share_a_message(tmp_path):
    db = tmp_path / "broker.sqlite3"
    queue = _queue("q", "product.*")
    _declare(db, queue)
    consumers = [subprocess.Popen([sys.executable, "-c", PARALLEL_CONSUMER.format(db=str(db))], cwd=REPO,
                                  stdout=subprocess.PIPE, text=True) for _ in range(3)]
    _publish(db, [{"n": n} for n in range(600)])
    results = [json.loads(c.communicate(timeout=120)[0]) for c in consumers]
    everything = [n for got in results for n in got]
    assert sorted(everything) == list(range(600))  # each exactly once


def test_purge_removes_the_ready_messages_and_leaves_the_leased_ones(tmp_path):
    db = tmp_path / "broker.sqlite3"
    queue = _queue("q", "product.*")
    _declare(db, queue)
    _publish(db, [{"n": n} for n in range(3)])
    with _connection(db) as holder, holder.Consumer(queue, callbacks=[lambda b, m: None], prefetch_count=1):
        holder.drain_events(timeout=2)  # holds n=0
        with _connection(db) as other:
            assert other.channel().queue_purge("q") == 2
    assert _consume(db, queue) == [{"n": 0}]  # given back when the holder closed
