"""Safety's part of an account's data export: what the account did to defend itself (blocks, acceptances, reports
it made, with the messages it attached), what safety decided about it (a ban, the steps taken, the signals kept
from its registration) and its appeals.

Left out on purpose: reports others made about the account (naming the reporter would expose them; the steps they
led to are here) and a reviewer's internal note on a step (an appeal's decision note is the person's answer and is
here).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.accounts.export import listed
from cove.safety.actions_storage import safety_actions, safety_appeals
from cove.safety.defences_storage import safety_acceptances, safety_blocks, safety_reports
from cove.safety.registration_storage import safety_registrations
from cove.safety.storage import safety_verdicts


async def section(conn: AsyncConnection, account_id: str) -> dict[str, Any]:
    b, acc, r = safety_blocks.c, safety_acceptances.c, safety_reports.c
    act, ap, v, reg = safety_actions.c, safety_appeals.c, safety_verdicts.c, safety_registrations.c
    verdict = (
        await conn.execute(select(v.reason_code, v.banned_at_ms, v.lifted_at_ms).where(v.account_id == account_id))
    ).first()
    registration = (
        await conn.execute(
            select(
                reg.at_ms, reg.challenged, reg.number_score, reg.range_score, reg.source_score, reg.device_score
            ).where(reg.account_id == account_id)
        )
    ).first()
    return {
        "safety": {
            "blocks": await listed(
                conn,
                select(b.blocked_account_id.label("account_id"), b.since_ms.label("since"))
                .where(b.owner_account_id == account_id)
                .order_by(b.since_ms),
            ),
            "acceptances": await listed(
                conn,
                select(acc.peer_account_id.label("account_id"), acc.since_ms.label("since"))
                .where(acc.owner_account_id == account_id)
                .order_by(acc.since_ms),
            ),
            "reports": await listed(
                conn,
                select(
                    r.report_id,
                    r.kind,
                    r.subject_account_id,
                    r.group_id,
                    r.client_message_ids,
                    r.attached,
                    r.blocked,
                    r.left_group,
                    r.created_at_ms.label("created_at"),
                )
                .where(r.reporter_account_id == account_id)
                .order_by(r.created_at_ms),
            ),
            "ban": None if verdict is None else dict(verdict._mapping),
            "steps": await listed(
                conn,
                select(
                    act.id,
                    act.step,
                    act.reason,
                    act.source,
                    act.score,
                    act.created_at_ms.label("taken_at"),
                    act.expires_at_ms.label("expires_at"),
                    act.lifted_at_ms.label("lifted_at"),
                    act.lifted_by,
                    act.review,
                )
                .where(act.account_id == account_id)
                .order_by(act.created_at_ms),
            ),
            "appeals": await listed(
                conn,
                select(
                    ap.id,
                    ap.message,
                    ap.state,
                    ap.created_at_ms.label("created_at"),
                    ap.decided_at_ms.label("decided_at"),
                    ap.note.label("decision_note"),
                )
                .where(ap.account_id == account_id)
                .order_by(ap.created_at_ms),
            ),
            # Scores of the registration gate's signals; the keys they were counted under are keyed hashes.
            "registration": None if registration is None else dict(registration._mapping),
        }
    }
