"""Rollout figures per published policy: the current counts (cove.consent.status) and how they grew.

Over time: notices served and terms accepted per wave, from ``consent_served.served_at_ms`` and
``consent_accounts.accepted_at_ms``; opt-ins per purpose from ``consent_purposes.chosen_at_ms``. Like the
status, these are the accounts' current state (an account that accepted a later version counts there), so the
running totals end at the numbers of the status table. The history of every act is the consent page's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, Table, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.accounts.storage import accounts
from cove.consent.policy import LegalBasis, Policy
from cove.consent.status import RolloutStatus, in_wave, rollout_status
from cove.consent.storage import consent_accounts, consent_purposes, consent_served, load_policies
from cove.console.figures.timeline import Series, Timeline, earliest, timeline


@dataclass
class RolloutFigures:
    policy: Policy
    status: RolloutStatus
    timeline: Timeline | None  # None until the first notice of this version is served
    waves: list[Series] = field(default_factory=list)  # "served: WAVE", "accepted: WAVE": running totals
    opt_ins: list[Series] = field(default_factory=list)  # per purpose: accounts opted in, running total


# What grows per wave: notices served, terms accepted; each a table of accounts and the time of the act.
_ACTS = (
    ("served", consent_served, consent_served.c.served_at_ms),
    ("accepted", consent_accounts, consent_accounts.c.accepted_at_ms),
)


async def _per_bucket(conn: AsyncConnection, table: Table, at: ColumnElement, where: list, size: int) -> dict[int, int]:
    bucket = (at // size).label("bucket")
    rows = await conn.execute(
        select(bucket, func.count())
        .select_from(table.join(accounts, accounts.c.id == table.c.account_id))
        .where(*where)
        .group_by(bucket)
    )
    return {int(b): n for b, n in rows}


async def rollout_figures(conn: AsyncConnection, policy: Policy, now_ms: int) -> RolloutFigures:
    status = await rollout_status(conn, policy, now_ms)
    version = policy.version
    first = earliest(
        [await conn.scalar(select(func.min(at)).where(table.c.policy_version == version)) for _, table, at in _ACTS]
    )
    figures = RolloutFigures(policy, status, None)
    if first is None:
        return figures
    axis = figures.timeline = timeline(first, now_ms)
    for act, table, at in _ACTS:
        for wave in policy.rollout.waves:
            where = [in_wave(wave), table.c.policy_version == version]
            counts = await _per_bucket(conn, table, at, where, axis.bucket_ms)
            figures.waves.append(Series(f"{act}: {wave.name}", axis.running(counts)))
    p = consent_purposes.c
    bucket = (p.chosen_at_ms // axis.bucket_ms).label("bucket")
    rows = await conn.execute(
        select(p.purpose_id, bucket, func.count())
        .where(p.policy_version == version, p.choice == "in")
        .group_by(p.purpose_id, bucket)
    )
    chosen: dict[str, dict[int, int]] = {}
    for purpose_id, b, n in rows:
        chosen.setdefault(purpose_id, {})[int(b)] = n
    figures.opt_ins = [
        Series(purpose.id, axis.running(chosen.get(purpose.id, {})))
        for purpose in policy.purposes
        if purpose.legal_basis in (LegalBasis.CONSENT, None)
    ]
    return figures


async def all_rollouts(conn: AsyncConnection, now_ms: int) -> list[RolloutFigures]:
    """Every published policy's figures, the newest (latest effective) first."""
    return [await rollout_figures(conn, policy, now_ms) for policy in reversed(await load_policies(conn))]
