"""Account linking: which messenger subject is which parent user, from the rows shared for account linking only.

The model is Fellegi and Sunter's ("A Theory for Record Linkage", JASA 64(328), 1969) as Splink implements it
(Linacre et al., "Splink: Free software for probabilistic record linkage at scale", IJPDS 7(3), 2022; its docs at
moj-analytical-services.github.io/splink). Pairs that share a phone (keyed hash) or a vendor device id are
*candidates*, not links: a recycled number now held by another parent user, or a family handset shared with one,
makes an exact match wrong. So every link goes through the model (:mod:`cove.partner.link_model`): two
comparisons, the phone and the device (vendor id, model and OS as one handset, not three votes), with levels for
a number or a handset that several records hold; u of the exact keys counted from those several-held values, m
from the pairs one key alone links, and a prior calibrated on the pairs that share both keys, so that nothing is
assumed about the population and nothing is learnt from the generator's answer key (``truth_links`` only audits).
A single-key pair whose records have rivals on the other key is downweighted (:mod:`cove.partner.exclusivity`),
and single best links keep the result one-to-one (:func:`_one_to_one`). The threshold is chosen for a target
precision (:mod:`cove.partner.operating_point`): the written links are the most probable ones whose mean
probability, their expected precision, still meets it. A link's ``method`` is the exact evidence the model
accepted it on ('phone', else 'vendor_device_id'), or 'splink' when there was none.

Measured at 1 M a side (bench/partner.py, docs/benchmarks.md), with only a hashed number and a vendor id: the
probabilities are calibrated to about half a point, the threshold chosen for 0.98 lands at 0.67, and the links
there are .976 precise (estimated .980) with recall .748. The limit is the data: a recycled number whose former
owner is not on the messenger, with no vendor id on a side, looks exactly like its owner. On the harder
population (20 % changed numbers, 10 % family handsets) a number-only link is right about 89 times in 100, so at
0.98 only the links on both keys are written (recall .15): the threshold says what the data can support.

Only rows of purposes whose use is ``account_linking`` are read: a subject shared under any other purpose cannot
be linked, by construction. Splink runs in its own in-memory DuckDB, never on the store, and never touches the
network (no ``splink.datasets``, no charts).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from cove.partner.engines import DuckDBEngine, LinkEngine
from cove.partner.exclusivity import adjust
from cove.partner.link_model import ACROSS, FIELD, HOLDERS, MIN_LABELLED_PAIRS, keys, scalar, train
from cove.partner.operating_point import DEFAULT_TARGET, choose_threshold
from cove.sharing import wire
from cove.sharing.wire import Use

__all__ = ["MIN_LABELLED_PAIRS", "LinkReport", "LinkingError", "Quality", "link"]

QUALITY_THRESHOLDS = (0.5, 0.9, 0.99)
AUTO_LINK = 0.99  # at or above: linked without asking; from the threshold to here: "ask the user"
CANDIDATE_FLOOR = 0.5  # pairs below this are never kept, whatever the threshold


class LinkingError(Exception):
    """The shared rows cannot support a model (too few comparable fields)."""


@dataclass(frozen=True)
class Quality:
    """Links at or above ``threshold`` against the generator's ground truth."""

    threshold: float
    links: int
    correct: int
    true_pairs: int  # truth pairs whose subject was shared for account linking

    @property
    def precision(self) -> float:
        return self.correct / self.links if self.links else 0.0

    @property
    def recall(self) -> float:
        return self.correct / self.true_pairs if self.true_pairs else 0.0


@dataclass
class LinkReport:
    subjects: int  # distinct subjects under account-linking purposes
    users: int  # parent users
    fields: list[str]  # the comparisons the shared rows allowed
    threshold: float = 1.0  # links at or above it are written: chosen from the target precision, or given
    target_precision: float | None = None  # None when the threshold was given
    estimated_precision: float = 0.0  # the written links' mean probability: their expected share of true links
    prior: str = ""  # how the prior was set: "calibrated" on the deterministic pairs, or "assumed recall"
    rule_recall: float = 0.0  # share of true pairs the same-number-and-vendor-id rule finds (estimated)
    written: int = 0  # links written at the threshold
    auto: int = 0  # of them, at or above AUTO_LINK
    by_method: dict[str, int] = field(default_factory=dict)
    scored_pairs: int = 0  # pairs the blocking rules produced, all scored
    candidate_pairs: dict[str, int] = field(default_factory=dict)  # pairs sharing each exact key
    untrained: list[str] = field(default_factory=list)  # keys linking too few pairs alone to label the other comparison
    exact_rejected: dict[str, int] = field(default_factory=dict)  # exact-match pairs the model did not link
    quality: list[Quality] = field(default_factory=list)  # empty without ground truth; the last at the threshold
    at_threshold: Quality | None = None  # the written links against the ground truth
    baselines: dict[str, Quality] = field(default_factory=dict)  # the deterministic rules alone, pairwise
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase

    @property
    def linking_seconds(self) -> float:
        """The linking itself: every phase but the audit."""
        return sum(seconds for name, seconds in self.timings.items() if name != "audit")


class _Phases:
    """Times named phases into a report and tells a progress display which one is running."""

    def __init__(self, report: LinkReport, on_phase: Callable[[str], None] | None) -> None:
        self._report, self._on_phase = report, on_phase

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if self._on_phase is not None:
            self._on_phase(name)
        start = time.perf_counter()
        yield
        self._report.timings[name] = time.perf_counter() - start


def _messenger_sql(key: bytes) -> str:
    """One row per subject shared under any account-linking purpose; a plain number is hashed too, so that
    one hash column serves every purpose."""
    return f"""
        SELECT row_number() OVER (ORDER BY p.subject) AS unique_id, p.subject,
               coalesce(max(p.phone_hash), max({wire.hmac_sql(key, "p.phone_number")})) AS phone_hash,
               max(p.phone_number) AS phone_number, max(p.vendor_device_id) AS vendor_device_id,
               max(p.device_model) AS device_model, max(p.os_name) AS os_name, max(p.os_version) AS os_version
        FROM shared_profiles p JOIN shared_purposes s ON s.purpose = p.purpose
        WHERE s.use = '{Use.ACCOUNT_LINKING.value}'
        GROUP BY p.subject
    """


def _parent_sql(key: bytes, plain: bool) -> str:
    number = "phone_e164" if plain else "NULL::VARCHAR"  # plain numbers enter the model only when compared
    return f"""
        SELECT user_id AS unique_id, {wire.hmac_sql(key, "phone_e164")} AS phone_hash, {number} AS phone_number,
               vendor_device_id, device_model, os_name, os_version
        FROM users
    """


def link(
    conn: duckdb.DuckDBPyConnection,
    phone_key: bytes,
    now_ms: int,
    *,
    target_precision: float = DEFAULT_TARGET,
    threshold: float | None = None,
    rules_recall: float = 0.7,
    u_pairs: float = 5e6,
    seed: int = 1,
    engine: LinkEngine | None = None,
    on_phase: Callable[[str], None] | None = None,
) -> LinkReport:
    """Link the account-linking subjects to parent users; ``links`` then holds exactly the links found.

    ``target_precision``: the links written are the most probable ones whose mean probability (their expected
    precision) still reaches it (:func:`cove.partner.operating_point.choose_threshold`). ``threshold``: instead,
    the lowest probability written. ``rules_recall``: the share of true pairs the exact phone / vendor-id rules
    are assumed to find, the prior λ when it cannot be calibrated (:func:`cove.partner.link_model.train`).
    ``u_pairs``: random pairs sampled for the u probabilities; ``seed`` makes that sample repeatable.
    ``engine``: where Splink trains and scores (DuckDB in process by default; the links are the same on any
    engine). Quality figures are computed when ``truth_links`` is not empty (generated data only).
    """
    if threshold is not None and not CANDIDATE_FLOOR <= threshold <= 1:
        raise ValueError(f"threshold {threshold} is not between the candidate floor {CANDIDATE_FLOOR} and 1")
    if not 0 < target_precision <= 1:
        raise ValueError(f"target precision {target_precision} is not in (0, 1]")
    engine = engine or DuckDBEngine()
    report = LinkReport(subjects=0, users=0, fields=[])
    phase = _Phases(report, on_phase)
    with duckdb.connect() as mem:  # Splink's working database, apart from the store
        with phase("prepare"):
            plain = _load(conn, mem, phone_key, report)
            if report.subjects and report.users:
                _check_fields(report)
                report.candidate_pairs = _candidate_pairs(mem, report.fields)
        # The prior comes from the exact matches: without one there is nothing to train or score.
        if any(report.candidate_pairs.values()):
            with phase("train"):
                linker, training = train(engine, mem, report.fields, plain, rules_recall, u_pairs, seed)
            report.untrained, report.prior, report.rule_recall = (
                training.untrained,
                training.prior,
                training.rule_recall,
            )
            with phase("predict"):
                predictions = engine.predict(mem, linker)
                report.scored_pairs = scalar(mem, f"SELECT count(*) FROM {predictions}")
            with phase("cluster"):
                _one_to_one(mem, adjust(mem, predictions, training.reuse))
        else:
            mem.execute("CREATE TABLE pairs (unique_id BIGINT, user_id BIGINT, probability DOUBLE)")
        with phase("threshold"):
            _operating_point(mem, report, target_precision, threshold)
        with phase("write"):
            _write(conn, mem, report, report.threshold, now_ms)
        with phase("audit"):
            _audit(mem, report, report.threshold)
    return report


def _operating_point(
    mem: duckdb.DuckDBPyConnection, report: LinkReport, target: float, threshold: float | None
) -> None:
    """The threshold (given, or chosen for the target precision) and the written links' estimated precision."""
    probabilities = mem.sql("SELECT probability FROM pairs").fetchnumpy()["probability"]
    if threshold is None:
        point = choose_threshold(probabilities, target)
        report.threshold, report.target_precision = max(point.threshold, CANDIDATE_FLOOR), target
    else:
        report.threshold = threshold
    kept = probabilities[probabilities >= report.threshold]
    report.estimated_precision = float(kept.mean()) if len(kept) else 0.0


def _load(conn: duckdb.DuckDBPyConnection, mem: duckdb.DuckDBPyConnection, key: bytes, report: LinkReport) -> bool:
    """Copy both sides (and any ground truth) into Splink's database; True when plain numbers were shared."""
    messenger = conn.sql(_messenger_sql(key)).to_arrow_table()
    plain = messenger.num_rows > 0 and messenger["phone_number"].null_count < messenger.num_rows
    parent = conn.sql(_parent_sql(key, plain)).to_arrow_table()
    truth = conn.sql("SELECT subject, user_id FROM truth_links").to_arrow_table()
    for name, table in (("messenger_in", messenger), ("parent_in", parent), ("truth_in", truth)):
        mem.register(name, table)
    mem.execute("CREATE TEMP TABLE messenger_raw AS SELECT * EXCLUDE (subject) FROM messenger_in")
    mem.execute("CREATE TABLE subjects AS SELECT unique_id, subject FROM messenger_in")
    mem.execute("CREATE TEMP TABLE parent_raw AS SELECT * FROM parent_in")
    _count_holders(mem)
    mem.execute("CREATE TABLE truth AS SELECT s.unique_id, t.user_id FROM truth_in t JOIN subjects s USING (subject)")
    report.subjects, report.users = messenger.num_rows, parent.num_rows
    report.fields = _fields(messenger, parent)
    return plain


def _count_holders(mem: duckdb.DuckDBPyConnection) -> None:
    """``parent`` and ``messenger`` with, for each exact key, how many records of both sides hold its value (two
    for a number or a handset of one person on each network, more for a recycled number or a family handset), and
    how many of the other side do (its rivals, :mod:`cove.partner.exclusivity`); ``<key>_holders`` per value."""
    for key in HOLDERS:
        mem.execute(f"""
            CREATE TEMP TABLE {key}_holders AS
            SELECT {key}, count(*) FILTER (WHERE side = 0) AS users, count(*) FILTER (WHERE side = 1) AS subjects
            FROM (SELECT {key}, 0 AS side FROM parent_raw UNION ALL SELECT {key}, 1 FROM messenger_raw)
            WHERE {key} IS NOT NULL GROUP BY 1
        """)
    joins = " ".join(f"LEFT JOIN {key}_holders h_{key} ON h_{key}.{key} = r.{key}" for key in HOLDERS)
    for side, other in (("parent", "subjects"), ("messenger", "users")):  # in id order: the u sample must repeat
        counts = ", ".join(
            f"coalesce(h_{key}.users + h_{key}.subjects, 0) AS {HOLDERS[key]}, "
            f"coalesce(h_{key}.{other}, 0) AS {ACROSS[key]}"
            for key in HOLDERS
        )
        mem.execute(f"CREATE TABLE {side} AS SELECT r.*, {counts} FROM {side}_raw r {joins} ORDER BY r.unique_id")


def _fields(messenger: pa.Table, parent: pa.Table) -> list[str]:
    """The comparisons both sides have data for."""

    def present(column: str) -> bool:
        return messenger[column].null_count < messenger.num_rows and parent[column].null_count < parent.num_rows

    columns = {"phone": "phone_hash", "vendor_device_id": "vendor_device_id", "device_model": "device_model"}
    return [name for name, column in columns.items() if present(column)] + (["os"] if present("os_name") else [])


def _check_fields(report: LinkReport) -> None:
    if not keys(report.fields) or len(report.fields) < 2:
        raise LinkingError(
            f"account-linking rows share only {report.fields or 'nothing'} with the parent's users: a model needs "
            "the phone or the vendor device id, and at least two of phone, vendor id, device model, OS"
        )


def _candidate_pairs(mem: duckdb.DuckDBPyConnection, fields: list[str]) -> dict[str, int]:
    """Pairs that share each exact key: the blocks of the deterministic rules."""
    return {
        FIELD[key]: scalar(mem, f"SELECT count(*) FROM parent p JOIN messenger m ON p.{key} = m.{key}")
        for key in keys(fields)
    }


def _one_to_one(mem: duckdb.DuckDBPyConnection, scored: str) -> None:
    """Single best links of ``scored`` (:func:`~cove.partner.exclusivity.adjust`) into ``pairs``: drop ties, then
    repeatedly keep every pair best for both its records.

    This is Splink's ``cluster_using_single_best_links`` for two duplicate-free datasets with
    ``ties_method="drop"`` (a record whose best candidates are exactly as likely is a coin toss, not a link),
    computed on the scored pairs alone: Splink's generic version re-ranks every record of both datasets in each
    round and took 25 s for 1 M x 1 M on two cores, against under a second here.
    """
    mem.execute(f"""
        CREATE TEMP TABLE edges AS
        SELECT unique_id, user_id, probability FROM {scored}
        WHERE probability >= {CANDIDATE_FLOOR}
        QUALIFY count(*) OVER (PARTITION BY unique_id, probability) = 1
            AND count(*) OVER (PARTITION BY user_id, probability) = 1
    """)
    mem.execute("CREATE TABLE pairs (unique_id BIGINT, user_id BIGINT, probability DOUBLE)")
    best = """
        INSERT INTO pairs SELECT unique_id, user_id, probability FROM edges
        QUALIFY row_number() OVER (PARTITION BY unique_id ORDER BY probability DESC) = 1
            AND row_number() OVER (PARTITION BY user_id ORDER BY probability DESC) = 1
    """
    while scalar(mem, best):
        mem.execute("""DELETE FROM edges WHERE unique_id IN (SELECT unique_id FROM pairs)
                                          OR user_id IN (SELECT user_id FROM pairs)""")


def _write(
    conn: duckdb.DuckDBPyConnection, mem: duckdb.DuckDBPyConnection, report: LinkReport, threshold: float, now_ms: int
) -> None:
    """Attribute each link to its exact evidence and make ``links`` hold those at the threshold.

    A link kept from an earlier run keeps its ``linked_at_ms`` (when it was first made); only what changed is
    written, which also spares DuckDB rewriting a million-row indexed table when little moved.
    """
    mem.execute("""
        CREATE TABLE links_all AS
        SELECT s.subject, x.user_id, x.probability, x.unique_id,
               CASE WHEN m.phone_hash = p.phone_hash THEN 'phone'
                    WHEN m.vendor_device_id = p.vendor_device_id THEN 'vendor_device_id'
                    ELSE 'splink' END AS method
        FROM pairs x JOIN subjects s USING (unique_id) JOIN messenger m USING (unique_id)
        JOIN parent p ON p.unique_id = x.user_id
    """)
    written = mem.sql(
        "SELECT subject, user_id, probability, method FROM links_all WHERE probability >= $t", params={"t": threshold}
    ).to_arrow_table()
    report.written = written.num_rows
    report.auto = int(pc.sum(pc.greater_equal(written["probability"], AUTO_LINK)).as_py() or 0)
    counts = mem.execute(
        "SELECT method, count(*) FROM links_all WHERE probability >= ? GROUP BY 1 ORDER BY 2 DESC", [threshold]
    ).fetchall()
    report.by_method = dict(counts)
    conn.register("links_new", written)
    try:
        conn.execute("BEGIN")
        conn.execute("""DELETE FROM links WHERE NOT EXISTS (
                            SELECT 1 FROM links_new n WHERE n.subject = links.subject AND n.user_id = links.user_id)""")
        conn.execute("""UPDATE links SET probability = n.probability, method = n.method FROM links_new n
                        WHERE n.subject = links.subject AND n.user_id = links.user_id
                          AND (n.probability <> links.probability OR n.method <> links.method)""")
        conn.execute(
            """INSERT INTO links SELECT subject, user_id, probability, method, ? FROM links_new
                        WHERE subject NOT IN (SELECT subject FROM links)""",
            [now_ms],
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    finally:
        conn.unregister("links_new")


def _audit(mem: duckdb.DuckDBPyConnection, report: LinkReport, threshold: float) -> None:
    """What the model scored and turned down, and, on generated data, precision and recall."""
    present = keys(report.fields)
    for key in present:
        report.exact_rejected[FIELD[key]] = scalar(
            mem,
            f"""
            SELECT count(*) FROM parent p JOIN messenger m ON p.{key} = m.{key}
            ANTI JOIN links_all l ON l.unique_id = m.unique_id AND l.user_id = p.unique_id AND l.probability >= ?
        """,
            [threshold],
        )
    true_pairs = scalar(mem, "SELECT count(*) FROM truth")
    if not true_pairs:
        return
    report.quality = [_quality(mem, "links_all", t, true_pairs) for t in QUALITY_THRESHOLDS]
    report.at_threshold = _quality(mem, "links_all", threshold, true_pairs)
    rules = {"exact phone": ["phone_hash"], "exact phone or vendor id": ["phone_hash", "vendor_device_id"]}
    for name, columns in rules.items():
        if not set(columns) <= set(present):
            continue
        union = " UNION ".join(
            f"SELECT m.unique_id, p.unique_id AS user_id, 1.0 AS probability FROM parent p "
            f"JOIN messenger m ON p.{c} = m.{c}"
            for c in columns
        )
        mem.execute(f"CREATE OR REPLACE TEMP TABLE baseline AS {union}")
        report.baselines[name] = _quality(mem, "baseline", 1.0, true_pairs)


def _quality(mem: duckdb.DuckDBPyConnection, table: str, threshold: float, true_pairs: int) -> Quality:
    links, correct = mem.execute(
        f"""
        SELECT count(*), count(t.user_id) FROM {table} l
        LEFT JOIN truth t ON t.unique_id = l.unique_id AND t.user_id = l.user_id
        WHERE l.probability >= ?""",
        [threshold],
    ).fetchall()[0]
    return Quality(threshold, links, correct, true_pairs)
