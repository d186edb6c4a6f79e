"""Friend suggestions ("people you may know"): contact-book matches first, then friends of friends.

Neighbourhood scores for link prediction (Liben-Nowell and Kleinberg, "The link-prediction problem for social
networks", CIKM 2003), with contact-book matches ranked above them. Candidates come from two places:

- **Contact books** the parent's users uploaded: a number in u's book that is v's own number on the parent
  (the parent's own data), or that is the number of a messenger subject shared under a ``friend_suggestions``
  purpose and linked (``links``) to v. Both directions count (u has v's number, v has u's), and mutual books
  rank first. Messenger-derived evidence exists only through ``friend_suggestions`` rows, so a subject that did
  not allow that purpose contributes nothing; messenger contact books never reach the partner at all.
- **Friends of friends**, scored by resource allocation plus a share of Adamic-Adar, both sums over common friends z
  (1/deg z, Zhou, Lü and Zhang 2009; 1/log deg z, Adamic and Adar 2003), so one sparse product ``A @ diag(w) @ A``
  computes the blend. Hubs (deg z > ``hub_cap``) are skipped as middle nodes: the cost is Σ deg(z)² wedges, and a
  hub's friends say little about each other. Rows are processed in blocks of bounded wedges by one thread per core
  (scipy's sparse product releases the GIL), and each row's top k is taken with ``argpartition``.

Contact-book matches rank above friends of friends. Self, existing friends, blocked pairs (either direction)
and users blocked for safety are never suggested. ``evaluate_holdout`` hides a random share of friendships and
measures precision, recall and hit rate at k on them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from cove.sharing import wire
from cove.sharing.wire import Use

# Adamic-Adar only breaks ties: resource allocation alone ranks best, on ego-Facebook (10% holdout) and on the generated
# graphs (10 k users, 10% holdout: P@10 0.137 for RA, 0.126 for AA, 0.133 for RA + 0.1 AA).
AA_WEIGHT = 0.01
BLOCK_WEDGES = 20_000_000  # wedges per row block: bounds the memory of one block's product
EXCLUDED = np.float32(1e30)  # subtracted from excluded pairs' scores: far below any real score
SOURCE_CONTACTS = "contact_book"
SOURCE_FOF = "friends_of_friends"
_FIELDS = ("user", "suggested", "score", "contact", "via_messenger")  # of Candidates


@dataclass(frozen=True)
class Graph:
    """The parent's users as dense indices 0..n-1, with their friendships and what must never be suggested."""

    user_ids: np.ndarray  # int64, sorted: index -> user_id
    edges: np.ndarray  # (m, 2) int64 indices, a < b
    blocked: np.ndarray  # (b, 2) int64 indices, blocker -> blocked
    unsuggestable: np.ndarray  # bool per user: blocked for safety

    @property
    def n(self) -> int:
        return len(self.user_ids)


@dataclass(frozen=True)
class Candidates:
    """Suggestion candidates as index arrays: user, suggested, score, and whether they came from a contact book.
    ``via_messenger`` marks contact-book pairs that only messenger-derived evidence (a linked subject) found."""

    user: np.ndarray
    suggested: np.ndarray
    score: np.ndarray
    contact: np.ndarray
    via_messenger: np.ndarray


@dataclass
class SuggestReport:
    users: int
    friendships: int
    wedges: int = 0  # Σ deg(z)² over the middle nodes used
    hubs_skipped: int = 0
    written: int = 0
    by_source: dict[str, int] = field(default_factory=dict)
    via_messenger: int = 0  # contact-book suggestions found only through a linked friend_suggestions subject
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class HoldoutReport:
    k: int
    hidden_edges: int
    users_evaluated: int  # users with at least one hidden friendship
    precision: float  # P@k, mean over evaluated users
    recall: float  # R@k: hits / the user's hidden friendships, mean over evaluated users
    hit_rate: float  # share of evaluated users with at least one hit
    fof_precision: float  # the same for friends of friends alone (comparable with ego-Facebook)
    fof_recall: float
    fof_hit_rate: float
    random_precision: float  # expected P@k of a random ranking of non-friends


def load_graph(conn: duckdb.DuckDBPyConnection) -> Graph:
    """The parent's graph from the store, with user ids mapped to dense indices."""
    users = conn.sql("SELECT user_id, blocked_for_safety IS NOT NULL AS banned FROM users ORDER BY user_id")
    table = users.to_arrow_table()
    ids = table["user_id"].to_numpy()

    def indices(sql: str) -> np.ndarray:
        pairs = conn.sql(sql).to_arrow_table()
        if pairs.num_rows == 0:
            return np.zeros((0, 2), dtype=np.int64)
        return np.searchsorted(ids, np.stack([pairs.column(0).to_numpy(), pairs.column(1).to_numpy()], axis=1))

    edges = indices("SELECT a, b FROM friendships")
    blocked = indices("SELECT blocker, blocked FROM blocks")
    return Graph(ids, edges, blocked, table["banned"].to_numpy(zero_copy_only=False))


def _contact_evidence_sql(phone_key: bytes) -> str:
    """One row per piece of contact-book evidence: ``owner``'s book holds a number that is ``holder``'s, on the
    parent (purpose and subject NULL) or through the friend_suggestions row (purpose, subject) linked to the holder."""
    return f"""
    WITH numbers AS (SELECT DISTINCT phone_e164 FROM contact_uploads),
         unknown AS (SELECT phone_e164 FROM numbers ANTI JOIN users USING (phone_e164)),
         shared AS (SELECT p.purpose, p.subject, p.phone_hash, p.phone_number
                    FROM shared_profiles p JOIN shared_purposes s ON s.purpose = p.purpose
                    WHERE s.use = '{Use.FRIEND_SUGGESTIONS.value}'),
         hashed AS (SELECT phone_e164, {wire.hmac_sql(phone_key, "phone_e164")} AS phone_hash FROM unknown
                    WHERE EXISTS (SELECT 1 FROM shared WHERE phone_hash IS NOT NULL)),
         holders AS (
             SELECT n.phone_e164, u.user_id AS holder, NULL::VARCHAR AS purpose, NULL::VARCHAR AS subject
             FROM numbers n JOIN users u ON u.phone_e164 = n.phone_e164
             UNION ALL
             SELECT h.phone_e164, l.user_id, f.purpose, f.subject
             FROM hashed h JOIN shared f ON f.phone_hash = h.phone_hash JOIN links l ON l.subject = f.subject
             UNION ALL
             SELECT n.phone_e164, l.user_id, f.purpose, f.subject
             FROM unknown n JOIN shared f ON f.phone_number = n.phone_e164 JOIN links l ON l.subject = f.subject)
    SELECT DISTINCT c.owner, h.holder, h.purpose, h.subject
    FROM contact_uploads c JOIN holders h USING (phone_e164) WHERE c.owner <> h.holder
"""


@contextmanager
def contact_evidence(conn: duckdb.DuckDBPyConnection, phone_key: bytes) -> Iterator[str]:
    """The contact-book evidence as a temporary table (its name), kept while candidates and lineage read it.

    A number is v's when it is v's phone on the parent, or, for a number no parent user holds, the number
    (hashed or plain) of a subject shared under a friend_suggestions purpose and linked to v. The parent's own
    record wins: a messenger account still carrying a recycled number must not pull its new holder's contacts
    towards the old one.
    """
    conn.execute(f"CREATE OR REPLACE TEMP TABLE _contact_evidence AS {_contact_evidence_sql(phone_key)}")
    try:
        yield "_contact_evidence"
    finally:
        conn.execute("DROP TABLE IF EXISTS _contact_evidence")


def contact_candidates(conn: duckdb.DuckDBPyConnection, evidence: str, graph: Graph) -> Candidates:
    """Contact-book candidates, both directions, before any exclusion; score = directions (1, or 2 if mutual)."""
    rows = conn.sql(f"""
        WITH direct AS (SELECT owner, holder, bool_and(subject IS NOT NULL) AS via_messenger
                        FROM {evidence} GROUP BY ALL),
             both_ways AS (SELECT owner AS user_id, holder AS suggested, via_messenger FROM direct
                           UNION ALL SELECT holder, owner, via_messenger FROM direct)
        SELECT user_id, suggested, count(*)::FLOAT AS score, bool_and(via_messenger) AS via_messenger
        FROM both_ways GROUP BY ALL
    """).to_arrow_table()
    user = np.searchsorted(graph.user_ids, rows["user_id"].to_numpy())
    suggested = np.searchsorted(graph.user_ids, rows["suggested"].to_numpy())
    return Candidates(
        user=user,
        suggested=suggested,
        score=rows["score"].to_numpy(),
        contact=np.ones(len(user), dtype=bool),
        via_messenger=rows["via_messenger"].to_numpy(zero_copy_only=False),
    )


def adjacency(graph: Graph, edges: np.ndarray | None = None) -> sp.csr_matrix:
    """The symmetric 0/1 adjacency matrix of ``edges`` (default: all friendships), float32."""
    edges = graph.edges if edges is None else edges
    rows = np.concatenate([edges[:, 0], edges[:, 1]])
    cols = np.concatenate([edges[:, 1], edges[:, 0]])
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(graph.n, graph.n))


def _excluded(graph: Graph, friends: sp.csr_matrix) -> sp.csr_matrix:
    """The pattern of pairs never suggested: self, friends, and blocks in either direction."""
    n, blocked = graph.n, graph.blocked
    rows = np.concatenate([np.arange(n), blocked[:, 0], blocked[:, 1]])
    cols = np.concatenate([np.arange(n), blocked[:, 1], blocked[:, 0]])
    pattern = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n, n)) + friends
    pattern.data[:] = 1
    return pattern


def friends_of_friends(
    graph: Graph,
    friends: sp.csr_matrix,
    k: int,
    *,
    hub_cap: int = 1000,
    aa_weight: float = AA_WEIGHT,
    workers: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[Candidates, int, int]:
    """Each user's top ``k`` non-friends by resource allocation + ``aa_weight`` × Adamic-Adar over common friends.

    Returns the candidates, the wedges computed (Σ deg(z)² over middle nodes) and the hubs skipped.
    ``on_progress(done, total)`` is called with rows done as blocks finish.
    """
    degree = np.asarray(friends.sum(axis=1)).ravel()
    middle = (degree >= 2) & (degree <= hub_cap)  # a friend of one person links nobody
    weight = np.zeros(graph.n, np.float32)
    d = degree[middle]
    weight[middle] = 1 / d + aa_weight / np.log(d)
    allowed = (~graph.unsuggestable).astype(np.float32)
    right = (sp.diags(weight) @ friends @ sp.diags(allowed)).tocsr()
    right.eliminate_zeros()  # hubs' rows are empty: their wedges are never formed
    excluded = _excluded(graph, friends)

    per_row = friends @ (degree * middle)  # wedges each row will form
    order = np.argsort(per_row, kind="stable")
    order = order[per_row[order] > 0]
    blocks = _row_blocks(order, per_row[order])

    def run(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # Excluded pairs are pushed far below zero in one sparse sum, cheaper than masking them out.
        scores = friends[rows] @ right - excluded[rows] * EXCLUDED
        return _top_k_rows(rows, scores.tocsr(), k)

    done = 0
    parts = []
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for rows, part in zip(blocks, pool.map(run, blocks), strict=True):
            parts.append(part)
            done += len(rows)
            if on_progress is not None:
                on_progress(done, len(order))
    user, suggested, score = (np.concatenate([p[i] for p in parts]) if parts else np.zeros(0) for i in range(3))
    candidates = Candidates(
        user=user.astype(np.int64),
        suggested=suggested.astype(np.int64),
        score=score.astype(np.float32),
        contact=np.zeros(len(user), dtype=bool),
        via_messenger=np.zeros(len(user), dtype=bool),
    )
    return candidates, int((degree[middle] ** 2).sum()), int((degree > hub_cap).sum())


def _row_blocks(rows: np.ndarray, wedges: np.ndarray) -> list[np.ndarray]:
    """Consecutive runs of ``rows`` (sorted by wedges, so each block's rows are alike) of at most BLOCK_WEDGES."""
    bounds = np.searchsorted(np.cumsum(wedges), np.arange(BLOCK_WEDGES, wedges.sum() + BLOCK_WEDGES, BLOCK_WEDGES))
    starts = np.unique(np.concatenate([[0], bounds + 1]))
    starts = starts[starts < len(rows)]
    return np.split(rows, starts[1:])


def _top_k_rows(rows: np.ndarray, scores: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``k`` best positive entries of each row: rows padded to the block's widest, then one argpartition.

    Padding costs little because a block's rows have about as many wedges (they are sorted by it); entries that
    are not positive (absent, or pushed below zero by exclusion) never come out.
    """
    lengths = np.diff(scores.indptr)
    width = int(lengths.max()) if len(lengths) else 0
    if width == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    row_of = np.repeat(np.arange(len(rows)), lengths)
    position = np.arange(scores.nnz) - np.repeat(scores.indptr[:-1], lengths)
    values = np.zeros((len(rows), width), np.float32)
    columns = np.zeros((len(rows), width), scores.indices.dtype)
    values[row_of, position] = scores.data
    columns[row_of, position] = scores.indices
    if width > k:
        best = np.argpartition(values, width - k, axis=1)[:, width - k :]
        values = np.take_along_axis(values, best, axis=1)
        columns = np.take_along_axis(columns, best, axis=1)
    found = values > 0
    return np.broadcast_to(rows[:, None], values.shape)[found], columns[found].astype(np.int64), values[found]


def rank(graph: Graph, friends: sp.csr_matrix, parts: list[Candidates], k: int) -> Candidates:
    """Merge candidates into each user's top ``k``: contact-book matches first, then by score.

    Contact-book candidates were found without looking at the graph, so excluded pairs are dropped from them
    here (friends of friends never produce one). A pair found both ways ranks as a contact-book match, its score
    the number of directions plus its friends-of-friends score.
    """
    user, suggested, score, contact, via = (np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS)
    if len(user) == 0:
        return Candidates(*(np.zeros(0, t) for t in (np.int64, np.int64, np.float32, bool, bool)))
    allowed = ~contact | ~_excluded_pairs(graph, friends, user, suggested, contact)
    user, suggested, score, contact, via = (a[allowed] for a in (user, suggested, score, contact, via))

    order = np.lexsort((~contact, suggested, user))
    user, suggested, score, contact, via = (a[order] for a in (user, suggested, score, contact, via))
    first = np.ones(len(user), dtype=bool)
    first[1:] = (user[1:] != user[:-1]) | (suggested[1:] != suggested[:-1])
    starts = np.flatnonzero(first)
    if len(starts):
        score = np.add.reduceat(score, starts)
        contact = np.logical_or.reduceat(contact, starts)
        via = np.logical_and.reduceat(via, starts)  # friends of friends are the parent's own evidence
        user, suggested = user[starts], suggested[starts]
    order = np.lexsort((suggested, -score, ~contact, user))
    user, suggested, score, contact, via = (a[order] for a in (user, suggested, score, contact, via))
    keep = _positions(user) < k
    return Candidates(user[keep], suggested[keep], score[keep], contact[keep], via[keep])


def _excluded_pairs(
    graph: Graph, friends: sp.csr_matrix, user: np.ndarray, suggested: np.ndarray, where: np.ndarray
) -> np.ndarray:
    """True for the pairs (at ``where``) never to suggest: self, friends, blocked either way, blocked users."""
    out = np.zeros(len(user), dtype=bool)
    if not where.any():
        return out
    u, v = user[where], suggested[where]
    blocked = graph.blocked[:, 0] * graph.n + graph.blocked[:, 1]
    blocked = np.concatenate([blocked, graph.blocked[:, 1] * graph.n + graph.blocked[:, 0]])
    out[where] = (u == v) | (np.asarray(friends[u, v]).ravel() > 0) | np.isin(u * graph.n + v, blocked)
    out[where] |= graph.unsuggestable[v]
    return out


def _positions(user: np.ndarray) -> np.ndarray:
    """0-based position of each entry within its run of equal (sorted) ``user``."""
    return np.arange(len(user)) - np.searchsorted(user, user)


def suggest(
    conn: duckdb.DuckDBPyConnection,
    phone_key: bytes,
    k: int = 10,
    *,
    hub_cap: int = 1000,
    aa_weight: float = AA_WEIGHT,
    on_progress: Callable[[int, int], None] | None = None,
) -> SuggestReport:
    """Compute every user's top ``k`` suggestions and replace the ``suggestions`` table with them."""
    timings: dict[str, float] = {}
    with _timed(timings, "load"):
        graph = load_graph(conn)
        friends = adjacency(graph)
    report = SuggestReport(users=graph.n, friendships=len(graph.edges), timings=timings)
    with ExitStack() as stack:
        with _timed(timings, "contact_books"):
            evidence = stack.enter_context(contact_evidence(conn, phone_key))
            contacts = contact_candidates(conn, evidence, graph)
        with _timed(timings, "friends_of_friends"):
            fof, report.wedges, report.hubs_skipped = friends_of_friends(
                graph, friends, k, hub_cap=hub_cap, aa_weight=aa_weight, on_progress=on_progress
            )
        with _timed(timings, "rank"):
            top = rank(graph, friends, [contacts, fof], k)
        with _timed(timings, "write"):
            _write(conn, graph, top, evidence)
    report.written = len(top.user)
    report.by_source = {SOURCE_CONTACTS: int(top.contact.sum()), SOURCE_FOF: int((~top.contact).sum())}
    report.via_messenger = int(top.via_messenger.sum())
    return report


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - start


def _write(conn: duckdb.DuckDBPyConnection, graph: Graph, top: Candidates, evidence: str) -> None:
    """Replace ``suggestions`` with ``top``, and ``suggestion_sources`` with the messenger rows behind each one
    (cove.partner.lineage forgets a suggestion with them)."""
    rows = pa.table(
        {
            "user_id": graph.user_ids[top.user],
            "suggested": graph.user_ids[top.suggested],
            "score": top.score.astype(np.float64),
            "source": np.where(top.contact, SOURCE_CONTACTS, SOURCE_FOF),
            "rank": (_positions(top.user) + 1).astype(np.int32),
            "lineage_recorded": np.ones(len(top.user), dtype=bool),
        }
    )
    # Emptying an indexed table and refilling it makes DuckDB pay at commit (7 s for 2 M rows here); dropping
    # it and re-creating it from its own definition costs nothing, and the insert builds a fresh index.
    (ddl,) = conn.execute("SELECT sql FROM duckdb_tables() WHERE table_name = 'suggestions'").fetchall()[0]
    conn.register("suggestions_new", rows)
    try:
        conn.execute("BEGIN")
        conn.execute("DROP TABLE suggestions")
        conn.execute(ddl)
        conn.execute("INSERT INTO suggestions BY NAME SELECT * FROM suggestions_new")
        conn.execute("DELETE FROM suggestion_sources")
        conn.execute(f"""
            INSERT INTO suggestion_sources
            WITH messenger AS (SELECT * FROM {evidence} WHERE subject IS NOT NULL),
                 pointed AS (SELECT owner AS user_id, holder AS suggested, purpose, subject FROM messenger
                             UNION SELECT holder, owner, purpose, subject FROM messenger)
            SELECT p.* FROM pointed p SEMI JOIN suggestions s USING (user_id, suggested)""")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    finally:
        conn.unregister("suggestions_new")


def evaluate_holdout(
    conn: duckdb.DuckDBPyConnection,
    phone_key: bytes,
    k: int = 10,
    *,
    fraction: float = 0.1,
    seed: int = 0,
    hub_cap: int = 1000,
    aa_weight: float = AA_WEIGHT,
    on_progress: Callable[[int, int], None] | None = None,
) -> HoldoutReport:
    """Hide ``fraction`` of the friendships at random, suggest from the rest, and score the top ``k`` against the
    hidden ones; writes nothing. Contact books still hold the hidden friends' numbers, as they would."""
    graph = load_graph(conn)
    hidden = np.random.default_rng(seed).random(len(graph.edges)) < fraction
    friends = adjacency(graph, graph.edges[~hidden])
    with contact_evidence(conn, phone_key) as evidence:
        contacts = contact_candidates(conn, evidence, graph)
    fof, _, _ = friends_of_friends(graph, friends, k, hub_cap=hub_cap, aa_weight=aa_weight, on_progress=on_progress)
    test = adjacency(graph, graph.edges[hidden])
    per_user = np.asarray(test.sum(axis=1)).ravel()
    evaluated = per_user > 0
    if not evaluated.any():
        raise ValueError(f"{len(graph.edges)} friendships are too few to hide {fraction:.0%} of them")
    degree = np.asarray(friends.sum(axis=1)).ravel()
    random_precision = float(np.mean(per_user[evaluated] / np.maximum(graph.n - 1 - degree[evaluated], 1)))

    def score(top: Candidates) -> tuple[float, float, float]:
        hit = np.asarray(test[top.user, top.suggested]).ravel() > 0
        hits = np.bincount(top.user[hit], minlength=graph.n)[evaluated]
        return float(np.mean(hits / k)), float(np.mean(hits / per_user[evaluated])), float(np.mean(hits > 0))

    both = score(rank(graph, friends, [contacts, fof], k))
    alone = score(rank(graph, friends, [fof], k))
    return HoldoutReport(
        k=k,
        hidden_edges=int(hidden.sum()),
        users_evaluated=int(evaluated.sum()),
        precision=both[0],
        recall=both[1],
        hit_rate=both[2],
        fof_precision=alone[0],
        fof_recall=alone[1],
        fof_hit_rate=alone[2],
        random_precision=random_precision,
    )
