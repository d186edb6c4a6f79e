"""Appeals and the operator's review queue: people contest actions, operators decide, the detector learns.

A banned person cannot log in, so they prove the number is theirs with a code sent for that purpose
(``POST /v1/verification/code`` with ``purpose: appeal``; such a code never registers) and file with it; an
account at a lower step appeals with its own token. One appeal is open per account at a time. Automatic
restricts and bans wait in the queue for a person to confirm or lift them; every decision is published to the
detector in every process (AccountJudged, cove.safety.signals.Judged), so reporters who were right count more.

Granting an appeal lifts every step in force and unbans the number: it registers again and gets the same
account back (WhatsApp restores an account whose ban is overturned); its old devices stay logged out.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy.ext.asyncio import AsyncEngine

from cove.accounts import codes
from cove.accounts import service as account_service
from cove.accounts import storage as account_storage
from cove.clock import now_ms
from cove.context import Relay
from cove.errors import ApiError
from cove.safety import actions, service
from cove.safety import actions_storage as storage
from cove.safety import storage as ban_storage
from cove.safety.actions_storage import Appeal
from cove.safety.ladder import Review, Taken

GRANTED = "granted"
DENIED = "denied"


class CaseNotOpen(LookupError):
    """The case is not in the queue (no such case, or it was decided already)."""


def _already_open() -> ApiError:
    return ApiError(409, "appeal_open", "this account already has an appeal waiting for a decision")


async def file_with_code(relay: Relay, raw_phone: str, code: str, message: str) -> Appeal:
    """A banned number's appeal, proven with an appeal code."""
    phone = await account_service.use_code(relay, raw_phone, code, codes.APPEAL)
    now = now_ms()
    async with relay.engine.begin() as conn:
        if await ban_storage.banned_reason(conn, phone) is None:
            raise ApiError(409, "not_banned", "this number is not banned: appeal from the app with `cove appeal`")
        account = await account_storage.account_by_phone(conn, phone)
        if account is None:
            raise ApiError(409, "no_account", "this number has no account to restore: ask the relay's operator")
        filed = await storage.file_appeal(conn, account.id, phone, message, now)
    if filed is None:
        raise _already_open()
    return filed


async def file_for_account(relay: Relay, account_id: str, message: str) -> Appeal:
    """An appeal by an account that can still log in: throttled, challenged or restricted."""
    now = now_ms()
    async with relay.engine.begin() as conn:
        if not await storage.in_force(conn, account_id, now):
            raise ApiError(409, "nothing_to_appeal", "no action is in force on this account")
        filed = await storage.file_appeal(conn, account_id, None, message, now)
    if filed is None:
        raise _already_open()
    return filed


class Status(NamedTuple):
    steps: list[Taken]
    appeal: Appeal | None


async def status(relay: Relay, account_id: str) -> Status:
    now = now_ms()
    async with relay.engine.connect() as conn:
        live = await storage.in_force(conn, account_id, now)
        latest = await storage.latest_appeal(conn, account_id)
    return Status(sorted(live, key=lambda a: a.step, reverse=True), latest)


async def decide_appeal(engine: AsyncEngine, appeal_id: int, grant: bool, note: str | None) -> Appeal:
    """An operator grants (every step lifted, the number unbanned) or denies an open appeal."""
    now = now_ms()
    async with engine.begin() as conn:
        appeal = await storage.appeal(conn, appeal_id)
        if appeal is None or not await storage.decide_appeal(conn, appeal_id, GRANTED if grant else DENIED, note, now):
            raise CaseNotOpen(appeal_id)
        if grant:
            await actions.lift_in(conn, appeal.account_id, "appeal", now, review=Review.OVERTURNED)
            if appeal.phone_number is not None:  # banned by hand (`cove safety ban`), with no action to lift
                await service.unban_in(conn, appeal.phone_number, now)
        await actions.judged(conn, appeal.account_id, not grant, now)
    return appeal


async def review(engine: AsyncEngine, action_id: int, confirm: bool, note: str | None) -> Taken:
    """An operator confirms an automatic restrict or ban, or lifts it (overturned)."""
    now = now_ms()
    async with engine.begin() as conn:
        action = await storage.action(conn, action_id)
        if action is None or action.review is not Review.PENDING:
            raise CaseNotOpen(action_id)
        decided = Review.CONFIRMED if confirm else Review.OVERTURNED
        await storage.set_review(conn, action_id, decided, note)
        if not confirm:
            await actions.lift_in(conn, action.account_id, "review", now, only=action)
        await actions.judged(conn, action.account_id, confirm, now)
    return action


class Queue(NamedTuple):
    reviews: list[Taken]
    appeals: list[Appeal]


async def queue(engine: AsyncEngine) -> Queue:
    async with engine.connect() as conn:
        return Queue(await storage.pending_reviews(conn), await storage.open_appeals(conn))


class Stats(NamedTuple):
    reviews: dict[str, int]
    appeals: dict[str, int]

    @property
    def appeal_overturn_rate(self) -> float | None:
        decided = self.appeals.get(GRANTED, 0) + self.appeals.get(DENIED, 0)
        return self.appeals.get(GRANTED, 0) / decided if decided else None

    @property
    def review_overturn_rate(self) -> float | None:
        decided = self.reviews.get(Review.CONFIRMED, 0) + self.reviews.get(Review.OVERTURNED, 0)
        return self.reviews.get(Review.OVERTURNED, 0) / decided if decided else None


async def stats(engine: AsyncEngine) -> Stats:
    async with engine.connect() as conn:
        return Stats(await storage.review_counts(conn), await storage.appeal_counts(conn))
