"""The thin async transport: runs the core's requests over httpx and its stream over websockets."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, aclosing, nullcontext
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from websockets.asyncio.client import ClientConnection, connect

from cove.client import attachments, business_replies, linking, paths, privacy, safety_status, sync_flow
from cove.client.allowlist import RouteAllowlist
from cove.client.core import ClientCore, Event, Outgoing, PayloadReceived, Request
from cove.client.errors import RelayError
from cove.client.events import AttachmentReceived, Held, QueueEmpty, SentElsewhere, TemplateReceived, is_stored
from cove.client.transfers import Transfers
from cove.protocol import challenge as work
from cove.protocol.attachments import Pointer
from cove.protocol.templates import (
    ApprovedTemplate,
    RenderedMessage,
    TemplateHeader,
    read_template_message,
    verify_approved,
)

MAX_SEND_ATTEMPTS = 4
# An error frame has no HTTP status; these codes mean what they mean over HTTP (the relay closes with 4401).
FRAME_ERROR_STATUS = {"unauthenticated": 401}


def solve_challenge(found: dict[str, Any], progress: Callable[[int, int], None] | None = None) -> dict[str, str]:
    """The ``{seed, nonce}`` answering a relay's proof-of-work challenge; RelayError if it is not one we know."""
    seed, bits = found.get("seed"), found.get("bits")
    if found.get("algorithm") != work.ALGORITHM or not isinstance(seed, str) or not isinstance(bits, int):
        raise RelayError(
            428, {"error": {"code": "unknown_challenge", "message": f"cannot solve the challenge {found}"}}
        )
    if not 0 < bits <= work.MAX_BITS:
        message = f"the relay asks for {bits} bits of work, beyond the {work.MAX_BITS} a phone can do"
        raise RelayError(428, {"error": {"code": "unknown_challenge", "message": message}})
    expected = 1 << bits
    if progress is None:
        return {"seed": seed, "nonce": work.solve(seed, bits)}
    progress(0, expected)
    nonce = work.solve(seed, bits, lambda tried: progress(tried, expected))
    progress(expected, expected)
    return {"seed": seed, "nonce": nonce}


class CoveClient:
    def __init__(
        self,
        base_url: str,
        core: ClientCore,
        timeout: float = 30.0,
        allowed: RouteAllowlist | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``allowed``: the only relay routes this client may reach (every request is checked before it leaves);
        ``transport``: httpx's, to put a proxy or a fault in the way."""
        self.core = core
        self.base_url = base_url.rstrip("/")
        # Idle connections are dropped before uvicorn's 5 s keep-alive ends, so a request never races the
        # relay hanging up ("Server disconnected").
        # At most 32 connections, all kept alive: httpcore walks its whole pool at every request's start and end,
        # and above 20 idle ones it closes and reopens them (the business gateway sends many at once).
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32, keepalive_expiry=2.0)
        hooks = {"request": [allowed]} if allowed is not None else {}
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, limits=limits, event_hooks=hooks, transport=transport
        )
        self._transfers = Transfers(self._http, lambda: self.core.token)
        self._opened = False
        self._template_key: Ed25519PublicKey | None = None
        # What to show while this device proves work for a challenged account (the CLI's spinner).
        self.on_challenge: Callable[[], AbstractContextManager[Any]] = nullcontext

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> CoveClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    def _session_started(self) -> None:
        """Count one app open per client session: the first time it talks to the relay as a registered device."""
        if not self._opened and self.core.token:
            self._opened = True
            self.core.usage.app_opened()

    async def call(self, request: Request) -> dict[str, Any]:
        """Send ``request``; when the relay asks this account to prove work first (428, a sending challenge),
        solve it, answer, and send once more."""
        try:
            return await self._call(request)
        except RelayError as exc:
            found = safety_status.sending_challenge(exc)
            if found is None:
                raise
        with self.on_challenge():
            answer = await asyncio.to_thread(safety_status.answer, found)
        await self._call(answer)
        return await self._call(request)

    async def _call(self, request: Request) -> dict[str, Any]:
        self._session_started()
        headers = {"Authorization": f"Bearer {self.core.token}"} if self.core.token else {}
        headers = request.headers or headers
        response = await self._http.request(
            request.method, request.path, json=request.json, params=request.params, headers=headers
        )
        body = response.json() if response.content else {}
        if response.status_code >= 400:
            raise RelayError(response.status_code, body)
        return body

    # accounts ----------------------------------------------------------------------------------------
    async def request_code(
        self, phone_number: str, progress: Callable[[int, int], None] | None = None
    ) -> dict[str, Any]:
        """Ask the relay to send a code. When its registration gate asks for a proof of work (428
        ``challenge_required``), solve it, off the event loop, and ask once more with the answer; nothing is
        stored. ``progress(hashes_tried, hashes_expected)`` is told along the way (a progress bar). A second
        refusal is raised as is (``RelayError``: ``challenge_failed``, or a challenge again)."""
        try:
            return await self.call(self.core.request_code(phone_number))
        except RelayError as exc:
            found = exc.details.get("challenge") if exc.code == "challenge_required" else None
            if not isinstance(found, dict):
                raise
            answer = await asyncio.to_thread(solve_challenge, found, progress)
        return await self.call(self.core.request_code(phone_number, answer))

    async def register(self, phone_number: str, code: str, pin: str | None = None) -> dict[str, Any]:
        """Verify the code, become the number's device, and publish one-time and fallback keys.

        While the number has a registration lock the relay also wants its ``pin``: without it, or with a wrong
        one, ``RelayError`` 423 (``registration_lock``, ``wrong_pin``) and the code stays valid for a retry."""
        body = await self.call(self.core.registration(phone_number, code, pin))
        self.core.registered(body)
        self.core.registered_phone(body.get("phone_number") or phone_number)
        await self.refill_keys(force_fallback=True)
        await linking.publish_first_list(self, body["identity_generation"])
        return body

    async def registration_lock(self) -> dict[str, Any]:
        """``{"enabled", "set_at", "lapses_after_days"}``: whether this number has a registration lock."""
        return await self.call(self.core.registration_lock())

    async def set_pin(self, pin: str) -> None:
        """Lock the number: registering it on another phone will need this PIN as well as the SMS code."""
        await self.call(self.core.pin_set(pin))

    async def remove_pin(self) -> None:
        await self.call(self.core.pin_removal())

    async def refill_keys(self, force_fallback: bool = False) -> int:
        count = await self.call(self.core.key_count())
        request = self.core.key_upload(count["one_time_keys"], count["has_fallback_key"] and not force_fallback)
        if request is None:
            return 0
        await self.call(request)
        self.core.keys_uploaded()
        return len(request.json["one_time_keys"]) if request.json else 0

    async def resolve(self, phone_number: str) -> str:
        """The account id of a registered number (contact discovery), else ``RelayError(unknown_number)``."""
        found = self.core.looked_up(await self.call(self.core.lookup([phone_number])))
        if not found:
            raise RelayError(404, {"error": {"code": "unknown_number", "message": f"{phone_number} is not on Cove"}})
        return next(iter(found.values()))

    async def name_senders(self) -> None:
        """Learn the numbers of those who wrote, as contact discovery confirms them (then ``history`` and the
        events' senders can be shown by number)."""
        request = self.core.sender_numbers()
        if request is not None:
            self.core.sender_numbers_found(request, await self.call(request))

    async def update_device(self, info: dict[str, Any]) -> None:
        """Tell the relay this device's model, OS and app version (after an update)."""
        await self.call(self.core.device_update(info))

    async def report_usage(self) -> int:
        """Send the usage counters of the days not reported yet (or counted since); returns how many days."""
        self._session_started()
        request = self.core.usage.report()
        if request is None:
            return 0
        await self.call(request)
        self.core.usage.reported(request)
        return len(request.json["days"]) if request.json else 0

    async def delete_account(self) -> list[dict[str, Any]]:
        """Delete the account on the relay, then everything this device holds about it (keys, history). Returns the
        erasure receipts, ``{"recipient", "event_id", "requested_at"}`` each: keep the ids to check later with
        :meth:`erasure_status`."""
        answer = await self.call(self.core.account_deletion())
        self.core.account_deleted()
        return list(answer.get("erasures", []))

    # safety -----------------------------------------------------------------------------------------
    async def safety_status(self) -> dict[str, Any]:
        return await self.call(safety_status.status_request())

    async def appeal(self, message: str) -> dict[str, Any]:
        """Appeal a step on this account (throttle, challenge, restrict) with its own token."""
        return await self.call(safety_status.own_appeal_request(message))

    async def request_appeal_code(self, phone_number: str) -> dict[str, Any]:
        """A code for a banned number, which cannot log in, to appeal with; it never registers."""
        return await self.call(safety_status.appeal_code_request(phone_number))

    async def appeal_banned(self, phone_number: str, code: str, message: str) -> dict[str, Any]:
        return await self.call(safety_status.appeal_request(phone_number, code, message))

    # sending -----------------------------------------------------------------------------------------
    async def send_text(self, recipient: str, text: str) -> str:
        outgoing = self.core.compose_text(recipient, text)
        await self.send(outgoing)
        return outgoing.client_message_id

    async def answer(self, message: PayloadReceived, choice_id: str) -> str:
        """Answer a business's interactive message with one of its buttons or list rows; the id of the reply."""
        outgoing = self.core.compose_choice(message, choice_id)
        await self.send(outgoing)
        return outgoing.client_message_id

    async def react(self, business: str, client_message_id: str, emoji: str) -> str:
        """React to a business's message with one emoji (``""`` takes it back); the id of the reaction."""
        return await self._send_composed(business_replies.compose_reaction(business, client_message_id, emoji))

    async def send_location(
        self,
        business: str,
        latitude: float,
        longitude: float,
        name: str | None = None,
        address: str | None = None,
        reply_to: str | None = None,
    ) -> str:
        """Share a location with a business (``reply_to``: the location request it answers)."""
        outgoing = business_replies.compose_location(business, latitude, longitude, name, address, reply_to)
        return await self._send_composed(outgoing)

    async def send_contacts(self, business: str, contacts: list[dict[str, Any]], reply_to: str | None = None) -> str:
        """Share contact cards with a business, in the Cloud API's contact shape."""
        return await self._send_composed(business_replies.compose_contacts(business, contacts, reply_to))

    async def _send_composed(self, outgoing: Outgoing) -> str:
        await self.send(outgoing)
        return outgoing.client_message_id

    async def mark_read(self, peer: str, client_message_ids: list[str]) -> None:
        """The user saw these messages: a read receipt to ``peer`` and read state to this account's other devices;
        messages already read (here or on another device) get no second receipt."""
        fresh = sync_flow.not_read_yet(self, peer, client_message_ids)
        if fresh:  # the receipt first: a failed one is sent again when the messages are shown again
            await self.send(self.core.compose_read_receipt(peer, fresh))
            await sync_flow.read_here(self, peer, fresh)

    async def send(self, outgoing: Outgoing) -> list[Event]:
        """Establish sessions as needed, encrypt per device and send, following 409/410 until accepted."""
        events: list[Event] = []
        for _ in range(MAX_SEND_ATTEMPTS):
            missing = self.core.devices_without_session(outgoing.recipient)
            if missing is None:
                events += self.core.identity_received(await self.call(self.core.identity_request(outgoing.recipient)))
                missing = self.core.devices_without_session(outgoing.recipient)
            if missing:
                events += self.core.bundles_received(
                    await self.call(self.core.bundles_request(outgoing.recipient, missing))
                )
            try:
                answer = await self.call(self.core.encrypt(outgoing))
            except RelayError as exc:
                if exc.status not in (409, 410):
                    raise
                self.core.send_refused(outgoing.recipient, exc.status, exc.details)
                continue
            self.core.sent(outgoing)
            await sync_flow.mirror(self, outgoing)  # so that every device of this person shows it
            if answer.get("held"):
                events.append(Held(outgoing.recipient, outgoing.client_message_id))
            return events
        raise RelayError(409, {"error": {"code": "devices_keep_changing", "message": "gave up after retries"}})

    # attachments -------------------------------------------------------------------------------------------
    async def upload_attachment(
        self, path: Path, recipients: int, name: str | None = None, mime: str | None = None
    ) -> dict[str, Any]:
        """Encrypt a file and upload it for ``recipients`` devices; the pointer to put in a payload's
        ``attachment`` (a group message carries it as a one-to-one message does), naming the file ``name`` with
        type ``mime`` if given (else the path's name and the type its extension suggests)."""
        return (await self._transfers.upload(path, recipients, name, mime)).to_json()

    async def download_attachment(self, pointer: dict[str, Any], destination: Path) -> Path:
        """Fetch, verify and decrypt to ``destination`` (or a free name beside it); ``AttachmentError`` if the
        download is not what the pointer names, leaving no file behind."""
        return await self._transfers.download(pointer, destination)

    async def add_attachment_recipients(self, pointer: Pointer, count: int) -> None:
        """Before a forward sends a file's pointer again: ``count`` more devices will fetch it (``RelayError`` 404
        once it expired, 403 if this device could not fetch it either)."""
        await self._transfers.add_recipients(pointer.id, count)

    async def fetching_devices(self, *accounts: str) -> int:
        """The devices of ``accounts`` but this one that a file sent now reaches, read afresh: one linked since
        they were last read and not counted would find the blob gone."""
        fetching = 0
        for account in dict.fromkeys(accounts):
            self.core.identity_received(await self.call(self.core.identity_request(account)))
            fetching += sum(1 for d in self.core.trusted_devices(account) if (account, d) != self._me)
        return fetching

    async def save_attachment(self, event: AttachmentReceived | SentElsewhere, folder: Path) -> Path:
        """Save a received file (or one another of this account's devices sent) into ``folder`` under the name its
        sender gave (made safe, never overwriting); ``InvalidPointer`` if the event names no file."""
        pointer = attachments.pointer_of(event)
        return await self.download_attachment(pointer.to_json(), folder / pointer.name)

    async def send_file(self, recipient: str, path: Path, text: str | None = None) -> str:
        """Send a file to every device of the recipient, with an optional caption, and its transcript to this
        account's other devices; the upload counts them all as fetchers. Returns the message id."""
        me = self.core.account_id
        assert me is not None
        pointer = await self._transfers.upload(path, max(1, await self.fetching_devices(recipient, me)))
        outgoing = self.core.compose_attachment(recipient, pointer, text)
        await self.send(outgoing)
        return outgoing.client_message_id

    @property
    def _me(self) -> tuple[str | None, int | None]:
        return self.core.account_id, self.core.device_id

    # business messages -----------------------------------------------------------------------------------
    async def approved_template(self, template_id: str, version: int | None = None) -> ApprovedTemplate:
        """An approved template as the server signed it, verified with the server's template key (fetched once
        per client); raises ``TemplateError`` if the signature does not verify."""
        if self._template_key is None:
            key = await self.call(Request("GET", "/v1/business/template-key"))
            self._template_key = Ed25519PublicKey.from_public_bytes(base64.b64decode(key["public_key"]))
        params = {"version": version} if version is not None else None
        signed = await self.call(
            Request("GET", paths.build(paths.APPROVED_TEMPLATE, template_id=template_id), params=params)
        )
        return verify_approved(self._template_key, base64.b64decode(signed["payload"]), signed["signature"])

    async def render_template(self, message: TemplateReceived) -> RenderedMessage:
        """What to show for a business's template message: the signed approved text with the values filled in,
        after checking that the visible header, the sealed copy and the sender agree (``TemplateError`` if not)."""
        header = TemplateHeader(
            template_id=message.header["template_id"],
            version=message.header["template_version"],
            language=message.header["language"],
            category=str(message.header["category"]).lower(),
        )
        approved = await self.approved_template(header.template_id, header.version)
        return read_template_message(header, message.sealed, approved, message.sender)

    async def tap(self, message: TemplateReceived, button_text: str) -> str:
        """Tap a quick reply of a business's template message. The message is rendered from the signed template
        first, so only a button the business offered can be tapped (``ValueError`` otherwise); the reply's id."""
        outgoing = self.core.compose_quick_reply(message, await self.render_template(message), button_text)
        await self.send(outgoing)
        return outgoing.client_message_id

    # privacy -----------------------------------------------------------------------------------------
    async def privacy(self) -> dict[str, Any]:
        """The policy in force, each purpose's state and why, deadlines, and what was shared."""
        return await self.call(self.core.privacy.view())

    async def export_my_data(self) -> dict[str, Any]:
        """Everything the relay holds about the account, and the consent receipts (``cove.export/1``)."""
        return await self.call(self.core.privacy.export())

    async def erasure_status(self, event_id: str) -> dict[str, Any]:
        """How an erasure the account's deletion handed back went: ``state`` requested, sent or acknowledged."""
        return await self.call(privacy.erasure_status(event_id))

    async def pending_notice(self) -> dict[str, Any] | None:
        return await self.call(self.core.privacy.notice()) or None

    async def notice_shown(self, notice: dict[str, Any], surface: str = "notice") -> None:
        await self.call(self.core.privacy.notice_shown(notice, surface))

    async def accept_terms(self, notice: dict[str, Any], age_bracket: str) -> None:
        await self.call(self.core.privacy.accept_terms(notice, age_bracket))

    async def choose(self, purpose_id: str, choice: str) -> None:
        await self.call(self.core.privacy.choose(purpose_id, choice))

    async def withdraw(self, purpose_id: str) -> None:
        await self.call(self.core.privacy.withdraw(purpose_id))

    async def object_to(self, purpose_id: str) -> None:
        await self.call(self.core.privacy.object_to(purpose_id))

    # receiving ---------------------------------------------------------------------------------------
    async def events(self, stop_when_empty: bool = False) -> AsyncIterator[Event]:
        """Yield events from the stream, each exactly once across disconnects and restarts.

        An envelope's effects and events are stored before its ack leaves, and its events are yielded from the
        store's outbox: those an earlier session stored but did not hand out come first. An event counts as
        taken when the app asks for the next one or stops iterating; a relay's redelivery of an envelope whose
        ack was lost is acked again without a second event."""
        self._session_started()
        async with aclosing(self._stream()) as stream:  # connects at the first anext: stored events come first
            live: list[Event] = []
            while True:
                while pending := self.core.pending_events():
                    for item in pending:
                        try:
                            yield item.event
                        finally:  # resumed (the app wants the next) or closed (the app stopped): it has this one
                            self.core.event_taken(item.seq)
                for event in live:
                    yield event
                    if isinstance(event, QueueEmpty):
                        await self.refill_keys()
                        await linking.reconcile(self)
                        if stop_when_empty:
                            return
                try:
                    live = await anext(stream)
                except StopAsyncIteration:
                    return

    async def _stream(self) -> AsyncIterator[list[Event]]:
        """One connection: each frame (or batch) is applied and acked as it comes; yields its live signals."""
        url = self.base_url.replace("http", "ws", 1) + "/v1/websocket"
        headers = {"Authorization": f"Bearer {self.core.token}"}
        async with connect(url, additional_headers=headers, compression=None, max_size=2**20) as ws:
            async for raw in ws:
                frame = json.loads(raw)
                if frame.get("type") == "error":
                    raise RelayError(FRAME_ERROR_STATUS.get(frame.get("error", {}).get("code"), 400), frame)
                yield await self._digest(ws, frame["frames"] if frame.get("type") == "batch" else [frame])

    async def _digest(self, ws: ClientConnection, frames: list[dict[str, Any]]) -> list[Event]:
        """Apply frames in order, then ack them all at once: each is stored before the ack leaves. Returns the
        frames' live signals (``QueueEmpty``, notices); their stored events wait in the outbox."""
        live: list[Event] = []
        ack_ids: list[int] = []
        for frame in frames:
            received = self.core.receive(frame)
            if received.need_identity:
                try:
                    self.core.identity_received(await self.call(self.core.identity_request(received.need_identity)))
                except RelayError as exc:
                    if exc.status != 404:
                        raise
                    # The sender deleted their account: their keys are gone, so the message cannot be
                    # verified; it is reported as undecryptable and acked.
                received = self.core.receive(frame, identity_refreshed=True)
            live += [e for e in received.events if not is_stored(e)]
            ack_ids += received.ack_ids
        if ack_ids:
            await ws.send(json.dumps({"type": "ack", "ids": ack_ids}))
        return live

    async def inbox(self) -> list[Event]:
        """Collect everything queued for this device, then disconnect. The events are taken from the outbox only
        once the whole queue is stored: a connection lost on the way returns nothing and loses nothing."""
        self._session_started()
        notices: list[Event] = []
        async with aclosing(self._stream()) as stream:
            async for live in stream:
                notices += [e for e in live if not isinstance(e, QueueEmpty)]
                if len(notices) < len(live):
                    await self.refill_keys()
                    await linking.reconcile(self)
                    break
        return self.core.take_events() + notices
