"""The Splink model behind account linking: its comparisons, its training and the calibration of its prior.

Two comparisons, one per fact. The *phone* (keyed hash equality; Damerau-Levenshtein 1 and 2 when plain numbers
are shared) and the *device*: vendor id, model and OS describe one handset, so they form one comparison whose
levels run from the same vendor id down to another model, instead of three votes that Fellegi-Sunter would
multiply as if independent (a shared family handset then agreed three times over). A key held by more than two
records, both sides together, gets levels of its own: a number several accounts hold (recycled) or a handset
several people use (a family's) is weaker evidence than one held by one record a side, and the model learns by
how much. The hold counts are columns of the inputs, computed before Splink runs, so the comparisons are plain
SQL any engine runs.

Training uses only what the parent holds, never the generator's answer key:
- u: random pairs (Splink), except the exact-key levels, which random pairs cannot estimate: those are counted
  from the values several records hold (:func:`key_reuse`);
- m: counted on *labelled pairs*, the pairs the other key alone links and that are the only candidate of both
  their records (:func:`m_from_labels`). EM cannot do this here: blocked on one key, it has one comparison left,
  whose m and the block's prior it cannot tell apart;
- λ: calibrated on the pairs the deterministic rule "same number and same vendor id" finds. That rule finds the
  share m(equal number) x m(equal vendor id) of all true pairs (:func:`rule_recall`), so the number of true pairs
  is its count divided by that share, where Splink would assume a recall. Assuming one is what moved the
  operating point when the population changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb

from cove.partner.engines import LinkEngine

if TYPE_CHECKING:  # splink is imported when linking runs: it takes a second to load
    from splink import Linker, SettingsCreator
    from splink.comparison_library import CustomComparison
    from splink.internals.blocking_rule_creator import BlockingRuleCreator

# Fewer labelled pairs than this (a handful of real accounts against a generated network) estimate no m: the
# comparison keeps Splink's defaults, and the prior the assumed recall.
MIN_LABELLED_PAIRS = 100
FIELD = {"phone_hash": "phone", "vendor_device_id": "vendor_device_id"}  # exact-match keys, by column
_KEY_NAME = {"phone_hash": "number", "vendor_device_id": "vendor id"}  # in level labels
HOLDERS = {"phone_hash": "phone_holders", "vendor_device_id": "vendor_holders"}  # records holding the key's value
ACROSS = {"phone_hash": "phone_across", "vendor_device_id": "vendor_across"}  # of them, on the other side
# Labels of the levels the calibration reads; the exact levels of a key are "<key> ...".
_ONE, _SEVERAL = "held by one record a side", "held by several"


@dataclass(frozen=True)
class Level:
    """One comparison level: its label, its SQL over ``<column>_l`` / ``<column>_r`` (None: every other pair),
    and whether it is the null level (no evidence) or term-frequency adjusted on the device model."""

    label: str
    sql: str | None
    null: bool = False
    tf: bool = False


@dataclass(frozen=True)
class Comparison:
    name: str
    levels: list[Level]
    key: str | None  # the exact key among its levels, if shared
    labelled_by: str  # the key whose deterministic pairs estimate this comparison's m (the *other* key)

    def case_sql(self) -> str:
        """The label of each pair's level, as Splink assigns it (first level that holds)."""
        whens = " ".join(f"WHEN {lv.sql} THEN '{lv.label}'" for lv in self.levels if lv.sql is not None)
        other = next(lv.label for lv in self.levels if lv.sql is None)
        return f"CASE {whens} ELSE '{other}' END"


@dataclass(frozen=True)
class Training:
    """What training found: the keys without labelled pairs, and how the prior was set."""

    untrained: list[str]
    prior: str  # "calibrated" or "assumed recall"
    rule_recall: float  # share of true pairs the same-number-and-vendor-id rule finds (or the assumed one)
    reuse: dict[str, Reuse]  # by exact key


def keys(fields: list[str]) -> list[str]:
    """The exact-match keys present: the deterministic rules, the blocking and the labelled pairs."""
    return [key for key, name in FIELD.items() if name in fields]


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> Any:
    return con.execute(sql, params or []).fetchall()[0][0]


def comparisons(fields: list[str], plain: bool) -> list[Comparison]:
    """The phone and the device, as far as ``fields`` allow."""
    out = []
    if "phone" in fields:
        out.append(Comparison("phone", _phone_levels(plain), "phone_hash", labelled_by="vendor_device_id"))
    if {"vendor_device_id", "device_model"} & set(fields):
        key = "vendor_device_id" if "vendor_device_id" in fields else None
        out.append(Comparison("device", _device_levels(fields), key, labelled_by="phone_hash"))
    return out


def _exact_levels(key: str, name: str) -> list[Level]:
    """Equal ``key``, held by exactly one record a side, then by several (a recycled number, a family handset)."""
    return [
        Level(f"{name} {label}", f"{key}_l = {key}_r AND {HOLDERS[key]}_l {op} 2")
        for label, op in ((_ONE, "="), (_SEVERAL, ">"))
    ]


def _phone_levels(plain: bool) -> list[Level]:
    """Hash equality; with plain numbers also Damerau-Levenshtein 1 and 2 (a typo, a transposition).

    Two numbers that close share their first five or their last four characters, which DuckDB checks first: the
    distance itself, at a few microseconds a pair, is then computed for few of the 5 M random pairs behind u.
    """
    near = "(left(phone_number_l, 5) = left(phone_number_r, 5) OR right(phone_number_l, 4) = right(phone_number_r, 4))"
    fuzzy = [
        Level(f"Damerau-Levenshtein <= {d}", f"{near} AND damerau_levenshtein(phone_number_l, phone_number_r) <= {d}")
        for d in (1, 2)
        if plain
    ]
    null = Level("no number", "phone_hash_l IS NULL OR phone_hash_r IS NULL", null=True)
    return [null, *_exact_levels("phone_hash", "number"), *fuzzy, Level("another number", None)]


def _device_levels(fields: list[str]) -> list[Level]:
    """One handset, one comparison: the same vendor id; two vendor ids (two handsets); else, with the vendor id
    unknown on a side, the same model and OS version, the same model (term-frequency adjusted: a rare model is
    stronger evidence), another model."""
    vendor, model = "vendor_device_id" in fields, "device_model" in fields
    null = " AND ".join(
        f"({column}_l IS NULL OR {column}_r IS NULL)"
        for column, shared in (("vendor_device_id", vendor), ("device_model", model))
        if shared
    )
    levels = [Level("no device data", null, null=True)]
    if vendor:
        both = "vendor_device_id_l IS NOT NULL AND vendor_device_id_r IS NOT NULL"
        levels += [*_exact_levels("vendor_device_id", "vendor id"), Level("two handsets", both)]
    if model:
        same = "device_model_l = device_model_r"
        same_os = f"{same} AND os_name_l = os_name_r AND os_version_l = os_version_r"
        levels += [Level("same model and OS version", same_os, tf=True), Level("same model", same, tf=True)]
    return [*levels, Level("another device", None)]


def train(
    engine: LinkEngine,
    mem: duckdb.DuckDBPyConnection,
    fields: list[str],
    plain: bool,
    rules_recall: float,
    u_pairs: float,
    seed: int,
) -> tuple[Linker, Training]:
    """A trained Splink model over the ``parent`` and ``messenger`` tables of ``mem``.

    u: random pairs (Splink), except the exact-key levels (:func:`key_reuse`). m: from labelled pairs
    (:func:`m_from_labels`). λ: from the deterministic pairs (:func:`rule_recall`), or, when there are too few
    labelled pairs, from the exact rules at the assumed ``rules_recall``, with Splink's default m.
    """
    from splink import block_on

    present, model = keys(fields), comparisons(fields, plain)
    reuse = {c.key: key_reuse(mem, c.key, _comparable(mem, c)) for c in model if c.key in present}
    u = {f"{_KEY_NAME[k]} {_ONE}": r.u_one for k, r in reuse.items()}
    u |= {f"{_KEY_NAME[k]} {_SEVERAL}": r.u_several for k, r in reuse.items()}
    sampler = engine.linker(mem, settings(model, present, plain and "device_model" in fields, u, {}))
    sampler.training.estimate_u_using_random_sampling(max_pairs=u_pairs, seed=seed)
    u = {**_trained(sampler.misc.save_model_to_json(), "u_probability"), **u}
    m, untrained = m_from_labels(mem, model, reuse)
    linker = engine.linker(mem, settings(model, present, plain and "device_model" in fields, u, m))
    recall = rule_recall(mem, model, m) if len(present) == 2 and not untrained else None
    if recall is None:
        linker.training.estimate_probability_two_random_records_match(
            [block_on(key) for key in present], recall=rules_recall
        )
        return linker, Training(untrained, "assumed recall", rules_recall, reuse)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("phone_hash", "vendor_device_id")], recall=recall
    )
    return linker, Training(untrained, "calibrated", recall, reuse)


def _trained(model: dict[str, Any], name: str) -> dict[str, float]:
    """The ``name`` ("m_probability", "u_probability") of every level that has one, by label."""
    return {
        level["label_for_charts"]: level[name]
        for comparison in model["comparisons"]
        for level in comparison["comparison_levels"]
        if level.get(name) is not None
    }


def m_from_labels(
    mem: duckdb.DuckDBPyConnection, model: list[Comparison], reuse: dict[str, Reuse]
) -> tuple[dict[str, float], list[str]]:
    """m of each comparison, counted on the pairs that the *other* key's deterministic rule calls the same person.

    The rule: the key is equal, and the pair is the only candidate of both its records (no other pair shares a
    number or a vendor id with either). A confounder nearly always leaves a second candidate behind: a recycled
    number's holder still has their own vendor id, a family handset's user their own number, and the number's
    or the handset's owner their own account. So these pairs are the parent's labelled matches, and the levels
    they fall into on the comparison they were not selected by are its m. A level never seen gets half a pair,
    so that no evidence is ever infinite. Returns (m by level label, the keys with too few labelled pairs, whose
    comparisons keep Splink's default m).
    """
    _isolated_pairs(mem)
    m: dict[str, float] = {}
    untrained = []
    for comparison in model:
        key = comparison.labelled_by
        counts = _level_counts(mem, comparison, key)
        if sum(counts.values()) < MIN_LABELLED_PAIRS:
            untrained.append(FIELD[key])
            continue
        raw = {lv.label: max(counts.get(lv.label, 0), 0.5) for lv in comparison.levels if not lv.null}
        if comparison.key in reuse:  # a labelled pair is its key's only pair: split agreement by the key's reuse
            share = reuse[comparison.key].several_share
            one, several = (f"{_KEY_NAME[comparison.key]} {label}" for label in (_ONE, _SEVERAL))
            equal = raw[one] + raw[several]
            raw[one], raw[several] = equal * (1 - share), equal * share
        total = sum(raw.values())
        m.update({label: value / total for label, value in raw.items()})
    return m, untrained


def _isolated_pairs(mem: duckdb.DuckDBPyConnection) -> None:
    """``isolated``: the pairs sharing a number or a vendor id that are the only such pair of both records."""
    union = " UNION ".join(
        f"SELECT l.unique_id AS user_id, r.unique_id AS subject_id FROM parent l JOIN messenger r ON l.{key} = r.{key}"
        for key in FIELD
    )
    mem.execute(f"""
        CREATE OR REPLACE TEMP TABLE isolated AS SELECT user_id, subject_id FROM ({union})
        QUALIFY count(*) OVER (PARTITION BY user_id) = 1 AND count(*) OVER (PARTITION BY subject_id) = 1
    """)


def _level_counts(mem: duckdb.DuckDBPyConnection, comparison: Comparison, key: str) -> dict[str, int]:
    """Isolated pairs with an equal ``key``, per level of ``comparison``, its null level left out."""
    columns = list(mem.execute("SELECT * FROM parent LIMIT 0").fetchnumpy())
    both = ", ".join(f"l.{c} AS {c}_l, r.{c} AS {c}_r" for c in columns)
    null = next(lv.sql for lv in comparison.levels if lv.null)
    rows = mem.execute(f"""
        SELECT {comparison.case_sql()}, count(*) FROM (
            SELECT {both} FROM isolated i JOIN parent l ON l.unique_id = i.user_id
            JOIN messenger r ON r.unique_id = i.subject_id WHERE l.{key} = r.{key})
        WHERE NOT ({null}) GROUP BY 1
    """).fetchall()
    return dict(rows)


def rule_recall(mem: duckdb.DuckDBPyConnection, model: list[Comparison], m: dict[str, float]) -> float:
    """The share of true pairs with the same number and the same vendor id: m(equal number) x m(equal vendor
    id), each times the share of pairs whose sides both have the comparison's data (Splink's m is conditional on
    that; missing data is taken as independent of the match)."""
    recall = 1.0
    for comparison in model:
        exact = sum(m[lv.label] for lv in comparison.levels if lv.label.endswith((_ONE, _SEVERAL)))
        recall *= exact * _comparable(mem, comparison)
    return min(1.0, recall)


def _comparable(mem: duckdb.DuckDBPyConnection, comparison: Comparison) -> float:
    """The share of (parent, messenger) pairs outside ``comparison``'s null level."""
    null = next(lv.sql for lv in comparison.levels if lv.null)
    columns = sorted({c for c in ("phone_hash", "vendor_device_id", "device_model") if f"{c}_l" in null})
    pattern = ", ".join(f"{c} IS NOT NULL" for c in columns)
    sides = [
        mem.execute(f"SELECT [{pattern}], count(*) / (SELECT count(*) FROM {t}) FROM {t} GROUP BY 1").fetchall()
        for t in ("parent", "messenger")
    ]
    return sum(fp * fm for p, fp in sides[0] for r, fm in sides[1] if any(a and b for a, b in zip(p, r, strict=True)))


def settings(
    model: list[Comparison], present: list[str], fuzzy_blocks: bool, u: dict[str, float], m: dict[str, float]
) -> SettingsCreator:
    """The Splink model of ``model``'s comparisons with the given (fixed) m and u, blocking on the exact keys."""
    from splink import SettingsCreator, block_on

    return SettingsCreator(
        link_type="link_only",
        unique_id_column_name="unique_id",
        comparisons=[_splink_comparison(c, u, m) for c in model],
        blocking_rules_to_generate_predictions=[block_on(key) for key in present]
        + (_fuzzy_phone_blocks() if fuzzy_blocks else []),
        retain_matching_columns=False,
    )


def _splink_comparison(comparison: Comparison, u: dict[str, float], m: dict[str, float]) -> CustomComparison:
    from splink import comparison_level_library as cll
    from splink import comparison_library as cl

    levels = []
    for lv in comparison.levels:
        level = cll.ElseLevel() if lv.sql is None else cll.CustomLevel(lv.sql)
        options: dict[str, Any] = {"label_for_charts": lv.label}
        if lv.null:
            options["is_null_level"] = True
        if lv.tf:
            options |= {"tf_adjustment_column": "device_model", "tf_adjustment_weight": 1.0}
        if lv.label in u:
            options |= {"u_probability": u[lv.label], "fix_u_probability": True}
        if lv.label in m:
            options |= {"m_probability": m[lv.label], "fix_m_probability": True}
        levels.append(level.configure(**options))
    return cl.CustomComparison(levels, output_column_name=comparison.name)


def _fuzzy_phone_blocks() -> list[BlockingRuleCreator]:
    """A plain number with a typo keeps all digits but one or two adjacent ones: so the same handset model and
    either all digits but the last four, or the first four characters (calling code, area) and the last four."""
    from splink import block_on

    return [
        block_on("left(phone_number, length(phone_number) - 4)", "device_model"),
        block_on("left(phone_number, 5)", "right(phone_number, 4)", "device_model"),
    ]


@dataclass(frozen=True)
class Reuse:
    """How often a key's value is held by someone else too: the u of its two exact levels, and the share of the
    true pairs on this key whose value is held by several records."""

    u_one: float
    u_several: float
    several_share: float
    non_matches: float  # pairs that share the key's value but are not the same person (estimated)


def key_reuse(mem: duckdb.DuckDBPyConnection, key: str, comparable: float) -> Reuse:
    """The non-matching pairs that share ``key``, counted from the values held by several records.

    A number or a handset is one person's, so a value held by ``a`` parent users and ``b`` subjects holds at most
    min(a, b) true pairs: the other a x b - min(a, b) pairs are non-matches the parent knows as such. A value
    given to someone else (a recycled number, a family handset) stays held by several only when its owner also
    holds it on the messenger, which happens for the share q of the parent's values that the messenger side
    holds at all; the rest of those values look held by one record a side. Taking reuse as independent of
    whether the owner is on the messenger, the non-matches among values held once a side number
    (several's non-matches) x (1 - q) / q. Random sampling cannot count these: a random pair that shares a
    near-unique key is almost always a true match. Like Splink's m and u, these are shares of the pairs outside
    the comparison's null level, the share ``comparable`` of all pairs. One pair is added so that u is never 0.
    """
    values = f"""
        SELECT {key}, count(*) FILTER (WHERE side = 0) AS a, count(*) FILTER (WHERE side = 1) AS b FROM (
            SELECT {key}, 0 AS side FROM parent UNION ALL SELECT {key}, 1 FROM messenger)
        WHERE {key} IS NOT NULL GROUP BY 1
    """
    one, several, true_several, parent_values, shared_values = mem.execute(f"""
        SELECT count(*) FILTER (WHERE a = 1 AND b = 1),
               coalesce(sum(a * b - least(a, b)) FILTER (WHERE a + b > 2), 0),
               coalesce(sum(least(a, b)) FILTER (WHERE a + b > 2), 0),
               count(*) FILTER (WHERE a > 0), count(*) FILTER (WHERE a > 0 AND b > 0)
        FROM ({values})
    """).fetchall()[0]
    all_pairs = comparable * scalar(mem, "SELECT count(*) FROM parent") * scalar(mem, "SELECT count(*) FROM messenger")
    q = shared_values / parent_values if parent_values else 1.0
    hidden = min(several * (1 - q) / q, one) if q > 0 else 0.0  # non-matches among values held once a side
    true_one = one - hidden
    return Reuse(
        u_one=(hidden + 1) / (all_pairs + 1),
        u_several=(several + 1) / (all_pairs + 1),
        several_share=true_several / (true_several + true_one) if true_several + true_one > 0 else 0.0,
        non_matches=hidden + several,
    )
