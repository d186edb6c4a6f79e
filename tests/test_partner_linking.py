"""Account linking on a generated world: quality against the ground truth, confounders, purpose limitation.

One world of 5,000 parent users and 5,000 messenger accounts is mirrored into a store and linked once per module;
a share of its accounts is moved from the account-linking purpose to an advertising one, which must never lead to
a link however well the rows would match.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from cove.partner.analytics_cli import register
from cove.partner.link_model import key_reuse
from cove.partner.linking import LinkingError, LinkReport, _one_to_one, link
from cove.partner.operating_point import OperatingPoint, choose_threshold
from cove.partner.population import World, WorldSpec, generate
from cove.partner.seed import LINKING_PURPOSE, add_people, seed_store
from cove.partner.store import open_store
from cove.sharing import wire
from cove.sharing.wire import Use, phone_hash

KEY = hashlib.sha256(b"test partner key").digest()
NOW_MS = 1_700_000_000_000
ADS = "ads_only"
MOVED = 300  # accounts shared for advertising only


@dataclass
class Linked:
    conn: duckdb.DuckDBPyConnection
    world: World
    report: LinkReport
    moved: list[str]


def _move_to_ads(conn: duckdb.DuckDBPyConnection, subjects: list[str]) -> None:
    """Re-file these subjects' linking rows under a purpose whose use is advertising."""
    conn.execute(
        "INSERT INTO shared_purposes VALUES (?, ?, 'consent', NULL, ['contact.phone_number'], 'mirror')",
        [ADS, Use.ADVERTISING.value],
    )
    conn.register("moved", pa.table({"subject": subjects}))
    conn.execute(
        "UPDATE shared_profiles SET purpose = ? WHERE purpose = ? AND subject IN (SELECT subject FROM moved)",
        [ADS, LINKING_PURPOSE],
    )


@pytest.fixture(scope="module")
def linked() -> Linked:
    world = generate(WorldSpec(users=5_000, mean_degree=0), seed=7)
    conn = open_store(":memory:")
    seed_store(conn, world, NOW_MS, mirror=True, phone_key=KEY)
    # Accounts whose number is exactly a parent user's: they would link at once if their rows were read.
    conn.register("accounts", world.accounts)
    moved = [
        s
        for (s,) in conn.execute(f"""
        SELECT a.subject FROM accounts a JOIN users u ON u.phone_e164 = a.phone_e164
        WHERE a.user_id = u.user_id ORDER BY a.subject LIMIT {MOVED}""").fetchall()
    ]
    _move_to_ads(conn, moved)
    report = link(conn, KEY, NOW_MS)
    return Linked(conn, world, report, moved)


def test_linking_is_precise_and_finds_most_pairs(linked: Linked) -> None:
    at = {q.threshold: q for q in linked.report.quality}
    assert at[0.9].precision >= 0.95
    assert at[0.9].recall >= 0.6  # the ceiling with hashed numbers is ~0.7: no phone and no vendor id, or a new one
    assert at[0.99].precision >= at[0.5].precision
    # The model beats the exact rules it started from on precision (it rejects confounders) ...
    assert at[0.9].precision > linked.report.baselines["exact phone or vendor id"].precision + 0.03
    # ... and only exact matches with good reason: most of them it keeps.
    assert linked.report.exact_rejected["phone"] < 0.25 * linked.report.by_method["phone"]


def test_links_table_holds_one_to_one_links_at_the_threshold(linked: Linked) -> None:
    rows = linked.conn.execute("SELECT count(*), min(probability), count(DISTINCT user_id) FROM links").fetchall()
    count, lowest, users = rows[0]
    assert count == linked.report.written == sum(linked.report.by_method.values()) == users
    assert lowest >= linked.report.threshold >= 0.5
    assert linked.report.estimated_precision >= 0.98  # the default target
    methods = {m for (m,) in linked.conn.execute("SELECT DISTINCT method FROM links").fetchall()}
    assert methods <= {"phone", "vendor_device_id", "splink"}
    assert linked.conn.execute("SELECT DISTINCT linked_at_ms FROM links").fetchall() == [(NOW_MS,)]


def test_subjects_not_shared_for_account_linking_are_never_linked(linked: Linked) -> None:
    assert linked.conn.execute("SELECT count(*) FROM links JOIN moved USING (subject)").fetchall() == [(0,)]
    # Nor counted as missed: recall is over the subjects the purpose allows.
    true_pairs = linked.report.quality[0].true_pairs
    assert true_pairs == round(0.7 * 5_000) - MOVED


def test_confounders_are_linked_less_often_than_clean_pairs(linked: Linked) -> None:
    """Among the links at p >= 0.9 (the set at the chosen threshold may hold lower ones: its mean is the target)."""
    conn = linked.conn
    rates = dict(
        conn.execute("""
        SELECT CASE WHEN recycled THEN 'recycled' WHEN shared_handset THEN 'shared'
                    WHEN NOT (typo OR no_phone OR new_device OR os_upgrade) AND a.user_id IS NOT NULL THEN 'clean'
               END AS stratum,
               avg(CASE WHEN stratum = 'clean' THEN coalesce(l.user_id = a.user_id, false)::INT
                        ELSE (l.user_id IS NOT NULL AND l.user_id IS DISTINCT FROM a.user_id)::INT END)
        FROM accounts a LEFT JOIN links l ON l.subject = a.subject AND l.probability >= 0.9
        WHERE stratum IS NOT NULL AND a.subject NOT IN (SELECT subject FROM moved) GROUP BY 1
    """).fetchall()
    )
    assert rates["clean"] >= 0.95  # correctly linked
    # Wrongly linked: a recycled number or a shared handset alone makes an exact rule link every one of them.
    assert rates["recycled"] < 0.1
    assert rates["shared"] < 0.5 * rates["clean"]


def test_plain_numbers_let_the_model_match_typos() -> None:
    world = generate(WorldSpec(users=3_000, mean_degree=0), seed=3)
    conn = open_store(":memory:")
    seed_store(conn, world, NOW_MS, mirror=True, plain_phones=True)
    report = link(conn, KEY, NOW_MS)
    assert report.by_method.get("splink", 0) > 0  # neither the number nor the vendor id was equal
    conn.register("accounts", world.accounts)
    typos = conn.execute("""SELECT avg((l.user_id = a.user_id)::INT) FROM accounts a LEFT JOIN links l USING (subject)
                            WHERE a.typo AND a.user_id IS NOT NULL""").fetchall()[0][0]
    assert typos > 0.5
    assert {q.threshold: q for q in report.quality}[0.9].precision >= 0.95


def test_a_purpose_carrying_only_the_phone_cannot_train_a_model() -> None:
    world = generate(WorldSpec(users=500, mean_degree=0), seed=1)
    conn = open_store(":memory:")
    seed_store(conn, world, NOW_MS, mirror=True, phone_key=KEY)
    conn.execute("UPDATE shared_profiles SET vendor_device_id = NULL, device_model = NULL, os_name = NULL")
    with pytest.raises(LinkingError, match="phone"):
        link(conn, KEY, NOW_MS)


def test_no_subjects_means_no_links() -> None:
    world = generate(WorldSpec(users=200, mean_degree=0), seed=1)
    conn = open_store(":memory:")
    seed_store(conn, world, NOW_MS)
    conn.execute("INSERT INTO links VALUES ('stale', 1, 0.95, 'phone', 0)")
    report = link(conn, KEY, NOW_MS)
    assert (report.subjects, report.written) == (0, 0)
    assert conn.execute("SELECT count(*) FROM links").fetchall() == [(0,)]


# ids by length: random keys would name the test differently in each pytest-xdist worker, which refuses to run then
@pytest.mark.parametrize(
    "key", [b"", b"k", KEY, os.urandom(64), os.urandom(65), os.urandom(200)], ids=lambda k: f"{len(k)}B"
)
def test_sql_phone_hash_is_the_wire_phone_hash(key: bytes) -> None:
    numbers = ["+15551234567", "+447700900123", "+5511987654321", ""]
    con = duckdb.connect()
    con.register("n", pa.table({"phone": numbers}))
    got = [h for (h,) in con.execute(f"SELECT {wire.hmac_sql(key, 'phone')} FROM n").fetchall()]
    assert got == [phone_hash(key, number) for number in numbers]
    assert con.execute(f"SELECT {wire.hmac_sql(key, 'NULL::VARCHAR')}").fetchall() == [(None,)]


def test_one_to_one_keeps_mutual_best_links_and_drops_ties() -> None:
    """Messenger 1 and 2 both prefer user 10, which prefers 1; 2 then takes 20. Messenger 3 is tied between
    users 30 and 31, so it is linked to neither; 31's only other candidate, 4, is linked instead."""
    mem = duckdb.connect()
    edges = [(1, 10, 0.99), (2, 10, 0.98), (2, 20, 0.95), (3, 30, 0.97), (3, 31, 0.97), (4, 31, 0.6)]
    mem.register(
        "p",
        pa.table(
            {
                "unique_id": [m for m, _, _ in edges],
                "user_id": [u for _, u, _ in edges],
                "probability": [p for _, _, p in edges],
            }
        ),
    )
    _one_to_one(mem, "p")
    pairs = sorted(mem.execute("SELECT unique_id, user_id FROM pairs").fetchall())
    assert pairs == [(1, 10), (2, 20), (4, 31)]


def test_linking_again_keeps_links_and_when_they_were_made(linked: Linked) -> None:
    before = linked.conn.execute("SELECT * FROM links ORDER BY subject").fetchall()
    report = link(linked.conn, KEY, NOW_MS + 60_000)
    assert report.written == linked.report.written
    assert linked.conn.execute("SELECT * FROM links ORDER BY subject").fetchall() == before


def test_given_people_join_the_parent_network_and_get_linked() -> None:
    """Real people (an end-to-end test's messenger users) added as parent users are befriended, sit in contact
    books, and are linked once the messenger shares them for account linking."""
    alice = {
        "name": "Alice",
        "phone": "+15550001111",
        "device_model": "Pixel 9",
        "os_name": "android",
        "os_version": "15",
        "vendor_device_id": "3f2c0a9e-0000-4000-8000-00000000a11c",
    }
    bob = {"name": "Bob", "phone": None}
    world = add_people(generate(WorldSpec(users=2_000, mean_degree=10), seed=2), [alice, bob])
    conn = open_store(":memory:")
    seed_store(conn, world, NOW_MS, mirror=True, phone_key=KEY)
    (alice_id,) = conn.execute("SELECT user_id FROM users WHERE name = 'Alice'").fetchall()[0]
    assert alice_id == 2_001
    assert _count(conn, f"SELECT count(*) FROM friendships WHERE {alice_id} IN (a, b)") > 0
    assert _count(conn, "SELECT count(*) FROM contact_uploads WHERE phone_e164 = '+15550001111'") > 0
    assert _count(conn, "SELECT count(*) FROM users WHERE name = 'Bob' AND phone_e164 IS NULL") == 1
    conn.execute(
        """INSERT INTO shared_profiles (purpose, subject, phone_hash, vendor_device_id, device_model, os_name,
                                        os_version, batch_id, received_at_ms)
           VALUES (?, 'alice', ?, ?, 'Pixel 9', 'android', '15', 'b1', ?)""",
        [LINKING_PURPOSE, phone_hash(KEY, alice["phone"]), alice["vendor_device_id"], NOW_MS],
    )
    link(conn, KEY, NOW_MS)
    assert conn.execute("SELECT user_id, method FROM links WHERE subject = 'alice'").fetchall() == [(alice_id, "phone")]


def _count(conn: duckdb.DuckDBPyConnection, sql: str) -> int:
    return conn.execute(sql).fetchall()[0][0]


def test_cli_seeds_a_mirror_links_and_refuses_without_a_trust_bundle(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    store, trust = tmp_path / "partner.duckdb", tmp_path / "trust.json"
    people = tmp_path / "people.jsonl"
    people.write_text('{"name": "Alice", "phone": "+15550001111"}\n')
    where = ["--store", str(store), "--trust", str(trust)]

    refused = runner.invoke(app, ["link", *where])
    assert refused.exit_code == 1 and "no trust bundle" in refused.output

    seeded = runner.invoke(app, ["seed", "--users", "1500", "--mirror", "--people", str(people), *where])
    assert seeded.exit_code == 0, seeded.output
    assert "made up a phone-hash key" in seeded.output and trust.exists()
    assert stat.S_IMODE(trust.stat().st_mode) == 0o600  # it holds a phone-hash key
    assert "seeded 1,501 users (1 given)" in seeded.output

    linked = runner.invoke(app, ["link", *where])
    assert linked.exit_code == 0, linked.output
    assert "precision" in linked.output and "p >= 0.9" in linked.output
    assert "target precision 0.98" in linked.output and "estimated precision" in linked.output

    fixed = runner.invoke(app, ["link", "--threshold", "0.9", *where])
    assert fixed.exit_code == 0 and "threshold 0.9000 (as given)" in fixed.output
    wrong = runner.invoke(app, ["link", "--target-precision", "1.5", *where])
    assert wrong.exit_code == 2  # typer's usage error, no traceback

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"name": "Eve", "email": "eve@example.com"}\n')
    assert runner.invoke(app, ["seed", "--people", str(bad), *where]).exit_code == 1


def _share_for_linking(conn: duckdb.DuckDBPyConnection, phones: list[str]) -> None:
    """What a real batch under cove-default's account_linking purpose holds: a few subjects, hash and vendor id."""
    conn.execute(
        "INSERT INTO shared_purposes VALUES (?, ?, 'consent', NULL, ?, 'b1')",
        [LINKING_PURPOSE, Use.ACCOUNT_LINKING.value, [wire.CATEGORY_PHONE, wire.CATEGORY_VENDOR_DEVICE_ID]],
    )
    for i, phone in enumerate(phones):
        conn.execute(
            """INSERT INTO shared_profiles (purpose, subject, phone_hash, vendor_device_id, batch_id, received_at_ms)
               VALUES (?, ?, ?, ?, 'b1', ?)""",
            [LINKING_PURPOSE, f"subject-{i}", phone_hash(KEY, phone), f"vendor-{i}", NOW_MS],
        )


def test_a_few_real_subjects_against_a_generated_network_link_nothing_and_say_why(tmp_path: Path) -> None:
    """The README's path: real batches of a handful of users, then `seed`: no pair to train on, no traceback."""
    store = tmp_path / "partner.duckdb"
    conn = open_store(store)
    seed_store(conn, generate(WorldSpec(users=1_000, mean_degree=0), seed=5), NOW_MS)
    _share_for_linking(conn, ["+14155550101", "+14155550102", "+14155550123"])
    conn.close()
    trust = tmp_path / "trust.json"
    public = base64.b64encode(wire.public_key_bytes(Ed25519PrivateKey.generate().public_key())).decode()
    trust.write_text(
        wire.TrustBundle(recipient="parent", messenger_public_key=public, phone_hash_key=KEY.hex()).model_dump_json()
    )
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["link", "--store", str(store), "--trust", str(trust)])
    assert result.exit_code == 0, result.output
    assert "linked 0" in result.output and "nothing to link" in result.output


def test_a_block_too_small_for_em_keeps_splink_defaults_instead_of_failing() -> None:
    world = add_people(
        generate(WorldSpec(users=1_000, mean_degree=0), seed=5), [{"name": "A", "phone": "+14155550101"}]
    )
    conn = open_store(":memory:")
    seed_store(conn, world, NOW_MS)
    _share_for_linking(conn, ["+14155550101", "+14155550102"])
    report = link(conn, KEY, NOW_MS)
    assert report.candidate_pairs == {"phone": 1, "vendor_device_id": 0}
    assert report.untrained == ["vendor_device_id", "phone"] and report.scored_pairs == 1
    assert report.prior == "assumed recall"


# The threshold: a pure choice over the links' probabilities.


@given(
    st.lists(st.floats(0.5, 1.0), max_size=200).map(lambda ps: np.round(ps, 2)),
    st.floats(0.6, 1.0),
)
def test_the_threshold_is_the_lowest_whose_links_meet_the_target(probabilities: np.ndarray, target: float) -> None:
    point = choose_threshold(probabilities, target)
    kept = probabilities[probabilities >= point.threshold]
    assert point.links == len(kept)  # links tied at the threshold are all in or all out
    if point.links and (point.threshold < 1 or kept.mean() >= target):
        assert point.estimated_precision == pytest.approx(kept.mean())
        assert point.estimated_precision >= target - 1e-9
    # One step lower (the next probability down, with its ties) would miss the target.
    lower = probabilities[probabilities < point.threshold]
    if len(lower):
        wider = probabilities[probabilities >= lower.max()]
        assert wider.mean() < target + 1e-9


def test_a_set_meets_the_target_with_links_below_it() -> None:
    """The target is the set's precision, not each link's: 70 near-certain links carry 30 at 0.94."""
    point = choose_threshold(np.array([1.0] * 70 + [0.94] * 30 + [0.6] * 5), 0.98)
    assert (point.threshold, point.links) == (0.94, 100)
    assert point.estimated_precision == pytest.approx(0.982)
    assert choose_threshold(np.array([1.0] * 60 + [0.94] * 40), 0.98).threshold == 1.0
    assert choose_threshold(np.array([0.9, 0.8]), 0.98) == OperatingPoint(1.0, 0.0, 0)
    assert choose_threshold(np.array([]), 0.98).links == 0
    with pytest.raises(ValueError, match="target"):
        choose_threshold(np.array([0.9]), 0.0)


# Calibration: on labelled pairs the parent has; the generator's answer key only audits.


def _mirrored(
    spec: WorldSpec, *, device_fields: bool = False, seed: int = 11
) -> tuple[duckdb.DuckDBPyConnection, World]:
    world = generate(spec, seed)
    conn = open_store(":memory:")
    seed_store(conn, world, NOW_MS, mirror=True, phone_key=KEY, device_fields=device_fields)
    conn.register("accounts", world.accounts)
    return conn, world


@pytest.mark.parametrize("harder", [False, True], ids=["default", "harder"])
def test_probabilities_are_calibrated_without_the_answer_key(harder: bool) -> None:
    spec = (WorldSpec.harder if harder else WorldSpec)(users=10_000, mean_degree=0)
    conn, _ = _mirrored(spec)
    report = link(conn, KEY, NOW_MS, threshold=0.5)
    assert report.prior == "calibrated"
    with_truth = conn.execute("SELECT * FROM links ORDER BY subject").fetchall()
    # Every link kept, with its probability: their mean is the expected precision, and it is the actual one.
    expected = sum(p for _, _, p, _, _ in with_truth) / len(with_truth)
    assert report.at_threshold is not None
    assert abs(expected - report.at_threshold.precision) < 0.02
    # The same links without the answer key: it is never read to train or to choose.
    conn.execute("DELETE FROM truth_links")
    again = link(conn, KEY, NOW_MS, threshold=0.5)
    assert again.quality == [] and conn.execute("SELECT * FROM links ORDER BY subject").fetchall() == with_truth


def test_reuse_counts_the_pairs_a_key_cannot_belong_to() -> None:
    """Number 'a' is held by user 1 and subjects 10 and 11: at most one of those is user 1, so one known non-match.
    Half the parent's numbers are also on the messenger (q = 1/2), so as many non-matches hide among numbers held
    once a side: one of 'b', 'c'."""
    mem = duckdb.connect()
    mem.execute("""CREATE TABLE parent AS SELECT * FROM (VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd'), (5, 'e'),
                   (6, 'f')) t(unique_id, phone_hash)""")
    mem.execute("""CREATE TABLE messenger AS SELECT * FROM (VALUES (10, 'a'), (11, 'a'), (12, 'b'), (13, 'c'),
                   (14, NULL)) t(unique_id, phone_hash)""")
    reuse = key_reuse(mem, "phone_hash", comparable=0.5)
    pairs = 0.5 * 6 * 5  # outside the null level
    assert reuse.u_several == pytest.approx((1 + 1) / (pairs + 1))
    assert reuse.u_one == pytest.approx((1 + 1) / (pairs + 1))
    assert reuse.several_share == pytest.approx(1 / (1 + 1))  # 'a' hides one true pair, 'b' and 'c' one


# The device: one handset, recognised when shared, not needed when the number was kept.


@pytest.fixture(scope="module")
def harder_devices() -> tuple[duckdb.DuckDBPyConnection, LinkReport]:
    conn, _ = _mirrored(WorldSpec.harder(users=10_000, mean_degree=0), device_fields=True)
    return conn, link(conn, KEY, NOW_MS)


def _rate(conn: duckdb.DuckDBPyConnection, where: str, right: bool) -> float:
    linked = "l.user_id = a.user_id" if right else "l.user_id IS NOT NULL AND l.user_id IS DISTINCT FROM a.user_id"
    return _count(
        conn,
        f"""SELECT avg(coalesce({linked}, false)::INT) FROM accounts a LEFT JOIN links l
                            USING (subject) WHERE {where}""",
    )


def test_a_shared_handset_is_recognised(harder_devices: tuple[duckdb.DuckDBPyConnection, LinkReport]) -> None:
    conn, report = harder_devices
    # The phone-or-vendor-id rule links every shared handset whose owner's vendor id the parent has to that owner.
    rule = _count(
        conn,
        """SELECT avg((u.user_id IS NOT NULL)::INT) FROM accounts a LEFT JOIN users u
                           ON u.vendor_device_id = a.vendor_device_id AND u.user_id IS DISTINCT FROM a.user_id
                           WHERE a.shared_handset""",
    )
    assert rule > 0.3
    assert _rate(conn, "shared_handset", right=False) < 0.1 * rule
    assert report.at_threshold is not None and report.at_threshold.precision >= 0.97


def test_a_number_kept_on_a_second_handset_is_linked_at_the_floor() -> None:
    """Two handsets (two vendor ids, another model) do not outweigh the same number held by one record a side."""
    conn, _ = _mirrored(WorldSpec.harder(users=10_000, mean_degree=0), device_fields=True)
    link(conn, KEY, NOW_MS, threshold=0.5)
    kept = "two_devices AND NOT (no_phone OR typo OR changed_number OR recycled) AND a.user_id IS NOT NULL"
    assert _rate(conn, kept, right=True) > 0.7


@pytest.mark.parametrize(
    ("harder", "precision", "recall"), [(False, 0.97, 0.25), (True, 0.95, 0.1)], ids=["default", "harder"]
)
def test_the_default_policys_fields_meet_floors_at_the_chosen_threshold(
    harder: bool, precision: float, recall: float
) -> None:
    conn, _ = _mirrored((WorldSpec.harder if harder else WorldSpec)(users=10_000, mean_degree=0))
    report = link(conn, KEY, NOW_MS)
    assert report.at_threshold is not None and report.target_precision == 0.98
    assert report.at_threshold.precision >= precision and report.at_threshold.recall >= recall
    assert abs(report.estimated_precision - report.at_threshold.precision) < 0.02
    # The number-only links below the chosen threshold are no coin tosses: p >= 0.9 keeps them.
    assert {q.threshold: q for q in report.quality}[0.9].recall >= (0.6 if not harder else 0.1)
