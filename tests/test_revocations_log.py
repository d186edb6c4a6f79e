"""The per-account log of revocations ("what stopped being shared about me"): each revocation a batch carried,
acknowledged only by that batch's own recipient, dropped after its retention and with the account."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cove.db import create_engine, migrate
from cove.sharing import erasure, gateway, revocations, wire
from cove.sharing.keys import SharingKeys
from sharing_world import World

HOUR = 3_600_000
DAY = 24 * HOUR


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    engine = create_engine(database_url)
    await migrate(engine)
    w = World(engine)
    await w.publish()
    yield w
    await engine.dispose()


async def logged(world: World, account_id: str) -> list[dict]:
    async with world.engine.connect() as conn:
        return await revocations.of_account(conn, account_id)


async def test_a_withdrawal_is_logged_for_its_account_acked_by_its_recipient_and_kept_for_a_while(
    world: World, tmp_path: Path
) -> None:
    keys = SharingKeys.load_or_create(tmp_path / "keys")
    alice = await world.add({"ads": "in", "account_linking": "in"})
    bob = await world.add({"ads": "in"})
    outbox = tmp_path / "out"
    first = await gateway.export(world.engine, keys, "parent", outbox, at_ms=world.t0 + HOUR)
    t = world.t0 + 2 * HOUR
    await world.choose(alice, "ads", "out", t)
    second = await gateway.export(
        world.engine, keys, "parent", outbox, since_batch=first.manifest.batch_id, at_ms=t + HOUR
    )
    batch = second.manifest.batch_id
    assert await logged(world, alice.account_id) == [
        {
            "recipient": "parent",
            "purpose": "ads",
            "reason": "withdrawn",
            "batch_id": batch,
            "at": t + HOUR,
            "acknowledged_at": None,
        }
    ]
    assert await logged(world, bob.account_id) == []

    # Another recipient cannot acknowledge a batch it was not sent; its own recipient can.
    intruder = wire.Ack(recipient="parent_processor", batch_id=batch, applied_at_ms=t + 2 * HOUR, erasures=[])
    await erasure.apply_acks(world.engine, [intruder])
    assert (await logged(world, alice.account_id))[0]["acknowledged_at"] is None
    await erasure.apply_acks(world.engine, [intruder.model_copy(update={"recipient": "parent"})])
    assert (await logged(world, alice.account_id))[0]["acknowledged_at"] == t + 2 * HOUR

    # A batch past the retention drops what is older than it.
    kept_until = t + HOUR + revocations.RETENTION_DAYS * DAY
    await gateway.export(world.engine, keys, "parent", outbox, since_batch=batch, at_ms=kept_until)
    assert len(await logged(world, alice.account_id)) == 1
    await gateway.export(world.engine, keys, "parent", outbox, at_ms=kept_until + 1)
    assert await logged(world, alice.account_id) == []


async def test_a_deleted_accounts_revocations_go_with_it(world: World, tmp_path: Path) -> None:
    keys = SharingKeys.load_or_create(tmp_path / "keys")
    alice = await world.add({"ads": "in"})
    outbox = tmp_path / "out"
    first = await gateway.export(world.engine, keys, "parent", outbox, at_ms=world.t0 + HOUR)
    await world.choose(alice, "ads", "out", world.t0 + 2 * HOUR)
    await gateway.export(
        world.engine, keys, "parent", outbox, since_batch=first.manifest.batch_id, at_ms=world.t0 + 3 * HOUR
    )
    assert len(await logged(world, alice.account_id)) == 1
    await world.delete(alice, world.t0 + 4 * HOUR)
    assert await logged(world, alice.account_id) == []
