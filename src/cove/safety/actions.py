"""Graduated actions on accounts: take a step, lift it, and refuse what the steps in force forbid.

The rules (which step forbids what, escalation, expiry) are cove.safety.ladder's; this module stores them
(cove.safety.actions_storage), keeps the steps in force in each process's memory (cove.safety.standing) and runs
them as the first of safety's outbound checks. The detector calls :func:`take` with ``source`` rule or model,
and nothing happens while ``COVE_SAFETY_AUTOMATIC_ACTIONS`` is false; operators act through :func:`act` and the
commands of cove.safety.commands, which run beside the relays and reach them through the fleet's event table
(SafetyActionChanged, read within ``COVE_FLEET_POLL_SECONDS``).

A ban is cove.safety.service's ban (every device logged out, the number refused) recorded as the ladder's top
step; lifting it unbans the number, which may then register again and gets the same account back (its id, its
groups and contacts' chats; the old devices stay logged out), as WhatsApp restores an account on appeal.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cove.accounts import storage as account_storage
from cove.activity import Outbound
from cove.clock import now_ms
from cove.config import Settings
from cove.context import Relay
from cove.errors import ApiError
from cove.events import AccountJudged, Event, SafetyActionChanged
from cove.fleet import storage as fleet_storage
from cove.fleet.broadcast import stored
from cove.limits.rules import Limit
from cove.limits.store import Spend
from cove.limits.table import Limiter
from cove.safety import actions_storage as storage
from cove.safety import challenges, contacts, service
from cove.safety.ladder import Durations, Review, Rule, Source, Step, Taken, expiry, highest, raises, review_of, rule
from cove.safety.parts import of
from cove.safety.verdicts import ReasonCode, banned_error, explain

PURPOSE = "sending"  # the challenges' purpose: a seed solved to register is worth nothing here


class NoSuchAccount(LookupError):
    pass


def durations(settings: Settings) -> Durations:
    return Durations(
        throttle_ms=int(settings.safety_throttle_minutes * 60_000),
        restrict_ms=int(settings.safety_restrict_hours * 3_600_000),
    )


async def _changed(conn: AsyncConnection, now: int, *events: Event) -> None:
    # In the change's own transaction, so a command run beside the relays reaches them as surely as a relay does.
    for event in events:
        await fleet_storage.append(conn, stored(event, now))


async def take_in(
    conn: AsyncConnection,
    settings: Settings,
    account_id: str,
    step: Step,
    reason: ReasonCode,
    source: Source,
    score: float | None,
    now: int,
) -> Taken | None:
    """Take ``step`` in the caller's transaction; ``None`` when a step as high is already in force."""
    account = await account_storage.account_by_id(conn, account_id)
    if account is None:
        raise NoSuchAccount(account_id)
    if not raises(highest(await storage.in_force(conn, account_id, now), now), step):
        return None
    new = Taken(
        0,
        account_id,
        step,
        reason,
        source,
        score,
        now,
        expiry(step, now, durations(settings)),
        review=review_of(step, source),
    )
    new = await storage.add(conn, new)
    if step is Step.BAN:
        await service.ban_in(conn, account.phone_number, reason, now)
    await _changed(conn, now, SafetyActionChanged(account_id))
    return new


async def take(
    relay: Relay, account_id: str, step: Step, reason: ReasonCode, source: Source, score: float | None = None
) -> Taken | None:
    """The detector's (and any relay-side) way to act: ``None`` when nothing changed (automatic actions are off,
    a step as high is in force, or the account is gone). The detector may call it on every send past its
    threshold: while the step is in force that costs a look-up in memory, not a transaction."""
    if source is not Source.OPERATOR and not relay.settings.safety_automatic_actions:
        return None
    now = now_ms()
    if not raises(highest(await in_force(relay, account_id), now), step):
        return None
    try:
        async with relay.engine.begin() as conn:
            taken = await take_in(conn, relay.settings, account_id, step, reason, source, score, now)
    except NoSuchAccount:
        return None  # deleted meanwhile: nothing left to act on
    of(relay).standing.forget(account_id)
    return taken


async def act(engine: AsyncEngine, settings: Settings, phone: str, step: Step, reason: ReasonCode) -> Taken | None:
    """An operator's action on the account of ``phone`` (cove safety act)."""
    async with engine.begin() as conn:
        account = await account_storage.account_by_phone(conn, phone)
        if account is None:
            raise NoSuchAccount(phone)
        return await take_in(conn, settings, account.id, step, reason, Source.OPERATOR, None, now_ms())


async def lift_in(
    conn: AsyncConnection, account_id: str, by: str, now: int, only: Taken | None = None, review: Review | None = None
) -> list[Taken]:
    """Lift ``only`` or every step in force on the account (a ban also unbans its number); returns what was lifted."""
    live = await storage.in_force(conn, account_id, now)
    chosen = [a for a in live if only is None or a.id == only.id]
    if not chosen:
        return []
    await storage.lift(conn, [a.id for a in chosen], now, by, review)
    if any(a.step is Step.BAN for a in chosen):
        account = await account_storage.account_by_id(conn, account_id)
        if account is not None:
            await service.unban_in(conn, account.phone_number, now)
    await _changed(conn, now, SafetyActionChanged(account_id))
    return chosen


async def lift(engine: AsyncEngine, phone: str, by: str = "operator") -> list[Taken]:
    """An operator lifts every step in force on the account of ``phone`` (cove safety lift)."""
    async with engine.begin() as conn:
        account = await account_storage.account_by_phone(conn, phone)
        if account is None:
            raise NoSuchAccount(phone)
        return await lift_in(conn, account.id, by, now_ms())


async def judged(conn: AsyncConnection, account_id: str, abusive: bool, now: int) -> None:
    """A person's decision, for the detector in every process (cove.safety.signals.Judged)."""
    await _changed(conn, now, AccountJudged(account_id, abusive, now))


async def in_force(relay: Relay, account_id: str) -> tuple[Taken, ...]:
    """The account's actions in force when last read (the caller judges expiry with the time), from this
    process's memory or else the database."""
    standing = of(relay).standing
    known = standing.get(account_id)
    if known is not None:
        return known
    mark = standing.mark()
    async with relay.engine.connect() as conn:
        loaded = tuple(await storage.in_force(conn, account_id, now_ms()))
    standing.keep(account_id, loaded, mark)
    return loaded


def _until(ms: int | None) -> str:
    if ms is None:
        return "until an operator lifts it"
    return "until " + datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def restricted_error(action: Taken) -> ApiError:
    return ApiError(
        403,
        "account_restricted",
        f"this account is restricted for {explain(action.reason)} {_until(action.expires_at_ms)}: it may message "
        "only people who accept it (contacts, people who wrote first) and may not create or add to groups; "
        "appeal with `cove appeal`",
        reason=action.reason.value,
        until=action.expires_at_ms,
    )


def throttled_error(action: Taken, wait: float) -> ApiError:
    retry = int(wait) + 1
    err = ApiError(
        429,
        "throttled",
        f"this account is throttled for {explain(action.reason)} {_until(action.expires_at_ms)}: retry in {retry} s",
        reason=action.reason.value,
        until=action.expires_at_ms,
        retry_after=retry,
    )
    err.headers["Retry-After"] = str(retry)
    return err


async def check(relay: Relay, out: Outbound) -> None:
    """Safety's first outbound check: refuse what the highest step in force forbids."""
    top = highest(await in_force(relay, out.sender), out.at_ms)
    if top is None:
        return
    match rule(top.step, out.action, out.receipt):
        case Rule.ALLOW:
            return
        case Rule.METER:
            limit = relay.limits.rules[Limiter.SAFETY_THROTTLE].size
            assert isinstance(limit, Limit)
            taken = await relay.limits.take([Spend((Limiter.SAFETY_THROTTLE, out.sender), limit)])
            if not taken.ok:
                raise throttled_error(top, taken.waits[0])
        case Rule.PROVE:
            raise challenges.required(
                relay.code_secret,
                PURPOSE,
                out.sender,
                relay.settings.safety_challenge_bits,
                out.at_ms,
                f"this account must show it is not a bulk sender ({explain(top.reason)}): its device solves the "
                "challenge and sends the answer to PUT /v1/safety/challenge",
            )
        case Rule.ACCEPTED_ONLY:
            if not await contacts.accepts(relay, out.chat, out.sender):
                raise restricted_error(top)
        case Rule.REFUSE:
            raise banned_error(top.reason) if top.step is Step.BAN else restricted_error(top)


async def solve(relay: Relay, account_id: str, answer: challenges.Answer) -> bool:
    """Lift the account's challenge when ``answer`` solves a seed set after the challenge was taken."""
    now = now_ms()
    if not challenges.verify(relay.code_secret, PURPOSE, account_id, answer, now):
        return False
    issued = int(answer.seed.split(".")[2]) - challenges.TTL_MS  # the seed's expiry, verified just now
    async with relay.engine.begin() as conn:
        for a in await storage.in_force(conn, account_id, now):
            # A seed set before this challenge was taken solved an earlier one: it proves nothing now.
            if a.step is Step.CHALLENGE and issued >= a.created_at_ms:
                await lift_in(conn, account_id, "challenge solved", now, only=a)
    of(relay).standing.forget(account_id)
    return True
