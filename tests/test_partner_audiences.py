"""Ad audiences: advertising purposes only, never minors, never the vendor device id."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from cove.partner.audiences import AUDIENCE_SQL, build_audiences
from cove.partner.ingest import apply_batch
from cove.partner.store import open_store
from cove.sharing import wire
from partner_batches import ADS_CATEGORIES, LINKING_CATEGORIES, NOW_MS, TODAY, Messenger, Purpose, ads_row


@pytest.fixture
def conn() -> Iterator[duckdb.DuckDBPyConnection]:
    store = open_store(":memory:")
    yield store
    store.close()


def members(conn: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for audience, subject in conn.execute("SELECT audience, subject FROM audiences").fetchall():
        out.setdefault(audience, set()).add(subject)
    return out


def test_segments_by_os_device_and_activity(conn: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    m = Messenger()
    rows = [
        ads_row("today", "Android", "Pixel 8", TODAY),
        ads_row("six_days", "iOS", "iPhone15,2", TODAY - dt.timedelta(days=6)),
        ads_row("seven_days", "iOS", "iPhone15,2", TODAY - dt.timedelta(days=7)),
        ads_row("thirty_days", "Android", "Pixel 8", TODAY - dt.timedelta(days=30)),
    ]
    batch = m.write(tmp_path, [Purpose("ads", wire.Use.ADVERTISING, ADS_CATEGORIES, rows)])
    apply_batch(conn, batch, m.trust, NOW_MS)

    sizes = build_audiences(conn, NOW_MS)

    assert members(conn) == {
        "os:android": {"today", "thirty_days"},
        "os:ios": {"six_days", "seven_days"},
        "device:Pixel 8": {"today", "thirty_days"},
        "device:iPhone15,2": {"six_days", "seven_days"},
        "active_7d": {"today", "six_days"},
        "active_30d": {"today", "six_days", "seven_days"},
    }
    assert sizes["active_30d"] == 3 and list(sizes)[0] == "active_30d"  # largest first
    assert conn.execute("SELECT DISTINCT built_from_batch FROM audiences").fetchall() == [(batch.name,)]


def test_only_advertising_purposes_feed_audiences(conn: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    m = Messenger()
    purposes = [
        Purpose("ads", wire.Use.ADVERTISING, ADS_CATEGORIES, [ads_row("ad_subject")]),
        Purpose("analytics", wire.Use.ANALYTICS, ADS_CATEGORIES, [ads_row("analytics_subject")]),
        Purpose("linking", wire.Use.ACCOUNT_LINKING, LINKING_CATEGORIES, [{"subject": "link_subject"}]),
    ]
    apply_batch(conn, m.write(tmp_path, purposes), m.trust, NOW_MS)

    build_audiences(conn, NOW_MS)

    assert set().union(*members(conn).values()) == {"ad_subject"}


@pytest.mark.parametrize(
    ("years_before", "included"),
    [(17, False), (18, False), (19, True), (None, True)],
    ids=["17", "17 or 18: counted as a minor", "adult", "no birth year"],
)
def test_minors_are_never_in_an_audience(
    years_before: int | None, included: bool, conn: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    m = Messenger()
    purposes = [Purpose("ads", wire.Use.ADVERTISING, ADS_CATEGORIES, [ads_row("linked"), ads_row("unlinked")])]
    apply_batch(conn, m.write(tmp_path, purposes), m.trust, NOW_MS)
    birth_year = None if years_before is None else TODAY.year - years_before
    conn.execute("INSERT INTO users (user_id, name, birth_year) VALUES (1, 'Kim', ?)", [birth_year])
    conn.execute("INSERT INTO links VALUES ('linked', 1, 1.0, 'phone', 0)")

    build_audiences(conn, NOW_MS)

    subjects = set().union(*members(conn).values())
    assert ("linked" in subjects) is included
    assert "unlinked" in subjects


def test_the_vendor_device_id_never_shapes_an_audience(tmp_path: Path) -> None:
    """Google allows the app-set id for non-monetising uses only: the query never reads it."""
    assert "vendor_device_id" not in AUDIENCE_SQL
    assert "*" not in AUDIENCE_SQL.replace("count(*)", "")

    built = []
    for carried in (False, True):
        m = Messenger()
        categories = ADS_CATEGORIES + ([wire.CATEGORY_VENDOR_DEVICE_ID] if carried else [])
        rows = [ads_row(s) | ({"vendor_device_id": f"shared-{s}"} if carried else {}) for s in ("a", "b")]
        batch_dir = tmp_path / str(carried)
        store = open_store(":memory:")
        apply_batch(store, m.write(batch_dir, [Purpose("ads", wire.Use.ADVERTISING, categories, rows)]), m.trust, 0)
        build_audiences(store, NOW_MS)
        built.append(store.execute("SELECT audience, subject FROM audiences ORDER BY ALL").fetchall())
        store.close()
    assert built[0] == built[1] != []


def test_without_a_batch_there_are_no_audiences(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute("INSERT INTO audiences VALUES ('stale', 's', 'old')")
    assert build_audiences(conn, NOW_MS) == {}
    assert conn.execute("SELECT count(*) FROM audiences").fetchone() == (0,)
