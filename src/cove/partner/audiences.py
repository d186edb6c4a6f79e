"""Ad audiences, built only from what purposes whose use is advertising shared, never of minors.

Three rules the SQL below makes visible:

- only rows of purposes whose ``use`` is ``advertising`` are read (a phone number shared for linking or safety
  never reaches an audience);
- the vendor device id is never read: Google permits the app-set id for non-monetising uses only, so the query
  names every column it reads and that column is not among them;
- subjects linked to a parent user who may be under 18 are left out. Only a birth year is known, so someone
  born 18 years before the current year (17 or 18 today) counts as a minor.

Each membership's sources, the advertising (purpose, subject) rows it came from, go to ``audience_sources``, so
cove.partner.lineage removes it with any of them.

Segments: ``os:<os name, lower case>``, ``device:<model>``, ``active_7d`` and ``active_30d`` (last seen on one of
the 7 or 30 days up to and including today).
"""

from __future__ import annotations

import datetime as dt

import duckdb

from cove.partner.ingest import transaction
from cove.sharing import wire

ADULT_AGE = 18

AUDIENCE_SQL = f"""
WITH possibly_minors AS (
    SELECT l.subject FROM links l JOIN users u ON u.user_id = l.user_id
    WHERE u.birth_year IS NOT NULL AND u.birth_year + {ADULT_AGE} >= year($today)
), eligible AS (
    SELECT s.purpose, s.subject, s.os_name, s.device_model, s.last_seen_day
    FROM shared_profiles s JOIN shared_purposes p ON p.purpose = s.purpose
    WHERE p.use = '{wire.Use.ADVERTISING}' AND s.subject NOT IN (SELECT subject FROM possibly_minors)
), segments AS (
    SELECT 'os:' || lower(os_name) AS audience, subject, purpose FROM eligible WHERE os_name IS NOT NULL
    UNION ALL
    SELECT 'device:' || device_model, subject, purpose FROM eligible WHERE device_model IS NOT NULL
    UNION ALL
    SELECT 'active_7d', subject, purpose FROM eligible WHERE last_seen_day > $today - 7
    UNION ALL
    SELECT 'active_30d', subject, purpose FROM eligible WHERE last_seen_day > $today - 30
)
SELECT DISTINCT audience, subject, purpose FROM segments
"""


def build_audiences(conn: duckdb.DuckDBPyConnection, now_ms: int) -> dict[str, int]:
    """Rebuild ``audiences`` from scratch in one transaction; returns each segment's size, largest first.

    With no batch applied yet there is nothing shared, so the table is just emptied.
    """
    last = conn.execute("SELECT batch_id FROM applied_batches ORDER BY sequence DESC LIMIT 1").fetchone()
    today = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC).date()
    with transaction(conn):
        conn.execute("DELETE FROM audiences")
        conn.execute("DELETE FROM audience_sources")
        if last is not None:
            conn.execute(f"INSERT INTO audience_sources {AUDIENCE_SQL}", {"today": today})
            conn.execute(
                "INSERT INTO audiences SELECT DISTINCT audience, subject, $batch_id FROM audience_sources",
                {"batch_id": last[0]},
            )
    rows = conn.execute(
        "SELECT audience, count(*) FROM audiences GROUP BY audience ORDER BY count(*) DESC, audience"
    ).fetchall()
    return dict(rows)
