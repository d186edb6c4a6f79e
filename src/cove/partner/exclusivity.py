"""One person, one account a side: what a pair's *competitors* say about it, on top of the Splink model.

Fellegi-Sunter scores each pair alone. But a pair that shares only a number is suspect when either of its
records also shares the *other* key (the vendor id) with someone else: a recycled number's holder still has their
own handset, which the parent may know as another user's; the number's former owner may still be linked by their
handset. A true pair rarely has such a rival: only when a confounder touches one of its records. So whether a
single-key pair is *contested* is evidence, with

- P(contested | non-match) = 1 - (1 - r_s)(1 - r_u), where r_s and r_u are the shares of subjects and of users
  that share the other key with anyone (a confounder's records have their own rivals as often as anyone's), and
- P(contested | match) = the other key's estimated non-matching pairs x (1 / subjects + 1 / users), the chance
  that one of them touches the pair's records.

The pair's odds are multiplied by the ratio for its case, in the working database after Splink has scored: so the
same on every engine. Pairs that share both keys, or neither, are left as they are.
"""

from __future__ import annotations

import duckdb

from cove.partner.engines import PARENT
from cove.partner.link_model import ACROSS, Reuse


def adjust(mem: duckdb.DuckDBPyConnection, predictions: str, reuse: dict[str, Reuse]) -> str:
    """The scored pairs as (``unique_id`` of the subject, ``user_id``, ``probability``), with competitor-adjusted
    probabilities: Splink's two sides put the way the rest of linking reads them, here and only here."""
    cases = (
        " ".join(
            f"WHEN m.{key} = p.{key} AND NOT coalesce(m.{other} = p.{other}, false) THEN {_factor(mem, other, reuse)}"
            for key, other in (tuple(reuse), tuple(reversed(reuse)))
        )
        if len(reuse) == 2
        else ""
    )
    factor = f"CASE {cases} ELSE 1.0 END" if cases else "1.0"
    mem.execute(f"""
        CREATE OR REPLACE TABLE scored AS
        SELECT x.subject_id AS unique_id, x.user_id,
               CASE WHEN x.match_probability >= 1 OR x.match_probability <= 0 THEN x.match_probability
                    ELSE 1 / (1 + (1 - x.match_probability) / (x.match_probability * ({factor}))) END
                   AS probability
        FROM (SELECT *, CASE WHEN source_dataset_l = '{PARENT}' THEN unique_id_l ELSE unique_id_r END AS user_id,
                        CASE WHEN source_dataset_l = '{PARENT}' THEN unique_id_r ELSE unique_id_l END AS subject_id
              FROM {predictions}) x
        JOIN parent p ON p.unique_id = x.user_id JOIN messenger m ON m.unique_id = x.subject_id
    """)
    return "scored"


def _factor(mem: duckdb.DuckDBPyConnection, other: str, reuse: dict[str, Reuse]) -> str:
    """SQL for the odds factor of a pair that shares only the key other than ``other``.

    Each record can have rivals only if it has ``other`` at all: so each side's rate is among the records that
    have it, and a side without it adds nothing, for matches and non-matches alike.
    """
    rates = {}
    for side, own, rival in (("p", "users", "subjects"), ("m", "subjects", "users")):
        having, with_rival = mem.execute(
            f"SELECT sum({own}), sum({own}) FILTER (WHERE {rival} > 0) FROM {other}_holders"
        ).fetchall()[0]
        # (share of non-matches' records with a rival, chance a confounder touches a true pair's record)
        rates[side] = (
            ((with_rival or 0) / having, min(0.5, reuse[other].non_matches / having)) if having else (0.0, 0.0)
        )

    def contested(k: int) -> str:  # P(contested), for non-matches (k = 0) or matches (k = 1)
        return "(1 - " + " * ".join(f"(1 - {rates[s][k]!r} * ({s}.{other} IS NOT NULL)::INT)" for s in rates) + ")"

    rival = f"(m.{ACROSS[other]} > 0 OR p.{ACROSS[other]} > 0)"
    return (
        f"CASE WHEN {rival} THEN {contested(1)} / greatest({contested(0)}, 1e-12) "
        f"ELSE (1 - {contested(1)}) / greatest(1 - {contested(0)}, 1e-12) END"
    )
