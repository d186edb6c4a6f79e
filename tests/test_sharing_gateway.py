"""The export gateway on SQLite and PostgreSQL: what leaves, in which form, and what a later batch revokes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import event, select

from cove.db import create_engine, metadata, migrate
from cove.sharing import catalogue, erasure, gateway, wire
from cove.sharing.disclosures import disclosures_of
from cove.sharing.keys import SharingKeys
from cove.sharing.snapshot import Snapshot
from cove.sharing.storage import sharing_erasures
from sharing_world import World, read_batch

HOUR = 3_600_000


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    engine = create_engine(database_url)
    await migrate(engine)
    w = World(engine)
    await w.publish()
    yield w
    await engine.dispose()


@pytest.fixture
def keys(tmp_path: Path) -> SharingKeys:
    return SharingKeys.load_or_create(tmp_path / "keys")


def subjects_in(rows: list[dict]) -> set[str]:
    return {r["subject"] for r in rows}


async def test_a_full_batch_carries_only_permitted_accounts_and_declared_fields(
    world: World, keys: SharingKeys, tmp_path: Path
) -> None:
    everything = {"analytics": "in", "account_linking": "in", "friend_suggestions": "in", "ads": "in"}
    alice = await world.add(everything)
    bob = await world.add({"ads": "out", "account_linking": "in"})
    minor = await world.add(everything, age="minor")
    spammer = await world.add(everything, banned="spam")
    silent = await world.add(accepted=False)

    result = await gateway.export(world.engine, keys, "parent", tmp_path / "out", at_ms=world.t0 + HOUR)

    files = read_batch(result.path)
    subject = {p.account_id: keys.subject("parent", p.account_id) for p in world.people}
    assert subjects_in(files["ads.parquet"]) == {subject[alice.account_id]}
    assert subjects_in(files["account_linking.parquet"]) == {subject[alice.account_id], subject[bob.account_id]}
    assert subjects_in(files["friend_suggestions.parquet"]) == {subject[alice.account_id]}
    # Spam protection: banned accounts only, nothing about accounts in good standing.
    assert [r["reason_code"] for r in files["safety.parquet"]] == ["spam"]
    assert subjects_in(files["safety.parquet"]) == {subject[spammer.account_id]}
    for rows in files.values():
        assert subject[minor.account_id] not in subjects_in(rows)
        assert subject[silent.account_id] not in subjects_in(rows)
    # Analytics goes to the processor, not to the parent as a controller.
    assert "analytics.parquet" not in files

    (ad_row,) = files["ads.parquet"]
    assert set(ad_row) == {"subject", "phone_hash", "last_seen_day", "device_model", "os_name", "os_version"}
    bundle = keys.trust_bundle("parent")
    assert ad_row["phone_hash"] == wire.phone_hash(bundle.phone_key(), alice.phone)
    assert alice.phone not in str(files)
    assert set(files["account_linking.parquet"][0]) == {"subject", "phone_hash", "vendor_device_id"}

    manifest = wire.verify_manifest(
        bundle.public_key(),
        (result.path / wire.MANIFEST_FILE).read_bytes(),
        (result.path / wire.SIGNATURE_FILE).read_text(),
    )
    assert (manifest.sequence, manifest.previous_batch_id, manifest.kind) == (1, None, "full")
    for entry in manifest.files():
        assert wire.file_sha256(result.path / entry.name) == entry.sha256


async def test_the_processor_gets_usage_counters_per_day(world: World, keys: SharingKeys, tmp_path: Path) -> None:
    alice = await world.add({"analytics": "in"}, usage_days=3)
    await world.add({"analytics": "out"})
    result = await gateway.export(world.engine, keys, "parent_processor", tmp_path / "out", at_ms=world.t0 + HOUR)
    files = read_batch(result.path)
    assert set(files) == {"analytics.parquet", "analytics.usage.parquet", "revocations.parquet"}
    usage = files["analytics.usage.parquet"]
    assert len(usage) == 3
    assert subjects_in(usage) == {keys.subject("parent_processor", alice.account_id)}
    assert set(files["analytics.parquet"][0]) == {"subject", "os_name", "os_version", "app_version"}
    # Subjects are per recipient: the two recipients' data cannot be joined on them.
    assert keys.subject("parent", alice.account_id) != keys.subject("parent_processor", alice.account_id)


async def test_incremental_batches_carry_changes_revocations_and_erasures(
    world: World, keys: SharingKeys, tmp_path: Path
) -> None:
    alice = await world.add({"ads": "in", "account_linking": "in"})
    bob = await world.add({"ads": "in"})
    carol = await world.add({"ads": "in"})
    dave = await world.add({})
    outbox = tmp_path / "out"
    first = await gateway.export(world.engine, keys, "parent", outbox, at_ms=world.t0 + HOUR)

    quiet = await gateway.export(
        world.engine, keys, "parent", outbox, since_batch=first.manifest.batch_id, at_ms=world.t0 + 2 * HOUR
    )
    assert quiet.total_rows == 0 and quiet.manifest.revocations.rows == 0

    t = world.t0 + 3 * HOUR
    await world.choose(bob, "ads", "out", t)
    await world.update_device(alice, "Pixel 10", t)
    await world.choose(dave, "friend_suggestions", "in", t)
    await world.delete(carol, t)
    second = await gateway.export(
        world.engine, keys, "parent", outbox, since_batch=quiet.manifest.batch_id, at_ms=t + HOUR
    )
    assert (second.manifest.sequence, second.manifest.previous_batch_id) == (3, quiet.manifest.batch_id)
    assert second.manifest.kind == "incremental"
    files = read_batch(second.path)
    sub = lambda p: keys.subject("parent", p.account_id)  # noqa: E731
    # A device change resends the rows of purposes that carry device fields, and only those.
    assert [(r["subject"], r["device_model"]) for r in files["ads.parquet"]] == [(sub(alice), "Pixel 10")]
    assert subjects_in(files["account_linking.parquet"]) == {sub(alice)}
    assert subjects_in(files["friend_suggestions.parquet"]) == {sub(dave)}  # phone only: alice unchanged
    revocations = {(r["subject"], r["purpose"], r["reason"]) for r in files["revocations.parquet"]}
    assert (sub(bob), "ads", "withdrawn") in revocations
    assert (sub(carol), None, "erased") in revocations
    assert len(revocations) == 2  # carol's erasure covers every purpose: no per-purpose events for her

    # The erasure is tracked until the recipient acknowledges it, and only a sent one can be acknowledged.
    (erased_event,) = [r["event_id"] for r in files["revocations.parquet"] if r["reason"] == "erased"]
    ack = wire.Ack(recipient="parent", batch_id=second.manifest.batch_id, applied_at_ms=t, erasures=[erased_event])
    assert await erasure.apply_acks(world.engine, [ack]) == 1
    assert await erasure.apply_acks(world.engine, [ack]) == 0
    async with world.engine.connect() as conn:
        pending = (
            await conn.execute(select(sharing_erasures.c.recipient).where(sharing_erasures.c.acked_at_ms.is_(None)))
        ).all()
    assert [r.recipient for r in pending] == ["parent_processor"]  # it has not acknowledged yet


async def test_a_user_sees_every_batch_their_data_went_out_in(world: World, keys: SharingKeys, tmp_path: Path) -> None:
    alice = await world.add({"ads": "in"})
    bob = await world.add({})
    outbox = tmp_path / "out"
    first = await gateway.export(world.engine, keys, "parent", outbox, at_ms=world.t0 + HOUR)
    await world.update_device(alice, "Pixel 10", world.t0 + 2 * HOUR)
    second = await gateway.export(
        world.engine, keys, "parent", outbox, since_batch=first.manifest.batch_id, at_ms=world.t0 + 3 * HOUR
    )
    async with world.engine.connect() as conn:
        seen = await disclosures_of(conn, alice.account_id)
        nothing = await disclosures_of(conn, bob.account_id)
    assert [(d["batch_id"], d["purpose"]) for d in seen] == [
        (second.manifest.batch_id, "ads"),
        (first.manifest.batch_id, "ads"),
    ]
    assert "contact.phone_number" in seen[0]["categories"]
    assert nothing == []


async def test_no_export_statement_touches_a_table_outside_the_catalogue(
    world: World, keys: SharingKeys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await world.add({"ads": "in", "analytics": "in", "account_linking": "in"}, banned=None)
    await world.add({"friend_suggestions": "in"}, banned="fraud")
    statements: list[str] = []

    def capture(_conn, _cursor, statement, *_args) -> None:  # noqa: ANN001
        statements.append(statement)

    # Bulk reads run in the snapshot's reader process; bookkeeping through the relay's engine.
    read = Snapshot.read

    def read_and_capture(snapshot: Snapshot):  # noqa: ANN202
        statements.extend(s.sql for s in snapshot._statements)
        return read(snapshot)

    monkeypatch.setattr(Snapshot, "read", read_and_capture)
    event.listen(world.engine.sync_engine, "before_cursor_execute", capture)
    try:
        for recipient in ("parent", "parent_processor"):
            first = await gateway.export(world.engine, keys, recipient, tmp_path / recipient, at_ms=world.t0 + HOUR)
            await gateway.export(
                world.engine,
                keys,
                recipient,
                tmp_path / recipient,
                since_batch=first.manifest.batch_id,
                at_ms=world.t0 + 2 * HOUR,
            )
    finally:
        event.remove(world.engine.sync_engine, "before_cursor_execute", capture)
    forbidden = {t.name for t in metadata.sorted_tables} - catalogue.READABLE_TABLES
    assert {"envelopes", "sent_messages", "one_time_keys", "ledger_entries"} <= forbidden
    touched = {
        name for statement in statements for name in forbidden if re.search(rf"\b{name}\b", statement, re.IGNORECASE)
    }
    assert touched == set()
    assert any("consent_purposes" in s for s in statements)  # the capture works: it saw the consent predicate


async def test_an_incremental_batch_must_follow_a_batch_sent_to_that_recipient(
    world: World, keys: SharingKeys, tmp_path: Path
) -> None:
    await world.add({"ads": "in"})
    with pytest.raises(gateway.ExportError, match="no batch"):
        await gateway.export(world.engine, keys, "parent", tmp_path / "out", since_batch="parent-00000001-nothing")
    with pytest.raises(gateway.ExportError, match="names recipient 'nobody'"):
        await gateway.export(world.engine, keys, "nobody", tmp_path / "out")
    assert not any((tmp_path / "out").glob("*/manifest.json"))
