"""End to end with real processes: monolith writes + relay -> broker -> catalog service consumer, then verify.

The default-transport test proves cross-process delivery on the embedded default (sqlite-queue://); the
real-services test (PostgreSQL + RabbitMQ) adds the faults: relay and consumer killed -9 mid-batch,
every message redelivered three times shuffled, malformed and unknown messages. After each: nothing
lost, nothing applied twice, verify finds 0 differences.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import psycopg
import pytest
from kombu import Connection, Producer

from strangler_sync.cli import main as cli_main
from tests.strangler_sync.processes import (
    INBOX_STATS,
    OUTBOX_STATS,
    PgDatabases,
    PrivatePostgres,
    PrivateRabbitMQ,
    broker_cleanup,
    kill9,
    two_projects,
    wait_for,
    write,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def verify(monolith, catalog, aggregate: str, *extra: str):
    return monolith.run("sync_verify", "--aggregate", aggregate, "--source", monolith.url, "--follower", catalog.url,
                        "--buckets", "16", *extra, check=False)


@pytest.mark.backend_independent  # SQLite files and a broker of its own: CI's pass 1 runs it
def test_end_to_end_on_the_default_transport(tmp_path):
    monolith, catalog = two_projects(tmp_path, broker_url="sqlite-queue://", databases=None)
    try:
        written = write(monolith, products=30, updates=40)
        catalog.start("sync_consume")
        monolith.start("sync_relay")  # another process: bindings must work across processes
        total = monolith.shell_json(OUTBOX_STATS)
        events = total["pending"] + total["published"]
        assert events == 3 + 30 + 40
        wait_for(lambda: catalog.shell_json(INBOX_STATS)["inbox"] == events, what="every event in the inbox")
        stats = catalog.shell_json(INBOX_STATS)
        assert stats["distinct"] == events and stats["dead"] == 0
        monolith.serve()
        catalog.serve()
        for aggregate in ("category", "product"):
            result = verify(monolith, catalog, aggregate)
            assert result.returncode == 0, result.stdout + result.stderr
            assert " 0 difference(s)" in result.stdout
        assert f"source {written['products']} rows, follower {written['products']} rows" in verify(
            monolith, catalog, "product").stdout
        assert cli_main(["verify", "--aggregate", "product", "--source", monolith.url, "--follower", catalog.url]) == 0

        # Someone writes to the follower behind the data plane's back: verify sees it, --repair fixes it.
        catalog.shell(
            "from extracted.catalog.products.models import Product as P\n"
            "P.objects.filter(id=3).update(price='999.00')\n"
            "P.objects.filter(id=5).delete()\n"
            "x = P.objects.get(id=7); x.pk = 100000; x.sku = 'EXTRA'; x.slug = 'extra'; x.save(force_insert=True)\n"
        )
        result = verify(monolith, catalog, "product")
        assert result.returncode == 1
        assert "missing (1): 5" in result.stdout and "changed (1): 3" in result.stdout
        assert "extra (1): 100000" in result.stdout
        assert cli_main(["verify", "--aggregate", "product", "--source", monolith.url, "--follower", catalog.url]) == 1
        repaired = verify(monolith, catalog, "product", "--repair")
        assert "re-emitted 2 snapshot(s), 1 delete(s)" in repaired.stdout
        wait_for(lambda: verify(monolith, catalog, "product").returncode == 0, timeout=120, what="repair applied")
    finally:
        monolith.stop_all()
        catalog.stop_all()


# Sessions of this database waiting for a lock (the consumer behind the test's table lock).
LOCK_WAITERS = ("SELECT count(*) FROM pg_locks JOIN pg_stat_activity USING (pid) "
                "WHERE NOT granted AND datname = current_database()")


def _count(dsn: str, sql: str) -> int:
    with psycopg.connect(dsn.replace("postgres://", "postgresql://")) as conn:
        return conn.execute(sql).fetchone()[0]


def _queue_depth(url: str, queue: str) -> int:
    with Connection(url) as connection:
        try:
            return connection.default_channel.queue_declare(queue=queue, passive=True).message_count
        except Exception:  # not declared yet
            return 0


def _envelopes(dsn: str) -> list[dict]:
    with psycopg.connect(dsn.replace("postgres://", "postgresql://")) as conn:
        rows = conn.execute(
            "SELECT message_id, event_type, aggregate_type, aggregate_id, version, schema_version, payload, "
            "occurred_at, origin, correlation_id FROM strangler_sync_outboxevent ORDER BY id"
        ).fetchall()
    return [
        {"message_id": str(r[0]), "event_type": r[1], "aggregate_type": r[2], "aggregate_id": r[3], "version": r[4],
         "schema_version": r[5], "payload": r[6], "occurred_at": r[7].isoformat(), "origin": r[8],
         "correlation_id": r[9]}
        for r in rows
    ]


@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_faults_on_postgresql_and_rabbitmq(tmp_path, rabbitmq_url):
    databases = PgDatabases()
    monolith, catalog = two_projects(tmp_path, broker_url=rabbitmq_url, databases=databases)
    namespace = monolith.env["STRANGLER_SYNC_NAMESPACE"]
    queue = f"{namespace}.sync.catalog"
    mono_db, catalog_db = monolith.env["DATABASE_URL"], catalog.env["CATALOG_DATABASE_URL"]
    outbox = "SELECT count(*) FROM strangler_sync_outboxevent"
    published = "SELECT count(*) FROM strangler_sync_outboxevent WHERE status = 'published'"
    inbox = "SELECT count(*) FROM strangler_sync_inboxmessage"
    try:
        write(monolith, categories=5, products=120, updates=180)
        events = _count(mono_db, outbox)
        assert events == 305

        # 1. relay killed -9 mid-batch: its batch rolls back and is published again by the next relay.
        relay = monolith.start("sync_relay", env={"STRANGLER_SYNC_BATCH_SIZE": "150"})
        wait_for(lambda: _queue_depth(rabbitmq_url, queue) > 0, interval=0.01, what="the first publishes")
        kill9(relay)
        assert _count(mono_db, published) < events  # the killed batch was rolled back: still pending
        assert _queue_depth(rabbitmq_url, queue) > 0  # ...although the broker already confirmed part of it
        monolith.start("sync_relay", env={"STRANGLER_SYNC_BATCH_SIZE": "100"})
        wait_for(lambda: _count(mono_db, published) == events, what="everything published")

        # 2. consumer killed -9 mid-apply: RabbitMQ redelivers its unacked messages. The product table is locked
        # first, so the consumer is surely mid-apply (blocked on its first product) when it is killed: on a busy
        # box it could otherwise apply all 305 events between two looks of this test.
        with psycopg.connect(catalog_db.replace("postgres://", "postgresql://")) as blocker:
            blocker.execute("LOCK TABLE catalog_service_product IN EXCLUSIVE MODE")
            consumer = catalog.start("sync_consume", "--prefetch", "20")
            wait_for(lambda: _count(catalog_db, LOCK_WAITERS) > 0, what="the consumer blocked on its first product")
            kill9(consumer)
            blocker.rollback()
        assert _count(catalog_db, inbox) < events
        catalog.start("sync_consume")
        wait_for(lambda: _count(catalog_db, inbox) == events and _queue_depth(rabbitmq_url, queue) == 0,
                 what="every event applied once")

        # 3. every message three more times, shuffled, plus malformed and unknown-type messages.
        deliveries = _envelopes(mono_db) * 3
        random.Random(7).shuffle(deliveries)
        unknown = dict(deliveries[0], message_id="00000000-0000-0000-0000-000000000001", event_type="product.exploded")
        with Connection(rabbitmq_url, transport_options={"confirm_publish": True}) as connection:
            producer = Producer(connection.default_channel)
            for body in deliveries + [unknown]:
                producer.publish(body, exchange="", routing_key=queue, serializer="json")
            producer.publish(b"\xff not json", exchange="", routing_key=queue, content_type="application/json",
                             content_encoding="binary")
        dead = "SELECT count(*) FROM strangler_sync_deadletter"
        observed = {}

        def settled() -> bool:
            observed.update(dead_letters=_count(catalog_db, dead), queue_depth=_queue_depth(rabbitmq_url, queue),
                            inbox=_count(catalog_db, inbox))
            return observed["dead_letters"] == 2 and observed["queue_depth"] == 0

        wait_for(settled, timeout=240, what=lambda: f"redeliveries consumed, bad messages dead-lettered {observed}")
        stats = catalog.shell_json(INBOX_STATS)
        assert stats["inbox"] == stats["distinct"] == events  # nothing lost, nothing recorded twice
        outbox_ids = {e["message_id"] for e in _envelopes(mono_db)}
        with psycopg.connect(catalog_db.replace("postgres://", "postgresql://")) as conn:
            inbox_ids = {str(r[0]) for r in conn.execute("SELECT message_id FROM strangler_sync_inboxmessage")}
            applied_versions = dict(conn.execute(
                "SELECT aggregate_id, version FROM strangler_sync_appliedversion WHERE aggregate_type = 'product'"
            ).fetchall())
        assert inbox_ids == outbox_ids
        with psycopg.connect(mono_db.replace("postgres://", "postgresql://")) as conn:
            issued = dict(conn.execute(
                "SELECT aggregate_id, version FROM strangler_sync_aggregateversion WHERE aggregate_type = 'product'"
            ).fetchall())
        assert applied_versions == issued  # every product ends on its newest version

        monolith.serve()
        catalog.serve()
        for aggregate in ("category", "product"):
            result = verify(monolith, catalog, aggregate)
            assert result.returncode == 0, result.stdout + result.stderr
    finally:
        monolith.stop_all()
        catalog.stop_all()
        databases.drop_all()
        broker_cleanup(rabbitmq_url, namespace)


@pytest.mark.backend_independent  # a private PostgreSQL server and a file broker of its own: pass 1 runs it
def test_database_restart_under_a_running_relay_and_consumer(tmp_path):
    """A private PostgreSQL (own port) restarts while relay and consumer run: both recover, nothing is lost."""
    server = PrivatePostgres(tmp_path / "pg")
    if not server.available:
        pytest.skip("no PostgreSQL server binaries (initdb) on this machine")
    server.start()
    try:
        urls = (server.createdb("mono"), server.createdb("catalog"))
        monolith, catalog = two_projects(tmp_path, broker_url="filesystem://", databases=None, urls=urls)
        outbox_ids = "SELECT message_id FROM strangler_sync_outboxevent"
        inbox_ids = "SELECT message_id FROM strangler_sync_inboxmessage"

        def ids(dsn: str, sql: str) -> set[str]:
            with psycopg.connect(dsn.replace("postgres://", "postgresql://")) as conn:
                return {str(r[0]) for r in conn.execute(sql)}

        try:
            relay = monolith.start("sync_relay")
            consumer = catalog.start("sync_consume")
            write(monolith, seed=1, categories=2, products=20, updates=20)
            wait_for(lambda: ids(urls[1], inbox_ids) == ids(urls[0], outbox_ids), what="first batch applied")

            server.restart()  # both processes hold connections that are now dead
            write(monolith, seed=2, categories=2, products=20, updates=20)
            wait_for(lambda: ids(urls[1], inbox_ids) == ids(urls[0], outbox_ids), what="second batch applied")
            assert len(ids(urls[0], outbox_ids)) == 2 * (2 + 20 + 20)
            assert relay.poll() is None and consumer.poll() is None  # they recovered instead of exiting
            assert "database unavailable" in Path(relay.log_path).read_text() + Path(consumer.log_path).read_text()
            monolith.serve()
            catalog.serve()
            for aggregate in ("category", "product"):
                result = verify(monolith, catalog, aggregate)
                assert result.returncode == 0, result.stdout + result.stderr
        finally:
            monolith.stop_all()
            catalog.stop_all()
    finally:
        server.stop()


def _sqlite_ids(path: Path, sql: str) -> set[str]:
    import sqlite3

    with sqlite3.connect(path) as conn:
        return {str(r[0]).replace("-", "") for r in conn.execute(sql)}


@pytest.mark.backend_independent  # SQLite files and a private RabbitMQ node of its own: pass 1 runs it
def test_broker_stopped_for_30_seconds(tmp_path):
    """A private RabbitMQ node (own ports) stops for 30 s under a running relay and consumer; writes go on."""
    broker = PrivateRabbitMQ(tmp_path / "rabbit")
    if not broker.available:
        pytest.skip("rabbitmq-server is not installed here (or not startable as root)")
    broker.start()
    try:
        monolith, catalog = two_projects(tmp_path, broker_url=broker.url, databases=None)
        var = Path(monolith.env["STRANGLER_VAR_DIR"])
        outbox_ids = "SELECT message_id FROM strangler_sync_outboxevent"
        inbox_ids = "SELECT message_id FROM strangler_sync_inboxmessage"

        def synced() -> bool:
            return _sqlite_ids(var / "catalog.sqlite3", inbox_ids) == _sqlite_ids(var / "mono.sqlite3", outbox_ids)

        try:
            relay = monolith.start("sync_relay")
            consumer = catalog.start("sync_consume")
            write(monolith, seed=1, categories=2, products=15, updates=15)
            wait_for(synced, what="first batch applied")

            broker.stop_app()
            stopped = time.monotonic()
            write(monolith, seed=2, categories=2, products=15, updates=15)  # the outbox keeps the events
            pending = monolith.shell_json(OUTBOX_STATS)
            assert pending["pending"] == 2 + 15 + 15 and pending["dead"] == 0
            time.sleep(max(0.0, 30 - (time.monotonic() - stopped)))
            assert relay.poll() is None and consumer.poll() is None
            broker.start_app()

            wait_for(synced, what="everything applied after the outage")
            stats = monolith.shell_json(OUTBOX_STATS)
            assert (stats["pending"], stats["dead"], stats["published"]) == (0, 0, 2 * (2 + 15 + 15))
            assert catalog.shell_json(INBOX_STATS)["dead"] == 0
            assert "broker unavailable" in Path(relay.log_path).read_text()
        finally:
            monolith.stop_all()
            catalog.stop_all()
    finally:
        broker.stop()
