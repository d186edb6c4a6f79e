"""The queue writer's commit (cove.messaging.writer) on SQLite and PostgreSQL: idempotent sends, acks confined
to the acking device's own queue, and receipts."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from sqlalchemy import insert, select

from cove.accounts.storage import accounts
from cove.clock import now_ms
from cove.db import create_engine
from cove.messaging.envelope import Envelope, EnvelopeKind, receipt_ids
from cove.messaging.storage import envelopes
from cove.messaging.writer import QueueWriter, SendJob


class Hub:
    def __init__(self) -> None:
        self.delivered: list[Envelope] = []

    async def deliver(self, batch: Iterable[Envelope]) -> None:
        self.delivered.extend(batch)


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[tuple[Any, ...]]:
    engine = create_engine(database_url)
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    async with engine.begin() as conn:
        await conn.execute(
            insert(accounts),
            [{"id": a, "phone_number": f"+1415555{n:04d}", "created_at_ms": 0} for n, a in enumerate((alice, bob))],
        )
    hub = Hub()
    writer = QueueWriter(engine, hub, retention_ms=3_600_000)
    writer.start()
    yield writer, hub, engine, alice, bob
    await writer.stop()
    await engine.dispose()


def _send(sender: str, recipient: str, client_message_id: str) -> SendJob:
    now = now_ms()
    envelope = Envelope(None, recipient, 1, EnvelopeKind.OLM_MESSAGE, sender, 1, client_message_id, b"c", now, now + 1)
    return SendJob(sender, recipient, client_message_id, [envelope])


async def test_a_repeated_send_is_queued_once_within_one_commit_and_after(world) -> None:  # noqa: ANN001
    writer, hub, _, alice, bob = world
    first, again = writer.submit_send(_send(alice, bob, "m1")), writer.submit_send(_send(alice, bob, "m1"))
    other = writer.submit_send(_send(bob, alice, "m1"))  # the same id from another sender is another message
    queued = await first
    assert queued is not None and [e.account_id for e in queued] == [bob]
    assert await again is None
    assert await other is not None
    assert await writer.send(_send(alice, bob, "m1")) is None
    assert [e.client_message_id for e in hub.delivered] == ["m1", "m1"]


async def test_an_ack_deletes_only_from_the_acking_devices_queue_and_receipts_the_sender(world) -> None:  # noqa: ANN001
    writer, hub, engine, alice, bob = world
    (for_bob,) = await writer.send(_send(alice, bob, "m1"))
    (for_alice,) = await writer.send(_send(bob, alice, "m2"))
    # Alice acks Bob's envelope and her own in one frame: only hers goes.
    assert await writer.submit_ack(alice, 1, [for_bob.id, for_alice.id]) == 1
    receipt = hub.delivered[-1]
    assert (receipt.account_id, receipt.kind, receipt_ids(receipt.body)) == (bob, EnvelopeKind.DELIVERY_RECEIPT, ["m2"])
    async with engine.connect() as conn:
        left = {row.id for row in await conn.execute(select(envelopes.c.id))}
    assert left == {for_bob.id, receipt.id}
    # Acking twice deletes nothing more and queues no second receipt.
    assert await writer.submit_ack(alice, 1, [for_alice.id]) == 0
    assert hub.delivered[-1] == receipt
