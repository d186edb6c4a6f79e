"""Lineage: which shared rows each derived row was built from, and forgetting both in one go.

The partner may stop holding a shared (purpose, subject) row for five reasons: a withdrawal (or objection, or
"no longer permitted") of that purpose, a ban (every purpose but safety), an erasure (every purpose), a ``full``
batch that no longer carries the subject, and retention expiry. Every one of them goes through :func:`forget`,
which deletes the shared rows and, in the caller's transaction, every derived row whose sources include one of
them. A purpose declared anew with another use keeps its rows but loses what was derived from them under the old
use (:func:`forget_changed_uses`). A derived row's sources:

================================  ===========================================================  ======================
derived row                       built from                                                   recorded in
================================  ===========================================================  ======================
``links``                         every ``account_linking`` row of its subject (linking reads  ``links.subject``
                                  nothing else)
``suggestions``                   the ``friend_suggestions`` rows whose number matched a       ``suggestion_sources``
                                  contact book, and the link that named the number's holder
``audiences``                     the ``advertising`` rows of its subject                      ``audience_sources``
``users.blocked_for_safety``      the ``safety`` rows that reached the user, and the link      ``safety_sources``
                                  when one reached it through a link
================================  ===========================================================  ======================

What the parent derived from its own data alone (its users, friendships, contact books and blocks) has no
messenger source and stays: friends-of-friends suggestions, and contact-book matches against its own users'
numbers.

Three cases decided here:

- A suggestion supported both by the parent's own data and by messenger data goes. Its score and its rank
  (contact-book matches rank first) were raised by the messenger's row; a smaller, messenger-free score is what
  the next ``cove partner suggest`` computes, and until then the user sees one suggestion fewer rather than one
  still shaped by a withdrawn row.
- A safety block reached through a link goes when the link's account-linking row goes (the block was one more
  use of that row), unless the same or another safety row still reaches the user another way (its own phone
  number, another link): a block holds while any of its recorded paths holds, with the smallest reason code
  among them.
- A ban revokes every purpose but safety, so it deletes the banned subject's link, and the same batch's safety
  verdict may still reach the parent account through it (:func:`stash_links_of_banned`). That block is
  recorded as resting on the safety row alone: the ban consumed the link, and using it that once is safety use.
  It lasts until the safety row goes (withdrawn, erased or expired).

Rows derived before lineage was recorded (a store older than these tables) have no sources; for them the rule of
that time applies: suggestions naming, or shown to, the linked user of a forgotten friend-suggestion or linking
subject, and audiences of a subject forgotten under an advertising purpose.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from cove.sharing import wire

DAY_MS = 86_400_000
PER_PURPOSE_REASONS = (
    wire.RevocationReason.WITHDRAWN,
    wire.RevocationReason.OBJECTED,
    wire.RevocationReason.NOT_PERMITTED,
)
_LINKING = wire.Use.ACCOUNT_LINKING.value

# A forgotten pair f names a source row s when it is that row, or erases s's subject.
_NAMES = "f.subject = s.subject AND (f.purpose IS NULL OR f.purpose = s.purpose)"
# f takes away the link of s's subject when it erases the subject or forgets one of its account-linking rows.
_UNLINKS = f"f.subject = s.subject AND (f.purpose IS NULL OR f.use = '{_LINKING}')"


@dataclass(frozen=True)
class SweepReport:
    profiles_deleted: int
    usage_deleted: int


def sql_strings(values: Iterable[str]) -> str:
    """A SQL list of the wire module's enum values (constants without quotes, never batch data)."""
    return ", ".join(f"'{value}'" for value in values)


def revoke(conn: duckdb.DuckDBPyConnection, batch_dir: Path, manifest: wire.Manifest, now_ms: int) -> int:
    """Forget what each revocation of the batch names; record erasures. Returns the number of revocations."""
    path = str(batch_dir / wire.REVOCATIONS_FILE)
    forget(
        conn,
        f"""SELECT NULL AS purpose, subject FROM read_parquet($path) WHERE reason = 'erased'
            UNION ALL
            SELECT p.purpose, r.subject FROM read_parquet($path) r JOIN shared_purposes p
              ON (r.reason = 'banned' AND p.use <> 'safety')
              OR (r.reason IN ({sql_strings(PER_PURPOSE_REASONS)}) AND p.purpose = r.purpose)""",
        {"path": path},
    )
    conn.execute(
        """INSERT OR IGNORE INTO applied_erasures
           SELECT event_id, any_value(subject), $batch_id, $now FROM read_parquet($path)
           WHERE reason = 'erased' GROUP BY event_id""",
        {"path": path, "batch_id": manifest.batch_id, "now": now_ms},
    )
    return manifest.revocations.rows


def stash_links_of_banned(conn: duckdb.DuckDBPyConnection, batch_dir: Path) -> str:
    """Keep, for this transaction only, the links a ban is about to delete; returns the temp table's name.

    A ban revokes every purpose but safety, so the subject's link (derived from account linking) goes; the
    safety verdict in the same batch may still use it once to reach the parent account, which is safety use.
    """
    conn.execute(
        """CREATE OR REPLACE TEMP TABLE _links_of_banned AS
           SELECT subject, user_id FROM links
           WHERE subject IN (SELECT subject FROM read_parquet($path) WHERE reason = 'banned')""",
        {"path": str(batch_dir / wire.REVOCATIONS_FILE)},
    )
    return "_links_of_banned"


def sweep(conn: duckdb.DuckDBPyConnection, now_ms: int) -> SweepReport:
    """Delete shared rows older than their purpose's retention (counted from the batch's as_of), with derived data.

    It runs inside the caller's transaction (``ingest.apply_batch``'s, or wrap it in ``ingest.transaction``).
    """
    expired = f"p.retention_days IS NOT NULL AND s.received_at_ms + p.retention_days::BIGINT * {DAY_MS} < $now"
    profiles, usage = forget(
        conn,
        f"SELECT s.purpose, s.subject FROM shared_profiles s JOIN shared_purposes p USING (purpose) WHERE {expired}",
        {"now": now_ms},
    )
    (more_usage,) = conn.execute(
        f"DELETE FROM shared_usage s USING shared_purposes p WHERE s.purpose = p.purpose AND {expired}",
        {"now": now_ms},
    ).fetchone()
    return SweepReport(profiles_deleted=profiles, usage_deleted=usage + more_usage)


def forget_changed_uses(conn: duckdb.DuckDBPyConnection, manifest: wire.Manifest) -> None:
    """A purpose the batch declares with another use than before keeps its rows, now held for the new use, but
    what was derived from them under the old one goes. Call it before the new use is recorded."""
    before = dict(conn.execute("SELECT purpose, use FROM shared_purposes").fetchall())
    changed = [p.id for p in manifest.purposes if before.get(p.id, p.use) != p.use]
    if changed:
        forget(
            conn,
            "SELECT purpose, subject FROM shared_profiles WHERE list_contains($changed, purpose)",
            {"changed": changed},
            keep_shared=True,
        )


def forget(
    conn: duckdb.DuckDBPyConnection, pairs_sql: str, params: dict[str, object], *, keep_shared: bool = False
) -> tuple[int, int]:
    """Delete the (purpose, subject) pairs ``pairs_sql`` selects (unless ``keep_shared``), with every row derived
    from them.

    A NULL purpose means every purpose of the subject (an erasure). Runs in the caller's transaction. Returns the
    numbers of profile and usage rows deleted.
    """
    conn.execute(
        f"""CREATE OR REPLACE TEMP TABLE _forget AS
            SELECT f.purpose::VARCHAR AS purpose, f.subject, p.use
            FROM ({pairs_sql}) f LEFT JOIN shared_purposes p ON p.purpose = f.purpose""",
        params,
    )
    profiles = usage = 0
    if not keep_shared:
        (profiles,) = conn.execute(f"DELETE FROM shared_profiles s USING _forget f WHERE {_NAMES}").fetchone()
        (usage,) = conn.execute(f"DELETE FROM shared_usage s USING _forget f WHERE {_NAMES}").fetchone()
    _forget_suggestions(conn)
    _forget_safety(conn)
    conn.execute(f"DELETE FROM links s USING _forget f WHERE {_UNLINKS}")
    _forget_audiences(conn)
    conn.execute("DROP TABLE _forget")
    return profiles, usage


def _forget_suggestions(conn: duckdb.DuckDBPyConnection) -> None:
    """Every suggestion with a forgotten source goes, whichever way it points and whatever else supported it."""
    suggestion_uses = f"'{wire.Use.FRIEND_SUGGESTIONS.value}', '{_LINKING}'"
    conn.execute(f"""
        CREATE OR REPLACE TEMP TABLE _gone AS
        SELECT DISTINCT s.user_id, s.suggested FROM suggestion_sources s JOIN _forget f ON ({_NAMES}) OR ({_UNLINKS})
        UNION
        SELECT g.user_id, g.suggested FROM suggestions g
        WHERE g.lineage_recorded IS NULL AND EXISTS (
            SELECT 1 FROM links l JOIN _forget f ON f.subject = l.subject
            WHERE (f.purpose IS NULL OR f.use IN ({suggestion_uses})) AND l.user_id IN (g.user_id, g.suggested))
    """)
    for table in ("suggestions", "suggestion_sources"):
        conn.execute(f"DELETE FROM {table} t USING _gone g WHERE t.user_id = g.user_id AND t.suggested = g.suggested")
    conn.execute("DROP TABLE _gone")


def _forget_safety(conn: duckdb.DuckDBPyConnection) -> None:
    """Drop the block paths that rest on a forgotten row; a user keeps the smallest reason of the paths left."""
    lost = f"({_NAMES}) OR (s.through_link AND {_UNLINKS})"
    conn.execute(f"""CREATE OR REPLACE TEMP TABLE _unblocked AS
                     SELECT DISTINCT s.user_id FROM safety_sources s JOIN _forget f ON {lost}""")
    conn.execute(f"DELETE FROM safety_sources s USING _forget f WHERE {lost}")
    conn.execute("""UPDATE users SET blocked_for_safety = (
                        SELECT min(s.reason_code) FROM safety_sources s WHERE s.user_id = users.user_id)
                    WHERE user_id IN (SELECT user_id FROM _unblocked)""")
    conn.execute("DROP TABLE _unblocked")


def _forget_audiences(conn: duckdb.DuckDBPyConnection) -> None:
    """A membership goes with any of its sources (another advertising purpose of the subject rebuilds it)."""
    conn.execute(f"""
        CREATE OR REPLACE TEMP TABLE _gone AS
        SELECT DISTINCT s.audience, s.subject FROM audience_sources s JOIN _forget f ON {_NAMES}
        UNION
        SELECT a.audience, a.subject FROM audiences a JOIN _forget f ON f.subject = a.subject
        WHERE (f.purpose IS NULL OR f.use = '{wire.Use.ADVERTISING.value}')
          AND NOT EXISTS (SELECT 1 FROM audience_sources s WHERE s.audience = a.audience AND s.subject = a.subject)
    """)
    for table in ("audiences", "audience_sources"):
        conn.execute(f"DELETE FROM {table} t USING _gone g WHERE t.audience = g.audience AND t.subject = g.subject")
    conn.execute("DROP TABLE _gone")
