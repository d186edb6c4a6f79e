"""The relay's bounds, in process: a socket's outbox, open-connection counts, the group commit's jobs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cove.db import create_engine, migrate
from cove.messaging.envelope import QUEUE_ID_MAX, Envelope
from cove.messaging.hub import CLOSE_CONNECTED_ELSEWHERE, CLOSE_NOT_READING, Hub
from cove.messaging.stream import SocketStream
from cove.messaging.writer import QueueWriter, SendJob
from cove.serving import ADDRESS_REFUSAL, TOTAL_REFUSAL, ConnectionGate


def envelope(queue_id: int, body: bytes = b"ciphertext") -> Envelope:
    return Envelope(queue_id, "bob", 1, 1, "alice", 1, f"m{queue_id}", body, 0, 1)


async def test_a_stream_whose_client_does_not_read_closes_instead_of_growing() -> None:
    stream = SocketStream(max_frames=3, max_bytes=1 << 20)
    for i in range(1, 4):
        stream.offer(envelope(i))
    assert not stream.aborted
    stream.offer(envelope(4))  # the fourth finds the outbox full: the stream gives up on this client
    assert stream.aborted and stream.close_code == CLOSE_NOT_READING and stream.close_reason.startswith("not_reading")
    stream.offer({"type": "error"})
    assert await stream.next_batch(10) == []  # what waited is dropped; nothing more is taken


async def test_a_stream_bounds_the_bytes_waiting_but_lets_one_large_frame_through() -> None:
    stream = SocketStream(max_frames=100, max_bytes=4096)
    stream.offer(envelope(1, b"x" * 10_000))  # alone, larger than the bound: it goes out
    assert not stream.aborted and [e.id for e in await stream.next_batch(10)] == [1]
    stream.offer(envelope(2, b"x" * 2000))
    stream.offer(envelope(3, b"x" * 2000))
    assert stream.aborted


async def test_a_graceful_close_sends_what_was_queued_first() -> None:
    stream = SocketStream(max_frames=10, max_bytes=1 << 20)
    stream.offer(envelope(1))
    await Hub().attach(("bob", 1), stream)
    stream.close(CLOSE_CONNECTED_ELSEWHERE, "connected elsewhere")
    stream.offer(envelope(2))  # after the close: not taken
    assert [e.id for e in await stream.next_batch(10)] == [1]
    assert await stream.next_batch(10) == [] and not stream.aborted


class FakeTransport:
    def __init__(self, host: str) -> None:
        self.host = host

    def get_extra_info(self, name: str, default: object = None) -> object:
        return (self.host, 40000) if name == "peername" else default


def test_the_gate_limits_connections_per_address_and_in_total() -> None:
    gate = ConnectionGate(total=3, per_address=2)
    a1, a2, a3, b1, c1, c2 = (FakeTransport(h) for h in ["10.0.0.1"] * 3 + ["10.0.0.2"] + ["10.0.0.3"] * 2)
    assert gate.open(a1) is None and gate.open(a2) is None
    assert gate.open(a3) is ADDRESS_REFUSAL and gate.refusal(a3) is ADDRESS_REFUSAL
    assert gate.open(b1) is None
    assert gate.open(c1) is TOTAL_REFUSAL
    for transport in (a3, c1, a1):
        gate.close(transport)
    assert gate.open(c2) is None and gate.refusal(c2) is None  # a1's slot, given back
    assert gate.open(FakeTransport("10.0.0.4")) is TOTAL_REFUSAL  # three open again


async def test_a_bad_ack_never_joins_the_shared_commit(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}")
    await migrate(engine)
    writer = QueueWriter(engine, Hub(), retention_ms=60_000)
    commits = 0
    run = writer._transactions.run

    async def counted(fn):  # noqa: ANN001, ANN202
        nonlocal commits
        commits += 1
        return await run(fn)

    writer._transactions.run = counted  # type: ignore[method-assign]
    writer.start()
    try:
        send = SendJob("alice", "bob", "m1", [envelope(None)])  # type: ignore[arg-type]
        sent = writer.submit_send(send)
        acked = writer.submit_ack("carol", 1, [12, 13])
        with pytest.raises(ValueError, match="queue ids"):
            writer.submit_ack("mallory", 1, [QUEUE_ID_MAX + 1])
        assert len(await sent) == 1 and await acked == 0
        assert commits == 1  # one commit for both good jobs: no failure, no retry one by one
    finally:
        await writer.stop()
        await engine.dispose()


async def test_the_hub_drops_a_push_to_a_full_stream_and_closes_it() -> None:
    hub, stream = Hub(), SocketStream(max_frames=2, max_bytes=1 << 20)
    await hub.attach(("bob", 1), stream)
    await hub.deliver([envelope(1), envelope(2), envelope(3)])  # the third: bob is not reading
    assert stream.aborted and stream.close_code == CLOSE_NOT_READING


async def test_closing_a_stream_wakes_its_writer_and_tells_the_connection_once() -> None:
    stream = SocketStream(max_frames=10, max_bytes=1 << 20)
    told: list[bool] = []
    stream.on_close = lambda: told.append(stream.aborted)
    waiting = asyncio.create_task(stream.next_batch(10))
    await asyncio.sleep(0)
    assert not waiting.done()
    stream.close(CLOSE_CONNECTED_ELSEWHERE, "connected elsewhere")
    stream.abort(CLOSE_NOT_READING, "not_reading: too late, already closing")
    assert await waiting == [] and told == [False] and stream.close_code == CLOSE_CONNECTED_ELSEWHERE
