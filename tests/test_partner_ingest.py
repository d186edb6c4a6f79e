"""The partner's ingest: what a good batch does, what a bad one is refused for (leaving the store as it was),
revocations, erasures with acks, bans, full batches, retention, the directory and NATS drivers and the CLI."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from cove.partner.audiences import build_audiences
from cove.partner.cli import partner_app
from cove.partner.ingest import apply_batch, ingest_directory, ingest_nats, sweep, transaction
from cove.partner.store import open_store
from cove.sharing import wire
from partner_batches import (
    ADS_CATEGORIES,
    DAY_MS,
    LINKING_CATEGORIES,
    NOW_MS,
    SAFETY_CATEGORIES,
    TODAY,
    Messenger,
    Purpose,
    Revocation,
    ads_row,
    store_snapshot,
)

Use = wire.Use
Reason = wire.RevocationReason


@pytest.fixture
def conn() -> Iterator[duckdb.DuckDBPyConnection]:
    store = open_store(":memory:")
    yield store
    store.close()


@pytest.fixture
def messenger() -> Messenger:
    return Messenger()


def ads(*subjects: str, retention_days: int | None = None) -> Purpose:
    return Purpose(
        "ads",
        Use.ADVERTISING,
        [*ADS_CATEGORIES, wire.CATEGORY_USAGE],
        [ads_row(s) for s in subjects],
        usage=[_usage(s) for s in subjects],
        retention_days=retention_days,
    )


def linking(m: Messenger, *subjects: str) -> Purpose:
    rows = [
        {"subject": s, "phone_hash": m.phone_hash(f"+4477009000{i:02d}"), "vendor_device_id": f"vd-{s}"}
        for i, s in enumerate(subjects)
    ]
    return Purpose("linking", Use.ACCOUNT_LINKING, LINKING_CATEGORIES, rows)


def safety(m: Messenger, rows: dict[str, tuple[str | None, str]]) -> Purpose:
    """subject -> (phone or None, reason code)."""
    return Purpose(
        "safety",
        Use.SAFETY,
        SAFETY_CATEGORIES,
        [
            {"subject": s, "phone_hash": m.phone_hash(p) if p else None, "reason_code": code, "banned_day": TODAY}
            for s, (p, code) in rows.items()
        ],
    )


def friends(*subjects: str) -> Purpose:
    return Purpose("friends", Use.FRIEND_SUGGESTIONS, [wire.CATEGORY_LAST_SEEN], [ads_row(s) for s in subjects])


def _usage(subject: str) -> dict[str, Any]:
    return {"subject": subject, "day": TODAY, "messages_sent": 3, "messages_received": 4, "app_opens": 5}


def subjects_of(conn: duckdb.DuckDBPyConnection, table: str, purpose: str | None = None) -> set[str]:
    where = "" if purpose is None else f" WHERE purpose = '{purpose}'"
    return {s for (s,) in conn.execute(f"SELECT subject FROM {table}{where}").fetchall()}


def everywhere(conn: duckdb.DuckDBPyConnection) -> set[str]:
    """Every subject held anywhere: shared tables and derived ones."""
    return set().union(*(subjects_of(conn, t) for t in ("shared_profiles", "shared_usage", "links", "audiences")))


# --- a good batch ----------------------------------------------------------------------------------------


def test_a_good_batch_is_applied(conn: duckdb.DuckDBPyConnection, messenger: Messenger, tmp_path: Path) -> None:
    batch = messenger.write(tmp_path, [ads("s1", "s2"), linking(messenger, "s1")])

    report = apply_batch(conn, batch, messenger.trust, NOW_MS + 1000)

    assert not report.already_applied
    assert (report.sequence, report.rows_applied, report.revocations_applied) == (1, 5, 0)
    rows = conn.execute(
        "SELECT purpose, subject, os_name, phone_hash, vendor_device_id, batch_id, received_at_ms FROM shared_profiles "
        "ORDER BY purpose, subject"
    ).fetchall()
    assert rows == [
        ("ads", "s1", "Android", None, None, batch.name, NOW_MS),
        ("ads", "s2", "Android", None, None, batch.name, NOW_MS),
        ("linking", "s1", None, messenger.phone_hash("+447700900000"), "vd-s1", batch.name, NOW_MS),
    ]
    assert subjects_of(conn, "shared_usage", "ads") == {"s1", "s2"}
    assert conn.execute("SELECT purpose, use, last_batch_id FROM shared_purposes ORDER BY 1").fetchall() == [
        ("ads", "advertising", batch.name),
        ("linking", "account_linking", batch.name),
    ]
    assert conn.execute("SELECT batch_id, sequence, applied_at_ms FROM applied_batches").fetchall() == [
        (batch.name, 1, NOW_MS + 1000)
    ]


def test_reapplying_a_batch_changes_nothing(
    conn: duckdb.DuckDBPyConnection, messenger: Messenger, tmp_path: Path
) -> None:
    first = messenger.write(tmp_path, [ads("s1", "s2")])
    second = messenger.write(tmp_path, [ads("s3")], [Revocation("s1", Reason.WITHDRAWN, "ads")])
    apply_batch(conn, first, messenger.trust, NOW_MS)
    apply_batch(conn, second, messenger.trust, NOW_MS)
    before = store_snapshot(conn)

    again = [apply_batch(conn, b, messenger.trust, NOW_MS + DAY_MS) for b in (first, second)]

    assert [r.already_applied for r in again] == [True, True]
    assert again[1].applied_at_ms == NOW_MS  # the original application, as the ack said the first time
    assert store_snapshot(conn) == before


# --- rejections ------------------------------------------------------------------------------------------


def _rewrite_profile(batch: Path, m: Messenger) -> None:
    pq.write_table(pa.Table.from_pylist([ads_row("intruder")], schema=_ads_schema()), batch / "ads.parquet")


def _ads_schema() -> pa.Schema:
    return wire.profile_schema([*ADS_CATEGORIES, wire.CATEGORY_USAGE], True)


def _foreign_signature(batch: Path, m: Messenger) -> None:
    data = (batch / wire.MANIFEST_FILE).read_bytes()
    (batch / wire.SIGNATURE_FILE).write_text(wire.sign(Ed25519PrivateKey.generate(), data))


def _edited_unsigned(batch: Path, m: Messenger) -> None:
    raw = json.loads((batch / wire.MANIFEST_FILE).read_bytes())
    raw["purposes"][0]["use"] = "safety"
    (batch / wire.MANIFEST_FILE).write_bytes(wire.canonical_json(raw))


def _resigned(edit: Callable[[dict[str, Any]], None]) -> Callable[[Path, Messenger], None]:
    return lambda batch, m: m.resign(batch, edit)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = raw
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        target[last] = value

    return edit


REJECTIONS: dict[str, tuple[str, Callable[[Path, Messenger], None]]] = {
    "foreign signature": ("bad_signature", _foreign_signature),
    "manifest edited after signing": ("bad_signature", _edited_unsigned),
    "missing signature": ("bad_manifest", lambda batch, m: (batch / wire.SIGNATURE_FILE).unlink()),
    "schema version 2": ("unknown_schema", _resigned(_set("schema_version", 2))),
    "unknown category": ("unknown_schema", _resigned(_set("purposes.0.categories", ["device.imei"]))),
    "another recipient": ("wrong_recipient", _resigned(_set("recipient", "someone_else"))),
    "unknown signing key id": ("unknown_key", _resigned(_set("signing_key_id", "0" * 16))),
    "tampered parquet": ("bad_file", _rewrite_profile),
    "row count": ("bad_file", _resigned(_set("purposes.0.profile.rows", 7))),
    "file name outside the batch": ("bad_file", _resigned(_set("purposes.0.profile.name", "../ads.parquet"))),
    "sequence gap": ("chain_gap", _resigned(_set("sequence", 3))),
    "wrong previous batch": ("chain_gap", _resigned(_set("previous_batch_id", "parent-000000"))),
}


@pytest.mark.parametrize("case", list(REJECTIONS))
def test_a_bad_batch_is_rejected_and_the_store_is_unchanged(
    case: str, conn: duckdb.DuckDBPyConnection, messenger: Messenger, tmp_path: Path
) -> None:
    code, spoil = REJECTIONS[case]
    apply_batch(conn, messenger.write(tmp_path, [ads("s1", "s2")]), messenger.trust, NOW_MS)
    build_audiences(conn, NOW_MS)
    batch = messenger.write(tmp_path, [ads("s3")], [Revocation("s1", Reason.ERASED)])
    spoil(batch, messenger)
    before = store_snapshot(conn)

    with pytest.raises(wire.BadBatch) as refused:
        apply_batch(conn, batch, messenger.trust, NOW_MS)

    assert refused.value.code == code, str(refused.value)
    assert store_snapshot(conn) == before


def _wrong_columns_table() -> pa.Table:
    schema = _ads_schema().append(pa.field("imei", pa.string()))
    return pa.Table.from_pylist([ads_row("s1") | {"imei": "35-209900-176148-1"}], schema=schema)


@pytest.mark.parametrize(
    ("code", "tables"),
    [
        ("unknown_schema", {"ads.parquet": _wrong_columns_table()}),
        ("unknown_schema", {"ads.parquet": pa.Table.from_pylist([{"subject": "s1"}])}),
        ("bad_file", {"ads.parquet": pa.Table.from_pylist([ads_row("s1"), ads_row("s1")], schema=_ads_schema())}),
        (
            "bad_file",
            {
                "revocations.parquet": pa.Table.from_pylist(
                    [{"event_id": "e1", "subject": "s1", "purpose": None, "reason": "withdrawn", "at_ms": 1}],
                    schema=wire.REVOCATION_SCHEMA,
                )
            },
        ),
    ],
    ids=["extra column", "missing columns", "subject twice", "withdrawal without a purpose"],
)
def test_files_that_do_not_match_the_schema_are_rejected(
    code: str, tables: dict[str, pa.Table], conn: duckdb.DuckDBPyConnection, messenger: Messenger, tmp_path: Path
) -> None:
    """The hashes are right here (the files were signed as they are): the content itself is wrong."""
    before = store_snapshot(conn)
    with pytest.raises(wire.BadBatch) as refused:
        apply_batch(conn, messenger.write(tmp_path, [ads("s1")], tables=tables), messenger.trust, NOW_MS)
    assert refused.value.code == code, str(refused.value)
    assert store_snapshot(conn) == before


def test_the_first_batch_must_start_the_chain(
    conn: duckdb.DuckDBPyConnection, messenger: Messenger, tmp_path: Path
) -> None:
    messenger.write(tmp_path / "lost", [ads("s1")])
    with pytest.raises(wire.BadBatch, match="expects #1") as refused:
        apply_batch(conn, messenger.write(tmp_path, [ads("s2")]), messenger.trust, NOW_MS)
    assert refused.value.code == "chain_gap"


# --- revocations -----------------------------------------------------------------------------------------


def test_a_withdrawal_removes_the_subject_from_that_purpose_and_its_audiences(
    conn: duckdb.DuckDBPyConnection, messenger: Messenger, tmp_path: Path
) -> None:
    apply_batch(conn, messenger.write(tmp_path, [ads("s1", "s2"), linking(messenger, "s1")]), messenger.trust, NOW_MS)
    build_audiences(conn, NOW_MS)
    assert "s1" in subjects_of(conn, "audiences")

    withdrawal = messenger.write(tmp_path, revocations=[Revocation("s1", Reason.WITHDRAWN, "ads")])
    apply_batch(conn, withdrawal, messenger.trust, NOW_MS)

    assert subjects_of(conn, "shared_profiles", "ads") == {"s2"}
    assert subjects_of(conn, "shared_usage", "ads") == {"s2"}
    assert subjects_of(conn, "audiences") == {"s2"}
    assert subjects_of(conn, "shared_profiles", "linking") == {"s1"}  # another purpose: untouched


def test_revoking_linking_or_suggestions_deletes_links_and_suggestions(
    conn: duckdb.DuckDBPyConnection, messenger: Messenger, tmp_path: Path
) -> None:
    apply_batch(conn, messenger.write(tmp_path, [linking(messenger, "s1", "s2"), friends("s2")]), messenger.trust, 0)
    _link(conn, {"s1": 1, "s2": 2})
    _suggestions_without_lineage(conn, [(3, 1), (3, 2)])

    revocations = [Revocation("s1", Reason.WITHDRAWN, "linking"), Revocation("s2", Reason.OBJECTED, "friends")]
    apply_batch(conn, messenger.write(tmp_path, revocations=revocations), messenger.trust, NOW_MS)

    assert subjects_of(conn, "links") == {"s2"}  # s2 withdrew suggestions, not linking
    assert conn.execute("SELECT suggested FROM suggestions").fetchall() == []
    assert subjects_of(conn, "shared_profiles", "linking") == {"s2"}


def test_an_erasure_removes_the_subject_everywhere_and_is_acknowledged(
    conn: duckdb.DuckDBPyConnection, messenger: Messenger, tmp_path: Path
) -> None:
    purposes = [ads("s1", "s2"), linking(messenger, "s1"), friends("s1"), safety(messenger, {"s1": (None, "spam")})]
    ingest_directory(conn, messenger.write(tmp_path, purposes), messenger.trust, NOW_MS)
    _link(conn, {"s1": 1})
    _suggestions_without_lineage(conn, [(3, 1)])
    build_audiences(conn, NOW_MS)

    erasure = Revocation("s1", Reason.ERASED, event_id="erase-42")
    batch = messenger.write(tmp_path, [ads("s1")], [erasure])  # a row sent in the same batch stays out, too
    (report,) = ingest_directory(conn, tmp_path, messenger.trust, NOW_MS + 5)

    assert report.batch_id == batch.name and report.erasures == ["erase-42"]
    assert "s1" not in everywhere(conn)
    assert conn.execute("SELECT count(*) FROM suggestions").fetchone() == (0,)
    assert conn.execute("SELECT event_id, subject, batch_id FROM applied_erasures").fetchall() == [
        ("erase-42", "s1", batch.name)
    ]
    ack = wire.Ack.model_validate_json((tmp_path / wire.ACKS_DIR / f"{batch.name}.json").read_bytes())
    assert (ack.recipient, ack.batch_id, ack.applied_at_ms, ack.erasures) == (
        "parent",
        batch.name,
        NOW_MS + 5,
        ["erase-42"],
    )


def test_a_ban_keeps_only_safety_rows_and_blocks_the_linked_parent_user(
    conn: duckdb.DuckDBPyConnection, messenger: Messenger, tmp_path: Path
) -> None:
    apply_batch(conn, messenger.write(tmp_path, [ads("s1"), linking(messenger, "s1")]), messenger.trust, NOW_MS)
    _link(conn, {"s1": 1})
    build_audiences(conn, NOW_MS)

    batch = messenger.write(
        tmp_path, [safety(messenger, {"s1": (None, "bulk_messaging")})], [Revocation("s1", Reason.BANNED)]
    )
    report = apply_batch(conn, batch, messenger.trust, NOW_MS)

    assert conn.execute("SELECT purpose FROM shared_profiles WHERE subject = 's1'").fetchall() == [("safety",)]
    assert subjects_of(conn, "links") == set() and subjects_of(conn, "audiences") == set()
    # the ban reached the parent account through the link the same batch deleted
    assert conn.execute("SELECT blocked_for_safety FROM users WHERE user_id = 1").fetchone() == ("bulk_messaging",)
    assert report.safety is not None and report.safety.newly_blocked == 1


def test_a_safety_signal_reaches_a_parent_user_by_hashed_phone(
    conn: duckdb.DuckDBPyConnection, messenger: Messenger, tmp_path: Path
) -> None:
    conn.execute(
        "INSERT INTO users (user_id, name, phone_e164) VALUES (7, 'Ada', '+447700900123'), (8, 'Ben', '+4915112345')"
    )
    batch = messenger.write(tmp_path, [safety(messenger, {"s9": ("+447700900123", "spam")})])

    report = apply_batch(conn, batch, messenger.trust, NOW_MS)

    assert conn.execute("SELECT user_id, blocked_for_safety FROM users ORDER BY 1").fetchall() == [
        (7, "spam"),
        (8, None),
    ]
    assert report.safety is not None and (report.safety.signals, report.safety.matched_users) == (1, 1)


def _suggestions_without_lineage(conn: duckdb.DuckDBPyConnection, pairs: list[tuple[int, int]]) -> None:
    """Suggestions as a store older than suggestion_sources holds them (tests/test_partner_revocation.py has
    those ``cove partner suggest`` writes)."""
    conn.executemany(
        "INSERT INTO suggestions (user_id, suggested, score, source, rank) VALUES (?, ?, 1, 'contact_book', 1)", pairs
    )


def _link(conn: duckdb.DuckDBPyConnection, links: dict[str, int]) -> None:
    for subject, user_id in links.items():
        conn.execute("INSERT OR IGNORE INTO users (user_id, name) VALUES (?, ?)", [user_id, f"user {user_id}"])
        conn.execute("INSERT INTO links VALUES (?, ?, 1.0, 'phone', 0)", [subject, user_id])


# --- full batches and retention --------------------------------------------------------------------------


def test_a_full_batch_replaces_a_purpose(conn: duckdb.DuckDBPyConnection, messenger: Messenger, tmp_path: Path) -> None:
    apply_batch(conn, messenger.write(tmp_path, [ads("s1", "s2"), linking(messenger, "s1")]), messenger.trust, NOW_MS)
    build_audiences(conn, NOW_MS)

    later = NOW_MS + DAY_MS
    apply_batch(conn, messenger.write(tmp_path, [ads("s2", "s3")], kind="full", as_of_ms=later), messenger.trust, later)

    assert subjects_of(conn, "shared_profiles", "ads") == {"s2", "s3"}
    assert subjects_of(conn, "shared_usage", "ads") == {"s2", "s3"}
    assert "s1" not in subjects_of(conn, "audiences")
    assert subjects_of(conn, "shared_profiles", "linking") == {"s1"}  # not in the full batch: not replaced
    assert conn.execute("SELECT DISTINCT received_at_ms FROM shared_profiles WHERE purpose = 'ads'").fetchall() == [
        (later,)
    ]


def test_the_retention_sweep_deletes_expired_rows_and_their_audiences(
    conn: duckdb.DuckDBPyConnection, messenger: Messenger, tmp_path: Path
) -> None:
    apply_batch(conn, messenger.write(tmp_path, [ads("s1", retention_days=30), friends("s2")]), messenger.trust, NOW_MS)
    build_audiences(conn, NOW_MS)

    with transaction(conn):
        kept = sweep(conn, NOW_MS + 30 * DAY_MS)
    assert (kept.profiles_deleted, kept.usage_deleted) == (0, 0)
    with transaction(conn):
        swept = sweep(conn, NOW_MS + 30 * DAY_MS + 1)

    assert (swept.profiles_deleted, swept.usage_deleted) == (1, 1)
    assert subjects_of(conn, "shared_profiles") == {"s2"}  # no retention declared: kept
    assert subjects_of(conn, "audiences") == set()


def test_ingest_sweeps_what_expired_since(
    conn: duckdb.DuckDBPyConnection, messenger: Messenger, tmp_path: Path
) -> None:
    apply_batch(conn, messenger.write(tmp_path, [ads("s1", retention_days=1)]), messenger.trust, NOW_MS)
    later = NOW_MS + 2 * DAY_MS
    report = apply_batch(conn, messenger.write(tmp_path, [friends("s2")], as_of_ms=later), messenger.trust, later)
    assert report.sweep is not None and report.sweep.profiles_deleted == 1
    assert subjects_of(conn, "shared_profiles") == {"s2"}


# --- the directory driver --------------------------------------------------------------------------------


def test_a_sink_directory_is_applied_in_sequence_order_and_skipped_once_acknowledged(
    conn: duckdb.DuckDBPyConnection, messenger: Messenger, tmp_path: Path
) -> None:
    batches = [messenger.write(tmp_path, [ads(f"s{i}")]) for i in range(3)]
    for i, batch in enumerate(batches):  # directory names that sort against the chain
        batch.rename(tmp_path / f"{9 - i}-{batch.name}")

    reports = ingest_directory(conn, tmp_path, messenger.trust, NOW_MS)

    assert [r.sequence for r in reports] == [1, 2, 3]
    assert sorted(p.name for p in (tmp_path / wire.ACKS_DIR).iterdir()) == [f"{b.name}.json" for b in batches]
    assert ingest_directory(conn, tmp_path, messenger.trust, NOW_MS) == []
    (tmp_path / wire.ACKS_DIR / f"{batches[1].name}.json").unlink()  # stopped after commit, before the ack
    (again,) = ingest_directory(conn, tmp_path, messenger.trust, NOW_MS)
    assert again.already_applied and (tmp_path / wire.ACKS_DIR / f"{batches[1].name}.json").exists()


# --- the CLI ---------------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(messenger: Messenger, tmp_path: Path) -> dict[str, str]:
    trust = tmp_path / "trust.json"
    trust.write_text(messenger.trust.model_dump_json())
    return {"COVE_PARTNER_STORE": str(tmp_path / "partner.duckdb"), "COVE_PARTNER_TRUST": str(trust)}


def test_cli_ingests_reports_and_builds_audiences(
    messenger: Messenger, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    sink = tmp_path / "sink"
    messenger.write(sink, [ads("s1", "s2")])
    messenger.write(sink, revocations=[Revocation("s2", Reason.ERASED, event_id="erase-1")])
    runner = CliRunner()

    ingested = runner.invoke(partner_app, ["ingest", str(sink)], env=cli_env)
    assert ingested.exit_code == 0, ingested.output
    assert "batch #1" in ingested.stdout and "1 erasures acknowledged" in ingested.stdout
    assert "no new batches" in runner.invoke(partner_app, ["ingest", str(sink)], env=cli_env).stdout

    built = runner.invoke(partner_app, ["audiences"], env=cli_env)
    assert built.exit_code == 0 and "os:android" in built.stdout and "device:Pixel 8" in built.stdout

    shown = runner.invoke(partner_app, ["status"], env=cli_env)
    assert shown.exit_code == 0
    assert "parent-000002" in shown.stdout and "advertising" in shown.stdout and "erasures applied: 1" in shown.stdout

    swept = runner.invoke(partner_app, ["sweep"], env=cli_env)
    assert swept.exit_code == 0 and "deleted 0 profile rows" in swept.stdout


def test_cli_reports_a_bad_batch_by_code(messenger: Messenger, tmp_path: Path, cli_env: dict[str, str]) -> None:
    batch = messenger.write(tmp_path / "sink", [ads("s1")])
    _foreign_signature(batch, messenger)

    result = CliRunner().invoke(partner_app, ["ingest", str(batch)], env=cli_env)

    assert result.exit_code == 1
    assert result.stderr.startswith("error: bad_signature: ")


def test_cli_says_how_to_get_a_trust_bundle(tmp_path: Path) -> None:
    env = {"COVE_PARTNER_STORE": str(tmp_path / "p.duckdb"), "COVE_PARTNER_TRUST": str(tmp_path / "none.json")}
    result = CliRunner().invoke(partner_app, ["ingest", str(tmp_path)], env=env)
    assert result.exit_code == 1
    assert "`cove share keys --recipient parent` writes it" in result.stderr


def test_cli_needs_a_directory_or_nats(cli_env: dict[str, str]) -> None:
    result = CliRunner().invoke(partner_app, ["ingest"], env=cli_env)
    assert result.exit_code == 1 and "--nats" in result.stderr


def test_cli_reports_an_unreachable_nats(cli_env: dict[str, str]) -> None:
    result = CliRunner().invoke(partner_app, ["ingest", "--nats", "--nats-url", "nats://127.0.0.1:1"], env=cli_env)
    assert result.exit_code == 1
    assert "error: NATS at nats://127.0.0.1:1: " in result.stderr


# --- NATS ------------------------------------------------------------------------------------------------

NATS_URL = os.environ.get("COVE_TEST_NATS_URL", "nats://127.0.0.1:4222")


async def _quiet(exc: Exception) -> None:
    pass


@pytest.fixture
def nats_messenger() -> Messenger:
    """A recipient of its own, so tests share the server's streams but never each other's subjects or buckets."""
    return Messenger(recipient=f"t{uuid.uuid4().hex[:12]}")


@pytest.fixture
async def jetstream(nats_messenger: Messenger) -> AsyncIterator[Any]:
    """A JetStream context on the local server, cleaned of this test's recipient afterwards."""
    import nats
    from nats.js.api import StreamConfig
    from nats.js.errors import NotFoundError

    try:
        nc = await nats.connect(NATS_URL, connect_timeout=2, allow_reconnect=False, error_cb=_quiet)
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"NATS is unreachable at {NATS_URL}: {exc}")
        pytest.skip(f"NATS is unreachable at {NATS_URL}: {exc}")
    js = nc.jetstream()
    for name, subjects in ((wire.NATS_STREAM, ["cove.share.>"]), (wire.NATS_ACK_STREAM, ["cove.share-acks.>"])):
        try:
            await js.stream_info(name)
        except NotFoundError:
            await js.add_stream(StreamConfig(name=name, subjects=subjects))
    recipient = nats_messenger.recipient
    await js.create_object_store(wire.nats_object_bucket(recipient))
    yield js
    with contextlib.suppress(NotFoundError):
        await js.delete_consumer(wire.NATS_STREAM, f"partner-{recipient}")
    await js.purge_stream(wire.NATS_STREAM, subject=wire.nats_batch_subject(recipient))
    await js.purge_stream(wire.NATS_ACK_STREAM, subject=wire.nats_ack_subject(recipient))
    await js.delete_object_store(wire.nats_object_bucket(recipient))
    await nc.close()


async def _publish(js: Any, batch: Path, recipient: str, msg_id: str | None = None) -> None:
    """What the messenger's NATS sink does: files to the object store, then the manifest with its signature."""
    manifest = wire.Manifest.model_validate_json((batch / wire.MANIFEST_FILE).read_bytes())
    store = await js.object_store(wire.nats_object_bucket(recipient))
    for entry in manifest.files():
        await store.put(f"{manifest.batch_id}/{entry.name}", (batch / entry.name).read_bytes())
    await js.publish(
        wire.nats_batch_subject(recipient),
        (batch / wire.MANIFEST_FILE).read_bytes(),
        headers={
            "Nats-Msg-Id": msg_id or manifest.batch_id,
            wire.NATS_SIGNATURE_HEADER: (batch / wire.SIGNATURE_FILE).read_text(),
        },
    )


async def _acks(js: Any, recipient: str) -> list[wire.Ack]:
    subscription = await js.pull_subscribe(wire.nats_ack_subject(recipient), stream=wire.NATS_ACK_STREAM)
    try:
        messages = await subscription.fetch(10, timeout=1)
    except TimeoutError:
        return []
    finally:
        await subscription.unsubscribe()
    return [wire.Ack.model_validate_json(m.data) for m in messages]


async def test_nats_round_trip_applies_each_batch_once(
    conn: duckdb.DuckDBPyConnection, nats_messenger: Messenger, jetstream: Any, tmp_path: Path
) -> None:
    m = nats_messenger
    first = m.write(tmp_path, [ads("s1", "s2")])
    second = m.write(tmp_path, [ads("s3")], [Revocation("s1", Reason.ERASED, event_id="erase-7")])
    for batch in (first, second):
        await _publish(jetstream, batch, m.recipient)
    apply_batch(conn, first, m.trust, NOW_MS)  # a run that committed the first batch, then died before acking it

    reports = await ingest_nats(conn, m.trust, NATS_URL)

    assert [(r.batch_id, r.already_applied) for r in reports] == [(first.name, True), (second.name, False)]
    assert subjects_of(conn, "shared_profiles") == {"s2", "s3"}
    applied = store_snapshot(conn)

    await _publish(jetstream, second, m.recipient, msg_id=f"{second.name}-retry")  # past JetStream's dedupe window
    (redelivered,) = await ingest_nats(conn, m.trust, NATS_URL)

    assert redelivered.already_applied
    assert store_snapshot(conn) == applied
    acks = await _acks(jetstream, m.recipient)  # the second ack of a batch is a duplicate JetStream drops
    assert [(a.batch_id, a.erasures) for a in acks] == [(first.name, []), (second.name, ["erase-7"])]


async def test_a_bad_batch_on_nats_is_terminated_and_stops_ingest(
    conn: duckdb.DuckDBPyConnection, nats_messenger: Messenger, jetstream: Any, tmp_path: Path
) -> None:
    batch = nats_messenger.write(tmp_path, [ads("s1")])
    _foreign_signature(batch, nats_messenger)
    await _publish(jetstream, batch, nats_messenger.recipient)
    empty = store_snapshot(conn)

    with pytest.raises(wire.BadBatch) as refused:
        await ingest_nats(conn, nats_messenger.trust, NATS_URL)

    assert refused.value.code == "bad_signature"
    assert await ingest_nats(conn, nats_messenger.trust, NATS_URL) == []  # terminated: never redelivered
    assert store_snapshot(conn) == empty
