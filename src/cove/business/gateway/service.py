"""The gateway's work: Cloud API sends become end-to-end encrypted Cove messages; what comes back (users'
messages, receipts, the relay's business events) becomes webhooks.

It is a Cove client (:class:`cove.client.transport.CoveClient`) holding the business's device keys, so the
relay sees of a business chat only what any Cove chat shows plus the visible business header (VISION.md).

Sends. The send is checked (:func:`cloud.parse_send`), sealed (a template's values with
:func:`split_template_message`, checked against the signed approved text as the user's client will) and sent
to the relay within the request, so a 200 means the relay holds it durably; its Cloud API id is its Cove
client message id, which the user's receipts name. The relay's refusals follow the Cloud API: a throttle the
business should retry in seconds (130429, 131056) is answered at once with 429 and ``Retry-After``, and nothing
is recorded; any other refusal is accepted and reported as a ``failed`` status webhook, as Meta does.

Receiving. Each envelope's effects (ratchet, statuses, the webhooks it causes) commit in one SQLite
transaction before it is acked (:mod:`.store`), and webhook ids derive from the facts (:mod:`.events`), so a
crash means a redelivery that changes nothing twice. Statuses only move forward (:mod:`.statuses`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from cove.business.errors import CloudApiError
from cove.business.gateway import cloud, events, feed, inbound, template_replies
from cove.business.gateway.cloud import (
    MarkRead,
    MediaSend,
    Send,
    SendInteractive,
    SendReaction,
    SendTemplate,
    SendText,
)
from cove.business.gateway.delivery import WebhookDeliverer
from cove.business.gateway.events import Event, Pricing
from cove.business.gateway.graph import GraphError, Identity, now_ms
from cove.business.gateway.identity import Contact
from cove.business.gateway.media import MediaService
from cove.business.gateway.media_store import PendingFile
from cove.business.gateway.offered import Offered
from cove.business.gateway.outbox import Outbox
from cove.business.gateway.refusals import cloud_refusal
from cove.business.gateway.sender import GatewayClient
from cove.business.gateway.statuses import Status, advance
from cove.business.gateway.store import GatewayStore, MessageRecord
from cove.business.gateway.users import Recipient, Users
from cove.client.core import PayloadReceived, Request
from cove.client.events import AttachmentReceived, Delivered, Held, MessageReceived, Read
from cove.client.transport import CoveClient, RelayError
from cove.protocol.business import Category
from cove.protocol.business_content import CONTENT_TYPES
from cove.protocol.business_messages import parse_interactive_reply
from cove.protocol.payload import PAYLOAD_VERSION
from cove.protocol.templates import ApprovedTemplate, ReviewStatus, TemplateError, split_template_message
from cove.protocol.templates.quick_reply import BUTTON_REPLY_TYPE as BUTTON_REPLY

log = logging.getLogger("cove.gateway")

IDENTITY_EVENTS = frozenset({"user_identity", "user_id_changed"})  # _identity_event's
THROTTLES = frozenset({130429, 131056})  # retry the same request in seconds: answered synchronously
EVENTS_POLL_S = 1.0
WEBHOOKS_KEPT_MS = 7 * 86_400_000
MESSAGES_KEPT_MS = 30 * 86_400_000  # the relay's envelope retention: no status comes for an older message
PRUNE_EVERY_S = 3600.0
RECONNECT_S = 1.0


class Gateway:
    def __init__(
        self,
        client: CoveClient,
        store: GatewayStore,
        outbox: Outbox,
        deliverer: WebhookDeliverer | None,
        identity: Identity,
        clock: Callable[[], int] = now_ms,
        media: MediaService | None = None,
    ) -> None:
        self.client = client
        self.core = client.core
        self.store = store
        self.outbox = outbox
        self.deliverer = deliverer
        self.identity = identity
        self.clock = clock
        self.users = Users(client, store)
        self._recipient_locks: dict[str, asyncio.Lock] = {}
        self._templates: dict[tuple[str, str], tuple[str, int]] = {}  # (name, language) -> (id, version)
        self._approved: dict[tuple[str, int], ApprovedTemplate] = {}
        self._disabled: set[tuple[str, str]] = set()
        self.offered = Offered(store.db)  # the choices of sent interactive messages, to check replies against
        self.media = media  # None: media sends are refused (131051) and users' files not fetched
        if media is not None:
            media.on_received = self._media_received

    # webhooks ----------------------------------------------------------------------------------------------------
    def _enqueue(self, event: Event, ordering_key: str | None = None) -> None:
        body = json.dumps(event.body, separators=(",", ":")).encode()
        self.outbox.add(event.event_id, body, self.clock(), ordering_key)

    def _notify(self) -> None:
        if self.deliverer is not None:
            self.deliverer.notify()

    def _status_event(self, record: MessageRecord, status: Status, at_ms: int, error: CloudApiError | None) -> Event:
        category = Category(record.category) if record.category else None
        # Cove charges nobody; "billable" says what Meta would charge (templates, not service messages), so a
        # business's cost reports keep adding up.
        pricing = Pricing(category, category is not None) if status is not Status.FAILED else None
        i = self.identity
        return events.status(
            i.waba_id,
            i.phone_number_id,
            i.display_phone_number,
            record.message_id,
            status,
            at_ms // 1000,
            record.wa_id,
            errors=[error] if error is not None else None,
            biz_opaque_callback_data=record.callback,
            pricing=pricing,
            contact=self._recipient_contact(record, status is Status.FAILED),
        )

    def _move(self, message_id: str, status: Status, at_ms: int, error: CloudApiError | None = None) -> None:
        """Record a status if it moves the message forward, and queue its webhook (inside a transaction)."""
        record = self.store.message(message_id)
        if record is None or record.direction != "out":
            return
        if status in (Status.DELIVERED, Status.READ) and self.offered.is_reaction(message_id):
            return  # as with Meta, a reaction reports only sent (or failed)
        if record.status == Status.ACCEPTED and status in (Status.DELIVERED, Status.READ):
            # The user's receipt came before the relay's answer to the send: it was sent, so say so first.
            self._move(message_id, Status.SENT, at_ms)
            record = self.store.message(message_id) or record
        moved = advance(Status(record.status), status)
        if moved is None:
            return
        self.store.set_status(message_id, moved, at_ms)
        self._enqueue(self._status_event(record, moved, at_ms, error), ordering_key=message_id)

    # recipients (:class:`.users.Users`) -------------------------------------------------------------------------
    def contact(self, account_id: str) -> Contact:
        return self.users.contact(account_id)

    def _recipient_contact(self, record: MessageRecord, failed: bool) -> Contact:
        return self.users.recipient_contact(record, failed)

    async def _recipient(self, to: str) -> Recipient:
        return await self.users.recipient(to)

    async def wa_id_of(self, account_id: str) -> str | None:
        return await self.users.wa_id_of(account_id)

    # templates ---------------------------------------------------------------------------------------------------
    async def _approved_template(self, name: str, language: str) -> ApprovedTemplate:
        """The approved template by name and language, verified with the server's key (cached per version)."""
        found = self._templates.get((name, language))
        if found is None:
            await self.refresh_templates()
            found = self._templates.get((name, language))
        if found is None and (name, language) in self._disabled:
            raise GraphError(CloudApiError(132016))
        if found is None:
            raise GraphError(CloudApiError(132001, f"No approved template {name!r} in {language!r}."))
        if found not in self._approved:
            try:
                self._approved[found] = await self.client.approved_template(found[0])
            except RelayError as exc:
                if exc.status != 404:
                    raise
                self._templates.pop((name, language), None)
                raise GraphError(CloudApiError(132001, f"Template {name!r} in {language!r} is not approved.")) from exc
        return self._approved[found]

    def forget_templates(self) -> None:
        """A template changed through this gateway: read the registry again before the next send."""
        self._templates.clear()

    async def refresh_templates(self) -> list[dict[str, Any]]:
        listed = await self.client.call(Request("GET", "/v1/business/templates"))
        self._templates = {
            (t["name"], t["language"]): (t["template_id"], t["version"])
            for t in listed
            if t["status"] in (ReviewStatus.APPROVED, ReviewStatus.PAUSED) and t["version"] >= 1
        }
        self._disabled = {(t["name"], t["language"]) for t in listed if t["status"] == ReviewStatus.DISABLED}
        return listed

    # sending -----------------------------------------------------------------------------------------------------
    async def send(self, body: dict[str, Any], message_id: str | None = None) -> dict[str, Any]:
        """Answer one ``POST /messages``; raises :class:`GraphError` for a synchronous refusal. A retry under
        the same idempotency key passes the ``message_id`` chosen the first time: the relay, which knows it as
        the client message id, then stores the message once however often it is sent."""
        try:
            parsed = cloud.parse_send(body)
        except CloudApiError as exc:
            raise GraphError(exc) from exc
        if isinstance(parsed, MarkRead):
            await self._mark_read(parsed)
            return cloud.read_ok()
        return await self._send(parsed, message_id or cloud.new_message_id())

    async def _send(self, send: Send, message_id: str) -> dict[str, Any]:
        if isinstance(send, MediaSend):
            if self.media is None:
                raise GraphError(CloudApiError(131051, f"type: {send.type!r}: this gateway keeps no media."))
            try:
                self.media.check(send)
            except CloudApiError as exc:
                raise GraphError(exc) from exc
        recipient = await self._recipient(send.user)
        now = self.clock()
        target = None
        if isinstance(send, SendReaction):
            try:
                target = inbound.reacted_to_by_business(self.store, recipient.account_id, send.reaction.message_id)
            except CloudApiError as exc:
                raise GraphError(exc) from exc
        header, plaintext, category = await self._seal(send, message_id, now, target)
        callback = send.biz_opaque_callback_data
        # The user as the business named them (a number or an id): the statuses answer in the same terms.
        record = MessageRecord(
            message_id, "out", recipient.account_id or "", send.user, message_id, "accepted", category, callback
        )
        answer = cloud.accepted(send.user, self._recipient_contact(record, False).ids(), message_id)
        if recipient.account_id is None:
            # The catalogue's words, as for a block: a business cannot tell a missing account from a block.
            self._record_failure(record, CloudApiError(131026))
            return answer
        text = send.text.body if isinstance(send, SendText) else None
        if isinstance(send, MediaSend) and self.media is not None:
            try:  # the file is encrypted and uploaded for this user's devices
                plaintext, text = await self.media.attachment(send, recipient.account_id, message_id, now)
            except CloudApiError as exc:  # a link that could not be fetched: a failed status, as Meta reports it
                if exc.code in THROTTLES:
                    raise GraphError(exc) from exc  # nothing was sent: the business retries after Retry-After
                self._record_failure(record, exc)
                return answer
        outgoing = self.core.compose_business(recipient.account_id, message_id, plaintext, header, text)
        # Recorded before it leaves: the user's delivery receipt can come back before the relay's answer does.
        self.store.add_message(record, now)
        if isinstance(send, SendInteractive):
            self.offered.record(message_id, recipient.account_id, send.interactive, now)
        elif isinstance(send, SendReaction):
            self.offered.record_reaction(message_id, now)
        lock = self._recipient_locks.setdefault(recipient.account_id, asyncio.Lock())
        try:
            async with lock:  # one session set-up per user, and ratchet steps in order
                answered = await self.client.send(outgoing)
        except RelayError as exc:
            refusal = cloud_refusal(exc)
            if refusal.code in THROTTLES:
                self.store.forget_message(message_id)  # nothing was accepted: the business sends it again
                self.offered.forget(message_id)
                raise GraphError(refusal) from exc
            self._record_failure(record, refusal)
            return answer
        if any(isinstance(e, Held) for e in answered):
            # Template pacing: not sent yet; the relay's "held" event says later whether it went (sent) or not.
            answer["messages"][0]["message_status"] = cloud.HELD_FOR_QUALITY_ASSESSMENT
            return answer
        with self.store.client_store.transaction():
            self._move(message_id, Status.SENT, self.clock())
        self._notify()
        return answer

    def _record_failure(self, record: MessageRecord, error: CloudApiError) -> None:
        with self.store.client_store.transaction():
            self.store.add_message(record, self.clock())  # a no-op if it was recorded before the send
            self._move(record.message_id, Status.FAILED, self.clock(), error)
        self._notify()

    async def _seal(
        self, send: Send, message_id: str, now: int, reacted_to: str | None = None
    ) -> tuple[dict[str, Any], bytes, str | None]:
        """The visible header, the plaintext to encrypt, and the category (None for a service message). The relay
        sees every free-form type as ``text``: the kind of content stays inside the ciphertext."""
        if isinstance(send, MediaSend):  # free-form; its plaintext is made once the recipient is known
            return {"kind": "text"}, b"", None
        if isinstance(send, cloud.Free):
            return {"kind": "text"}, cloud.business_plaintext(send, message_id, now, reacted_to), None
        if isinstance(send, MediaSend):  # a free-form message; its plaintext is made once the recipient is known
            return {"kind": "text"}, b"", None
        assert isinstance(send, SendTemplate)
        approved = await self._approved_template(send.template.name, send.template.language.code)
        try:
            parts = split_template_message(approved, cloud.template_parameters(send))
        except TemplateError as exc:
            raise GraphError(CloudApiError(132000, str(exc))) from exc
        header = {
            "kind": "template",
            "template_id": parts.header.template_id,
            "template_version": parts.header.version,
            "language": parts.header.language,
            "category": parts.header.category.value.upper(),
        }
        payload = {
            "v": PAYLOAD_VERSION,
            "type": "template",
            "id": message_id,
            "ts": now,
            "sealed": parts.plaintext.decode(),
        }
        return header, json.dumps(payload).encode(), parts.header.category.value

    async def _mark_read(self, read: MarkRead) -> None:
        """Send the user an end-to-end read receipt for their message (and so for the earlier ones)."""
        record = self.store.message(read.message_id)
        if record is None or record.direction != "in":
            raise GraphError(CloudApiError(100, f"No message from a user has the id {read.message_id!r}."))
        unread = self.store.unread_until(record)  # as in the Cloud API, earlier messages are read too
        if not unread:
            return
        receipt = self.core.compose_read_receipt(record.account_id, [m.client_message_id for m in unread])
        async with self._recipient_locks.setdefault(record.account_id, asyncio.Lock()):
            await self.client.send(receipt)
        with self.store.client_store.transaction():
            for message in unread:
                self.store.set_status(message.message_id, Status.READ, self.clock())

    # receiving ---------------------------------------------------------------------------------------------------
    async def listen(self) -> None:
        """Receive from the relay for ever, reconnecting after a drop."""
        while True:
            try:
                await self._listen_once()
            except (OSError, httpx.TransportError, WebSocketException, RelayError) as exc:
                log.warning("relay connection lost (%s); reconnecting", exc)
            await asyncio.sleep(RECONNECT_S)

    async def _listen_once(self) -> None:
        url = self.client.base_url.replace("http", "ws", 1) + "/v1/websocket"
        headers = {"Authorization": f"Bearer {self.core.token}"}
        # Message sends share this socket (the relay allows one per device): answers are picked out here.
        sender = self.client.sender if isinstance(self.client, GatewayClient) else None
        async with connect(url, additional_headers=headers, compression=None, max_size=2**20) as ws:
            if sender is not None:
                sender.attach(ws)
            try:
                async for raw in ws:
                    frame = json.loads(raw)
                    frames = frame["frames"] if frame.get("type") == "batch" else [frame]
                    acks: list[int] = []
                    for one in frames:
                        if sender is None or not sender.answer(one):
                            acks += await self._receive(one)
                    if acks:
                        await ws.send(json.dumps({"type": "ack", "ids": acks}))
                    self._notify()
            finally:
                if sender is not None:
                    sender.detach()

    async def _receive(self, frame: dict[str, Any]) -> list[int]:
        """Apply one frame and queue its webhooks in one transaction; returns the queue ids to ack."""
        sender = frame.get("sender")
        wa_id = await self.wa_id_of(sender) if frame.get("type") == "envelope" and sender else None
        refreshed = False
        while True:
            with self.store.client_store.transaction():
                received = self.core.receive(frame, identity_refreshed=refreshed)
                if received.need_identity is None:
                    for event in self.core.take_events():  # this frame's: taken in the transaction that stored them
                        self._apply(event, wa_id, frame)
                    return received.ack_ids
            try:
                identity = await self.client.call(self.core.identity_request(received.need_identity))
                self.core.identity_received(identity)
            except RelayError as exc:
                if exc.status != 404:  # 404: the sender deleted their account; the message is undecryptable
                    raise
            refreshed = True

    def _apply(self, event: Any, wa_id: str | None, frame: dict[str, Any]) -> None:
        at = int(frame.get("server_ts") or self.clock())
        if isinstance(event, Delivered):
            self._move(event.client_message_id, Status.DELIVERED, at)
        elif isinstance(event, Read):
            for message_id in event.client_message_ids:
                self._move(message_id, Status.READ, at)
        elif isinstance(event, MessageReceived) and wa_id is not None:
            self._inbound(event.sender, wa_id, event.client_message_id, event.text, None, at)
        elif (
            isinstance(event, PayloadReceived)
            and wa_id is not None
            and event.payload.get("type") == "interactive_reply"
        ):
            try:
                reply = parse_interactive_reply(json.dumps(event.payload).encode())
            except ValueError:
                log.warning("dropped a malformed interactive reply from %s", wa_id)
                return
            why = self.offered.verdict(event.sender, reply.context_id, reply.reply)
            if why is not None:  # not posted: a business acts on the id (gateway/offered.py says why)
                log.warning("dropped an interactive reply from %s: %s", wa_id, why)
                return
            self._inbound(event.sender, wa_id, event.client_message_id, reply.reply, reply.context_id, at)
        elif isinstance(event, PayloadReceived) and wa_id is not None and event.payload.get("type") in CONTENT_TYPES:
            self._content(event, wa_id, at)
        elif isinstance(event, AttachmentReceived) and wa_id is not None and self.media is not None:
            self.media.hold(event, wa_id, at)  # fetched outside the transaction; the webhook follows (media.run)
        elif isinstance(event, PayloadReceived) and wa_id is not None and event.payload.get("type") == BUTTON_REPLY:
            tap = template_replies.button_message(self.store, event.sender, event.payload)
            if tap is not None:
                self._inbound(event.sender, wa_id, event.client_message_id, tap[0], tap[1], at)

    def _content(self, event: PayloadReceived, wa_id: str, at: int) -> None:
        """A user's reaction, location or contacts as a webhook (:mod:`.inbound` says what is dropped and why)."""
        built = inbound.content(self.store, event.sender, event.payload)
        if isinstance(built, str):
            log.warning("dropped a %s message from %s: %s", event.payload.get("type"), wa_id, built)
            return
        self._inbound(event.sender, wa_id, event.client_message_id, built.part, built.context_id, at)

    def _media_received(self, pending: PendingFile, content: dict[str, Any]) -> None:
        """A user's file is stored (or given up): its message webhook, and the pointer forgotten, at once."""
        with self.store.client_store.transaction():
            self._inbound(pending.account_id, pending.wa_id, pending.client_message_id, content, None,
                          pending.received_at_ms)  # fmt: skip
            assert self.media is not None
            self.media.store.done(pending)
        self._notify()

    def _inbound(self, account_id: str, wa_id: str, cmid: str, content: Any, context_id: str | None, at: int) -> None:
        message_id = inbound.inbound_id(self.identity.account_id, account_id, cmid)
        record = MessageRecord(message_id, "in", account_id, wa_id, cmid, "received", None, None)
        if not self.store.add_message(record, at):
            return
        i = self.identity
        event = events.inbound_message(
            i.waba_id,
            i.phone_number_id,
            i.display_phone_number,
            wa_id,
            wa_id,
            message_id,
            at // 1000,
            content,
            context_id,
            contact=self.contact(account_id),
        )
        self._enqueue(event)

    # the relay's business events ---------------------------------------------------------------------------------
    async def poll_events(self) -> int:
        """Turn the relay's new business events into webhooks; the cursor moves in the same transaction."""
        cursor = int(self.store.client_store.get("gateway_events_cursor") or 0)
        fresh = await self.client.call(Request("GET", "/v1/business/events", params={"after": cursor, "limit": 500}))
        if not fresh:
            return 0
        wa_ids = {e["body"]["user_id"] for e in fresh if e["kind"] in ("user_preferences", "user_identity")}
        for wa_id in wa_ids:
            account = (await self._recipient(wa_id)).account_id
            if account is not None:  # an account deleted since has no pair; a "" would be a path segment
                self.store.pair(account, wa_id)
        with self.store.client_store.transaction():
            for item in fresh:
                webhook = self._business_event(item) or self._identity_event(item)
                if webhook is not None:
                    self._enqueue(webhook)
            self.store.client_store.set("gateway_events_cursor", str(fresh[-1]["seq"]))
        if any(item["kind"] == "template_status" for item in fresh):
            self._templates.clear()  # a new version or a pause: read the registry again on the next send
        self._notify()
        return len(fresh)

    def _business_event(self, item: dict[str, Any]) -> Event | None:
        kind, body = item["kind"], item["body"]
        if kind in feed.ACCOUNT_EVENTS:
            return feed.account_webhook(self.identity, item)
        if kind == "held":  # a send held for pacing went after all, or was dropped: its status, not a webhook here
            error = CloudApiError(body["code"]) if body["status"] == Status.FAILED else None
            self._move(body["message_id"], Status(body["status"]), item["at"], error)
            return None
        if kind == "user_preferences":
            i, at_s = self.identity, item["at"] // 1000
            account = self.store.account_of(body["user_id"])
            contact = self.contact(account) if account is not None else Contact(body["user_id"], None, None)
            return events.user_preferences(
                i.waba_id, i.phone_number_id, i.display_phone_number, body["user_id"], body["value"], at_s, contact
            )
        if kind not in IDENTITY_EVENTS:
            log.info("ignored a business event of kind %r", kind)
        return None

    def _identity_event(self, item: dict[str, Any]) -> Event | None:
        return self.users.identity_event(self.identity, item)

    async def poll_forever(self) -> None:
        while True:
            try:
                while await self.poll_events():
                    pass
            except (OSError, httpx.TransportError, RelayError) as exc:
                log.warning("could not read the relay's business events: %s", exc)
            await asyncio.sleep(EVENTS_POLL_S)

    def prune(self) -> None:
        """Keep delivered webhooks a week (for looking into a complaint) and messages as long as the relay keeps
        envelopes; nothing the users wrote stays in the gateway longer than that."""
        now = self.clock()
        self.outbox.prune(now - WEBHOOKS_KEPT_MS)
        self.store.prune(now - MESSAGES_KEPT_MS, now)
        self.offered.prune(now - MESSAGES_KEPT_MS)
        if self.media is not None:
            self.media.store.prune(now)

    async def prune_forever(self) -> None:
        while True:
            self.prune()
            await asyncio.sleep(PRUNE_EVERY_S)

    async def run(self) -> None:
        """Everything but the HTTP server: receiving, the event feed, webhook delivery, pruning."""
        tasks = [
            asyncio.create_task(self.listen()),
            asyncio.create_task(self.poll_forever()),
            asyncio.create_task(self.prune_forever()),
        ]
        if self.deliverer is not None:
            tasks.append(asyncio.create_task(self.deliverer.run()))
        if self.media is not None:
            tasks.append(asyncio.create_task(self.media.run()))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
