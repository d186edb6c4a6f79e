"""Carrying the messenger's safety verdicts to the parent accounts they belong to.

Rows of purposes whose use is ``safety`` carry a ``reason_code`` (a ban, never content). A verdict reaches a
parent user through the account link, or through the phone number: the parent hashes the numbers its own users
gave it with the key the messenger handed it (:func:`wire.phone_hash`) and compares, or compares the number
itself when the safety purpose is not pseudonymised. Of what was shared, only safety rows are read here: no
other purpose's data becomes a safety decision.

Each path by which a safety row reached a user is recorded in ``safety_sources`` (through a link or not), and a
user's ``blocked_for_safety`` is the smallest reason code among its recorded paths: cove.partner.lineage drops
the paths that rest on what the partner forgets and lifts a block that has none left.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

from cove.sharing import wire


@dataclass(frozen=True)
class SafetyReport:
    signals: int  # safety rows carrying a reason code
    matched_users: int  # parent users those rows reach
    newly_blocked: int  # of them, users whose blocked_for_safety changed now


_SIGNALS = f"""
    SELECT s.purpose, s.subject, s.phone_hash, s.phone_number, s.reason_code
    FROM shared_profiles s JOIN shared_purposes p USING (purpose)
    WHERE p.use = '{wire.Use.SAFETY}' AND s.reason_code IS NOT NULL
"""


_NO_HASHES = pa.table({"user_id": pa.array([], pa.int64()), "phone_hash": pa.array([], pa.string())})


def apply_safety_signals(
    conn: duckdb.DuckDBPyConnection, trust: wire.TrustBundle, *, extra_links: str | None = None
) -> SafetyReport:
    """Record every path by which a safety signal reaches a parent user, and set ``users.blocked_for_safety``.

    Idempotent.

    ``extra_links`` names a table of (subject, user_id) to match through besides ``links``: ingest passes the
    links a ban in the same batch is deleting, so the ban still reaches the parent account it was linked to; such
    a path rests on the safety row alone (the link is gone once the batch is applied).
    When several signals reach one user, the smallest reason code wins, so the result does not depend on order.
    It runs in the caller's transaction, if any.
    """
    [(signals, hashed)] = conn.execute(f"SELECT count(*), count(phone_hash) FROM ({_SIGNALS})").fetchall()
    if not signals:
        return SafetyReport(signals=0, matched_users=0, newly_blocked=0)
    conn.register("_parent_phone_hashes", _parent_phone_hashes(conn, trust.phone_key()) if hashed else _NO_HASHES)
    links = "SELECT subject, user_id, true AS through_link FROM links"
    if extra_links is not None:
        links += f" UNION SELECT subject, user_id, false FROM {extra_links}"
    try:
        conn.execute(
            f"""CREATE OR REPLACE TEMP TABLE _safety_matches AS
                WITH signals AS ({_SIGNALS})
                SELECT l.user_id, s.purpose, s.subject, l.through_link, s.reason_code
                FROM signals s JOIN ({links}) l USING (subject)
                UNION
                SELECT h.user_id, s.purpose, s.subject, false, s.reason_code
                FROM signals s JOIN _parent_phone_hashes h ON h.phone_hash = s.phone_hash
                UNION
                SELECT u.user_id, s.purpose, s.subject, false, s.reason_code
                FROM signals s JOIN users u ON u.phone_e164 = s.phone_number"""
        )
    finally:
        conn.unregister("_parent_phone_hashes")
    (matched,) = conn.execute("SELECT count(DISTINCT user_id) FROM _safety_matches").fetchone()
    # A path seen again replaces its record (its reason code may have changed); paths not seen now stay until
    # lineage forgets what they rest on.
    conn.execute(
        """DELETE FROM safety_sources o USING _safety_matches m WHERE (o.user_id, o.purpose, o.subject, o.through_link)
           = (m.user_id, m.purpose, m.subject, m.through_link)"""
    )
    conn.execute("INSERT INTO safety_sources SELECT * FROM _safety_matches")
    (changed,) = conn.execute(
        """UPDATE users SET blocked_for_safety = m.reason_code
           FROM (SELECT user_id, min(reason_code) AS reason_code FROM safety_sources
                 WHERE user_id IN (SELECT user_id FROM _safety_matches) GROUP BY user_id) m
           WHERE users.user_id = m.user_id AND users.blocked_for_safety IS DISTINCT FROM m.reason_code"""
    ).fetchone()
    conn.execute("DROP TABLE _safety_matches")
    return SafetyReport(signals=signals, matched_users=matched, newly_blocked=changed)


def _parent_phone_hashes(conn: duckdb.DuckDBPyConnection, key: bytes) -> pa.Table:
    """Every parent user's number under the recipient's phone-hash key: the only way to compare with a hash.

    It costs about a second per million users, so callers skip it when no signal carries a hash.
    """
    users = conn.execute("SELECT user_id, phone_e164 FROM users WHERE phone_e164 IS NOT NULL").fetchall()
    return pa.table(
        {
            "user_id": pa.array([user_id for user_id, _ in users], pa.int64()),
            "phone_hash": pa.array([wire.phone_hash(key, phone) for _, phone in users], pa.string()),
        }
    )
