"""Erasure receipts: deleting an account answers with one erasure event per recipient, and anyone holding an
event's id can later ask, without a token, whether it was requested, sent in a batch, and acknowledged."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from cli_helpers import cli_env, cove, register, said
from cove.client import paths
from cove.client.privacy import erasure_status
from cove.db import create_engine
from cove.sharing import erasure, gateway, wire
from cove.sharing.keys import SharingKeys
from privacy_world import RELAY_ENV, onboard, publish

APPLIED = 1_800_000_000_000


@pytest.fixture
def relay_env() -> dict[str, str]:
    return RELAY_ENV


async def status(relay, event_id: str) -> httpx.Response:  # noqa: ANN001
    async with httpx.AsyncClient(base_url=relay.url) as anonymous:  # no token: the account is gone
        return await anonymous.get(f"/v1/erasures/{event_id}")


async def test_a_deletion_hands_back_each_erasure_and_its_progress_can_be_checked(relay, users, tmp_path: Path) -> None:
    await publish(relay.database_url)
    alice = await users.register("alice")
    bob = await users.register("bob")
    await onboard(alice, {"ads": "in"})
    await onboard(bob, {"ads": "in"})
    engine = create_engine(relay.database_url)
    keys = SharingKeys.load_or_create(relay.data_dir)
    outbox = tmp_path / "outbox"
    try:
        first = await gateway.export(engine, keys, "parent", outbox)
        receipts = await alice.delete_account()
        assert sorted(r["recipient"] for r in receipts) == ["parent", "parent_processor"]
        for r in receipts:
            assert uuid.UUID(r["event_id"]).version == 4 and r["requested_at"] > 0
        mine = {r["recipient"]: r for r in receipts}

        requested = (await status(relay, mine["parent"]["event_id"])).json()
        assert requested == {
            "event_id": mine["parent"]["event_id"],
            "recipient": "parent",
            "state": "requested",
            "requested_at": mine["parent"]["requested_at"],
            "sent_at": None,
            "batch_id": None,
            "acknowledged_at": None,
        }

        second = await gateway.export(engine, keys, "parent", outbox, since_batch=first.manifest.batch_id)
        sent = (await status(relay, mine["parent"]["event_id"])).json()
        assert (sent["state"], sent["batch_id"]) == ("sent", second.manifest.batch_id)
        assert sent["sent_at"] == second.manifest.created_at_ms
        # The other recipient got no batch yet: its erasure still waits.
        assert (await bob.erasure_status(mine["parent_processor"]["event_id"]))["state"] == "requested"

        ack = wire.Ack(
            recipient="parent",
            batch_id=second.manifest.batch_id,
            applied_at_ms=APPLIED,
            erasures=[mine["parent"]["event_id"]],
        )
        assert await erasure.apply_acks(engine, [ack]) == 1
    finally:
        await engine.dispose()
    done = await bob.erasure_status(mine["parent"]["event_id"])  # the SDK's call: any client may ask
    assert (done["state"], done["acknowledged_at"]) == ("acknowledged", APPLIED)


async def test_an_erasure_id_is_checked_before_it_is_looked_up(relay) -> None:
    for bad in ("not-a-uuid", str(uuid.uuid4()).upper(), str(uuid.uuid1()), "0" * 36, str(uuid.uuid4()) + "0"):
        answer = await status(relay, bad)
        assert (answer.status_code, answer.json()["error"]["code"]) == (400, "bad_event_id"), bad
    unknown = await status(relay, str(uuid.uuid4()))
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "unknown_erasure")
    # The SDK refuses to put anything but an event id into the path.
    for bad in ("../../accounts/me", "a/b", ""):
        with pytest.raises(paths.InvalidPathValue):
            erasure_status(bad)


async def test_without_a_policy_nothing_was_shared_and_no_erasure_is_owed(users) -> None:
    alice = await users.register("alice")
    assert await alice.delete_account() == []


async def test_the_cli_prints_the_receipts_of_a_deletion(relay, code_inbox, tmp_path: Path) -> None:
    await publish(relay.database_url)
    env = cli_env(relay, tmp_path / "home")
    await register(env, code_inbox, "erin", "+14155550189")
    deleted = cove(env, "delete-account", "--yes", "--profile", "erin")
    assert deleted.returncode == 0, said(deleted)
    printed = said(deleted)
    for recipient in ("parent", "parent_processor"):
        assert f"Erasure requested from {recipient}: " in printed
    event_ids = [word for word in printed.split() if len(word) == 36 and word.count("-") == 4]
    assert len(event_ids) == 2
    for event_id in event_ids:
        assert (await status(relay, event_id)).json()["state"] == "requested"
