"""Revocation everywhere: whatever way the partner stops holding a shared row, every row it derived from it goes
at that ingest, and what it derived from its own data alone stays (cove.partner.lineage)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import duckdb
import pytest

from cove.partner.audiences import build_audiences
from cove.partner.ingest import apply_batch
from cove.partner.store import open_store
from cove.partner.suggestions import suggest
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
)

Use = wire.Use
Reason = wire.RevocationReason
MESSENGER_NUMBER = "+447700900501"  # s1's number: only the messenger knows it is user 1's
PHONES = {2: "+447700900002", 3: "+447700900003", 4: "+447700900004", 5: "+447700900005"}


class World:
    """Five parent users; user 1 gave the parent no number, and is messenger subject s1 (linked)."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, root: Path) -> None:
        self.conn, self.root, self.m = conn, root, Messenger()
        for user_id in range(1, 6):
            conn.execute(
                "INSERT INTO users (user_id, name, phone_e164) VALUES (?, ?, ?)",
                [user_id, f"user {user_id}", PHONES.get(user_id)],
            )
        conn.execute("INSERT INTO friendships VALUES (3, 4), (4, 5)")  # 3 and 5: friends of friends
        conn.executemany(
            "INSERT INTO contact_uploads VALUES (?, ?)",
            [(3, MESSENGER_NUMBER), (3, PHONES[2]), (5, MESSENGER_NUMBER), (1, PHONES[5]), (1, PHONES[2])],
        )

    def send(
        self,
        purposes: Sequence[Purpose] = (),
        revocations: Sequence[Revocation] = (),
        *,
        kind: str = "incremental",
        now_ms: int = NOW_MS,
    ) -> None:
        apply_batch(self.conn, self.m.write(self.root, purposes, revocations, kind=kind), self.m.trust, now_ms)

    def linking(self, *subjects: str, retention_days: int | None = None) -> Purpose:
        rows = [
            {"subject": s, "phone_hash": self.m.phone_hash(MESSENGER_NUMBER), "vendor_device_id": "vd"}
            for s in subjects
        ]
        return Purpose("linking", Use.ACCOUNT_LINKING, LINKING_CATEGORIES, rows, retention_days=retention_days)

    def friends(self, *subjects: str, retention_days: int | None = None) -> Purpose:
        rows = [{"subject": s, "phone_hash": self.m.phone_hash(MESSENGER_NUMBER)} for s in subjects]
        return Purpose("friends", Use.FRIEND_SUGGESTIONS, [wire.CATEGORY_PHONE], rows, retention_days=retention_days)

    def safety(self, rows: dict[str, tuple[str | None, str]], retention_days: int | None = None) -> Purpose:
        """subject -> (phone or None, reason code)."""
        return Purpose(
            "safety",
            Use.SAFETY,
            SAFETY_CATEGORIES,
            [
                {"subject": s, "phone_hash": self.m.phone_hash(p) if p else None, "reason_code": c, "banned_day": TODAY}
                for s, (p, c) in rows.items()
            ],
            retention_days=retention_days,
        )

    def link(self, subject: str, user_id: int) -> None:
        """What ``cove partner link`` writes for a subject it matched (linking itself is tested elsewhere)."""
        self.conn.execute("INSERT INTO links VALUES (?, ?, 0.999, 'vendor_device_id', ?)", [subject, user_id, NOW_MS])

    def suggestions(self) -> set[tuple[int, int]]:
        return set(self.conn.execute("SELECT user_id, suggested FROM suggestions").fetchall())

    def blocks(self) -> dict[int, str]:
        return dict(
            self.conn.execute(
                "SELECT user_id, blocked_for_safety FROM users WHERE blocked_for_safety IS NOT NULL"
            ).fetchall()
        )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    conn = open_store(":memory:")
    yield World(conn, tmp_path)
    conn.close()


OWN = {(3, 2), (2, 3), (1, 2), (2, 1), (3, 5), (5, 3)}  # own numbers and friends of friends
THROUGH_S1 = {(3, 1), (1, 3)}  # 3's book holds s1's number: both directions
MIXED = {(5, 1), (1, 5)}  # 1's book holds 5's own number, 5's book holds s1's: messenger data raised the score


def _forget_s1(w: World, kind: str) -> None:
    if kind == "full batch":
        w.send([w.friends()], kind="full")
    elif kind == "expired":
        w.send([], now_ms=NOW_MS + 2 * DAY_MS)
    else:
        reason, purpose = {
            "friends withdrawn": (Reason.WITHDRAWN, "friends"),
            "linking withdrawn": (Reason.WITHDRAWN, "linking"),
            "erased": (Reason.ERASED, None),
            "banned": (Reason.BANNED, None),
        }[kind]
        w.send([], [Revocation("s1", reason, purpose)])


@pytest.mark.parametrize(
    "kind", ["friends withdrawn", "linking withdrawn", "erased", "banned", "full batch", "expired"]
)
def test_forgetting_a_subject_takes_the_suggestions_built_from_it_both_ways(world: World, kind: str) -> None:
    retention = 1 if kind == "expired" else None
    world.send([world.linking("s1"), world.friends("s1", retention_days=retention)])
    world.link("s1", 1)
    suggest(world.conn, world.m.phone_key)
    assert world.suggestions() == OWN | THROUGH_S1 | MIXED

    _forget_s1(world, kind)

    # The suggestions shown to user 1 go too, and those messenger data only helped; the parent's own stay.
    assert world.suggestions() == OWN
    assert world.conn.execute("SELECT count(*) FROM suggestion_sources").fetchone() == (0,)


def test_suggestions_written_before_lineage_go_when_they_name_or_are_shown_to_the_linked_user(world: World) -> None:
    world.send([world.linking("s1"), world.friends("s1")])
    world.link("s1", 1)
    world.conn.execute(
        "INSERT INTO suggestions (user_id, suggested, score, source, rank) VALUES "
        "(3, 1, 1, 'contact_book', 1), (1, 3, 1, 'contact_book', 1), (3, 2, 1, 'contact_book', 2)"
    )

    world.send([], [Revocation("s1", Reason.WITHDRAWN, "friends")])

    assert world.suggestions() == {(3, 2)}


# --- safety ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["withdrawn", "erased", "full batch", "expired"])
def test_a_block_is_lifted_when_the_safety_row_behind_it_goes(world: World, kind: str) -> None:
    world.send([world.safety({"s9": (PHONES[2], "spam")}, retention_days=1 if kind == "expired" else None)])
    assert world.blocks() == {2: "spam"}

    if kind == "withdrawn":
        world.send([], [Revocation("s9", Reason.WITHDRAWN, "safety")])
    elif kind == "erased":
        world.send([], [Revocation("s9", Reason.ERASED)])
    elif kind == "full batch":
        world.send([world.safety({})], kind="full")
    else:
        world.send([], now_ms=NOW_MS + 2 * DAY_MS)
    assert world.blocks() == {}


def test_a_block_reached_through_a_link_goes_with_the_link_unless_another_path_holds(world: World) -> None:
    world.send([world.linking("s1", "s2"), world.safety({"s1": (None, "spam"), "s2": (PHONES[2], "spam")})])
    world.link("s1", 1)
    world.link("s2", 2)
    world.send([])  # the safety step runs at every ingest: now through the links
    assert world.blocks() == {1: "spam", 2: "spam"}

    world.send([], [Revocation("s1", Reason.WITHDRAWN, "linking"), Revocation("s2", Reason.WITHDRAWN, "linking")])

    assert world.blocks() == {2: "spam"}  # user 2 is still reached by its own number


def test_a_lifted_path_leaves_the_smallest_reason_of_those_left(world: World) -> None:
    world.send([world.safety({"s8": (PHONES[2], "spam"), "s9": (PHONES[2], "abuse")})])
    assert world.blocks() == {2: "abuse"}

    world.send([], [Revocation("s9", Reason.ERASED)])

    assert world.blocks() == {2: "spam"}


def test_a_ban_blocks_through_the_link_it_deletes_until_the_safety_row_goes(world: World) -> None:
    world.send([world.linking("s1")])
    world.link("s1", 1)

    world.send([world.safety({"s1": (None, "bulk_messaging")})], [Revocation("s1", Reason.BANNED)])
    assert world.conn.execute("SELECT count(*) FROM links").fetchone() == (0,)
    assert world.blocks() == {1: "bulk_messaging"}
    world.send([])  # later batches keep it: the path rests on the safety row alone
    assert world.blocks() == {1: "bulk_messaging"}

    world.send([], [Revocation("s1", Reason.ERASED)])
    assert world.blocks() == {}


def test_a_block_from_before_lineage_stays(world: World) -> None:
    world.conn.execute("UPDATE users SET blocked_for_safety = 'spam' WHERE user_id = 4")
    world.send([world.safety({"s9": (PHONES[2], "spam")})])

    world.send([], [Revocation("s9", Reason.ERASED)])

    assert world.blocks() == {4: "spam"}


# --- audiences -------------------------------------------------------------------------------------------


def test_an_audience_goes_with_the_purpose_it_was_built_from_and_another_purpose_rebuilds_it(world: World) -> None:
    def ads(purpose: str, *subjects: str) -> Purpose:
        return Purpose(purpose, Use.ADVERTISING, ADS_CATEGORIES, [ads_row(s) for s in subjects])

    world.send([ads("ads", "s1", "s2"), ads("ads_partners", "s1")])
    build_audiences(world.conn, NOW_MS)
    audience = "SELECT DISTINCT subject FROM audiences"
    assert set(world.conn.execute(audience).fetchall()) == {("s1",), ("s2",)}

    world.send([], [Revocation("s1", Reason.WITHDRAWN, "ads")])
    assert set(world.conn.execute(audience).fetchall()) == {("s2",)}  # built from both: it went

    build_audiences(world.conn, NOW_MS)
    assert set(world.conn.execute(audience).fetchall()) == {("s1",), ("s2",)}  # ads_partners alone still allows it


# --- a purpose that changes use --------------------------------------------------------------------------


def test_a_purpose_declared_with_another_use_loses_what_was_derived_under_the_old_one(world: World) -> None:
    rows = [ads_row("s1") | {"phone_hash": world.m.phone_hash(MESSENGER_NUMBER), "vendor_device_id": "vd"}]
    categories = [*ADS_CATEGORIES, wire.CATEGORY_PHONE, wire.CATEGORY_VENDOR_DEVICE_ID]
    world.send([Purpose("p", Use.ADVERTISING, categories, rows)])
    build_audiences(world.conn, NOW_MS)
    assert world.conn.execute("SELECT count(*) FROM audiences").fetchone()[0] > 0

    world.send([Purpose("p", Use.ACCOUNT_LINKING, categories, rows)])
    assert world.conn.execute("SELECT count(*) FROM audiences").fetchone() == (0,)
    world.link("s1", 1)

    world.send([Purpose("p", Use.FRIEND_SUGGESTIONS, categories, rows)])
    assert world.conn.execute("SELECT count(*) FROM links").fetchone() == (0,)
    assert world.conn.execute("SELECT count(*) FROM shared_profiles").fetchone() == (1,)  # the row itself stays
