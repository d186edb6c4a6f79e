"""Group chats over a :class:`~cove.client.transport.CoveClient`: the relay's group routes, and the group send.

A group message is sent as: read the group's view from the relay (its members and the devices it fans out to; a
device that had this device's session key and is gone starts a new session), send the current session key 1:1
over Olm to each member device that lacks it, then encrypt once with Megolm and upload one ciphertext. The relay
decides membership and admin rights; it never sees a key, a name or a text.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

from cove.client import attachments, paths
from cove.client.core import Outgoing, Request
from cove.client.events import Event, GroupChanged
from cove.client.group_store import Group
from cove.client.transport import CoveClient
from cove.protocol import groups as proto
from cove.protocol.attachments import Pointer, parse_pointer
from cove.protocol.payload import PAYLOAD_VERSION

KEY_SENDS_AT_ONCE = 8  # sender-key deliveries in flight while a session reaches a large group


class Groups:
    def __init__(self, client: CoveClient) -> None:
        self.client = client
        self.core = client.core
        self.state = client.core.groups

    # membership ---------------------------------------------------------------------------------------
    async def create(self, members: list[str], info: proto.GroupInfo | None = None) -> str:
        """A new group of this account (its admin) and ``members``; ``info`` reaches them encrypted."""
        view = await self.client.call(Request("POST", "/v1/groups", {"members": members}))
        self.state.view_received(view)
        if info is not None:
            await self.set_info(view["group_id"], info)
        return str(view["group_id"])

    async def refresh(self, group_id: str) -> dict[str, Any]:
        view = await self.client.call(Request("GET", _path(paths.GROUP, group_id)))
        self.state.view_received(view)
        return view

    async def list(self) -> list[dict[str, Any]]:
        return list((await self.client.call(Request("GET", "/v1/groups")))["groups"])

    async def add(self, group_id: str, accounts: list[str]) -> None:
        """Add members (admins only); they receive the group's name, description and avatar 1:1 from here."""
        before = set(self.state.members(group_id))
        view = await self.client.call(Request("POST", _path(paths.GROUP_MEMBERS, group_id), {"accounts": accounts}))
        self.state.view_received(view)
        group = self.state.group(group_id)
        if group is not None and group.name is not None:
            for account in sorted({m["account_id"] for m in view["members"]} - before):
                await self.client.send(_info_outgoing(account, group))

    async def welcome(self, events: list[Event]) -> None:
        """Send the group's name, description and avatar 1:1 to those who joined with an invite, if this account
        is an admin of the group (nobody added them, so nobody else would)."""
        me = self.core.account_id
        for event in events:
            if not isinstance(event, GroupChanged) or event.action != "join":
                continue
            group, members = self.state.group(event.group_id), self.state.members(event.group_id)
            if group is None or group.name is None or me not in members or members[me].role != "admin":
                continue
            for account in event.accounts:
                await self.client.send(_info_outgoing(account, group))

    async def remove(self, group_id: str, account_id: str) -> None:
        """Remove a member (admins), or this account itself (leave)."""
        await self.client.call(Request("DELETE", _path(paths.GROUP_MEMBER, group_id, account_id=account_id)))
        self.after_removal(group_id)

    def after_removal(self, group_id: str) -> None:
        """The relay took a member out (a removal, a leave, a report that left): this device's next message starts
        a new session without waiting for the relay's change to arrive."""
        self.state.rotate(group_id)

    async def leave(self, group_id: str) -> None:
        assert self.core.account_id is not None
        await self.remove(group_id, self.core.account_id)

    async def set_role(self, group_id: str, account_id: str, role: str) -> None:
        path = _path(paths.GROUP_ROLE, group_id, account_id=account_id)
        self.state.view_received(await self.client.call(Request("PUT", path, {"role": role})))

    async def invite(self, group_id: str) -> str:
        return str((await self.client.call(Request("POST", _path(paths.GROUP_INVITES, group_id))))["code"])

    async def revoke(self, group_id: str, code: str) -> None:
        path = _path(paths.GROUP_INVITE, group_id, code=proto.valid_invite_code(code))
        await self.client.call(Request("DELETE", path))

    async def join(self, code: str) -> str:
        view = await self.client.call(Request("POST", "/v1/groups/join", {"code": proto.valid_invite_code(code)}))
        self.state.view_received(view)
        return str(view["group_id"])

    # messages -----------------------------------------------------------------------------------------
    async def send_text(self, group_id: str, text: str, forward: dict[str, Any] | None = None) -> str:
        """``forward``: the visible header of a forward (cove.protocol.forwarding.header)."""
        cmid = uuid.uuid4().hex
        await self._send(group_id, cmid, proto.text_payload(group_id, cmid, text, _now_ms()), text, forward)
        return cmid

    async def send_pointer(
        self, group_id: str, pointer: Pointer, text: str | None, forward: dict[str, Any] | None = None
    ) -> str:
        """A file uploaded before (a forward): its pointer again, nothing uploaded."""
        cmid = uuid.uuid4().hex
        payload = attachments.payload(cmid, pointer, text, _now_ms(), group_id)
        await self._send(group_id, cmid, payload, attachments.history_text(pointer.name, pointer.size, text), forward)
        return cmid

    async def send_file(self, group_id: str, path: Path, text: str | None = None) -> str:
        """Upload a file once for every member device the message fans out to, then send one group message that
        carries its pointer (and ``text``, a caption); returns the message id."""
        if text is not None and len(text) > proto.MAX_TEXT:
            raise proto.GroupPayloadError(f"a caption has at most {proto.MAX_TEXT} characters")
        view = await self.refresh(group_id)
        # The relay fans the message out to every current device of every member but this one: each fetches once.
        fetching = sum(len(m["devices"]) for m in view["members"]) - 1
        pointer = parse_pointer(await self.client.upload_attachment(path, max(1, fetching)))
        cmid = uuid.uuid4().hex
        payload = attachments.payload(cmid, pointer, text, _now_ms(), group_id)
        await self._deliver(group_id, cmid, payload, attachments.history_text(pointer.name, pointer.size, text))
        return cmid

    async def set_info(self, group_id: str, info: proto.GroupInfo) -> None:
        """Name, describe or picture the group for its members (and for those who join later, 1:1)."""
        cmid = uuid.uuid4().hex
        await self._send(group_id, cmid, info.payload(group_id) | {"id": cmid, "ts": _now_ms()}, None)
        with self.core.store.transaction():
            self.state.db.save_info(group_id, info.name, info.description, info.avatar)

    async def mark_read(self, group_id: str, sender: str, client_message_ids: list[str]) -> None:
        """Tell the sender (only) that these of its group messages were read."""
        payload = {"v": PAYLOAD_VERSION, "type": "read", "group": group_id, "ids": client_message_ids}
        await self.client.send(Outgoing(sender, uuid.uuid4().hex, json.dumps(payload).encode(), receipt=True))

    async def _send(
        self, group_id: str, cmid: str, payload: dict[str, Any], text: str | None, forward: dict[str, Any] | None = None
    ) -> None:
        await self.refresh(group_id)
        await self._deliver(group_id, cmid, payload, text, forward)

    async def _deliver(
        self, group_id: str, cmid: str, payload: dict[str, Any], text: str | None, forward: dict[str, Any] | None = None
    ) -> None:
        """Send to the members and devices of the group's view as last refreshed."""
        await self._share_key(group_id)
        body = self.state.encrypt(group_id, cmid, payload, text)
        sent = {"client_message_id": cmid, "body": body} | ({"forward": forward} if forward else {})
        await self.client.call(Request("PUT", _path(paths.GROUP_MESSAGES, group_id), sent))

    async def _share_key(self, group_id: str) -> None:
        """The current session key to every member device without it, over each member's 1:1 Olm sessions."""
        me, my_device = self.core.account_id, self.core.device_id
        assert me is not None and my_device is not None
        key = self.state.sender_key(group_id)
        # The number, as 1:1 texts carry it: members who never wrote to each other can show who speaks.
        sender = {"from": self.core.phone_number} if self.core.phone_number else {}
        plaintext = json.dumps(key.payload() | sender).encode()
        gate = asyncio.Semaphore(KEY_SENDS_AT_ONCE)

        async def share(account: str, devices: list[int]) -> None:
            async with gate:
                await self.client.send(Outgoing(account, uuid.uuid4().hex, plaintext))
            trusted = self.core.trusted_devices(account)
            self.state.key_shared(key, account, [d for d in devices if d in trusted])

        lacking = self.state.lacking_key(group_id, me, my_device)
        await asyncio.gather(*(share(account, devices) for account, devices in lacking.items()))


def _path(template: str, group_id: str, **values: str) -> str:
    return paths.build(template, group_id=proto.valid_group_id(group_id), **values)


def _info_outgoing(account: str, group: Group) -> Outgoing:
    info = proto.GroupInfo(group.name or "", group.description or "", group.avatar)
    return Outgoing(account, uuid.uuid4().hex, json.dumps(info.payload(group.group_id)).encode())


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
