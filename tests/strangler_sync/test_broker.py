"""Broker plumbing: the buffered AMQP frame reader and the filesystem transport's binding table."""

from __future__ import annotations

import struct

import pytest
from amqp.exceptions import UnexpectedFrame
from kombu import Connection, Exchange, Queue

from strangler_sync.broker import AtomicFilesystemTransport, BufferedFrameReader, amqp_reads_buffered


def frame(frame_type: int, channel: int, payload: bytes, end: int = 0xCE) -> bytes:
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + bytes([end])


class FakeSocket:
    """recv hands out the scripted chunks one by one; a TimeoutError entry is raised as a read timeout."""

    def __init__(self, chunks):
        self.chunks = list(chunks)
        self.calls = 0

    def recv(self, size):
        self.calls += 1
        chunk = self.chunks.pop(0) if self.chunks else b""
        if isinstance(chunk, BaseException):
            raise chunk
        return chunk


class FakeTransport:
    def __init__(self, chunks, leftover=b""):
        self.sock = FakeSocket(chunks)
        self._read_buffer = leftover
        self.connected = True


def test_many_frames_come_out_of_one_recv_and_a_frame_may_span_several():
    stream = frame(1, 1, b"method") + frame(2, 1, b"header") + frame(3, 1, b"x" * 70_000) + frame(8, 0, b"")
    chunks = [stream[i:i + 4096] for i in range(0, len(stream), 4096)]
    transport = FakeTransport(chunks)
    reader = BufferedFrameReader(transport)
    assert reader.read_frame() == (1, 1, b"method")
    assert reader.read_frame() == (2, 1, b"header")
    assert transport.sock.calls == 1  # both from the first chunk
    assert reader.read_frame() == (3, 1, b"x" * 70_000)
    assert reader.read_frame() == (8, 0, b"")
    assert transport.sock.calls == len(chunks)


def test_a_timeout_mid_frame_keeps_what_was_read():
    data = frame(1, 2, b"payload")
    reader = BufferedFrameReader(FakeTransport([data[:5], TimeoutError(), data[5:]]))
    with pytest.raises(TimeoutError):
        reader.read_frame()
    assert reader.read_frame() == (1, 2, b"payload")


def test_bytes_py_amqp_had_buffered_are_read_first():
    data = frame(1, 0, b"abc")
    reader = BufferedFrameReader(FakeTransport([data[4:]], leftover=data[:4]))
    assert reader.read_frame() == (1, 0, b"abc")


def test_a_bad_frame_end_and_a_closed_socket_are_errors():
    with pytest.raises(UnexpectedFrame):
        BufferedFrameReader(FakeTransport([frame(1, 0, b"abc", end=0x00)])).read_frame()
    transport = FakeTransport([frame(1, 0, b"abc")[:3], b""])
    with pytest.raises(OSError, match="closed"):
        BufferedFrameReader(transport).read_frame()
    assert transport.connected is False


@pytest.mark.rabbitmq
def test_a_real_connection_reads_through_the_buffered_reader(rabbitmq_url):
    exchange = Exchange("t-frames", type="direct", durable=False, auto_delete=True)
    queue = Queue("t-frames-q", exchange=exchange, routing_key="k", durable=False, auto_delete=True)
    with Connection(rabbitmq_url) as connection:
        channel = connection.channel()
        amqp_reads_buffered(connection.connection)
        amqp_reads_buffered(connection.connection)  # idempotent
        assert isinstance(connection.connection.transport.read_frame.__self__, BufferedFrameReader)
        queue(channel).declare()
        producer = connection.Producer(channel, exchange=exchange, serializer="json")
        bodies = [{"n": n, "pad": "p" * (n * 997 % 20_000)} for n in range(60)]
        for body in bodies:
            producer.publish(body, routing_key="k")
        received = []
        with connection.Consumer(queue, callbacks=[lambda body, message: (received.append(body), message.ack())]):
            while len(received) < len(bodies):
                connection.drain_events(timeout=5)
        assert received == bodies
        queue(channel).delete()


def filesystem_connection(folder) -> Connection:
    for name in ("queue", "processed", "control"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    return Connection("filesystem://", transport=AtomicFilesystemTransport, transport_options={
        "data_folder_in": str(folder / "queue"), "data_folder_out": str(folder / "queue"),
        "control_folder": str(folder / "control"), "store_processed": False})


def test_filesystem_binding_known_in_memory_is_still_written_to_the_table(tmp_path):
    """Another thread registered it in the process-wide state and has not written the file yet: bind anyway."""
    exchange = Exchange("t-fs-ex", type="topic", durable=True)
    queue = Queue("t-fs-q", exchange=exchange, routing_key="product.*", durable=True)
    with filesystem_connection(tmp_path) as connection:
        channel = connection.channel()
        exchange(channel).declare()
        channel.state.binding_declare("t-fs-q", "t-fs-ex", "product.*", None)  # the other thread got this far
        queue(channel).declare()
        assert [q.queue for q in channel.get_table("t-fs-ex")] == ["t-fs-q"]
        connection.Producer(channel, exchange=exchange, serializer="json").publish({"n": 1},
                                                                                   routing_key="product.updated")
        assert len(list((tmp_path / "queue").glob("*.t-fs-q.msg"))) == 1


def test_filesystem_table_created_empty_by_another_process_is_read_as_empty_then_filled(tmp_path):
    with filesystem_connection(tmp_path) as connection:
        channel = connection.channel()
        (tmp_path / "control" / "t-fs-ex.exchange").write_bytes(b"")  # created, not written yet
        assert channel.get_table("t-fs-ex") == []
        channel._queue_bind("t-fs-ex", "a.*", "^a", "qa")
        channel._queue_bind("t-fs-ex", "b.*", "^b", "qb")
        channel._queue_bind("t-fs-ex", "a.*", "^a", "qa")  # idempotent
        assert sorted(q.queue for q in channel.get_table("t-fs-ex")) == ["qa", "qb"]
