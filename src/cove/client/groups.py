"""Group chats in the SDK, without I/O: the mirror of each group's membership, this device's Megolm sessions
(vodozemac ``GroupSession``), the other member devices' sessions (``InboundGroupSession``), replay protection,
and rotation.

Each member device encrypts a group message once with its own outbound session for the group; the session key
goes to every other member device over pairwise Olm (a ``sender_key`` payload on the 1:1 path) before the first
message that needs it. An inbound session is bound to the device whose Olm session carried its key, and to its
group: a Megolm message decrypts only with the sessions of the device and group its envelope names, and its
plaintext must name the same group. When a member leaves or is removed, or a device is no longer among a member's
devices, the outbound session is dropped: the next message starts a new one whose key reaches only the members of
that moment, so a removed member cannot read what is sent after it left. A message that comes before its
sender's key (the key travels on the 1:1 path) is kept, bounded, and read when a key of that device arrives.
Every session is stored as a pickle under the profile key, in the transaction of the envelope that changed it.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import vodozemac as vz

from cove.client import attachments
from cove.client.events import (
    AttachmentReceived,
    Event,
    GroupChanged,
    GroupDelivered,
    GroupInfoChanged,
    GroupMessageReceived,
    GroupRead,
    Undecryptable,
)
from cove.client.group_store import Group, GroupMessage, GroupStore, Member
from cove.client.store import ClientStore
from cove.protocol import groups as proto
from cove.protocol.envelope import EnvelopeKind

ACTIONS = {"create", "add", "remove", "leave", "promote", "demote", "join"}
MAX_CHANGE_ACCOUNTS = 4096  # far above any group's size limit: a bound on what a relay frame can make us store
MAX_RECEIPTS = 4096
GROUP_KINDS = (EnvelopeKind.MEGOLM, EnvelopeKind.GROUP_CHANGE, EnvelopeKind.GROUP_RECEIPT)


class GroupState:
    def __init__(self, store: ClientStore, pickle_key: bytes) -> None:
        self.store = store
        self.db = GroupStore(store)
        self._key = pickle_key

    # membership ---------------------------------------------------------------------------------------
    def group(self, group_id: str) -> Group | None:
        return self.db.group(group_id)

    def members(self, group_id: str) -> dict[str, Member]:
        return self.db.members(group_id)

    def view_received(self, view: dict[str, Any]) -> None:
        """The relay's ``GroupView``: the members and the devices it fans out to. A device that had this
        device's session key and is no longer among them makes the next message start a new session."""
        group_id = proto.valid_group_id(view["group_id"])
        members = [Member(m["account_id"], m["role"], tuple(int(d) for d in m["devices"])) for m in view["members"]]
        current = {(m.account_id, d) for m in members for d in m.devices}
        with self.store.transaction():
            self.db.save_group(group_id, int(view["revision"]))
            self.db.drop_members(group_id)
            for member in members:
                self.db.save_member(group_id, member)
            outbound = self.db.outbound(group_id)
            if outbound and self.db.shared(group_id, outbound[0]) - current:
                self.db.drop_outbound(group_id)

    # sending ------------------------------------------------------------------------------------------
    def outbound(self, group_id: str) -> vz.GroupSession:
        """This device's current session for the group, started (and stored) if there is none."""
        stored = self.db.outbound(group_id)
        if stored:
            return vz.GroupSession.from_pickle(stored[1], self._key)
        session = vz.GroupSession()
        self.db.save_outbound(group_id, session.session_id, session.pickle(self._key))
        return session

    def lacking_key(self, group_id: str, me: str, my_device: int) -> dict[str, list[int]]:
        """The member devices (by account) that have not received the current session's key yet."""
        session_id = self.outbound(group_id).session_id
        shared = self.db.shared(group_id, session_id)
        lacking: dict[str, list[int]] = {}
        for member in self.db.members(group_id).values():
            devices = [
                d
                for d in member.devices
                if (member.account_id, d) not in shared and (member.account_id, d) != (me, my_device)
            ]
            if devices:
                lacking[member.account_id] = devices
        return lacking

    def sender_key(self, group_id: str) -> proto.SenderKey:
        """The current session's key from its next message on: a member who receives it cannot read earlier ones."""
        session = self.outbound(group_id)
        return proto.SenderKey(group_id, session.session_id, session.session_key.to_base64())

    def key_shared(self, key: proto.SenderKey, account_id: str, devices: list[int]) -> None:
        self.db.mark_shared(key.group_id, key.session_id, account_id, devices)

    def encrypt(self, group_id: str, client_message_id: str, payload: dict[str, Any], text: str | None) -> str:
        """The base64 Megolm ciphertext; the ratchet has advanced on disk (and the text is in the history) before
        it leaves."""
        session = self.outbound(group_id)
        body = base64.b64encode(session.encrypt(json.dumps(payload).encode()).to_bytes()).decode()
        with self.store.transaction():
            self.db.save_outbound(group_id, session.session_id, session.pickle(self._key))
            if text is not None:
                me = self.store.get("account_id") or ""
                self.db.add_message(GroupMessage(group_id, me, "out", client_message_id, text, int(payload["ts"])))
        return body

    def rotate(self, group_id: str) -> None:
        self.db.drop_outbound(group_id)

    # receiving ----------------------------------------------------------------------------------------
    def receive(self, frame: dict[str, Any], me: str | None) -> list[Event]:
        """A group envelope (kind 2, 6 or 7), in the caller's transaction."""
        kind = int(frame["kind"])
        try:
            group_id = proto.valid_group_id(frame.get("group"))
        except proto.GroupPayloadError:
            if kind != EnvelopeKind.GROUP_RECEIPT:
                return [self._unreadable(frame, "the envelope names no valid group")]
            group_id = ""  # receipts may name their group per receipt
        if kind == EnvelopeKind.MEGOLM:
            return self._megolm(frame, group_id)
        if kind == EnvelopeKind.GROUP_CHANGE:
            return self._change(frame, group_id, me)
        return self._receipts(frame, group_id)

    def _megolm(self, frame: dict[str, Any], group_id: str) -> list[Event]:
        sender, sender_device = str(frame["sender"]), int(frame["sender_device"])
        try:
            message = vz.MegolmMessage.from_bytes(base64.b64decode(str(frame["body"]), validate=True))
        except (vz.DecodeException, ValueError):
            return [self._unreadable(frame, "not a Megolm message")]
        for session_id, pickled in self.db.inbound(group_id, sender, sender_device):
            session = vz.InboundGroupSession.from_pickle(pickled, self._key)
            try:
                decrypted = session.decrypt(message)
            except (vz.MegolmDecryptionException, ValueError):
                continue
            if not self.db.first_seen(sender, sender_device, session_id, decrypted.message_index):
                return [self._unreadable(frame, "a replayed group message")]
            return self._group_payload(frame, group_id, sender, sender_device, decrypted.plaintext)
        self.db.keep_pending(frame)
        return [self._unreadable(frame, "no group session of this sender decrypts it yet: kept until its key comes")]

    def _group_payload(
        self, frame: dict[str, Any], group_id: str, sender: str, sender_device: int, plaintext: bytes
    ) -> list[Event]:
        try:
            payload = json.loads(plaintext)
            if not isinstance(payload, dict) or proto.group_of(payload) != group_id:
                return [self._unreadable(frame, "the message belongs to another group")]
            if payload.get("type") == "group_info":
                return [self._info(group_id, sender, proto.parse_group_info(payload))]
        except (ValueError, proto.GroupPayloadError) as exc:
            return [self._unreadable(frame, f"not a group payload: {exc}")]
        text = str(payload.get("text", ""))
        cmid = str(payload.get("id") or frame["client_message_id"])
        sent_at = int(payload["ts"]) if isinstance(payload.get("ts"), int) else int(frame["server_ts"])
        event: Event
        if payload.get("type") == "attachment":
            event = attachments.received(sender, sender_device, cmid, payload, sent_at, int(frame["id"]), group_id)
            if not isinstance(event, AttachmentReceived):
                return [event]
            text = attachments.history_text(event.attachment["name"], event.attachment["size"], event.text)
        else:
            event = GroupMessageReceived(group_id, sender, sender_device, cmid, text, sent_at)
        self.db.add_message(GroupMessage(group_id, sender, "in", cmid, text, sent_at))
        return [event]

    def _info(self, group_id: str, sender: str, info: proto.GroupInfo) -> GroupInfoChanged:
        self.db.save_info(group_id, info.name, info.description, info.avatar)
        return GroupInfoChanged(group_id, sender, info.name)

    def _change(self, frame: dict[str, Any], group_id: str, me: str | None) -> list[Event]:
        change = frame.get("change")
        if not isinstance(change, dict) or change.get("action") not in ACTIONS:
            return [self._unreadable(frame, "not a group change")]
        accounts = change.get("accounts") or []
        if not isinstance(accounts, list) or len(accounts) > MAX_CHANGE_ACCOUNTS:
            return [self._unreadable(frame, "a group change with too many accounts")]
        accounts = [str(a) for a in accounts]
        action, actor, revision = change["action"], str(frame["sender"]), int(change.get("revision", 0))
        members = self.db.members(group_id)
        left = action in ("remove", "leave")
        self.db.save_group(group_id, revision, member=not (left and me in accounts))
        if left:
            self.db.drop_members(group_id, accounts)
            self.rotate(group_id)
        elif action in ("promote", "demote"):
            for account in accounts:
                if account in members:
                    role = "admin" if action == "promote" else "member"
                    self.db.save_member(group_id, Member(account, role, members[account].devices))
        else:  # create, add, join: their devices are learnt from the group's view before the next send
            added = dict.fromkeys(accounts, "member")
            if action != "join":  # whoever creates a group or adds to it is an admin of it
                added[actor] = "admin"
            for account, role in added.items():
                if account not in members:
                    self.db.save_member(group_id, Member(account, role, ()))
        return [GroupChanged(group_id, actor, action, accounts, revision)]

    def _receipts(self, frame: dict[str, Any], group_id: str) -> list[Event]:
        receipts = frame.get("receipts")
        if not isinstance(receipts, list) or len(receipts) > MAX_RECEIPTS:
            return [self._unreadable(frame, "not a group receipt")]
        events: list[Event] = []
        for receipt in receipts:
            if not isinstance(receipt, dict):
                continue
            try:
                group = proto.valid_group_id(receipt.get("group", group_id))
            except proto.GroupPayloadError:
                continue
            cmid, account = str(receipt.get("client_message_id")), str(receipt.get("account"))
            self.db.raise_receipt(group, [cmid], account, "delivered")
            events.append(GroupDelivered(group, cmid, account, int(receipt.get("device", 0))))
        return events

    def pairwise(self, sender: str, sender_device: int, payload: dict[str, Any]) -> list[Event] | None:
        """A group payload that came over 1:1 Olm (``None``: not one); in the caller's transaction."""
        kind = payload.get("type")
        try:
            if kind == "sender_key":
                return self._sender_key(sender, sender_device, proto.parse_sender_key(payload))
            if kind == "group_info":
                group_id = proto.group_of(payload)
                if sender not in self.db.members(group_id):  # anyone may know a group's id; only members name it
                    raise proto.GroupPayloadError("group_info from someone who is not in the group")
                return [self._info(group_id, sender, proto.parse_group_info(payload))]
            if kind == "read" and "group" in payload:
                group_id, ids = proto.group_of(payload), [str(i) for i in payload.get("ids", [])][:MAX_RECEIPTS]
                self.db.raise_receipt(group_id, ids, sender, "read")
                return [GroupRead(group_id, sender, ids)]
        except proto.GroupPayloadError as exc:
            return [Undecryptable(sender, sender_device, 0, str(exc))]
        return None

    def _sender_key(self, sender: str, sender_device: int, key: proto.SenderKey) -> list[Event]:
        """Keep the first key of a session: a later copy starts at a later index and would lose messages. The
        messages of that device that came before its key are read now, their events in the key's envelope."""
        if self.db.has_inbound(key.group_id, sender, sender_device, key.session_id):
            return []
        try:
            session = vz.InboundGroupSession(vz.SessionKey(key.session_key))
        except (ValueError, binascii.Error) as exc:
            raise proto.GroupPayloadError(f"sender_key: {exc}") from exc
        if session.session_id != key.session_id:
            raise proto.GroupPayloadError("sender_key: the key is not the session it names")
        self.db.save_inbound(key.group_id, sender, sender_device, key.session_id, session.pickle(self._key))
        return self._retry_pending(key.group_id, sender, sender_device, session)

    def _retry_pending(
        self, group_id: str, sender: str, sender_device: int, session: vz.InboundGroupSession
    ) -> list[Event]:
        events: list[Event] = []
        for frame in self.db.pending(group_id, sender, sender_device):
            try:
                message = vz.MegolmMessage.from_bytes(base64.b64decode(str(frame["body"]), validate=True))
                decrypted = session.decrypt(message)
            except (vz.DecodeException, vz.MegolmDecryptionException, ValueError):
                continue  # another session's, whose key may still come
            self.db.drop_pending(int(frame["id"]))
            if self.db.first_seen(sender, sender_device, session.session_id, decrypted.message_index):
                events += self._group_payload(frame, group_id, sender, sender_device, decrypted.plaintext)
        return events

    @staticmethod
    def _unreadable(frame: dict[str, Any], reason: str) -> Undecryptable:
        return Undecryptable(str(frame.get("sender")), int(frame.get("sender_device") or 0), int(frame["id"]), reason)
