"""The consent ledger (R6: demonstrable consent) is tamper-evident.

Pure tests: any history of appends verifies clean; any single edit, deletion or swap is found and the
problem names the entry. Database tests (SQLite and PostgreSQL): tampering straight in SQL is found.
CLI tests: ``cove ledger verify`` exit codes, ``cove ledger export`` receipts.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import pytest
import typer
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner

from cove.consent import ledger, ledger_storage
from cove.consent.ledger import GENESIS, KINDS, Checkpoint, Entry, Problem
from cove.consent.ledger_cli import export, verify
from cove.db import create_engine, migrate

T0 = 1_780_000_000_000

# --- a pure ledger, stored the way the database would store it ---------------------------------------------


class Book:
    """Entries and checkpoints with row ids, as ledger_storage would keep them (ids may skip, never repeat)."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.checkpoints: list[Checkpoint] = []
        self.heads: dict[str, ledger.Head] = {}
        self.next_id = 1
        self.at = T0

    def append(self, account: str, kind: str, payload: dict, id_gap: int = 1) -> Entry:
        self.at += 1000
        entry = replace(ledger.next_entry(self.heads.get(account), account, kind, payload, self.at), id=self.next_id)
        self.next_id += id_gap  # a rolled-back transaction leaves a gap
        self.heads[account] = entry.head
        self.entries.append(entry)
        return entry

    def checkpoint(self) -> Checkpoint | None:
        previous = self.checkpoints[-1] if self.checkpoints else None
        last, heads = ledger.changed_heads(self.entries, previous.last_entry_id if previous else 0)
        if not heads:
            return None
        made = ledger.make_checkpoint(previous.hash if previous else GENESIS, last, heads, self.at)
        made = replace(made, id=len(self.checkpoints) + 1)
        self.checkpoints.append(made)
        return made

    def verify(self) -> list[Problem]:
        return ledger.verify(self.entries, self.checkpoints)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)
payloads = st.dictionaries(st.text(max_size=10), json_values, max_size=5)
accounts = st.sampled_from(["2f1c0d1e-0000-4000-8000-00000000000a", "acct-b", "acct-ü"])
appends = st.tuples(st.just("append"), accounts, st.sampled_from(sorted(KINDS)), payloads, st.integers(1, 3))
histories = st.lists(st.one_of(appends, st.just(("checkpoint",))), min_size=1, max_size=40)

pure = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def build(history: list[tuple], final_checkpoint: bool = False) -> Book:
    book = Book()
    for op in history:
        if op[0] == "append":
            _, account, kind, payload, gap = op
            book.append(account, kind, payload, gap)
        else:
            book.checkpoint()
    if final_checkpoint:
        book.checkpoint()
    return book


def problems_at(problems: list[Problem], entry_id: int) -> list[Problem]:
    return [p for p in problems if p.entry_id == entry_id]


@pure
@given(histories)
def test_any_history_of_appends_verifies_clean(history):
    book = build(history)
    assert book.verify() == []
    for account, entries in _by_account(book.entries).items():
        assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
        assert entries[0].prev_hash == GENESIS
        assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:], strict=False)), account


def _by_account(entries: list[Entry]) -> dict[str, list[Entry]]:
    out: dict[str, list[Entry]] = {}
    for e in entries:
        out.setdefault(e.account_id, []).append(e)
    return out


EDITS = {
    "payload": lambda e: replace(e, payload={**e.payload, "tampered": 2 if e.payload.get("tampered") == 1 else 1}),
    "kind": lambda e: replace(e, kind=ledger.CHOICE if e.kind != ledger.CHOICE else ledger.WITHDRAWAL),
    "at_ms": lambda e: replace(e, at_ms=e.at_ms + 1),
    "seq": lambda e: replace(e, seq=e.seq + 100),
    "account_id": lambda e: replace(e, account_id=e.account_id + "x"),
    "prev_hash": lambda e: replace(e, prev_hash="f" * 64 if e.prev_hash != "f" * 64 else "e" * 64),
    "hash": lambda e: replace(e, hash="f" * 64),
}


@pure
@given(histories, st.data(), st.sampled_from(sorted(EDITS)))
def test_any_edited_entry_is_found_and_named(history, data, field):
    book = build(history, final_checkpoint=True)
    assume(book.entries)
    i = data.draw(st.integers(0, len(book.entries) - 1))
    victim = book.entries[i]
    book.entries[i] = EDITS[field](victim)

    named = problems_at(book.verify(), victim.id)
    assert any(p.code == ledger.EDITED for p in named), named
    assert "edited" in str(next(p for p in named if p.code == ledger.EDITED))


@pure
@given(histories, st.data())
def test_any_deleted_entry_is_found_and_named(history, data):
    book = build(history, final_checkpoint=True)
    assume(book.entries)
    victim = book.entries.pop(data.draw(st.integers(0, len(book.entries) - 1)))
    problems = book.verify()

    later = [e for e in book.entries if e.account_id == victim.account_id and e.seq > victim.seq]
    if later:  # a gap: the next entry says which seq is missing
        successor = min(later, key=lambda e: e.seq)
        named = problems_at(problems, successor.id)
        assert any(p.code == ledger.MISSING and f"seq {victim.seq} is missing" in p.message for p in named), problems
    else:  # the account's newest entry: the checkpoint that covered it says so
        assert any(
            p.code == ledger.TAIL_DELETED and p.account_id == victim.account_id and p.seq == victim.seq
            for p in problems
        ), problems


@pure
@given(histories, st.data())
def test_any_swap_of_two_entries_is_found_and_named(history, data):
    """Swapping the row ids of two entries of one account (their order), or their payloads."""
    book = build(history, final_checkpoint=True)
    groups = [g for g in _by_account(book.entries).values() if len(g) >= 2]
    assume(groups)
    group = data.draw(st.sampled_from(groups))
    a, b = sorted(data.draw(st.permutations(group))[:2], key=lambda e: e.seq)
    ia, ib = book.entries.index(a), book.entries.index(b)

    if data.draw(st.booleans(), label="swap ids"):
        book.entries[ia], book.entries[ib] = replace(a, id=b.id), replace(b, id=a.id)
        problems = book.verify()
        assert any(
            p.code == ledger.REORDERED and (p.entry_id, p.seq) in {(b.id, a.seq), (a.id, b.seq)} for p in problems
        )
    else:
        assume(a.payload != b.payload)
        book.entries[ia], book.entries[ib] = replace(a, payload=b.payload), replace(b, payload=a.payload)
        problems = book.verify()
        assert {p.entry_id for p in problems if p.code == ledger.EDITED} == {a.id, b.id}


def test_entry_hash_is_over_a_canonical_form_including_the_previous_hash():
    one = ledger.entry_hash("a", 1, "choice", {"x": 1, "y": [1, "é"]}, T0, GENESIS)
    assert one == ledger.entry_hash("a", 1, "choice", {"y": [1, "é"], "x": 1}, T0, GENESIS)
    assert one != ledger.entry_hash("a", 1, "choice", {"x": 1, "y": [1, "é"]}, T0, "1" * 64)
    assert ledger.canonical_entry("a", 1, "choice", {"b": 1, "a": 2}, T0, GENESIS) == (
        b'{"account_id":"a","at_ms":1780000000000,"kind":"choice","payload":{"a":2,"b":1},'
        b'"prev_hash":"' + GENESIS.encode() + b'","seq":1,"v":1}'
    )
    first = ledger.next_entry(None, "a", "choice", {"value": "in"}, T0)
    second = ledger.next_entry(first.head, "a", "withdrawal", {}, T0 + 1)
    assert (first.seq, first.prev_hash, second.seq, second.prev_hash) == (1, GENESIS, 2, first.hash)


def test_next_entry_refuses_what_it_cannot_record_faithfully():
    with pytest.raises(ValueError, match="unknown ledger entry kind"):
        ledger.next_entry(None, "a", "maybe", {}, T0)
    with pytest.raises(ValueError):
        ledger.next_entry(None, "a", "choice", {"x": float("nan")}, T0)
    with pytest.raises(TypeError):
        ledger.next_entry(None, "a", "choice", {"when": object()}, T0)
    with pytest.raises(ValueError, match="belongs to account"):
        ledger.next_entry(ledger.Head("b", 1, GENESIS), "a", "choice", {}, T0)


def _small_book() -> Book:
    book = Book()
    for i in range(3):
        book.append("a", "choice", {"purpose": "ads", "value": "in" if i % 2 else "out"})
        book.append("b", "notice_served", {"policy_version": f"v{i}"}, id_gap=2)  # ids 2, 4, 6 then 8
    book.checkpoint()
    book.append("a", "withdrawal", {"purpose": "ads"})
    book.checkpoint()
    book.append("c", "terms_accepted", {"policy_version": "v3"})
    book.checkpoint()
    assert book.verify() == []
    return book


def test_edited_and_deleted_checkpoints_are_found():
    book = _small_book()
    book.checkpoints[1] = replace(book.checkpoints[1], at_ms=book.checkpoints[1].at_ms + 1)
    assert [(p.code, p.checkpoint_id) for p in book.verify()] == [(ledger.CHECKPOINT_EDITED, 2)]

    book = _small_book()
    del book.checkpoints[1]
    problems = book.verify()
    assert (ledger.CHECKPOINT_MISSING, 3) in [(p.code, p.checkpoint_id) for p in problems]
    assert "deleted" in str(problems[0])

    book = _small_book()
    del book.checkpoints[0]
    problems = book.verify()
    assert any(p.code == ledger.CHECKPOINT_MISSING and "first checkpoint" in p.message for p in problems)


def test_a_history_rewritten_consistently_is_caught_by_the_checkpoint():
    """Edit an entry and recompute every later hash of the account: the chain is whole, the checkpoint is not."""
    book = _small_book()
    a_entries = [e for e in book.entries if e.account_id == "a"]
    forged: list[Entry] = []
    head = None
    for e in a_entries:
        payload = {**e.payload, "value": "in"} if e.seq == 1 else e.payload
        new = replace(ledger.next_entry(head, "a", e.kind, payload, e.at_ms), id=e.id)
        forged.append(new)
        head = new.head
    book.entries = [next((f for f in forged if f.id == e.id), e) for e in book.entries]
    problems = book.verify()
    assert [(p.code, p.account_id, p.seq, p.checkpoint_id) for p in problems] == [
        (ledger.REWRITTEN, "a", 3, 1),
        (ledger.REWRITTEN, "a", 4, 2),
    ]


def test_an_entry_slipped_in_below_the_last_checkpoint_is_found():
    book = _small_book()
    b_head = max((e for e in book.entries if e.account_id == "b"), key=lambda e: e.seq)
    slipped = replace(ledger.next_entry(b_head.head, "b", "choice", {"value": "in"}, T0), id=b_head.id + 1)
    assert slipped.id not in {e.id for e in book.entries}
    book.entries.append(slipped)
    problems = book.verify()
    assert [(p.code, p.entry_id) for p in problems] == [(ledger.UNCOVERED, slipped.id)]


# --- in the relay's database (SQLite and PostgreSQL) ------------------------------------------------------


@pytest.fixture
async def engine(database_url: str):  # noqa: ANN201
    engine = create_engine(database_url)
    await migrate(engine)
    yield engine
    await engine.dispose()


A, B, C = "9b2e6a4c-1f3d-4e5a-8b7c-000000000001", "9b2e6a4c-1f3d-4e5a-8b7c-000000000002", "acct-c"


async def seed(engine) -> dict[str, list[Entry]]:  # noqa: ANN001
    """Accounts A (4 entries), B (3) and C (2), interleaved; a checkpoint after the first six and at the end."""
    made: dict[str, list[Entry]] = {A: [], B: [], C: []}
    plan = [
        (A, "notice_served", {"policy_version": "2026-11", "text_hash": "ab" * 32, "surface": "onboarding"}),
        (B, "notice_served", {"policy_version": "2026-11", "text_hash": "ab" * 32, "surface": "onboarding"}),
        (A, "terms_accepted", {"policy_version": "2026-11", "method": "tap_agree", "locale": "de-DE"}),
        (A, "choice", {"purpose": "ads", "value": "out", "legal_basis": "consent", "method": "toggle"}),
        (B, "choice", {"purpose": "analytics", "value": "in", "app_version": "0.1.0", "note": "ünïcode ✓"}),
        (C, "notice_served", {"policy_version": "2026-11", "ratio": 0.1}),
    ]
    for account, kind, payload in plan:
        async with engine.begin() as conn:
            made[account].append(await ledger_storage.append(conn, account, kind, payload, T0 + len(made[account])))
    async with engine.begin() as conn:
        assert await ledger_storage.checkpoint(conn, T0 + 10) is not None
    for account, kind, payload in [
        (A, "withdrawal", {"purpose": "ads", "method": "settings"}),
        (B, "objection", {"purpose": "analytics"}),
        (C, "choice", {"purpose": "ads", "value": "in"}),
    ]:
        async with engine.begin() as conn:
            made[account].append(await ledger_storage.append(conn, account, kind, payload, T0 + 20))
    async with engine.begin() as conn:
        assert await ledger_storage.checkpoint(conn, T0 + 30) is not None
    return made


async def problems_in(engine) -> list[Problem]:  # noqa: ANN001
    async with engine.connect() as conn:
        return await ledger_storage.verify_database(conn)


async def sql(engine, *statements: str, **params) -> None:  # noqa: ANN001, ANN003
    async with engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement), params)


async def test_db_ledger_appends_loads_and_verifies(engine):
    made = await seed(engine)
    assert await problems_in(engine) == []
    async with engine.begin() as conn:
        assert await ledger_storage.checkpoint(conn, T0 + 40) is None  # nothing changed since
        assert await ledger_storage.load_account(conn, A) == made[A]
        assert await ledger_storage.load_account(conn, "nobody") == []
        loaded = await ledger_storage.load_all(conn)
        assert await ledger_storage.count(conn) == (9, 2)
    assert loaded.entries == sorted((e for es in made.values() for e in es), key=lambda e: e.id)
    assert [e.seq for e in made[A]] == [1, 2, 3, 4]
    assert made[B][1].payload["note"] == "ünïcode ✓" and made[C][0].payload["ratio"] == 0.1
    assert [len(cp.heads) for cp in loaded.checkpoints] == [3, 3]
    assert loaded.checkpoints[1].prev_hash == loaded.checkpoints[0].hash
    assert loaded.checkpoints[1].last_entry_id == max(e.id for e in loaded.entries)


async def test_db_row_ids_are_never_reused(engine):
    made = await seed(engine)
    last = made[C][-1]
    await sql(engine, "DELETE FROM ledger_entries WHERE id = :id", id=last.id)
    async with engine.begin() as conn:
        again = await ledger_storage.append(conn, C, "choice", {"value": "out"}, T0 + 50)
    assert again.id > last.id and again.seq == last.seq


async def test_db_concurrent_appends_to_one_account_cannot_fork_its_chain(engine):
    await seed(engine)
    async with engine.connect() as one, engine.connect() as two:
        first = await ledger_storage.append(one, A, "choice", {"value": "in"}, T0 + 60)
        racing = asyncio.create_task(ledger_storage.append(two, A, "choice", {"value": "out"}, T0 + 60))
        await asyncio.sleep(0.3)  # the second read the same head (seq 4) and now waits on the first's row
        await one.commit()
        with pytest.raises(IntegrityError):  # the same (account, seq): only one gets through
            await racing
    async with engine.connect() as conn:
        assert (await ledger_storage.load_account(conn, A))[-1] == first
    assert await problems_in(engine) == []


async def test_db_updated_payload_is_named(engine):
    made = await seed(engine)
    victim = made[A][2]  # the ads choice: "out" becomes "in"
    await sql(
        engine,
        "UPDATE ledger_entries SET payload = :p WHERE id = :id",
        p=json.dumps({**victim.payload, "value": "in"}),
        id=victim.id,
    )
    problems = await problems_in(engine)
    assert [(p.code, p.entry_id, p.account_id, p.seq) for p in problems] == [(ledger.EDITED, victim.id, A, 3)]
    assert str(problems[0]).startswith(f"entry {victim.id} (account {A}, seq 3): ")


async def test_db_unreadable_payload_is_named(engine):
    made = await seed(engine)
    await sql(engine, "UPDATE ledger_entries SET payload = 'not json' WHERE id = :id", id=made[B][0].id)
    assert [(p.code, p.entry_id) for p in await problems_in(engine)] == [(ledger.UNREADABLE_PAYLOAD, made[B][0].id)]


async def test_db_deleted_middle_entry_is_named(engine):
    made = await seed(engine)
    await sql(engine, "DELETE FROM ledger_entries WHERE id = :id", id=made[A][1].id)
    problems = await problems_in(engine)
    assert [(p.code, p.entry_id, p.seq) for p in problems] == [(ledger.MISSING, made[A][2].id, 3)]
    assert "seq 2 is missing" in problems[0].message


async def test_db_deleted_tail_after_a_checkpoint_is_named(engine):
    made = await seed(engine)
    await sql(engine, "DELETE FROM ledger_entries WHERE id = :id", id=made[A][-1].id)  # the withdrawal
    problems = await problems_in(engine)
    assert [(p.code, p.account_id, p.seq, p.checkpoint_id) for p in problems] == [(ledger.TAIL_DELETED, A, 4, 2)]
    assert "ends at seq 3" in problems[0].message and "deleted" in problems[0].message


async def test_db_deleted_account_history_is_named(engine):
    await seed(engine)
    await sql(engine, "DELETE FROM ledger_entries WHERE account_id = :a", a=C)
    problems = await problems_in(engine)
    assert {(p.code, p.account_id, p.checkpoint_id) for p in problems} == {
        (ledger.TAIL_DELETED, C, 1),
        (ledger.TAIL_DELETED, C, 2),
    }
    assert all("no entries left" in p.message for p in problems)


async def test_db_swapped_row_ids_are_named(engine):
    made = await seed(engine)
    one, two = made[A][1], made[A][2]
    await sql(
        engine,
        "UPDATE ledger_entries SET id = -1 WHERE id = :one",
        "UPDATE ledger_entries SET id = :one WHERE id = :two",
        "UPDATE ledger_entries SET id = :two WHERE id = -1",
        one=one.id,
        two=two.id,
    )
    problems = await problems_in(engine)
    assert problems and all(p.code == ledger.REORDERED for p in problems)
    assert {(p.entry_id, p.seq) for p in problems} <= {(two.id, one.seq), (one.id, two.seq)}


async def test_db_swapped_seqs_are_named(engine):
    made = await seed(engine)
    one, two = made[B][0], made[B][1]
    await sql(
        engine,
        "UPDATE ledger_entries SET seq = -1 WHERE id = :one",
        "UPDATE ledger_entries SET seq = :s1 WHERE id = :two",
        "UPDATE ledger_entries SET seq = :s2 WHERE id = :one",
        one=one.id,
        two=two.id,
        s1=one.seq,
        s2=two.seq,
    )
    problems = await problems_in(engine)
    assert {p.entry_id for p in problems if p.code == ledger.EDITED} == {one.id, two.id}
    assert any(p.code == ledger.REORDERED for p in problems)


async def test_db_swapped_payloads_are_named(engine):
    made = await seed(engine)
    one, two = made[A][0], made[B][1]
    await sql(
        engine,
        "UPDATE ledger_entries SET payload = :p WHERE id = :id",
        p=ledger.canonical_json(two.payload),
        id=one.id,
    )
    await sql(
        engine,
        "UPDATE ledger_entries SET payload = :p WHERE id = :id",
        p=ledger.canonical_json(one.payload),
        id=two.id,
    )
    assert {(p.code, p.entry_id) for p in await problems_in(engine)} == {
        (ledger.EDITED, one.id),
        (ledger.EDITED, two.id),
    }


async def test_db_edited_checkpoint_is_named(engine):
    await seed(engine)
    await sql(engine, "UPDATE ledger_checkpoints SET last_entry_id = last_entry_id - 1 WHERE id = 1")
    problems = await problems_in(engine)
    assert [(p.code, p.checkpoint_id) for p in problems] == [(ledger.CHECKPOINT_EDITED, 1)]
    assert str(problems[0]).startswith("checkpoint 1: ")


async def test_db_deleted_checkpoint_is_named(engine):
    await seed(engine)
    await sql(engine, "DELETE FROM ledger_checkpoints WHERE id = 1")
    problems = await problems_in(engine)
    assert [(p.code, p.checkpoint_id) for p in problems][:1] == [(ledger.CHECKPOINT_MISSING, 2)]


async def test_db_history_rewritten_after_a_checkpoint_is_named(engine):
    """Rewrite A's ads refusal as consent and re-hash the chain after it: only the checkpoint can tell."""
    made = await seed(engine)
    head = made[A][1].head
    for e in made[A][2:]:
        payload = {**e.payload, "value": "in"} if e.seq == 3 else e.payload
        forged = ledger.next_entry(head, A, e.kind, payload, e.at_ms)
        await sql(
            engine,
            "UPDATE ledger_entries SET payload = :p, prev_hash = :prev, hash = :h WHERE id = :id",
            p=ledger.canonical_json(forged.payload),
            prev=forged.prev_hash,
            h=forged.hash,
            id=e.id,
        )
        head = forged.head
    problems = await problems_in(engine)
    assert [(p.code, p.account_id, p.seq, p.checkpoint_id) for p in problems] == [
        (ledger.REWRITTEN, A, 3, 1),
        (ledger.REWRITTEN, A, 4, 2),
    ]


async def test_checkpoint_forever_checkpoints_in_the_background(engine):
    made = await seed(engine)
    async with engine.begin() as conn:
        await ledger_storage.append(conn, A, "choice", {"value": "in"}, T0 + 70)
    task = asyncio.create_task(ledger_storage.checkpoint_forever(engine, every_seconds=0.05))
    try:
        for _ in range(100):
            async with engine.connect() as conn:
                if (await ledger_storage.count(conn))[1] == 3:
                    break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
    async with engine.connect() as conn:
        loaded = await ledger_storage.load_all(conn)
    assert len(loaded.checkpoints) == 3
    assert loaded.checkpoints[-1].heads == (ledger.Head(A, len(made[A]) + 1, loaded.entries[-1].hash),)
    assert await problems_in(engine) == []


# --- the CLI ------------------------------------------------------------------------------------------------

cli = typer.Typer()
cli.command("verify")(verify)
cli.command("export")(export)
runner = CliRunner()


class Seeded(NamedTuple):
    path: Path
    made: dict[str, list[Entry]]


@pytest.fixture
def relay_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Seeded:
    path = tmp_path / "data" / "cove.db"
    monkeypatch.setenv("COVE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COVE_DATABASE_URL", f"sqlite+aiosqlite:///{path}")
    monkeypatch.setenv("COVE_CONFIG", str(tmp_path / "absent.toml"))

    async def prepare() -> dict[str, list[Entry]]:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        try:
            await migrate(engine)
            return await seed(engine)
        finally:
            await engine.dispose()

    return Seeded(path, asyncio.run(prepare()))


def test_cli_verify_intact_then_tampered(relay_db: Seeded):
    result = runner.invoke(cli, ["verify"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "ledger intact: 9 entries, 2 checkpoints"

    victim = relay_db.made[A][2]
    with sqlite3.connect(relay_db.path) as db:
        db.execute('UPDATE ledger_entries SET payload = \'{"value":"in"}\' WHERE id = ?', (victim.id,))
    result = runner.invoke(cli, ["verify"])
    assert result.exit_code == 1
    assert f"entry {victim.id} (account {A}, seq 3): its content no longer matches its hash" in result.stdout


def test_cli_verify_an_empty_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A relay that has run but recorded no consent act yet (a missing database is refused: test_operator_cli)."""
    monkeypatch.setenv("COVE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("COVE_DATABASE_URL", raising=False)
    monkeypatch.setenv("COVE_CONFIG", str(tmp_path / "absent.toml"))

    async def relay_started() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'cove.db'}")
        try:
            await migrate(engine)
        finally:
            await engine.dispose()

    asyncio.run(relay_started())
    result = runner.invoke(cli, ["verify"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "ledger intact: 0 entries, 0 checkpoints"


def _recomputed(record: dict, account: str) -> str:
    chain = record["ledger"]
    return ledger.entry_hash(
        account, chain["seq"], chain["kind"], record["payload"], chain["at_ms"], chain["prev_hash"]
    )


def test_cli_export_writes_receipts(relay_db: Seeded, tmp_path: Path):
    made = relay_db.made[A]
    result = runner.invoke(cli, ["export", "--account", A])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["pii_principal_id"] == A and doc["schema_version"]
    assert doc["verification"]["chain_intact"] is True
    assert doc["verification"]["head_hash"] == made[-1].hash
    records = doc["records"]
    assert [r["event"]["event_type"] for r in records] == ["notice_served", "given", "refused", "withdrawn"]
    assert [r["ledger"]["hash"] for r in records] == [e.hash for e in made]
    assert all(_recomputed(r, A) == r["ledger"]["hash"] for r in records)
    assert records[0]["notice"] == {"policy_version": "2026-11", "text_hash": "ab" * 32}
    assert records[0]["event"]["surface"] == "onboarding"
    assert records[2]["processing"] == {"purpose": "ads", "legal_basis": "consent"}
    assert records[2]["event"]["method"] == "toggle"
    assert records[2]["event"]["event_time"].endswith("Z")
    assert records[1]["record_id"] == f"{A}/2" and records[1]["pii_principal_id"] == A

    out = tmp_path / "receipts.json"
    result = runner.invoke(cli, ["export", "--account", B, "--output", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert [r["event"]["event_type"] for r in doc["records"]] == ["notice_served", "given", "objected"]
    assert doc["records"][1]["payload"]["note"] == "ünïcode ✓"


def test_cli_export_of_an_unknown_account_fails(relay_db: Seeded):
    result = runner.invoke(cli, ["export", "--account", "nobody"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "no entries for account 'nobody'" in result.stderr
