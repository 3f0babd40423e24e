"""``sqlite-queue://``: a brokerless kombu transport with real acknowledgement, in one SQLite file (WAL).

The embedded default broker. kombu's filesystem transport deletes a message when a consumer receives
it, so a consumer killed -9 between receipt and ack loses what it held. Here a message is a row that
stays until it is acked:

- publish: the message is routed through the exchange's bindings (kept in the file, so every process
  sees the same topology and exchange types) and inserted into each bound queue in one transaction,
  committed before ``basic_publish`` returns (the publisher-confirm guarantee: what returned is stored);
- receive: a consumer *leases* the oldest visible row (an UPDATE guarded by the lease columns, so two
  consumers never take the same one); the row stays, invisible to others;
- ack deletes the row; reject/requeue (and closing the channel with messages unacked) clears the lease,
  so the row is visible again; reject without requeue deletes it;
- a consumer that died: its leases are given back as soon as another consumer of the file notices the
  owner is gone (each connection holds an exclusive ``flock`` on ``<file>.leases/<owner>.lock`` while it
  lives; the kernel drops it when the process dies, however it dies), and in any case when the lease
  expires (``visibility_timeout`` seconds, default 120: a hung consumer).

Redelivery is at-least-once: the consumers' inbox drops duplicates by message_id. Prefetch is kombu's
(unacked messages per channel). Transport options: ``database`` (the SQLite file; default
``$STRANGLER_VAR_DIR/broker.sqlite3``), ``visibility_timeout``, ``synchronous`` (SQLite's, default
``NORMAL``: in WAL mode a committed publish survives the process being killed; ``FULL`` also a power
loss, at an fsync per commit), ``polling_interval``. One host only (SQLite locking needs a local disk).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from queue import Empty

from kombu.transport import TRANSPORT_ALIASES, virtual
from kombu.utils.json import dumps, loads

from servicekit import env

SCHEME = "sqlite-queue"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS exchanges (name TEXT PRIMARY KEY, type TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bindings (
    exchange TEXT NOT NULL, routing_key TEXT NOT NULL, pattern TEXT NOT NULL, queue TEXT NOT NULL,
    PRIMARY KEY (exchange, routing_key, pattern, queue));
CREATE TABLE IF NOT EXISTS queues (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, payload TEXT NOT NULL,
    lease_owner TEXT, lease_until REAL, deliveries INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS messages_queue_idx ON messages (queue, id);
"""


def default_database() -> Path:
    return env.VAR_DIR / "broker.sqlite3"


def _connect(path: Path, *, synchronous: str) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    # autocommit (isolation_level=None): each statement commits, transactions are explicit (BEGIN IMMEDIATE)
    db = sqlite3.connect(str(path), timeout=60, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.executescript(_SCHEMA)  # idempotent; executescript commits each statement
    return db


@contextlib.contextmanager
def _write(db: sqlite3.Connection):
    """One write transaction, taking the database's write lock up front (no upgrade deadlock)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class LeaseOwner:
    """This connection's identity on the leases it takes, alive as long as it holds its lock file."""

    def __init__(self, database: Path):
        self.folder = database.with_name(database.name + ".leases")
        self.token = uuid.uuid4().hex
        self._fd: int | None = None

    def acquire(self) -> str:
        if self._fd is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.folder / f"{self.token}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._fd = fd
        return self.token

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.folder / f"{self.token}.lock")
            os.close(self._fd)
            self._fd = None

    def is_dead(self, token: str) -> bool:
        """True when `token`'s process is gone (its lock file is missing or nobody holds its lock)."""
        path = self.folder / f"{token}.lock"
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return True
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            with contextlib.suppress(OSError):
                os.unlink(path)
            return True
        finally:
            os.close(fd)


class QoS(virtual.QoS):
    """kombu's prefetch accounting; ack/reject/restore act on the leased rows instead of copying messages."""

    def ack(self, delivery_tag):
        self.channel.row_ack(delivery_tag)
        super().ack(delivery_tag)

    def reject(self, delivery_tag, requeue=False):
        if requeue:
            self.channel.row_release([delivery_tag])
        else:
            self.channel.row_ack(delivery_tag)
        self._quick_ack(delivery_tag)

    def restore_unacked(self):
        self._flush()
        tags = list(self._delivered)
        self._delivered.clear()
        try:
            self.channel.row_release(tags)
        except Exception as exc:  # the leases expire anyway
            return [(exc, tag) for tag in tags]
        return []


class Channel(virtual.Channel):
    QoS = QoS
    supports_fanout = True
    from_transport_options = (*virtual.Channel.from_transport_options, "database", "visibility_timeout",
                              "synchronous", "reap_interval", "claim_max")
    database = None
    visibility_timeout = 120.0
    synchronous = "NORMAL"
    reap_interval = 1.0  # seconds between looks for leases of dead owners (per channel)
    claim_max = 100  # messages leased per claim at most (and never beyond the free prefetch slots)

    def __init__(self, connection, **kwargs):
        super().__init__(connection, **kwargs)
        self.path = Path(self.database) if self.database else default_database()
        self.db = _connect(self.path, synchronous=self.synchronous)
        self._rows: dict[str, int] = {}  # delivery tag -> message row id (this channel's leases)
        self._claimed: dict[str, list] = {}  # queue -> leased rows not handed to kombu yet
        self._lock = threading.RLock()  # acks may come from another thread; publish routes under it
        self._reaped_at = 0.0

    @property
    def owner(self) -> LeaseOwner:
        return self.connection.lease_owner

    # topology, shared through the file -------------------------------------------------------------

    def exchange_declare(self, exchange=None, type="direct", durable=False, auto_delete=False, arguments=None,
                         nowait=False, passive=False):
        if passive and exchange and exchange not in self.state.exchanges:
            self.typeof(exchange)  # known to the file: known here too
        super().exchange_declare(exchange, type, durable, auto_delete, arguments, nowait, passive)
        if not passive:
            name = exchange or f"amq.{type or 'direct'}"
            with self._lock:
                self.db.execute("INSERT OR IGNORE INTO exchanges (name, type) VALUES (?, ?)",
                                (name, self.state.exchanges[name]["type"]))

    def typeof(self, exchange, default="direct"):
        if exchange and exchange not in self.state.exchanges:
            with self._lock:
                row = self.db.execute("SELECT type FROM exchanges WHERE name = ?", (exchange,)).fetchone()
            if row is not None:
                self.state.exchanges[exchange] = {"type": row[0], "durable": True, "auto_delete": False,
                                                  "arguments": {}, "table": []}
        return super().typeof(exchange, default)

    def _queue_bind(self, exchange, routing_key, pattern, queue):
        with self._lock:
            self.db.execute("INSERT OR IGNORE INTO bindings VALUES (?, ?, ?, ?)",
                            (exchange, routing_key or "", pattern or "", queue))

    def queue_bind(self, queue, exchange=None, routing_key="", arguments=None, **kwargs):
        exchange = exchange or "amq.direct"
        super().queue_bind(queue, exchange, routing_key, arguments, **kwargs)
        # kombu skips a binding this process knows already; the file may not (another connection's
        # declare, or a queue deleted since): writing it again is idempotent
        self._queue_bind(exchange, *self.typeof(exchange).prepare_bind(queue, exchange, routing_key, arguments))

    def queue_unbind(self, queue, exchange=None, routing_key="", arguments=None, **kwargs):
        self.state.binding_delete(queue, exchange, routing_key)
        routing_key, pattern, queue = self.typeof(exchange).prepare_bind(queue, exchange, routing_key, arguments)
        with self._lock:
            self.db.execute("DELETE FROM bindings WHERE exchange = ? AND routing_key = ? AND pattern = ? "
                            "AND queue = ?", (exchange, routing_key or "", pattern or "", queue))

    def get_table(self, exchange):
        with self._lock:
            return [tuple(row) for row in self.db.execute(
                "SELECT routing_key, pattern, queue FROM bindings WHERE exchange = ?", (exchange,))]

    def _new_queue(self, queue, **kwargs):
        with self._lock:
            self.db.execute("INSERT OR IGNORE INTO queues (name) VALUES (?)", (queue,))

    def _has_queue(self, queue, **kwargs):
        with self._lock:
            return self.db.execute("SELECT 1 FROM queues WHERE name = ?", (queue,)).fetchone() is not None

    def _delete(self, queue, *args, **kwargs):
        with self._lock, _write(self.db):
            self.db.execute("DELETE FROM messages WHERE queue = ?", (queue,))
            self.db.execute("DELETE FROM bindings WHERE queue = ?", (queue,))
            self.db.execute("DELETE FROM queues WHERE name = ?", (queue,))

    def queue_delete(self, queue, if_unused=False, if_empty=False, **kwargs):
        if if_empty and self._size(queue):
            return
        super().queue_delete(queue, if_unused=if_unused, if_empty=if_empty, **kwargs)
        self._delete(queue)  # kombu only deletes the bindings this process knows of

    # messages ---------------------------------------------------------------------------------------

    def basic_publish(self, message, exchange, routing_key, **kwargs):
        # every bound queue's copy in one transaction, committed before returning
        with self._lock, _write(self.db):
            return super().basic_publish(message, exchange, routing_key, **kwargs)

    def _put(self, queue, message, **kwargs):
        self.db.execute("INSERT INTO messages (queue, payload) VALUES (?, ?)", (queue, dumps(message)))

    def _put_fanout(self, exchange, message, routing_key, **kwargs):
        for queue in {queue for _key, _pattern, queue in self.get_table(exchange)}:
            self._put(queue, message)

    def _get(self, queue, timeout=None):
        claimed = self._claimed.get(queue)
        if not claimed:
            claimed = self._claim(queue)
        row_id, payload, deliveries = claimed.pop(0)
        payload = loads(payload)
        tag = uuid.uuid4().hex
        payload["properties"]["delivery_tag"] = tag
        if deliveries > 1:
            payload["properties"].setdefault("delivery_info", {})["redelivered"] = True
        self._rows[tag] = row_id
        return payload

    def _claim(self, queue: str) -> list:
        """Lease up to the prefetch window's free slots of the oldest visible messages in one transaction
        (one write per window, not per message); kept in `_claimed` until kombu asks for them."""
        now = time.time()
        limit = max(1, min(self.qos.can_consume_max_estimate() or 1, self.claim_max))
        with self._lock:
            if now - self._reaped_at >= self.reap_interval:
                self._reaped_at = now
                self._reap(queue, now)
            owner = self.owner.acquire()
            if self.db.execute("SELECT 1 FROM messages WHERE queue = ? AND (lease_until IS NULL OR lease_until < ?) "
                               "LIMIT 1", (queue, now)).fetchone() is None:
                raise Empty()  # a read: idle polling never takes the write lock
            with _write(self.db):
                # in one write transaction: nobody else can lease these rows between the SELECT and the UPDATE
                claimed = self.db.execute(
                    "UPDATE messages SET lease_owner = ?, lease_until = ?, deliveries = deliveries + 1 "
                    "WHERE id IN (SELECT id FROM messages WHERE queue = ? AND (lease_until IS NULL OR lease_until < ?) "
                    "ORDER BY id LIMIT ?) RETURNING id, payload, deliveries",
                    (owner, now + self.visibility_timeout, queue, now, limit)).fetchall()
        if not claimed:
            raise Empty()
        claimed.sort()
        self._claimed[queue] = claimed
        return claimed

    def _reap(self, queue: str, now: float) -> None:
        """Give back the leases on `queue` whose owner's process is gone (before they expire)."""
        owners = [r[0] for r in self.db.execute(
            "SELECT DISTINCT lease_owner FROM messages WHERE queue = ? AND lease_until >= ? AND lease_owner != ?",
            (queue, now, self.owner.token))]
        for token in owners:
            if self.owner.is_dead(token):
                self.db.execute("UPDATE messages SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?",
                                (token,))

    def row_ack(self, delivery_tag) -> None:
        row = self._rows.pop(delivery_tag, None)
        if row is not None:
            with self._lock:
                self.db.execute("DELETE FROM messages WHERE id = ?", (row,))

    def row_release(self, delivery_tags) -> None:
        self._leases_release([r for r in (self._rows.pop(tag, None) for tag in delivery_tags) if r is not None])

    def _claimed_release(self, queue: str | None = None) -> None:
        """Give back what was leased but never handed to kombu (closing, or no longer consuming `queue`)."""
        queues = list(self._claimed) if queue is None else [queue]
        self._leases_release([row[0] for name in queues for row in self._claimed.pop(name, [])])

    def _leases_release(self, rows: list[int]) -> None:
        if rows:
            with self._lock, _write(self.db):
                self.db.executemany(
                    "UPDATE messages SET lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?",
                    [(row, self.owner.token) for row in rows])

    def _size(self, queue):  # every message not yet acked, leased or not
        with self._lock:
            return self.db.execute("SELECT count(*) FROM messages WHERE queue = ?", (queue,)).fetchone()[0]

    def _purge(self, queue):
        with self._lock:
            # the ready ones: leased messages stay with their consumer (as on AMQP)
            return self.db.execute("DELETE FROM messages WHERE queue = ? AND (lease_until IS NULL OR lease_until < ?)",
                                   (queue, time.time())).rowcount

    def basic_cancel(self, consumer_tag):
        queue = self._tag_to_queue.get(consumer_tag)
        super().basic_cancel(consumer_tag)
        if queue is not None and queue not in self._active_queues:
            self._claimed_release(queue)

    def close(self):
        if not self.closed and self.connection is not None:
            self._claimed_release()
        super().close()  # gives back the unacked leases (QoS.restore_unacked)
        with contextlib.suppress(sqlite3.Error):
            self.db.close()


class Transport(virtual.Transport):
    Channel = Channel
    driver_type = SCHEME
    driver_name = "sqlite3"
    polling_interval = 0.05
    implements = virtual.Transport.implements.extend(exchange_type=frozenset(["direct", "topic", "fanout"]))

    def __init__(self, client, **kwargs):
        super().__init__(client, **kwargs)
        options = client.transport_options
        self.lease_owner = LeaseOwner(Path(options.get("database") or default_database()))

    def close_connection(self, connection):
        super().close_connection(connection)
        self.lease_owner.release()

    @property
    def default_connection_params(self):
        return {}  # a file, no host (kombu would warn about defaulting to localhost)

    def driver_version(self):
        return sqlite3.sqlite_version


# kombu (and Celery, which reads CELERY_BROKER_URL too) resolve "sqlite-queue://" to this class
TRANSPORT_ALIASES.setdefault(SCHEME, f"{__name__}:Transport")
