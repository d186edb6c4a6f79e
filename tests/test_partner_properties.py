"""Properties of ingest over random batch chains: replays change nothing, revocations leave nothing behind,
audiences never hold anyone not shared for advertising."""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from cove.partner.audiences import AUDIENCE_SQL, build_audiences
from cove.partner.ingest import apply_batch
from cove.partner.store import open_store
from cove.sharing import wire
from partner_batches import ADS_CATEGORIES, NOW_MS, TODAY, Messenger, Purpose, Revocation, store_snapshot

SUBJECTS = [f"s{i}" for i in range(5)]
PURPOSE_IDS = ["p0", "p1", "p2"]
Reason = wire.RevocationReason


@dataclass
class BatchSpec:
    kind: str
    rows: dict[str, list[str]]  # purpose -> subjects
    usage: dict[str, bool]
    revocations: list[Revocation]


def _categories(use: wire.Use) -> list[str]:
    if use == wire.Use.SAFETY:
        return [wire.CATEGORY_PHONE, wire.CATEGORY_SAFETY]
    return [*ADS_CATEGORIES, wire.CATEGORY_VENDOR_DEVICE_ID, wire.CATEGORY_USAGE]


def _row(subject: str, i: int) -> dict:
    """Every column any purpose here declares; each purpose's schema keeps its own."""
    return {
        "subject": subject,
        "device_model": f"model {i % 2}",
        "os_name": ("Android", "iOS")[i % 2],
        "os_version": "14",
        "last_seen_day": TODAY - dt.timedelta(days=i * 9),
        "vendor_device_id": f"vd-{subject}",
        "phone_hash": f"hash-{subject}",
        "reason_code": "spam",
        "banned_day": TODAY,
    }


@st.composite
def revocations(draw: st.DrawFn) -> Revocation:
    reason = draw(st.sampled_from(list(Reason)))
    purpose = None if reason in (Reason.ERASED, Reason.BANNED) else draw(st.sampled_from(PURPOSE_IDS))
    return Revocation(draw(st.sampled_from(SUBJECTS)), reason, purpose)


@st.composite
def batch_specs(draw: st.DrawFn) -> BatchSpec:
    purposes = draw(st.lists(st.sampled_from(PURPOSE_IDS), unique=True, max_size=3))
    return BatchSpec(
        kind=draw(st.sampled_from(["incremental", "full"])),
        rows={p: draw(st.lists(st.sampled_from(SUBJECTS), unique=True, max_size=4)) for p in purposes},
        usage={p: draw(st.booleans()) for p in purposes},
        revocations=draw(st.lists(revocations(), max_size=4)),
    )


uses_st = st.fixed_dictionaries({p: st.sampled_from(list(wire.Use)) for p in PURPOSE_IDS})


def _purposes(spec: BatchSpec, uses: dict[str, wire.Use]) -> list[Purpose]:
    return [
        Purpose(
            p,
            uses[p],
            _categories(uses[p]),
            [_row(s, i) for i, s in enumerate(subjects)],
            usage=[
                {"subject": s, "day": TODAY, "messages_sent": 1, "messages_received": 2, "app_opens": 3}
                for s in subjects
            ]
            if spec.usage[p] and uses[p] != wire.Use.SAFETY
            else None,
        )
        for p, subjects in spec.rows.items()
    ]


def _held(conn: duckdb.DuckDBPyConnection, table: str, purpose: str | None = None) -> set[str]:
    where = "" if purpose is None else " WHERE purpose = ?"
    return {s for (s,) in conn.execute(f"SELECT subject FROM {table}{where}", [purpose] if purpose else []).fetchall()}


def _advertising_subjects(conn: duckdb.DuckDBPyConnection) -> set[str]:
    rows = conn.execute(
        "SELECT s.subject FROM shared_profiles s JOIN shared_purposes p USING (purpose) WHERE p.use = 'advertising'"
    ).fetchall()
    return {s for (s,) in rows}


def _audiences_of(conn: duckdb.DuckDBPyConnection, subject: str) -> set[str]:
    return {a for (a,) in conn.execute("SELECT audience FROM audiences WHERE subject = ?", [subject]).fetchall()}


def _derivable_audiences(conn: duckdb.DuckDBPyConnection, subject: str) -> set[str]:
    today = dt.datetime.fromtimestamp(NOW_MS / 1000, dt.UTC).date()
    rows = conn.execute(
        f"SELECT audience FROM ({AUDIENCE_SQL}) WHERE subject = $subject", {"today": today, "subject": subject}
    )
    return {a for (a,) in rows.fetchall()}


def _check_revocations(conn: duckdb.DuckDBPyConnection, spec: BatchSpec, uses: dict[str, wire.Use]) -> None:
    """Nothing a batch revoked survives it, except rows the same batch sent again (consent given anew)."""
    known = {p for (p,) in conn.execute("SELECT purpose FROM shared_purposes").fetchall()}
    resent = {(p, s) for p, subjects in spec.rows.items() for s in subjects}
    for r in spec.revocations:
        if r.reason == Reason.ERASED:
            for table in ("shared_profiles", "shared_usage", "links", "audiences"):
                assert r.subject not in _held(conn, table), (r, table)
            continue
        if r.reason == Reason.BANNED:
            revoked = [p for p in known if uses[p] != wire.Use.SAFETY]
        else:
            revoked = [r.purpose] if r.purpose in known else []
        for p in revoked:
            if (p, r.subject) not in resent:
                assert r.subject not in _held(conn, "shared_profiles", p), (r, p)
                assert r.subject not in _held(conn, "shared_usage", p), (r, p)
            if uses[p] == wire.Use.ACCOUNT_LINKING:
                assert r.subject not in _held(conn, "links"), (r, p)
            if uses[p] == wire.Use.ADVERTISING:  # what stays, the subject's other advertising rows still give
                assert _audiences_of(conn, r.subject) <= _derivable_audiences(conn, r.subject), (r, p)


@settings(max_examples=30, deadline=None)
@given(uses=uses_st, specs=st.lists(batch_specs(), min_size=1, max_size=4))
def test_random_chains(uses: dict[str, wire.Use], specs: list[BatchSpec]) -> None:
    conn = open_store(":memory:")
    for i, subject in enumerate(SUBJECTS):
        conn.execute("INSERT INTO users (user_id, name, birth_year) VALUES (?, ?, 1990)", [i, subject])
        conn.execute("INSERT INTO links VALUES (?, ?, 1.0, 'phone', 0)", [subject, i])
    m = Messenger()
    applied: list[Path] = []
    with tempfile.TemporaryDirectory() as root:
        for spec in specs:
            batch = m.write(Path(root), _purposes(spec, uses), spec.revocations, kind=spec.kind)
            apply_batch(conn, batch, m.trust, NOW_MS)
            applied.append(batch)
            _check_revocations(conn, spec, uses)
            assert _held(conn, "audiences") <= _advertising_subjects(conn)
            build_audiences(conn, NOW_MS)
            assert _held(conn, "audiences") <= _advertising_subjects(conn)

        final = store_snapshot(conn)
        for batch in applied:  # every prefix of the chain, replayed batch by batch
            assert apply_batch(conn, batch, m.trust, NOW_MS + 1).already_applied
            assert store_snapshot(conn) == final
    conn.close()
