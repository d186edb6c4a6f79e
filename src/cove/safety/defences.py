"""Users' own defences: blocks, acceptances of message requests, reports, and the check of every send.

The check (:func:`check`, one of ``Relay.outbound_checks``) keeps what a user refused from reaching them, and
tells the sender nothing:

- a message to someone who blocked the sender is withheld: the sender gets the answer of a queued send. A
  business is the exception: the business rules refuse its send with the Cloud API's 131026, the answer a
  business gets for a user who blocked it from its preferences (cove.business.hooks), which hides the reason;
- a read receipt to someone the sender has not accepted is withheld: reading a message request says nothing
  back to whoever sent it (a business is exempt both ways, its users opted in to it; and so are people who
  share a group, whose group messages are receipted one to one);
- a message (not a receipt) records that the sender accepts the recipient;
- a group created with, or members added who blocked the actor, is refused with 403 ``cannot_add``, which
  does not say why (a group would otherwise reach them, and its members' messages).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cove.accounts import storage as account_storage
from cove.accounts.storage import DeviceRecord
from cove.activity import Action, Outbound, Withheld
from cove.clock import now_ms
from cove.context import Relay
from cove.errors import ApiError
from cove.events import ContactsChanged
from cove.groups import service as groups
from cove.groups import storage as groups_storage
from cove.limits.table import REPORT_COST, Limiter
from cove.safety import contacts, reports, signals
from cove.safety import defences_storage as storage
from cove.safety.defences_storage import Blocked, ReportSeen
from cove.safety.pairs import ACCEPTS, BLOCKS
from cove.safety.reports import Attached, Kind, Report

ACCEPTED_PAGE = 1000

log = logging.getLogger("cove.safety")


async def check(relay: Relay, outbound: Outbound) -> None:
    if outbound.action is Action.MESSAGE:
        await _message(relay, outbound)
    elif outbound.action in (Action.GROUP_CREATE, Action.GROUP_ADD) and outbound.recipients:
        await _joining(relay, outbound)


async def _message(relay: Relay, outbound: Outbound) -> None:
    sender, recipient = outbound.sender, outbound.chat
    here, there = await contacts.between(relay, sender, recipient)
    if there & BLOCKS:
        if outbound.business and not outbound.receipt:
            return  # refused by the business rules, with the Cloud API's code (cove.business.hooks)
        raise Withheld
    if outbound.receipt:
        if here & ACCEPTS or outbound.business or await _is_business(relay, recipient):
            return
        if not await contacts.confirmed_accepts(relay, sender, recipient) and not await _share_a_group(
            relay, sender, recipient
        ):
            raise Withheld
    elif not here & ACCEPTS and not outbound.business:
        # Recorded before the send is stored: a send refused later (a business rule) still says whom the
        # sender meant to write to. A business's sends record nothing: its users are never its requests.
        await contacts.record(relay, sender, recipient)


async def _is_business(relay: Relay, account_id: str) -> bool:
    found = await relay.directory.devices_of(account_id)
    return bool(found) and found[0].business


async def _share_a_group(relay: Relay, a: str, b: str) -> bool:
    """A group message's read receipt goes to its sender one to one, like any receipt, and the relay cannot
    tell them apart: people in a group together get each other's."""
    async with relay.engine.connect() as conn:
        return bool(set(await groups_storage.memberships(conn, a)) & set(await groups_storage.memberships(conn, b)))


async def _joining(relay: Relay, outbound: Outbound) -> None:
    """Read from the database, not the cache: groups are made rarely, and a list of up to thousands of accounts
    would push the pairs of people who write to each other out of it."""
    async with relay.engine.connect() as conn:
        found = await storage.relations(conn, outbound.sender, outbound.recipients)
    if any(found.get((added, outbound.sender), 0) & BLOCKS for added in outbound.recipients):
        raise ApiError(403, "cannot_add", "this person cannot be added")


async def _existing(relay: Relay, caller: str, account_id: str, self_code: str, self_message: str) -> None:
    if account_id == caller:
        raise ApiError(400, self_code, self_message)
    if not await relay.directory.devices_of(account_id):
        raise ApiError(404, "unknown_account", "no account has this id")


async def _add_block(relay: Relay, conn: AsyncConnection, owner: str, blocked: str, now: int) -> tuple[bool, bool]:
    """Block inside the caller's transaction; (the block is new, the owner had accepted them before)."""
    flags = (await storage.relations(conn, owner, [blocked])).get((owner, blocked), 0)
    if not flags & BLOCKS and await storage.block_count(conn, owner) >= relay.settings.safety_max_blocks:
        raise ApiError(
            409, "too_many_blocks", f"you have blocked {relay.settings.safety_max_blocks} accounts: unblock some first"
        )
    return await storage.block(conn, owner, blocked, now), bool(flags & ACCEPTS)


async def _blocked(relay: Relay, owner: str, blocked: str, new: bool, contact: bool, now: int) -> None:
    """After the block committed: every process forgets the pair; the detector hears of a new block."""
    await relay.hooks.emit(ContactsChanged(owner, blocked))
    if new:
        signals.publish(relay, signals.Blocked(owner, blocked, contact, now))


async def block(relay: Relay, device: DeviceRecord, account_id: str) -> None:
    me = device.account_id
    await _existing(relay, me, account_id, "cannot_block_self", "you cannot block yourself")
    await relay.limits.check(Limiter.SAFETY_DEFENCES, me)
    now = now_ms()
    async with relay.engine.begin() as conn:
        new, contact = await _add_block(relay, conn, me, account_id, now)
    await _blocked(relay, me, account_id, new, contact, now)


async def unblock(relay: Relay, device: DeviceRecord, account_id: str) -> None:
    await relay.limits.check(Limiter.SAFETY_DEFENCES, device.account_id)
    async with relay.engine.begin() as conn:
        removed = await storage.unblock(conn, device.account_id, account_id)
    if not removed:
        raise ApiError(404, "not_blocked", "you have not blocked this account")
    await relay.hooks.emit(ContactsChanged(device.account_id, account_id))


async def blocked(relay: Relay, device: DeviceRecord) -> list[Blocked]:
    async with relay.engine.connect() as conn:
        return await storage.blocks_of(conn, device.account_id)


async def accept(relay: Relay, device: DeviceRecord, account_id: str) -> None:
    me = device.account_id
    await _existing(relay, me, account_id, "cannot_accept_self", "you cannot accept your own messages")
    await relay.limits.check(Limiter.SAFETY_DEFENCES, me)
    async with relay.engine.begin() as conn:
        await storage.accept(conn, me, account_id, now_ms())
    await relay.hooks.emit(ContactsChanged(me, account_id))


async def accepted(relay: Relay, device: DeviceRecord, after: str | None) -> tuple[list[str], str | None]:
    """A page of the accounts this one accepts, in order of id, and where the next page starts (or None)."""
    async with relay.engine.connect() as conn:
        page = await storage.accepted_page(conn, device.account_id, after, ACCEPTED_PAGE + 1)
    if len(page) > ACCEPTED_PAGE:
        return page[:ACCEPTED_PAGE], page[ACCEPTED_PAGE - 1]
    return page, None


@dataclass(frozen=True)
class Draft:
    """A report as the reporter's client sent it (its shape already checked by the route's model)."""

    kind: Kind
    subject: str | None
    group_id: str | None
    message_ids: tuple[str, ...]
    attached: tuple[Attached, ...]
    block: bool
    leave: bool


async def _chat(relay: Relay, device: DeviceRecord, draft: Draft) -> frozenset[str]:
    """Who is in the reported chat, once the subject and the group are known to exist for this reporter."""
    me = device.account_id
    if draft.subject is not None:
        await _existing(relay, me, draft.subject, "cannot_report_self", "you cannot report yourself")
    members: Sequence[str] | None = None
    if draft.group_id is not None:
        async with relay.engine.connect() as conn:
            members = [m.account_id for m in await groups_storage.members(conn, draft.group_id)]
        if me not in members:
            raise ApiError(404, "unknown_group", "no group has this id, or you are not in it")
    return reports.participants(me, draft.subject, members)


async def report(relay: Relay, device: DeviceRecord, draft: Draft) -> Report:
    me, subject = device.account_id, draft.subject
    chat = await _chat(relay, device, draft)
    try:
        reports.check_attached(draft.attached, chat)
    except reports.Refused as refused:
        raise ApiError(400, refused.code, str(refused)) from refused
    await relay.limits.check(Limiter.SAFETY_DEFENCES, me, REPORT_COST)
    if draft.leave and draft.group_id is not None:
        # First, and in its own transaction (the groups' change and its envelopes): leaving is what stops the
        # abuse, so it is not undone by a report that could not be stored.
        await groups.remove_member(relay, device, draft.group_id, me)
    now = now_ms()
    blocking = draft.block and subject is not None
    new_block = contact = False
    async with relay.engine.begin() as conn:
        if subject is not None:
            contact = bool((await storage.relations(conn, me, [subject])).get((me, subject), 0) & ACCEPTS)
        if blocking:
            assert subject is not None
            new_block, _ = await _add_block(relay, conn, me, subject, now)
        made = Report(
            secrets.token_hex(16),
            me,
            draft.kind,
            subject,
            draft.group_id,
            draft.message_ids,
            draft.attached,
            contact,
            blocking,
            draft.leave,
            now,
        )
        await storage.add_report(conn, made)
    if subject is not None:
        if blocking:
            await _blocked(relay, me, subject, new_block, contact, now)
        signals.publish(relay, signals.Reported(me, subject, contact, len(draft.attached), now))
    return made


async def purge_attached_forever(relay: Relay, every_seconds: float) -> None:
    """A reporter's decrypted messages serve the review of that report, not an archive: they go after
    ``COVE_SAFETY_REPORT_TEXT_DAYS``, while the report's record stays."""
    keep_ms = int(relay.settings.safety_report_text_days * 86_400_000)
    while True:
        try:
            async with relay.engine.begin() as conn:
                removed = await storage.purge_attached(conn, now_ms() - keep_ms)
            if removed:
                log.info("deleted %d attached messages of old reports", removed)
        except Exception:
            log.exception("purge of reports' attached messages failed")
        await asyncio.sleep(every_seconds)


async def reports_about(engine: AsyncEngine, phone_number: str, limit: int) -> tuple[str, list[ReportSeen]] | None:
    """The operator's view of the reports naming a number's account (``None``: no such account). A deleted
    account's reports are found by its id in ``cove safety queue``, hence also by id."""
    async with engine.connect() as conn:
        account = await account_storage.account_by_phone(conn, phone_number)
        account_id = account.id if account else phone_number
        seen = await storage.reports_about(conn, account_id, limit)
    return (account_id, seen) if account or seen else None
