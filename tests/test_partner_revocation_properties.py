"""Property: after every ingest, nothing the partner derived from a row it no longer holds remains.

Hypothesis writes histories of signed batches (grants, withdrawals, objections, erasures, bans, full batches,
retention expiry) and runs the derivations (link, suggest, audiences; the safety step runs at every ingest)
between them at random. The oracle never reads the lineage tables: when a derivation runs it works out in Python,
from the shared rows and the parent's own tables, what each derived row was built from, and after each ingest it
checks that every derived row still has all of that, and (for suggestions) that what the parent's own data alone
supported is still there.

Linking here is the deterministic pre-pass of ``cove partner link`` (same vendor device id, account-linking rows
only): Splink needs hundreds of pairs to estimate anything and links none of a handful (measured: 0 of 4 exact
matches, a second a run). What the property is about, which subjects may hold a link, is the same.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from cove.partner.audiences import build_audiences
from cove.partner.ingest import apply_batch
from cove.partner.store import open_store
from cove.partner.suggestions import suggest
from cove.sharing import wire
from partner_batches import ADS_CATEGORIES, DAY_MS, LINKING_CATEGORIES, NOW_MS, TODAY, Messenger, Purpose, Revocation

Use = wire.Use
Reason = wire.RevocationReason

# Parent users 1-5; subject s<i> is user i on the messenger. Users 1 and 2 gave the parent the number they use on
# the messenger; 3 and 4 did not, so only a linked friend_suggestions row says whose number it is.
PARENT_PHONES = {1: "+447700900001", 2: "+447700900002", 5: "+447700900005"}
NUMBERS = {"s1": "+447700900001", "s2": "+447700900002", "s3": "+447700900903", "s4": "+447700900904"}
SUBJECTS = sorted(NUMBERS)
BOOKS = {1: ["s3", "s4", "s2"], 2: ["s3"], 3: ["s1"], 4: ["s3"], 5: ["s4", "s1"]}  # whose numbers each book holds
FRIENDSHIPS = [(1, 2), (2, 5)]
REASONS = {"s1": "abuse", "s2": "spam", "s3": "spam", "s4": "bulk_messaging"}
PURPOSES = {  # id -> (use, categories, retention days)
    "link": (Use.ACCOUNT_LINKING, LINKING_CATEGORIES, None),
    "friends": (Use.FRIEND_SUGGESTIONS, [wire.CATEGORY_PHONE], None),
    "friends2": (Use.FRIEND_SUGGESTIONS, [wire.CATEGORY_PHONE], 1),
    "ads": (Use.ADVERTISING, ADS_CATEGORIES, None),
    "ads2": (Use.ADVERTISING, ADS_CATEGORIES, 1),
    "safety": (Use.SAFETY, [wire.CATEGORY_PHONE, wire.CATEGORY_SAFETY], None),
}
DERIVATIONS = ["link", "suggest", "audiences"]


@dataclass
class Step:
    kind: str
    rows: dict[str, list[str]]
    revocations: list[Revocation]
    days_later: int
    then: list[str]  # derivations run after this batch


@st.composite
def revocations(draw: st.DrawFn) -> Revocation:
    reason = draw(st.sampled_from(list(Reason)))
    purpose = None if reason in (Reason.ERASED, Reason.BANNED) else draw(st.sampled_from(sorted(PURPOSES)))
    return Revocation(draw(st.sampled_from(SUBJECTS)), reason, purpose)


@st.composite
def steps(draw: st.DrawFn) -> Step:
    purposes = draw(st.lists(st.sampled_from(sorted(PURPOSES)), unique=True, max_size=4))
    return Step(
        kind=draw(st.sampled_from(["incremental", "incremental", "full"])),
        rows={p: draw(st.lists(st.sampled_from(SUBJECTS), unique=True)) for p in purposes},
        revocations=draw(st.lists(revocations(), max_size=3)),
        days_later=draw(st.integers(0, 1)),
        then=draw(st.lists(st.sampled_from(DERIVATIONS), unique=True)),
    )


@dataclass
class Oracle:
    """What each derived row was built from, worked out when it was derived (never from the lineage tables)."""

    suggestion_inputs: dict[tuple[int, int], set[tuple[str, str, int]]] = field(default_factory=dict)
    audience_inputs: dict[str, set[str]] = field(default_factory=dict)  # subject -> advertising purposes
    ban_paths: set[tuple[str, int]] = field(default_factory=set)  # (subject, user) a ban's verdict went through


def _shared(conn: duckdb.DuckDBPyConnection, use: Use) -> dict[tuple[str, str], tuple[str | None, str | None]]:
    rows = conn.execute(
        """SELECT s.purpose, s.subject, s.phone_hash, s.reason_code FROM shared_profiles s
           JOIN shared_purposes p USING (purpose) WHERE p.use = ?""",
        [use.value],
    ).fetchall()
    return {(purpose, subject): (phone_hash, reason) for purpose, subject, phone_hash, reason in rows}


def _links(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return dict(conn.execute("SELECT subject, user_id FROM links").fetchall())


def _link(conn: duckdb.DuckDBPyConnection) -> None:
    """The exact vendor-id rule over account-linking rows; ``links`` then holds exactly what it found."""
    conn.execute("DELETE FROM links")
    conn.execute(
        """INSERT INTO links SELECT DISTINCT p.subject, u.user_id, 1.0, 'vendor_device_id', 0
           FROM shared_profiles p JOIN shared_purposes s USING (purpose) JOIN users u USING (vendor_device_id)
           WHERE s.use = 'account_linking'"""
    )


def _messenger_evidence(conn: duckdb.DuckDBPyConnection, m: Messenger) -> dict[tuple[int, int], set]:
    """(owner, holder) -> the (purpose, subject, holder) friend-suggestion rows that say whose number it is."""
    links, evidence = _links(conn), {}
    shared = _shared(conn, Use.FRIEND_SUGGESTIONS)
    for owner, book in BOOKS.items():
        for number in (NUMBERS[s] for s in book):
            if number in PARENT_PHONES.values():
                continue  # the parent's own record wins
            for (purpose, subject), (phone_hash, _) in shared.items():
                if phone_hash == m.phone_hash(number) and subject in links and links[subject] != owner:
                    evidence.setdefault((owner, links[subject]), set()).add((purpose, subject, links[subject]))
    return evidence


def _safety_paths(conn: duckdb.DuckDBPyConnection, m: Messenger, oracle: Oracle) -> dict[int, set[str]]:
    """user -> reason codes of the safety rows that reach it now: by its number, its link, or a ban's path."""
    links, paths = _links(conn), {}
    for (_, subject), (phone_hash, reason) in _shared(conn, Use.SAFETY).items():
        if reason is None:
            continue
        users = {u for u, phone in PARENT_PHONES.items() if phone_hash == m.phone_hash(phone)}
        users |= {links[subject]} if subject in links else set()
        users |= {u for s, u in oracle.ban_paths if s == subject}
        for user in users:
            paths.setdefault(user, set()).add(reason)
    return paths


def _derive(conn: duckdb.DuckDBPyConnection, m: Messenger, oracle: Oracle, name: str, now_ms: int) -> None:
    if name == "link":
        _link(conn)
    elif name == "suggest":
        evidence = _messenger_evidence(conn, m)
        suggest(conn, m.phone_key)
        rows = conn.execute("SELECT user_id, suggested FROM suggestions").fetchall()
        oracle.suggestion_inputs = {(u, v): evidence.get((u, v), set()) | evidence.get((v, u), set()) for u, v in rows}
    else:
        build_audiences(conn, now_ms)
        shared = _shared(conn, Use.ADVERTISING)
        subjects = {s for (s,) in conn.execute("SELECT DISTINCT subject FROM audiences").fetchall()}
        oracle.audience_inputs = {s: {p for p, t in shared if t == s} for s in subjects}


def _check(conn: duckdb.DuckDBPyConnection, m: Messenger, oracle: Oracle) -> None:
    links = _links(conn)
    linkable = {s for _, s in _shared(conn, Use.ACCOUNT_LINKING)}
    assert set(links) <= linkable, "a link outlived every account-linking row of its subject"

    friends_rows = _shared(conn, Use.FRIEND_SUGGESTIONS)
    held = set(conn.execute("SELECT user_id, suggested FROM suggestions").fetchall())
    for pair, inputs in oracle.suggestion_inputs.items():
        still = all((p, s) in friends_rows and links.get(s) == holder for p, s, holder in inputs)
        if not still:
            assert pair not in held, f"suggestion {pair} outlived {inputs}"
        elif not inputs:
            assert pair in held, f"suggestion {pair}, from the parent's own data only, was deleted"

    ads_rows = _shared(conn, Use.ADVERTISING)
    for (subject,) in conn.execute("SELECT DISTINCT subject FROM audiences").fetchall():
        built_from = oracle.audience_inputs.get(subject, set())
        assert built_from and all((p, subject) in ads_rows for p in built_from), f"{subject}'s audiences outlived"

    paths = _safety_paths(conn, m, oracle)
    blocked = conn.execute("SELECT user_id, blocked_for_safety FROM users WHERE blocked_for_safety NOT NULL").fetchall()
    for user, reason in blocked:
        assert reason in paths.get(user, set()), f"user {user} blocked for {reason}, reached by {paths.get(user)}"


def _purposes(step: Step, m: Messenger) -> list[Purpose]:
    def row(subject: str) -> dict:
        i = int(subject[1:])
        return {
            "subject": subject,
            "phone_hash": m.phone_hash(NUMBERS[subject]),
            "vendor_device_id": f"vd-{i}",
            "device_model": "Pixel 8",
            "os_name": "Android",
            "os_version": "14",
            "last_seen_day": TODAY,
            "reason_code": REASONS[subject],
            "banned_day": TODAY,
        }

    return [
        Purpose(p, PURPOSES[p][0], PURPOSES[p][1], [row(s) for s in subjects], retention_days=PURPOSES[p][2])
        for p, subjects in step.rows.items()
    ]


def _world(conn: duckdb.DuckDBPyConnection) -> None:
    for user in range(1, 6):
        conn.execute(
            "INSERT INTO users (user_id, name, phone_e164, vendor_device_id) VALUES (?, ?, ?, ?)",
            [user, f"user {user}", PARENT_PHONES.get(user), f"vd-{user}"],
        )
    conn.executemany("INSERT INTO friendships VALUES (?, ?)", FRIENDSHIPS)
    conn.executemany(
        "INSERT INTO contact_uploads VALUES (?, ?)", [(o, NUMBERS[s]) for o, book in BOOKS.items() for s in book]
    )


# Every history starts from everything shared and derived, so that each revocation has something to take.
GRANT_ALL = Step("incremental", {p: SUBJECTS for p in PURPOSES}, [], 0, DERIVATIONS)


@settings(max_examples=30)
@given(history=st.lists(steps(), min_size=1, max_size=4))
def test_nothing_derived_from_a_forgotten_row_survives_an_ingest(history: list[Step]) -> None:
    conn = open_store(":memory:")
    _world(conn)
    m, oracle, now = Messenger(), Oracle(), NOW_MS
    with tempfile.TemporaryDirectory() as root:
        for step in [GRANT_ALL, *history]:
            now += step.days_later * DAY_MS
            batch = m.write(Path(root), _purposes(step, m), step.revocations, kind=step.kind, as_of_ms=now)
            banned = {r.subject for r in step.revocations if r.reason == Reason.BANNED}
            links_before = _links(conn)
            apply_batch(conn, batch, m.trust, now)
            safety_now = _shared(conn, Use.SAFETY)
            oracle.ban_paths |= {
                (s, links_before[s])
                for s in banned & set(links_before)
                if any(t == s and reason for (_, t), (_, reason) in safety_now.items())
            }
            _check(conn, m, oracle)
            for name in step.then:
                _derive(conn, m, oracle, name, now)
    conn.close()


def test_the_oracle_sees_every_kind_of_derived_row() -> None:
    """The property is not vacuous: one history derives a messenger suggestion, an audience and a safety block."""
    conn = open_store(":memory:")
    _world(conn)
    m, oracle = Messenger(), Oracle()
    with tempfile.TemporaryDirectory() as root:
        apply_batch(conn, m.write(Path(root), _purposes(GRANT_ALL, m), []), m.trust, NOW_MS)
        for name in GRANT_ALL.then:
            _derive(conn, m, oracle, name, NOW_MS)
        apply_batch(conn, m.write(Path(root), []), m.trust, NOW_MS)  # the safety step now goes through links too
    assert any(oracle.suggestion_inputs.values()) and any(not i for i in oracle.suggestion_inputs.values())
    assert oracle.audience_inputs["s1"] == {"ads", "ads2"}
    assert set(_safety_paths(conn, m, oracle)) == {1, 2, 3, 4}
    _check(conn, m, oracle)
    conn.close()
