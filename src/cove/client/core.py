"""The sans-I/O client: every protocol decision and all crypto, no sockets.

Like h11 or matrix-nio's base client, :class:`ClientCore` builds :class:`Request` objects and digests the
relay's answers and WebSocket frames; :mod:`cove.client.transport` only moves bytes. Tests can drive the
core with hand-made responses.

Payloads inside the ciphertext are JSON: ``{"v": 1, "type": "text", "id", "text", "ts"}`` for a message,
``{"v": 1, "type": "read", "ids": [...]}`` for a read receipt (read receipts are end-to-end), and
``{"v": 1, "type": "template", "id", "ts", "sealed"}`` for a business's template message, whose ``sealed`` is
the text of :func:`cove.protocol.templates.split_template_message`'s plaintext. Other types (interactive
messages, replies to them) reach the app as :class:`PayloadReceived`.

Whole concerns live in modules of their own, composed here: :mod:`cove.client.receiving` applies the relay's
frames and dispatches payloads (``ClientCore.inbound``; :meth:`ClientCore.receive` hands frames to it),
:mod:`cove.client.privacy` builds the privacy requests (``ClientCore.privacy``), :mod:`cove.client.usage_counters`
counts and reports usage (``ClientCore.usage``), :mod:`cove.client.groups` keeps group state
(``ClientCore.groups``), :mod:`cove.client.trust` the verified device lists, and :mod:`cove.client.events` defines
the events and their outbox format. :class:`Request` is in :mod:`cove.client.request`.
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import vodozemac as vz

from cove.client import attachments, crypto, forwards, paths, trust, verification
from cove.client import events as outbox
from cove.client.clock import now_ms, today
from cove.client.contacts_store import WROTE, AddressBook
from cove.client.crypto import OlmDevice
from cove.client.events import (
    Event,
    IdentityChanged,
    PayloadReceived,
    PendingEvent,
    TemplateReceived,
    VerifiedKeyChanged,
)
from cove.client.groups import GroupState
from cove.client.privacy import PrivacyRequests
from cove.client.receiving import Inbound, Received
from cove.client.request import Request
from cove.client.store import ClientStore, PeerDevice
from cove.client.usage_counters import UsageCounters
from cove.protocol import signing
from cove.protocol.attachments import Pointer
from cove.protocol.business_messages import BusinessInteractive, compose_interactive_reply, parse_business_plaintext
from cove.protocol.device_list import DEVICE_LIST, DeviceList
from cove.protocol.payload import PAYLOAD_VERSION
from cove.protocol.templates import RenderedMessage
from cove.protocol.templates.quick_reply import compose_button_reply

REFILL_BELOW = 25
MAX_CLAIMS_CHECKED = 100  # numbers per contact-discovery request


@dataclass(frozen=True)
class Outgoing:
    recipient: str
    client_message_id: str
    payload: bytes
    text: str | None = None  # kept in local history when it is a text message
    business: dict[str, Any] | None = None  # a business's visible header (cove.business.sending.BusinessHeader)
    receipt: bool = False  # a read receipt: told to the relay, so that it opens no business's service window
    forward: dict[str, Any] | None = None  # a forward's visible header (cove.protocol.forwarding.header)


class NotRegistered(Exception):
    pass


class UntrustedDevices(Exception):
    """The relay insists that a send address devices the account's verified device list does not name: nothing is
    encrypted to them, and the send fails (a relay adding a device it controls would look like this)."""

    def __init__(self, account_id: str, device_ids: list[int]) -> None:
        self.account_id, self.device_ids = account_id, device_ids
        super().__init__(
            f"security: the relay wants devices {device_ids} of {account_id} addressed, but their signed device list "
            "does not name them; nothing was sent"
        )


class ClientCore:
    def __init__(self, store: ClientStore, pickle_key: bytes, device_info: dict[str, Any]) -> None:
        if len(pickle_key) != crypto.PICKLE_KEY_BYTES:
            raise ValueError("the pickle key must be exactly 32 bytes")
        self.store = store
        self._key = pickle_key
        self.device_info = device_info
        pickled = store.get("olm_account")
        self._olm = OlmDevice.from_pickle(pickled, pickle_key) if pickled else None
        self._insisted: dict[str, set[int]] = {}  # devices the relay's last 409 said were missing, per recipient
        self.groups = GroupState(store, pickle_key)
        self.inbound = Inbound(self, pickle_key)
        self.privacy = PrivacyRequests(self)
        self.usage = UsageCounters(store)
        self.contacts = AddressBook(self)

    # identity of this device -------------------------------------------------------------------------
    @property
    def account_id(self) -> str | None:
        return self.store.get("account_id")

    @property
    def device_id(self) -> int | None:
        value = self.store.get("device_id")
        return int(value) if value else None

    @property
    def token(self) -> str | None:
        return self.store.get("token")

    @property
    def phone_number(self) -> str | None:
        return self.store.get("phone_number")

    def require_olm(self) -> OlmDevice:
        """This device's Olm account, for the modules that decrypt with it (:mod:`cove.client.receiving`)."""
        if self._olm is None or self.token is None:
            raise NotRegistered("this profile is not registered yet: run register and verify first")
        return self._olm

    def save_olm(self) -> None:
        """Persist the Olm account after it changed (keys made or published, a one-time key used up)."""
        assert self._olm is not None
        self.store.set("olm_account", self._olm.pickle(self._key))

    # registration ------------------------------------------------------------------------------------
    def request_code(self, phone_number: str, answer: dict[str, str] | None = None) -> Request:
        """Ask for a code, telling the relay's registration gate what this phone is; ``answer``: ``{seed, nonce}``
        solving the challenge of the relay's 428 ``challenge_required``."""
        body: dict[str, Any] = {"phone_number": phone_number}
        if all(self.device_info.get(k) for k in ("model", "os_name", "os_version", "app_version")):
            body["device"] = self.device_info
        return Request("POST", "/v1/verification/code", body | ({"challenge": answer} if answer else {}))

    def registration(self, phone_number: str, code: str, pin: str | None = None) -> Request:
        """A fresh Olm identity for this install; registering again (a new phone) makes another one. ``pin``:
        the registration lock's, when the relay answered 423 ``registration_lock``."""
        body = {"phone_number": phone_number, "code": code, **self.new_identity()}
        return Request("POST", "/v1/registration", body | ({"pin": pin} if pin is not None else {}))

    def new_identity(self) -> dict[str, Any]:
        """A fresh Olm identity for this install, as a registration (or a companion's link) presents it."""
        self._olm = OlmDevice.create()
        registration_id = secrets.randbelow(16380) + 1
        with self.store.transaction():
            self.save_olm()
            self.store.set("registration_id", str(registration_id))
        return {
            "registration_id": registration_id,
            "identity_key": self._olm.identity_keys(),
            "device": self.device_info,
        }

    def own_keys(self) -> tuple[str, str]:
        """This device's identity keys, ``(curve25519, ed25519)``."""
        olm = self.require_olm()
        return olm.curve25519, olm.ed25519

    def sign(self, kind: str, text: str) -> str:
        """This device's identity signature over ``cove:v1:<kind>:<text>``."""
        return self.require_olm().sign(kind, text)

    def device_list_upload(self, listed: DeviceList) -> Request:
        """Publish ``listed``, signed by this device (the primary)."""
        text = listed.canonical()
        return Request("PUT", "/v1/devices/list", {"list": text, "signature": self.sign(DEVICE_LIST, text)})

    def trusted_devices(self, account_id: str) -> dict[int, PeerDevice]:
        """The account's devices named in its verified device list: the only ones anything is encrypted to."""
        return trust.trusted(self.store, account_id)

    def registration_lock(self) -> Request:
        return Request("GET", "/v1/accounts/me/registration-lock")

    def pin_set(self, pin: str) -> Request:
        return Request("PUT", "/v1/accounts/me/registration-lock", {"pin": pin})

    def pin_removal(self) -> Request:
        return Request("DELETE", "/v1/accounts/me/registration-lock")

    def registered(self, body: dict[str, Any]) -> None:
        with self.store.transaction():
            self.store.set("account_id", body["account_id"])
            self.store.set("device_id", str(body["device_id"]))
            self.store.set("token", body["token"])

    def registered_phone(self, phone_number: str) -> None:
        self.store.set("phone_number", phone_number)

    def key_upload(self, held_on_server: int, has_fallback: bool = True) -> Request | None:
        """Keys to top the server back up to the target, or ``None`` when it has enough."""
        olm = self.require_olm()
        if held_on_server >= REFILL_BELOW and has_fallback:
            return None
        body: dict[str, Any] = {"one_time_keys": olm.new_one_time_keys(crypto.ONE_TIME_KEY_TARGET - held_on_server)}
        if not has_fallback:
            body["fallback_key"] = olm.new_fallback_key()
        self.save_olm()
        return Request("PUT", "/v1/keys", body)

    def keys_uploaded(self) -> None:
        self.require_olm().mark_published()
        self.save_olm()

    def key_count(self) -> Request:
        return Request("GET", "/v1/keys/count")

    def lookup(self, phone_numbers: list[str]) -> Request:
        return Request("POST", "/v1/directory/lookup", {"phone_numbers": phone_numbers})

    def looked_up(self, body: dict[str, Any]) -> dict[str, str]:
        found = {c["phone_number"]: c["account_id"] for c in body["registered"]}
        for phone, account in found.items():
            self.store.save_peer(account, self.store.peer_generation(account) or 0, phone)
        return found

    def sender_numbers(self) -> Request | None:
        """Contact discovery for the numbers senders said were theirs (``None``: none to check). The directory's
        answer names an account, so a sender who claims someone else's number is not named by it."""
        claimed = self.store.phone_claims(MAX_CLAIMS_CHECKED)
        return self.lookup(claimed) if claimed else None

    def sender_numbers_found(self, request: Request, body: dict[str, Any]) -> None:
        assert request.json is not None
        with self.store.transaction():
            self.looked_up(body)
            self.store.drop_phone_claims(request.json["phone_numbers"])

    # composing ---------------------------------------------------------------------------------------
    def compose_text(self, recipient: str, text: str) -> Outgoing:
        cmid = uuid.uuid4().hex
        payload = {"v": PAYLOAD_VERSION, "type": "text", "id": cmid, "text": text, "ts": now_ms()}
        if self.phone_number:  # as a phone shows the sender's number; the recipient checks it (sender_numbers)
            payload["from"] = self.phone_number
        return Outgoing(recipient, cmid, json.dumps(payload).encode(), text)

    def compose_attachment(self, recipient: str, pointer: Pointer, text: str | None = None) -> Outgoing:
        cmid = uuid.uuid4().hex
        body = attachments.payload(cmid, pointer, text, now_ms())
        shown = attachments.history_text(pointer.name, pointer.size, text)
        return Outgoing(recipient, cmid, json.dumps(body).encode(), shown)

    def compose_business(
        self, recipient: str, client_message_id: str, plaintext: bytes, header: dict[str, Any], text: str | None = None
    ) -> Outgoing:
        """A business's message: the payload is already built (text, interactive or a sealed template) and the
        header says what the relay may see of it."""
        return Outgoing(recipient, client_message_id, plaintext, text, header)

    def compose_choice(self, message: PayloadReceived, choice_id: str) -> Outgoing:
        """Tap one of the choices (a reply button or a list row) of a business's interactive message. Raises
        ``ValueError`` if the message is not interactive or does not offer ``choice_id``."""
        offered = parse_business_plaintext(json.dumps(message.payload).encode())
        if not isinstance(offered, BusinessInteractive):
            raise ValueError("only an interactive message offers choices")
        cmid = uuid.uuid4().hex
        return Outgoing(message.sender, cmid, compose_interactive_reply(offered, choice_id, cmid, now_ms()))

    def compose_quick_reply(self, message: TemplateReceived, rendered: RenderedMessage, button_text: str) -> Outgoing:
        """Tap the quick reply ``button_text`` of a business's template message, as ``CoveClient.render_template``
        rendered and verified it; raises ``ValueError`` for a button the message does not have."""
        cmid = uuid.uuid4().hex
        plaintext = compose_button_reply(rendered, message.client_message_id, button_text, cmid, now_ms())
        return Outgoing(message.sender, cmid, plaintext)

    def compose_read_receipt(self, recipient: str, client_message_ids: list[str]) -> Outgoing:
        payload = {"v": PAYLOAD_VERSION, "type": "read", "ids": client_message_ids}
        return Outgoing(recipient, uuid.uuid4().hex, json.dumps(payload).encode(), receipt=True)

    # the send state machine --------------------------------------------------------------------------
    def identity_request(self, account_id: str) -> Request:
        return Request("GET", paths.build(paths.KEYS_IDENTITY, account_id=account_id))

    def identity_received(self, body: dict[str, Any]) -> list[Event]:
        """Record an account's devices; a higher identity generation means a new phone: drop old sessions. A verified
        contact whose primary key changed is flagged (:class:`VerifiedKeyChanged`, in the outbox)."""
        account = body["account_id"]
        events: list[Event] = []
        known = self.store.peer_generation(account)
        generation = body["identity_generation"]
        with self.store.transaction():
            if known and generation > known:
                self.store.drop_sessions(account)
                events.append(IdentityChanged(account, generation))
            current = {d["device_id"] for d in body["devices"]}
            gone = [d for d in self.store.peer_devices(account) if d not in current]
            if gone:
                self.store.drop_sessions(account, gone)
            for d in body["devices"]:
                stored = self.store.peer_devices(account).get(d["device_id"])
                if stored and (
                    stored.curve25519 != d["identity_curve25519"] or stored.registration_id != d["registration_id"]
                ):
                    self.store.drop_sessions(account, [d["device_id"]])
                self.store.save_peer_device(
                    PeerDevice(
                        account,
                        d["device_id"],
                        d["registration_id"],
                        d["identity_curve25519"],
                        d["identity_ed25519"],
                    )
                )
            self.store.save_peer(account, generation)
            if verification.key_changed(
                self.store.verification(account), generation, verification.primary_key(body["devices"])
            ):
                # Into the outbox, whichever request learnt it: the app shows it once, through inbox or events.
                self.store.verified_key_changed(account)
                self.store.add_pending_event(outbox.dump(VerifiedKeyChanged(account)))
            # Security notices about the account's devices wait in the outbox like an envelope's events.
            for notice in trust.accept(self.store, account, generation, body.get("device_list")):
                self.store.add_pending_event(outbox.dump(notice))
        return events

    def devices_without_session(self, recipient: str) -> list[int] | None:
        """``None`` when the recipient's devices are unknown (fetch identity first), else those lacking a session."""
        devices = self.trusted_devices(recipient)
        if not devices:
            return None
        mine = self.device_id if recipient == self.account_id else None
        return [d for d in devices if d != mine and not self.store.sessions(recipient, d)]

    def bundles_request(self, recipient: str, device_ids: list[int]) -> Request:
        return Request("GET", paths.build(paths.KEY_BUNDLES, account_id=recipient), params={"device_id": device_ids})

    def bundles_received(self, body: dict[str, Any]) -> list[Event]:
        """Open an outbound session with every device whose one-time key verifies."""
        olm = self.require_olm()
        events = self.identity_received(
            {
                "account_id": body["account_id"],
                "identity_generation": body["identity_generation"],
                "devices": self._known_plus(body),
                "device_list": body.get("device_list"),
            }
        )
        trusted = self.trusted_devices(body["account_id"])
        for d in body["devices"]:
            if d["device_id"] not in trusted:
                continue
            key = d.get("one_time_key")
            kind = signing.FALLBACK if d.get("is_fallback") else signing.ONE_TIME
            if not key or not crypto.verify_key_signature(
                d["identity_ed25519"], kind, key["public_key"], key["signature"]
            ):
                continue
            session = olm.outbound_session(d["identity_curve25519"], key["public_key"])
            self.store.save_session(body["account_id"], d["device_id"], session.session_id, session.pickle(self._key))
        return events

    def _known_plus(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """Bundles may cover only some devices; keep the others we know as they are."""
        merged = {
            d.device_id: {
                "device_id": d.device_id,
                "registration_id": d.registration_id,
                "identity_curve25519": d.curve25519,
                "identity_ed25519": d.ed25519,
            }
            for d in self.store.peer_devices(body["account_id"]).values()
        }
        for d in body["devices"]:
            merged[d["device_id"]] = {
                k: d[k] for k in ("device_id", "registration_id", "identity_curve25519", "identity_ed25519")
            }
        return list(merged.values())

    def encrypt(self, outgoing: Outgoing) -> Request:
        """One ciphertext per device we hold a session with; ratchet state is saved before it leaves."""
        self.require_olm()
        messages = []
        devices = self.trusted_devices(outgoing.recipient)
        mine = {self.device_id} if outgoing.recipient == self.account_id else set()
        untrusted = sorted(self._insisted.pop(outgoing.recipient, set()) - set(devices) - mine)
        if untrusted:
            raise UntrustedDevices(outgoing.recipient, untrusted)
        with self.store.transaction():
            for device_id, device in sorted(devices.items()):
                if outgoing.recipient == self.account_id and device_id == self.device_id:
                    continue
                sessions = self.store.sessions(outgoing.recipient, device_id)
                if not sessions:
                    continue
                session_id, pickled = sessions[0]
                session = vz.Session.from_pickle(pickled, self._key)
                sealed = crypto.encrypt(session, outgoing.payload)
                self.store.save_session(outgoing.recipient, device_id, session_id, session.pickle(self._key))
                messages.append(
                    {
                        "device_id": device_id,
                        "registration_id": device.registration_id,
                        "kind": sealed.kind,
                        "body": crypto.b64(sealed.body),
                    }
                )
        body: dict[str, Any] = {"client_message_id": outgoing.client_message_id, "messages": messages}
        if outgoing.business is not None:
            body["business"] = outgoing.business
        if outgoing.receipt:
            body["receipt"] = True
        if outgoing.forward is not None:
            body["forward"] = outgoing.forward
        return Request("PUT", paths.build(paths.MESSAGES, account_id=outgoing.recipient), body)

    def sent(self, outgoing: Outgoing) -> None:
        if outgoing.text is not None:  # what the user wrote: the recipient is a contact now
            with self.store.transaction():
                self.store.add_message(
                    outgoing.recipient, "out", outgoing.client_message_id, outgoing.text, now_ms(), "sent"
                )
                self.store.count_usage(today(), sent=1)
                count = outgoing.forward["count"] if outgoing.forward else 0
                forwards.keep_sent(self.store, outgoing.recipient, outgoing.client_message_id, outgoing.payload, count)
                if outgoing.recipient != self.account_id:
                    self.contacts.add(outgoing.recipient, WROTE)

    def send_refused(self, recipient: str, status: int, error: dict[str, Any]) -> None:
        """Digest a 409/410 so that the next attempt addresses the right devices with fresh sessions."""
        self._insisted[recipient] = {d for d in error.get("missing_devices", []) if isinstance(d, int)}
        with self.store.transaction():
            if status == 409:
                self.store.drop_sessions(recipient, list(error.get("extra_devices", [])))
            elif status == 410:
                self.store.drop_sessions(recipient, list(error.get("stale_devices", [])))
            # Re-read the device list before the next attempt; it lists any missing devices.
            self.store.forget_devices(recipient)

    # this device and account -------------------------------------------------------------------------
    def device_update(self, info: dict[str, Any]) -> Request:
        """Report this device's model, OS and app version (after an app or OS update)."""
        self.device_info = dict(info)
        return Request("PUT", "/v1/devices/current", self.device_info)

    def account_deletion(self) -> Request:
        return Request("DELETE", "/v1/accounts/me")

    def account_deleted(self) -> None:
        """The relay deleted the account: forget everything this device held (keys, sessions, history)."""
        self.store.wipe()
        self._olm = None

    # receiving (cove.client.receiving) ---------------------------------------------------------------
    def receive(self, frame: dict[str, Any], identity_refreshed: bool = False) -> Received:
        """Apply one relay frame; see :meth:`Inbound.receive`. A message's forward count and a file's pointer are
        kept in the same transaction (:mod:`cove.client.forwards`)."""
        if frame.get("type") != "envelope":
            return self.inbound.receive(frame, identity_refreshed)
        with self.store.transaction():
            received = self.inbound.receive(frame, identity_refreshed)
            forwards.keep_received(self.store, frame, received.events)
        return received

    # handing events to the app -----------------------------------------------------------------------
    def pending_events(self, limit: int = 100) -> list[PendingEvent]:
        """The oldest events the app has not taken yet, in the order their envelopes were applied."""
        return [PendingEvent(seq, outbox.load(text)) for seq, text in self.store.pending_events(limit)]

    def event_taken(self, seq: int) -> None:
        """The app has this event and every earlier one. An app with its own tables in the store's file can
        call this inside :meth:`ClientStore.transaction` with its own writes, and so take each event exactly
        once even if it crashes."""
        self.store.events_taken(seq)

    def take_events(self) -> list[Event]:
        """Every pending event, now counted as taken: call it in the transaction that records what the app does
        with them, or where losing them to a crash before they are shown is acceptable."""
        taken: list[Event] = []
        with self.store.transaction():
            while pending := self.pending_events():
                taken += [p.event for p in pending]
                self.event_taken(pending[-1].seq)
        return taken
