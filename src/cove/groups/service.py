"""The groups use cases: membership changes, each with its GROUP_CHANGE envelopes in the same transaction, and
group sends, whose ciphertext the queue writer stores once and fans out (cove.messaging.writer.GroupSendJob)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from cove.accounts.storage import DeviceRecord
from cove.activity import Action, Outbound
from cove.clock import now_ms
from cove.context import Relay
from cove.errors import ApiError
from cove.groups import rules, storage
from cove.groups.models import GroupMessage, GroupRevision, GroupSummary, GroupView, MemberView
from cove.groups.rules import ADMIN, MEMBER, Member
from cove.messaging import storage as queues
from cove.messaging.envelope import Envelope, EnvelopeKind, metadata_body
from cove.messaging.models import ForwardHeader, SendResult
from cove.messaging.service import decode_body
from cove.messaging.writer import GroupSendJob

T = TypeVar("T")


async def current_devices(relay: Relay, account_id: str) -> list[DeviceRecord]:
    """The member's devices the relay fans out to: every group path asks here, and only here."""
    return await relay.directory.devices_of(account_id)


def _refused(refusal: rules.Refusal) -> ApiError:
    return ApiError(refusal.status, refusal.code, str(refusal))


def _no_business(device: DeviceRecord) -> None:
    if device.business:
        raise ApiError(403, "business_not_allowed", "a business account cannot take part in groups")


async def _check_accounts(relay: Relay, accounts: list[str]) -> None:
    """Each account exists and may be in a group (a business may not)."""
    for account_id in accounts:
        found = await current_devices(relay, account_id)
        if not found:
            raise ApiError(404, "unknown_account", f"no account has the id {account_id}")
        if found[0].business:
            raise ApiError(403, "business_not_allowed", f"{account_id} is a business: it cannot be in a group")


async def _check(
    relay: Relay,
    actor: DeviceRecord,
    action: Action,
    group_id: str,
    added: list[str],
    members: int,
    forward: ForwardHeader | None = None,
) -> None:
    await relay.check_outbound(
        Outbound(
            action,
            actor.account_id,
            actor.device_id,
            actor.business,
            group_id,
            tuple(added),
            members,
            now_ms(),
            forward_count=forward.count if forward else 0,
            forward_batch=forward.batch if forward else None,
        )
    )


def _invite_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


_JOINING = frozenset({"create", "add", "join"})
_LEAVING = frozenset({"remove", "leave"})


class Change:
    """One transaction's changes to one group. The first bump of the revision locks the group's row (PostgreSQL)
    or the database (SQLite), so the membership read after it stays true until the commit."""

    def __init__(self, conn: AsyncConnection, group_id: str, revision: int, before: list[Member]) -> None:
        self.conn, self.group_id = conn, group_id
        self.revision = revision  # the revision the first change takes
        self.before = before
        self._present = {m.account_id for m in before}
        # (revision, action, accounts, who hears of it: the members before and after that change)
        self.made: list[tuple[int, str, list[str], list[str]]] = []

    async def record(self, action: str, accounts: list[str]) -> None:
        if self.made:
            self.revision = await storage.next_revision(self.conn, self.group_id) or self.revision
        after = self._present | set(accounts) if action in _JOINING else self._present
        self.made.append((self.revision, action, accounts, sorted(after)))
        self._present = after - set(accounts) if action in _LEAVING else after


async def _change(relay: Relay, actor: DeviceRecord, group_id: str, apply: Callable[[Change], Awaitable[T]]) -> T:
    """Run ``apply`` on the group in one transaction that also queues GROUP_CHANGE envelopes to every current
    device of every member before and after each change; hand them to the sockets once committed. Nothing
    changed: rolled back."""
    async with relay.engine.connect() as conn, conn.begin() as transaction:
        revision = await storage.next_revision(conn, group_id)
        if revision is None:
            raise ApiError(404, "unknown_group", "no group has this id, or you are not in it")
        change = Change(conn, group_id, revision, await storage.members(conn, group_id))
        try:
            result = await apply(change)
        except rules.Refusal as refusal:
            raise _refused(refusal) from refusal
        if not change.made:
            await transaction.rollback()
            return result
        if not await storage.members(conn, group_id):
            await storage.delete_group(conn, group_id)
        envelopes = await _change_envelopes(relay, actor, group_id, change.made)
        queued = await conn.run_sync(lambda sync: queues.insert_envelopes(sync, envelopes))
    await relay.hub.deliver(queued)
    return result


async def _change_envelopes(
    relay: Relay, actor: DeviceRecord, group_id: str, made: list[tuple[int, str, list[str], list[str]]]
) -> list[Envelope]:
    now = now_ms()
    expires = now + relay.retention_ms
    envelopes = []
    for revision, action, accounts, audience in made:
        body = metadata_body(group_id, change={"revision": revision, "action": action, "accounts": accounts})
        client_message_id = f"{group_id}.{revision}"
        envelopes += [
            Envelope(
                None,
                account,
                device.device_id,
                EnvelopeKind.GROUP_CHANGE,
                actor.account_id,
                actor.device_id,
                client_message_id,
                body,
                now,
                expires,
            )
            for account in audience
            for device in await current_devices(relay, account)
        ]
    return envelopes


async def leave_all(relay: Relay, conn: AsyncConnection, account_id: str) -> None:
    """A deleted account leaves every group it was in, inside its deletion's transaction (``conn``); the others'
    devices get the GROUP_CHANGE from their queues (it is not pushed live: the deletion has not committed yet)."""
    gone = DeviceRecord(account_id, 0, 0, "", "")
    for group_id in await storage.memberships(conn, account_id):
        revision = await storage.next_revision(conn, group_id)
        assert revision is not None, "a membership's group exists (the foreign key)"
        change = Change(conn, group_id, revision, await storage.members(conn, group_id))
        await _leave(change, account_id, "leave")
        if not await storage.members(conn, group_id):
            await storage.delete_group(conn, group_id)
        # Not to the deleted account: its queues are gone with it.
        envelopes = [
            e for e in await _change_envelopes(relay, gone, group_id, change.made) if e.account_id != account_id
        ]
        await conn.run_sync(lambda sync, batch=envelopes: queues.insert_envelopes(sync, batch))


async def _leave(change: Change, account_id: str, action: str) -> None:
    """Remove the member; when no admin is left, the longest-standing member becomes one."""
    await storage.remove(change.conn, change.group_id, [account_id])
    await change.record(action, [account_id])
    heir = rules.successor([m for m in change.before if m.account_id != account_id])
    if heir is not None:
        await storage.set_role(change.conn, change.group_id, heir, ADMIN)
        await change.record("promote", [heir])


async def create(relay: Relay, actor: DeviceRecord, members: list[str]) -> GroupView:
    _no_business(actor)
    if len(set(members)) != len(members):
        raise ApiError(400, "duplicate_account", "an account is listed twice")
    others = [a for a in members if a != actor.account_id]
    try:
        rules.check_size(len(others) + 1, relay.settings.group_max_members)
    except rules.Refusal as refusal:
        raise _refused(refusal) from refusal
    await _check_accounts(relay, others)
    group_id = secrets.token_hex(16)
    await _check(relay, actor, Action.GROUP_CREATE, group_id, others, len(others))
    everyone = [actor.account_id, *others]
    async with relay.engine.connect() as conn, conn.begin():
        await storage.create(conn, group_id, [(actor.account_id, ADMIN), *((a, MEMBER) for a in others)], now_ms())
        envelopes = await _change_envelopes(relay, actor, group_id, [(1, "create", everyone, everyone)])
        queued = await conn.run_sync(lambda sync: queues.insert_envelopes(sync, envelopes))
    await relay.hub.deliver(queued)
    return await view(relay, actor, group_id)


async def view(relay: Relay, actor: DeviceRecord, group_id: str) -> GroupView:
    async with relay.engine.connect() as conn:
        revision = await storage.revision(conn, group_id)
        members = await storage.members(conn, group_id)
    if revision is None or actor.account_id not in {m.account_id for m in members}:
        raise ApiError(404, "unknown_group", "no group has this id, or you are not in it")
    return GroupView(
        group_id=group_id,
        revision=revision,
        members=[
            MemberView(
                account_id=m.account_id,
                role=m.role,
                devices=[d.device_id for d in await current_devices(relay, m.account_id)],
            )
            for m in members
        ],
    )


async def list_groups(relay: Relay, actor: DeviceRecord) -> list[GroupSummary]:
    async with relay.engine.connect() as conn:
        rows = await storage.groups_of(conn, actor.account_id)
    return [GroupSummary(group_id=g, revision=r, role=role, size=n) for g, r, role, n in rows]  # type: ignore[arg-type]


async def add_members(relay: Relay, actor: DeviceRecord, group_id: str, accounts: list[str]) -> GroupView:
    _no_business(actor)
    await _check(relay, actor, Action.GROUP_ADD, group_id, accounts, len(accounts))

    async def apply(change: Change) -> None:
        rules.require_admin(change.before, actor.account_id)
        new = rules.new_accounts(change.before, accounts, relay.settings.group_max_members)
        await _check_accounts(relay, new)
        await storage.add(change.conn, group_id, [(a, MEMBER) for a in new], change.revision)
        await change.record("add", new)

    await _change(relay, actor, group_id, apply)
    return await view(relay, actor, group_id)


async def remove_member(relay: Relay, actor: DeviceRecord, group_id: str, account_id: str) -> GroupRevision:
    async def apply(change: Change) -> None:
        await _leave(change, account_id, rules.removal(change.before, actor.account_id, account_id))

    await _change(relay, actor, group_id, apply)
    async with relay.engine.connect() as conn:
        revision = await storage.revision(conn, group_id)
    return GroupRevision(group_id=group_id, revision=revision or 0)


async def set_role(relay: Relay, actor: DeviceRecord, group_id: str, account_id: str, role: rules.Role) -> GroupView:
    async def apply(change: Change) -> None:
        action = rules.role_change(change.before, actor.account_id, account_id, role)
        if action is not None:
            await storage.set_role(change.conn, group_id, account_id, role)
            await change.record(action, [account_id])

    await _change(relay, actor, group_id, apply)
    return await view(relay, actor, group_id)


async def _as_admin(
    relay: Relay, actor: DeviceRecord, group_id: str, apply: Callable[[AsyncConnection], Awaitable[T]]
) -> T:
    """Run ``apply`` in a transaction once the actor is known to be an admin of the group (invites: no change of
    membership, so no revision and no GROUP_CHANGE)."""
    async with relay.engine.connect() as conn, conn.begin():
        try:
            rules.require_admin(await storage.members(conn, group_id), actor.account_id)
        except rules.Refusal as refusal:
            raise _refused(refusal) from refusal
        return await apply(conn)


async def create_invite(relay: Relay, actor: DeviceRecord, group_id: str) -> str:
    code = secrets.token_hex(16)
    await _as_admin(
        relay,
        actor,
        group_id,
        lambda conn: storage.add_invite(conn, _invite_hash(code), group_id, actor.account_id, now_ms()),
    )
    return code


async def revoke_invite(relay: Relay, actor: DeviceRecord, group_id: str, code: str) -> None:
    if not await _as_admin(
        relay, actor, group_id, lambda conn: storage.revoke_invite(conn, group_id, _invite_hash(code))
    ):
        raise ApiError(404, "unknown_invite", "this group has no such invite")


async def join(relay: Relay, actor: DeviceRecord, code: str) -> GroupView:
    _no_business(actor)
    async with relay.engine.connect() as conn:
        group_id = await storage.invite_group(conn, _invite_hash(code))
    if group_id is None:
        raise ApiError(404, "unknown_invite", "no group has this invite: it was revoked, or the code is wrong")

    async def apply(change: Change) -> None:
        if actor.account_id in {m.account_id for m in change.before}:
            return  # joined before: nothing changes
        rules.check_size(len(change.before) + 1, relay.settings.group_max_members)
        await storage.add(change.conn, group_id, [(actor.account_id, MEMBER)], change.revision)
        await change.record("join", [actor.account_id])

    await _change(relay, actor, group_id, apply)
    return await view(relay, actor, group_id)


async def send(relay: Relay, actor: DeviceRecord, group_id: str, message: GroupMessage) -> SendResult:
    """Queue one Megolm ciphertext for every current device of every member but the sending one."""
    if actor.business:
        raise ApiError(403, "business_not_allowed", "a business account cannot message a group")
    body = decode_body(message.body, relay.settings.max_message_bytes, "body")
    async with relay.engine.connect() as conn:
        members = await storage.members(conn, group_id)
    if actor.account_id not in {m.account_id for m in members}:
        raise ApiError(404, "unknown_group", "no group has this id, or you are not in it")
    await _check(relay, actor, Action.GROUP_MESSAGE, group_id, [], len(members) - 1, message.forward)
    me = (actor.account_id, actor.device_id)
    devices = [
        key
        for m in members
        for key in ((m.account_id, d.device_id) for d in await current_devices(relay, m.account_id))
        if key != me
    ]
    now = now_ms()
    job = GroupSendJob(
        actor.account_id,
        actor.device_id,
        group_id,
        message.client_message_id,
        body,
        devices,
        now,
        now + relay.retention_ms,
        message.forward.count if message.forward else None,
    )
    queued = await relay.writer.send(job)
    return SendResult(duplicate=queued is None, queued=len(queued or ()), server_ts=now)
