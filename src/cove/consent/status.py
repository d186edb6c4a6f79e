"""Rollout progress of a policy, counted in the database: per wave and per purpose."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.accounts.storage import accounts
from cove.consent.decision import DAY_MS
from cove.consent.policy import Policy, Wave
from cove.consent.storage import consent_accounts, consent_purposes, consent_served

SOON_DAYS = 7


@dataclass
class WaveProgress:
    name: str
    start: str
    opened: bool
    eligible: int
    served: int
    accepted: int


@dataclass
class PurposeProgress:
    id: str
    opted_in: int
    opted_out: int
    objected: int
    open_choices: int = 0  # accepted, undecided, window still open
    closing_soon: int = 0  # of those, windows closing within SOON_DAYS


@dataclass
class RolloutStatus:
    version: str
    waves: list[WaveProgress] = field(default_factory=list)
    purposes: list[PurposeProgress] = field(default_factory=list)


def in_wave(wave: Wave):  # noqa: ANN202
    """The accounts a wave includes, as a condition on ``accounts`` (for this status and the console's charts)."""
    condition = accounts.c.rollout_bucket < wave.percent
    if wave.country_codes:
        condition = and_(condition, accounts.c.calling_code.in_(wave.country_codes))
    return condition


async def rollout_status(conn: AsyncConnection, policy: Policy, now_ms: int) -> RolloutStatus:
    status = RolloutStatus(policy.version)
    for wave in policy.rollout.waves:
        where = in_wave(wave)
        eligible = await conn.scalar(select(func.count()).select_from(accounts).where(where))
        served = await conn.scalar(
            select(func.count())
            .select_from(consent_served.join(accounts, accounts.c.id == consent_served.c.account_id))
            .where(where, consent_served.c.policy_version == policy.version)
        )
        accepted = await conn.scalar(
            select(func.count())
            .select_from(consent_accounts.join(accounts, accounts.c.id == consent_accounts.c.account_id))
            .where(where, consent_accounts.c.policy_version == policy.version)
        )
        status.waves.append(
            WaveProgress(
                wave.name, wave.start.isoformat(), wave.start.timestamp() * 1000 <= now_ms, eligible, served, accepted
            )
        )
    p = consent_purposes
    rows = await conn.execute(
        select(p.c.purpose_id, p.c.choice, func.count(), func.count(p.c.objected_at_ms))
        .where(p.c.policy_version == policy.version)
        .group_by(p.c.purpose_id, p.c.choice)
    )
    counts: dict[str, PurposeProgress] = {q.id: PurposeProgress(q.id, 0, 0, 0) for q in policy.purposes}
    for purpose_id, choice, n, objected in rows:
        if purpose_id not in counts:
            continue
        progress = counts[purpose_id]
        progress.objected += objected
        if choice == "in":
            progress.opted_in += n
        elif choice == "out":
            progress.opted_out += n
    for purpose in policy.purposes:
        if not purpose.window_days:
            continue
        window = purpose.window_days * DAY_MS
        undecided = (
            select(func.count())
            .select_from(
                consent_accounts.outerjoin(
                    p,
                    and_(
                        p.c.account_id == consent_accounts.c.account_id,
                        p.c.policy_version == consent_accounts.c.policy_version,
                        p.c.purpose_id == purpose.id,
                    ),
                )
            )
            .where(
                consent_accounts.c.policy_version == policy.version,
                p.c.choice.is_(None),
                consent_accounts.c.accepted_at_ms + window > now_ms,
            )
        )
        counts[purpose.id].open_choices = await conn.scalar(undecided)
        counts[purpose.id].closing_soon = await conn.scalar(
            undecided.where(consent_accounts.c.accepted_at_ms + window <= now_ms + SOON_DAYS * DAY_MS)
        )
    status.purposes = list(counts.values())
    return status
