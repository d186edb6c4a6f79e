"""Friend suggestions: what may never be suggested, where contact-book evidence may come from, and quality.

A world of 3,000 parent users (a fifth of them never gave the parent their number, so only the messenger knows
it) is mirrored, linked and given suggestions once per module.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from cove.partner import suggestions
from cove.partner.linking import link
from cove.partner.population import World, WorldSpec, generate
from cove.partner.seed import SUGGESTIONS_PURPOSE, seed_store
from cove.partner.store import open_store
from cove.partner.suggestions import (
    Graph,
    SuggestReport,
    adjacency,
    evaluate_holdout,
    friends_of_friends,
    suggest,
)
from cove.sharing.wire import Use, phone_hash

KEY = hashlib.sha256(b"test partner key").digest()
NOW_MS = 1_700_000_000_000


@dataclass
class Suggested:
    conn: duckdb.DuckDBPyConnection
    world: World
    report: SuggestReport


@pytest.fixture(scope="module")
def suggested() -> Suggested:
    world = generate(WorldSpec(users=3_000, parent_phone=0.8), seed=11)
    conn = open_store(":memory:")
    seed_store(conn, world, NOW_MS, mirror=True, phone_key=KEY)
    link(conn, KEY, NOW_MS)
    return Suggested(conn, world, suggest(conn, KEY, k=10))


def _count(conn: duckdb.DuckDBPyConnection, sql: str) -> int:
    return conn.execute(sql).fetchall()[0][0]


def test_never_self_friends_or_blocked(suggested: Suggested) -> None:
    conn = suggested.conn
    assert suggested.report.written > 0.9 * 10 * 3_000
    assert _count(conn, "SELECT count(*) FROM suggestions WHERE user_id = suggested") == 0
    friends = """SELECT count(*) FROM suggestions s JOIN friendships f
                 ON f.a = least(s.user_id, s.suggested) AND f.b = greatest(s.user_id, s.suggested)"""
    assert _count(conn, friends) == 0
    assert _count(conn, "SELECT count(*) FROM blocks") > 0
    blocked = """SELECT count(*) FROM suggestions s JOIN (SELECT blocker AS x, blocked AS y FROM blocks
                                                          UNION ALL SELECT blocked, blocker FROM blocks) b
                 ON b.x = s.user_id AND b.y = s.suggested"""
    assert _count(conn, blocked) == 0


def test_ranks_are_dense_and_contact_books_come_first(suggested: Suggested) -> None:
    conn = suggested.conn
    assert _count(conn, "SELECT max(n) FROM (SELECT count(*) n FROM suggestions GROUP BY user_id)") == 10
    assert (
        _count(
            conn,
            """SELECT count(*) FROM (SELECT user_id, max(rank) r, count(*) n FROM suggestions
                           GROUP BY 1) WHERE r <> n""",
        )
        == 0
    )
    assert _count(conn, "SELECT count(*) FROM suggestions WHERE source = 'contact_book'") > 0
    assert (
        _count(
            conn,
            """SELECT count(*) FROM suggestions c JOIN suggestions f USING (user_id)
                           WHERE c.source = 'contact_book' AND f.source = 'friends_of_friends'
                           AND c.rank > f.rank""",
        )
        == 0
    )


def test_users_blocked_for_safety_are_not_suggested(suggested: Suggested) -> None:
    conn = suggested.conn
    banned = _count(conn, "SELECT suggested FROM suggestions GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")
    conn.execute("UPDATE users SET blocked_for_safety = 'spam' WHERE user_id = ?", [banned])
    try:
        suggest(conn, KEY, k=10)
        assert _count(conn, f"SELECT count(*) FROM suggestions WHERE suggested = {banned}") == 0
    finally:
        conn.execute("UPDATE users SET blocked_for_safety = NULL")
        suggest(conn, KEY, k=10)


def test_messenger_numbers_reach_contact_books_only_under_friend_suggestions(suggested: Suggested) -> None:
    """A parent user who never gave the parent their number is found in others' books only through a linked
    subject shared for friend suggestions; the same subject under account linking alone is not enough."""
    conn = suggested.conn
    assert suggested.report.via_messenger > 0
    snapshot = conn.sql(f"SELECT * FROM shared_profiles WHERE purpose = '{SUGGESTIONS_PURPOSE}'").to_arrow_table()
    try:
        conn.execute("DELETE FROM shared_profiles WHERE purpose = ?", [SUGGESTIONS_PURPOSE])
        report = suggest(conn, KEY, k=10)
        assert report.via_messenger == 0
        # Every contact-book suggestion left is the parent's own: the number is the suggested user's on the parent.
        assert (
            _count(
                conn,
                """
            SELECT count(*) FROM suggestions s WHERE s.source = 'contact_book' AND NOT EXISTS (
                SELECT 1 FROM contact_uploads c JOIN users u ON u.phone_e164 = c.phone_e164
                WHERE (c.owner = s.user_id AND u.user_id = s.suggested)
                   OR (c.owner = s.suggested AND u.user_id = s.user_id))""",
            )
            == 0
        )
    finally:
        conn.register("snapshot", snapshot)
        conn.execute("INSERT INTO shared_profiles SELECT * FROM snapshot")
        suggest(conn, KEY, k=10)


def test_a_linked_number_in_a_book_needs_the_friend_suggestions_purpose() -> None:
    """One subject, linked to a parent user with no number on the parent, is in another user's book: it becomes
    a contact-book suggestion only once the subject is shared for friend suggestions (not for ads)."""
    world = generate(WorldSpec(users=400, mean_degree=0), seed=5)
    conn = open_store(":memory:")
    seed_store(conn, world, NOW_MS)
    number = "+15550009999"
    conn.execute("UPDATE users SET phone_e164 = NULL WHERE user_id = 7")
    conn.execute("INSERT INTO contact_uploads VALUES (42, ?)", [number])
    conn.execute("INSERT INTO links VALUES ('subject-7', 7, 0.999, 'vendor_device_id', ?)", [NOW_MS])

    def share(purpose: str, use: Use) -> None:
        conn.execute(
            "INSERT INTO shared_purposes VALUES (?, ?, 'consent', NULL, ['contact.phone_number'], 'b')",
            [purpose, use.value],
        )
        conn.execute(
            "INSERT INTO shared_profiles (purpose, subject, phone_hash, batch_id, received_at_ms) "
            "VALUES (?, 'subject-7', ?, 'b', ?)",
            [purpose, phone_hash(KEY, number), NOW_MS],
        )

    def contact_pairs() -> set[tuple[int, int]]:
        suggest(conn, KEY, k=10)
        return set(conn.execute("SELECT user_id, suggested FROM suggestions WHERE source = 'contact_book'").fetchall())

    share("account_linking", Use.ACCOUNT_LINKING)
    share("ads", Use.ADVERTISING)
    assert contact_pairs() == set()
    share("friend_suggestions", Use.FRIEND_SUGGESTIONS)
    assert contact_pairs() == {(42, 7), (7, 42)}  # 42 has 7's number; 7 is offered 42 the other way round


def test_holdout_beats_random_by_far(suggested: Suggested) -> None:
    result = evaluate_holdout(suggested.conn, KEY, k=10, seed=1)
    assert result.users_evaluated > 2_000
    assert result.fof_precision > 50 * result.random_precision
    assert result.fof_precision > 0.08 and result.fof_recall > 0.25
    assert result.precision >= result.fof_precision  # contact books only add


def _graph(n: int, edges: np.ndarray) -> Graph:
    return Graph(np.arange(1, n + 1), edges, np.zeros((0, 2), np.int64), np.zeros(n, dtype=bool))


def test_friends_of_friends_matches_a_dense_computation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resource allocation + Adamic-Adar, minus self and friends, top 5 per row, over many small row blocks."""
    monkeypatch.setattr(suggestions, "BLOCK_WEDGES", 500)
    rng = np.random.default_rng(0)
    n = 300
    pairs = np.unique(np.sort(rng.integers(0, n, (2_000, 2)), axis=1), axis=0)
    graph = _graph(n, pairs[pairs[:, 0] != pairs[:, 1]])
    friends = adjacency(graph)
    found, wedges, hubs = friends_of_friends(graph, friends, 5, hub_cap=1_000, aa_weight=0.5, workers=2)

    a = friends.toarray()
    degree = a.sum(axis=1)
    weight = np.where(degree >= 2, 1 / np.maximum(degree, 1) + 0.5 / np.log(np.maximum(degree, 2)), 0)
    dense = a @ np.diag(weight) @ a
    dense[(a > 0) | np.eye(n, dtype=bool)] = 0
    assert wedges == int((degree[degree >= 2] ** 2).sum()) and hubs == 0
    for user in range(n):
        mine = np.sort(found.score[found.user == user])[::-1]
        expected = np.sort(dense[user][dense[user] > 0])[::-1][:5]
        np.testing.assert_allclose(mine, expected, rtol=1e-5)


def test_hubs_are_skipped_as_common_friends() -> None:
    """A star: everyone's only common friend is the hub, so a hub cap leaves no candidates at all."""
    n = 50
    star = np.stack([np.zeros(n - 1, np.int64), np.arange(1, n)], axis=1)
    graph = _graph(n, star)
    friends = adjacency(graph)
    uncapped, _, _ = friends_of_friends(graph, friends, 10, hub_cap=1_000)
    capped, wedges, hubs = friends_of_friends(graph, friends, 10, hub_cap=10)
    assert len(uncapped.user) == (n - 1) * 10
    assert (len(capped.user), wedges, hubs) == (0, 0, 1)


def test_no_users_no_suggestions() -> None:
    conn = open_store(":memory:")
    report = suggest(conn, KEY)
    assert (report.users, report.written) == (0, 0)
    assert pa.Table.from_pylist(conn.execute("SELECT * FROM suggestions").fetchall()).num_rows == 0
