"""Receiving: what the relay's frames do to this device's store, and the events they leave for the app.

:class:`Inbound` belongs to one :class:`cove.client.core.ClientCore` (its ``inbound``); ``ClientCore.receive``
hands every frame to it. It decrypts pairwise envelopes with the core's Olm account, passes group envelopes and
group payloads to :class:`cove.client.groups.GroupState` and one's own devices' transcripts to
:mod:`cove.client.sync`, and dispatches every other payload by its ``type``. Each envelope's effects and its
events are written in one transaction with the mark that it was processed, so a redelivery changes nothing.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import vodozemac as vz

from cove.client import attachments, business_show, crypto, sync
from cove.client import events as outbox
from cove.client.clock import today
from cove.client.events import (
    AttachmentReceived,
    Delivered,
    Event,
    MessageReceived,
    NoticeReceived,
    PayloadReceived,
    QueueEmpty,
    Read,
    TemplateReceived,
    Undecryptable,
)
from cove.client.groups import GROUP_KINDS
from cove.protocol.envelope import EnvelopeKind

if TYPE_CHECKING:
    from cove.client.core import ClientCore

MAX_PHONE_LENGTH = 32  # as the relay's own phone fields


@dataclass
class Received:
    """What a frame did. Its stored events are already in the outbox: the app takes them from there
    (:meth:`ClientCore.pending_events`), so that none is lost or repeated when the ack or the process fails."""

    events: list[Event] = field(default_factory=list)
    ack_ids: list[int] = field(default_factory=list)
    need_identity: str | None = None  # fetch this account's identity, feed it, then receive the frame again


class Inbound:
    def __init__(self, core: ClientCore, pickle_key: bytes) -> None:
        self.core = core
        self.store = core.store
        self._key = pickle_key

    def receive(self, frame: dict[str, Any], identity_refreshed: bool = False) -> Received:
        kind = frame.get("type")
        if kind == "queue_empty":
            return Received(events=[QueueEmpty()])
        if kind == "notice":
            return Received(events=[NoticeReceived(frame["notice"])])
        if kind != "envelope":
            return Received()
        envelope_id = int(frame["id"])
        if self.store.was_processed(envelope_id):
            return Received(ack_ids=[envelope_id])  # a redelivery: its effects are already stored
        if frame["kind"] in GROUP_KINDS:
            with self.store.transaction():
                events = self.core.groups.receive(frame, self.core.account_id)
                self.processed(envelope_id, events)
            return Received(events, [envelope_id])
        sender, sender_device = frame["sender"], int(frame["sender_device"])
        if frame["kind"] == EnvelopeKind.DELIVERY_RECEIPT:
            ids = frame.get("client_message_ids") or [frame["client_message_id"]]
            # One's own devices took a transcript or read state: nothing the user sent anyone.
            events: list[Event] = [] if sender == self.core.account_id else [Delivered(sender, cmid) for cmid in ids]
            with self.store.transaction():
                self.store.set_status(sender, ids, "delivered")
                self.processed(envelope_id, events)
            return Received(events, [envelope_id])
        return self._ciphertext(frame, envelope_id, sender, sender_device, identity_refreshed)

    def _ciphertext(
        self,
        frame: dict[str, Any],
        envelope_id: int,
        sender: str,
        sender_device: int,
        identity_refreshed: bool,
    ) -> Received:
        olm = self.core.require_olm()
        kind, body = int(frame["kind"]), base64.b64decode(frame["body"])
        if sender_device not in self.core.trusted_devices(sender):
            if not identity_refreshed:
                return Received(need_identity=sender)
            events: list[Event] = [
                Undecryptable(sender, sender_device, envelope_id, "the sender's signed device list does not name it")
            ]
            with self.store.transaction():
                self.processed(envelope_id, events)
            return Received(events, [envelope_id])
        with self.store.transaction():
            plaintext = None
            for session_id, pickled in self.store.sessions(sender, sender_device):
                session = vz.Session.from_pickle(pickled, self._key)
                plaintext = crypto.try_decrypt(session, kind, body)
                if plaintext is not None:
                    self.store.save_session(sender, sender_device, session_id, session.pickle(self._key))
                    break
            if plaintext is None and kind == EnvelopeKind.OLM_PREKEY:
                device = self.store.peer_devices(sender).get(sender_device)
                if device is None and not identity_refreshed:
                    return Received(need_identity=sender)
                if device is not None:
                    try:
                        session, plaintext = olm.inbound_session(device.curve25519, body)
                        self.store.save_session(sender, sender_device, session.session_id, session.pickle(self._key))
                        self.core.save_olm()  # the one-time key is gone now; never offer it again
                    except crypto.DecryptionFailed:
                        if not identity_refreshed:
                            return Received(need_identity=sender)
            if plaintext is None:
                events = [Undecryptable(sender, sender_device, envelope_id, "no session decrypts it")]
            else:
                events = self.apply_payload(sender, sender_device, plaintext, frame)
            self.processed(envelope_id, events)
        return Received(events, [envelope_id])

    def processed(self, envelope_id: int, events: list[Event]) -> None:
        """In the envelope's transaction: it will not be applied again, and its events wait for the app."""
        self.store.mark_processed(envelope_id)
        for event in self.core.contacts.received(events):  # a message request's mark goes before its message
            self.store.add_pending_event(outbox.dump(event))

    def apply_payload(self, sender: str, sender_device: int, plaintext: bytes, frame: dict[str, Any]) -> list[Event]:
        try:
            payload = json.loads(plaintext)
        except ValueError:
            return [Undecryptable(sender, sender_device, int(frame["id"]), "payload is not JSON")]
        if not isinstance(payload, dict):
            return [Undecryptable(sender, sender_device, int(frame["id"]), "payload is not a JSON object")]
        claimed = payload.get("from")
        if isinstance(claimed, str) and len(claimed) <= MAX_PHONE_LENGTH and not self.store.peer_phone(sender):
            self.store.claim_phone(sender, claimed)
        group_events = self.core.groups.pairwise(sender, sender_device, payload)
        if group_events is not None:
            return group_events
        kind = payload.get("type")
        if kind in sync.OWN_DEVICE_TYPES:
            assert self.core.account_id is not None and self.core.device_id is not None
            me = sync.Me(
                self.core.account_id, self.core.device_id, frozenset(self.core.trusted_devices(self.core.account_id))
            )
            return sync.apply(self.store, me, sender, sender_device, payload, int(frame["id"]))
        if kind == "read":
            ids = [str(i) for i in payload.get("ids", [])]
            self.store.set_status(sender, ids, "read")
            return [Read(sender, ids)]
        cmid = str(payload.get("id") or frame["client_message_id"])
        sent_at = int(payload.get("ts") or frame["server_ts"])
        business = frame.get("business")
        self.store.count_usage(today(), received=1)
        if kind == "text":
            text = str(payload.get("text", ""))
            self.store.add_message(sender, "in", cmid, text, sent_at, "received")
            return [MessageReceived(sender, sender_device, cmid, text, sent_at, business)]
        if kind == "attachment":
            event = attachments.received(
                sender, sender_device, cmid, payload, sent_at, int(frame["id"]), business=business
            )
            if isinstance(event, AttachmentReceived):
                shown = attachments.history_text(event.attachment["name"], event.attachment["size"], event.text)
                self.store.add_message(sender, "in", cmid, shown, sent_at, "received")
            return [event]
        if kind == "template" and business is not None and isinstance(payload.get("sealed"), str):
            return [TemplateReceived(sender, sender_device, cmid, business, payload["sealed"].encode(), sent_at)]
        if business is not None and kind in business_show.SHOWN:  # kept in the history as the CLI shows it
            self.store.add_message(sender, "in", cmid, business_show.history_text(payload), sent_at, "received")
        return [PayloadReceived(sender, sender_device, cmid, payload, sent_at, business)]
