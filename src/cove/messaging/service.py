"""The send use case, shared by ``PUT /v1/messages/{id}`` and the WebSocket ``send`` frame."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cove.accounts.storage import DeviceRecord
from cove.activity import Action, Outbound, Withheld
from cove.clock import now_ms
from cove.context import Relay
from cove.errors import ApiError
from cove.messaging import rules
from cove.messaging.envelope import Envelope
from cove.messaging.models import FREE_FORM, SendRequest, SendResult
from cove.messaging.writer import SendJob


@dataclass(frozen=True)
class Send:
    """A send between two accounts, checked so far: its devices match the recipient's (``registered``)."""

    sender: DeviceRecord
    recipient_id: str
    registered: list[DeviceRecord]
    request: SendRequest
    now: int


# Rules another capability applies to every send between two accounts (the business rules, cove.business.hooks),
# registered as ``Relay.send_rule`` so that messaging imports none: raises the refusal, or returns what the queue
# writer stores with the envelopes (``QueueWriter.store_with_sends``).
SendRule = Callable[[Relay, Send], Awaitable[Any]]


def decode_body(body: str, limit: int, name: str) -> bytes:
    """A base64 ciphertext of at most ``limit`` bytes; ``name`` is its field, for the error."""
    # Reject before decoding: base64 is 4/3 of the bytes, so an oversize body never costs a decode.
    rules.check_size(len(body) * 3 // 4 - body.count("="), limit)
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, "malformed_base64", f"{name} is not valid base64") from exc


async def send(relay: Relay, sender: DeviceRecord, recipient_id: str, request: SendRequest) -> SendResult:
    try:
        job = await prepare(relay, sender, recipient_id, request)
    except Withheld:
        return withheld_result(request)
    return result_of(job, await relay.writer.send(job))


def withheld_result(request: SendRequest) -> SendResult:
    """The answer to a send a check withheld: the same as a queued one's, so the sender cannot tell."""
    return SendResult(duplicate=False, queued=len(request.messages), server_ts=now_ms())


def result_of(job: SendJob, queued: list[Envelope] | None) -> SendResult:
    held = len(job.envelopes) if job.held else 0
    return SendResult(
        duplicate=queued is None, queued=len(queued or ()), held=held, server_ts=job.envelopes[0].server_ts_ms
    )


async def prepare(relay: Relay, sender: DeviceRecord, recipient_id: str, request: SendRequest) -> SendJob:
    """Check a send against the rules and build its envelopes; raises the API error that refuses it."""
    settings = relay.settings
    forward = request.forward
    if forward is not None and (request.receipt or recipient_id == sender.account_id):
        raise ApiError(400, "invalid_forward_header", "a receipt or a message to your own devices is not forwarded")
    if len(request.messages) > settings.max_devices_per_message:
        raise ApiError(400, "too_many_devices", f"at most {settings.max_devices_per_message} devices per message")
    bodies = [
        decode_body(m.body, settings.max_message_bytes, f"messages.{i}.body") for i, m in enumerate(request.messages)
    ]

    registered = await relay.directory.devices_of(recipient_id)
    if not registered:
        raise ApiError(404, "unknown_account", "no account has this id")
    # A device the account's signed list does not name (not linked yet, or a row the relay never should have had)
    # sends nothing: its contacts would not trust it anyway.
    own = registered if recipient_id == sender.account_id else await relay.directory.devices_of(sender.account_id)
    if sender.device_id not in {d.device_id for d in own}:
        raise ApiError(403, "device_not_listed", "this device is not in the account's signed device list yet")
    sending_device = sender.device_id if recipient_id == sender.account_id else None
    addressed: dict[int, int] = {}
    for m in request.messages:
        if m.device_id in addressed:
            raise ApiError(400, "duplicate_device", f"device {m.device_id} is addressed twice")
        addressed[m.device_id] = m.registration_id
    rules.raise_for_mismatch(
        rules.check_devices({d.device_id: d.registration_id for d in registered}, addressed, sending_device)
    )

    now = now_ms()
    if recipient_id != sender.account_id:
        await relay.check_outbound(
            Outbound(
                Action.MESSAGE,
                sender.account_id,
                sender.device_id,
                sender.business,
                recipient_id,
                (recipient_id,),
                1,
                now,
                receipt=request.receipt,
                forward_count=forward.count if forward else 0,
                forward_batch=forward.batch if forward else None,
            )
        )
    business = await _send_rule(relay, Send(sender, recipient_id, registered, request, now))
    # Recipients see every business message labelled as one, free-form ones too.
    header = (request.business or FREE_FORM).model_dump_json(exclude_none=True) if sender.business else None
    expires = now + relay.retention_ms
    envelopes = [
        Envelope(
            id=None,
            account_id=recipient_id,
            device_id=m.device_id,
            kind=int(m.kind),
            sender_account_id=sender.account_id,
            sender_device_id=sender.device_id,
            client_message_id=request.client_message_id,
            body=body,
            server_ts_ms=now,
            expires_at_ms=expires,
            business=header,
            forward_count=forward.count if forward else None,
        )
        for m, body in zip(request.messages, bodies, strict=True)
    ]
    return SendJob(sender.account_id, recipient_id, request.client_message_id, envelopes, business)


async def _send_rule(relay: Relay, send: Send) -> Any:
    if send.recipient_id == send.sender.account_id:
        if send.request.business is not None:
            raise ApiError(400, "invalid_business_header", "a message to your own devices carries no business header")
        return None
    if relay.send_rule is None:
        return None
    return await relay.send_rule(relay, send)
