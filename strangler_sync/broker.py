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

import contextlib
import errno
import os
import struct
import time
import uuid

import amqp.exceptions
import kombu
import kombu.exceptions
from amqp.exceptions import UnexpectedFrame
from amqp.transport import TCPTransport
from kombu import Connection, Exchange, Queue, binding
from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

from strangler_sync import sqlite_transport
from strangler_sync.conf import sync_settings

ATTEMPTS_HEADER = "x-sync-attempts"
ERROR_HEADER = "x-sync-error"


# What AtomicFilesystemChannel takes from kombu's filesystem transport beyond its public Channel API. kombu
# changes these between minor versions (5.6 added ``Channel._exchange_file``, which 5.5.4 lacks), so they are
# checked once, when the transport is first used, and a missing one is named instead of failing mid-publish.
FILESYSTEM_PRIVATE_API = {
    "kombu.transport.filesystem": ("lock", "unlock", "LOCK_EX", "LOCK_SH", "exchange_queue_t"),
    "kombu.transport.filesystem.Channel": ("_put", "_queue_bind", "get_table", "typeof", "data_folder_out",
                                           "control_folder"),
}


class BrokerIncompatible(RuntimeError):
    """The installed kombu lacks something strangler_sync's filesystem transport relies on (not an outage)."""


def filesystem_api_missing(*, module=None) -> list[str]:
    """The names of FILESYSTEM_PRIVATE_API that `module` (default: kombu's filesystem transport) lacks."""
    module = module or filesystem
    channel_class = getattr(module, "Channel", object)
    owners = {"kombu.transport.filesystem": module, "kombu.transport.filesystem.Channel": channel_class}
    return [f"{owner}.{name}" for owner, names in FILESYSTEM_PRIVATE_API.items() for name in names
            if not hasattr(owners[owner], name)]


def filesystem_api_check() -> None:
    """Raise BrokerIncompatible naming every missing piece of kombu's filesystem transport we build on."""
    missing = filesystem_api_missing()
    if missing:
        raise BrokerIncompatible(
            f"kombu {kombu.__version__} lacks {', '.join(missing)}, which strangler_sync's filesystem broker "
            f"uses; install a kombu release this version of strangler-fig supports (5.5.4 to 5.7)"
        )


class AtomicFilesystemChannel(filesystem.Channel):
    """kombu's filesystem channel, except that a message file only appears once it is complete.

    kombu creates the final file and then writes it, so a consumer polling the folder can move and read
    it in between: it reads nothing, dies on the empty JSON, and the message is gone. Writing under a name
    consumers skip (it does not end in ``.<queue>.msg``) and renaming it into place (atomic) closes that.
    """

    def _put(self, queue, payload, **kwargs):
        final = os.path.join(self.data_folder_out, f"{int(round(time.monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg")
        partial = os.path.join(self.data_folder_out, f".{uuid.uuid4().hex}.partial")
        try:
            with open(partial, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


    def exchange_table_file(self, exchange: str):
        """``control_folder/<exchange>.exchange``, where every kombu 5.x keeps the binding table (computed here:
        kombu 5.5 has no method for it); the name must not leave the control folder."""
        folder = self.control_folder
        file = folder / f"{exchange}.exchange"
        if not exchange or exchange in {".", ".."} or os.sep in exchange or file.parent != folder:
            raise ValueError(f"invalid exchange name for the filesystem broker: {exchange!r}")
        return file

    def _queue_bind(self, exchange, routing_key, pattern, queue):
        """kombu's, without its race on the binding table (``control_folder/<exchange>.exchange``).

        kombu creates a missing table with ``open("wb")`` *before* locking it, so two processes declaring
        at once (relays starting together) truncate each other's bindings, and whatever is published
        meanwhile is routed to no queue and lost. Here the file is created without truncation, then
        locked, read and rewritten under the lock.
        """
        file = self.exchange_table_file(exchange)
        self.control_folder.mkdir(exist_ok=True)
        entry = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        try:
            handle = open(os.open(file, os.O_RDWR | os.O_CREAT, 0o644), "rb+", buffering=0)  # noqa: SIM115
        except OSError as exc:
            raise ChannelError(f"Cannot open {file}") from exc
        with handle:
            filesystem.lock(handle, filesystem.LOCK_EX)
            try:
                raw = handle.read()
                queues = [filesystem.exchange_queue_t(*q) for q in loads(bytes_to_str(raw))] if raw.strip() else []
                if entry not in queues:
                    queues.insert(0, entry)
                    handle.seek(0)
                    handle.truncate()
                    handle.write(str_to_bytes(dumps(queues)))
            finally:
                filesystem.unlock(handle)

    def queue_bind(self, queue, exchange=None, routing_key="", arguments=None, **kwargs):
        super().queue_bind(queue, exchange, routing_key, arguments, **kwargs)
        # kombu returns early for a binding already in this process's (shared) memory, even when the thread
        # that put it there has not written it to the table file yet: publishing then routes to no queue.
        # Writing it here too is idempotent.
        exchange = exchange or "amq.direct"
        self._queue_bind(exchange, *self.typeof(exchange).prepare_bind(queue, exchange, routing_key, arguments))

    def get_table(self, exchange):
        # a table another process has just created is empty until its writer, holding the lock, fills it
        file = self.exchange_table_file(exchange)
        try:
            with file.open("rb") as handle:
                filesystem.lock(handle, filesystem.LOCK_SH)
                try:
                    raw = handle.read()
                finally:
                    filesystem.unlock(handle)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ChannelError(f"Cannot open {file}") from exc
        return [filesystem.exchange_queue_t(*q) for q in loads(bytes_to_str(raw))] if raw.strip() else []


class AtomicFilesystemTransport(filesystem.Transport):
    Channel = AtomicFilesystemChannel

    @property
    def default_connection_params(self):
        return {}  # folders, no host (kombu would warn "No hostname was supplied" on every connection)


# Celery resolves CELERY_BROKER_URL itself: "filesystem://" names this class for it too, so the relay trigger's
# task messages get the same binding-table fixes and no hostname warning. (kombu's own class stays importable.)
TRANSPORT_ALIASES["filesystem"] = f"{__name__}:AtomicFilesystemTransport"


def broker_connection(*, url: str | None = None, transport_options: dict | None = None) -> Connection:
    config = sync_settings()
    options = config.broker_transport_options if transport_options is None else transport_options
    url = url or config.broker_url
    transport = None
    if url.startswith(f"{sqlite_transport.SCHEME}://"):
        transport = sqlite_transport.Transport
    elif url.startswith("filesystem://"):
        filesystem_api_check()
        transport = AtomicFilesystemTransport
    return Connection(url, transport=transport, transport_options=dict(options))


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


class BatchConfirms:
    """AMQP publisher confirms for a whole batch: publish every message, then wait for the broker's acks.

    kombu's ``confirm_publish`` waits for each message's ack before sending the next one (a round
    trip per event); here the channel is put in confirm mode once, deliveries are numbered 1, 2, ...
    as the broker numbers them, and ``wait`` blocks until every one is acked or nacked (and says which
    were nacked: those rows are retried alone).
    """

    def __init__(self, channel):
        self.channel = channel
        channel.confirm_select()
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        self.published = 0
        self.acked_upto = 0
        self._acked: set[int] = set()
        self.nacked: set[int] = set()

    def _on_ack(self, delivery_tag, multiple):
        if multiple:
            self.acked_upto = max(self.acked_upto, delivery_tag)
        else:
            self._acked.add(delivery_tag)
        while self.acked_upto + 1 in self._acked:
            self.acked_upto += 1
            self._acked.discard(self.acked_upto)

    def _on_nack(self, delivery_tag, multiple):
        if multiple:
            self.nacked.update(t for t in range(self.acked_upto + 1, delivery_tag + 1) if t not in self._acked)
        else:
            self.nacked.add(delivery_tag)
        self._on_ack(delivery_tag, multiple)

    @contextlib.contextmanager
    def frames_buffered(self):
        """Send every frame published inside the block with one socket write when the block ends.

        py-amqp writes each message with its own ``sendall``; on loopback every such write also runs the
        broker side's receive path and wakeup, which cost more than building the message. Buffering a
        batch (it is confirmed as a whole anyway) sends it in one go. If the block raises, nothing is
        sent: the caller treats the batch as unpublished and drops the connection.
        """
        transport = getattr(self.channel.connection, "transport", None)
        send = getattr(transport, "_write", None)
        if send is None:  # not py-amqp's socket transport: publish frame by frame
            yield
            return
        chunks: list[bytes] = []
        transport._write = lambda data: chunks.append(bytes(data))  # the frame buffer is reused: copy
        try:
            yield
        finally:
            transport._write = send
        if chunks:
            send(b"".join(chunks))

    def wait(self, *, timeout: float) -> set[int]:
        """Block until every published delivery is acked or nacked; returns (and forgets) the nacked tags."""
        deadline = time.monotonic() + timeout
        target = self.published
        while self.acked_upto < target:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"broker confirmed {self.acked_upto} of {target} messages in {timeout}s")
            self.channel.connection.drain_events(timeout=remaining)
        nacked, self.nacked = set(self.nacked), set()
        return nacked


class BrokerUnavailable(RuntimeError):
    """The broker could not be reached or dropped the connection: nothing of the batch counts as confirmed."""


# Errors that mean "the broker is not there right now" (refused or lost connection, a timeout, the filesystem
# transport's I/O): retried with backoff. Anything else (AttributeError, ImportError of a transport library,
# BrokerIncompatible, a login or a queue declaration the broker refuses) is a bug or a misconfiguration that
# retrying cannot fix: relays and consumers stop on it with the reason.
OUTAGE_ERRORS = (
    OSError,  # ConnectionRefusedError, ConnectionResetError, socket timeouts, TimeoutError
    amqp.exceptions.ConnectionError,  # (= kombu's) connection-level: ConnectionForced (broker restart), ...
    amqp.exceptions.ChannelError,  # (= kombu's) its base class wraps the virtual transports' I/O errors
    kombu.exceptions.OperationalError,
)


class BrokerRefused(RuntimeError):
    """The broker is there but refuses what was asked (a login, a queue declared with other arguments)."""


def broker_outage(exc: BaseException) -> bool:
    """Whether `exc` is an outage of the broker (retry later) rather than a bug or misconfiguration (stop)."""
    if isinstance(exc, amqp.exceptions.IrrecoverableChannelError):  # 403 access refused, 404, 406 precondition
        return False
    return isinstance(exc, OUTAGE_ERRORS)


class BufferedFrameReader:
    """py-amqp's ``read_frame`` with one ``recv`` per 64 KiB instead of three per frame.

    py-amqp reads each frame with exact-size ``recv`` calls (header, payload, end octet): a consumer
    receiving a message (three frames) makes nine system calls, and a relay reading its confirms one
    per ack. This reader keeps what one large ``recv`` returned and cuts frames out of it. A frame is
    taken from the buffer only once it is complete, so a timeout (``drain_events(timeout=...)``) mid
    frame loses nothing: the bytes stay for the next call. Only installed on plain TCP transports.
    """

    _unpack = struct.Struct(">BHI").unpack_from

    def __init__(self, transport):
        self.transport = transport
        self.buffer = bytearray(transport._read_buffer or b"")
        self.position = 0
        transport._read_buffer = b""

    def read_frame(self, unpack=None):
        buffer = self.buffer
        while True:
            available = len(buffer) - self.position
            if available >= 8:
                frame_type, channel, size = self._unpack(buffer, self.position)
                end = self.position + 8 + size
                if len(buffer) >= end:
                    start = self.position + 7
                    payload, frame_end = bytes(buffer[start:end - 1]), buffer[end - 1]
                    self.position = end
                    if end == len(buffer):
                        buffer.clear()
                        self.position = 0
                    elif self.position > 262144:  # drop what was consumed, now and then (not per frame)
                        del buffer[:self.position]
                        self.position = 0
                    if frame_end != 206:
                        raise UnexpectedFrame(f"Received frame_end {frame_end:#04x} while expecting 0xce")
                    return frame_type, channel, payload
            sock = self.transport.sock
            if sock is None:
                raise OSError("Socket closed")
            try:
                chunk = sock.recv(65536)
            except TimeoutError:  # socket.timeout: drain_events(timeout=...) ran out; the buffer stays
                raise
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EINTR):
                    raise TimeoutError() from None
                self.transport.connected = False
                raise
            if not chunk:
                self.transport.connected = False
                raise OSError("Server unexpectedly closed connection")
            buffer += chunk


def amqp_reads_buffered(amqp_connection) -> None:
    """Install BufferedFrameReader on a py-amqp connection's TCP transport (idempotent; others untouched)."""
    transport = getattr(amqp_connection, "transport", None)
    if type(transport) is not TCPTransport:  # SSL or not py-amqp (filesystem): as they are
        return
    if not hasattr(transport, "_read_buffer") or not hasattr(transport, "read_frame"):
        return  # a py-amqp without the (private) buffer this reader takes over: keep py-amqp's own reader
    if not isinstance(getattr(transport.read_frame, "__self__", None), BufferedFrameReader):
        transport.read_frame = BufferedFrameReader(transport).read_frame
