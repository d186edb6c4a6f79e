"""Verifying a contact over the relay: the keys to compare, recording the result, and the SAS exchange.

The rules are in :mod:`cove.client.verification`; this module fetches the contact's keys, runs the SAS payloads
through a :class:`~cove.client.transport.CoveClient` (end-to-end encrypted 1:1 messages), and stores what the
user verified.

Both people run the SAS comparison at once and both send a ``sas_start``. When two starts cross, the one from the
lower ``(account id, device id)`` wins: the other side answers it and drops its own. A side that receives the
losing start while its own has had no answer sends its start again (the other side may have missed it, e.g.
because ``cove listen`` took it), so whoever comes online second still meets the first.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cove.client import trust
from cove.client.core import ClientCore, Event, Outgoing, PayloadReceived
from cove.client.transport import CoveClient
from cove.client.verification import (
    PRIMARY_DEVICE,
    SAS_START,
    SAS_TYPES,
    Party,
    SafetyNumber,
    SasState,
    SasVerification,
    VerificationError,
    Verified,
    cancel_payload,
    safety_number,
)

SAS_TIMEOUT_SECONDS = 120.0


class ContactUnknown(Exception):
    """The relay lists no primary device for the contact (no such account, or it was deleted)."""


def own_primary_key(core: ClientCore) -> str:
    """This account's primary Ed25519 key as this device knows it itself, never as the relay serves it: a relay
    that answered with keys of its own for both sides could otherwise make two safety numbers agree."""
    if core.device_id == PRIMARY_DEVICE:
        return core.own_keys()[1]
    assert core.account_id is not None
    pin = trust.pin_of(core.store, core.account_id)  # the key the primary gave this device when it was linked
    if pin is None:
        raise VerificationError("this device does not know its primary's key: link it again")
    return pin.primary_ed25519


async def contact_key(client: CoveClient, contact: str) -> tuple[str, int]:
    """The contact's primary Ed25519 key and identity generation, read again from the relay (the key directory's
    answer also goes through the change check: a verified contact whose key changed is flagged)."""
    body = await client.call(client.core.identity_request(contact))
    client.core.identity_received(body)
    primary = next((d for d in body["devices"] if d["device_id"] == PRIMARY_DEVICE), None)
    if primary is None:
        raise ContactUnknown(f"{contact} has no primary device")
    return primary["identity_ed25519"], body["identity_generation"]


@dataclass(frozen=True)
class ContactSafety:
    number: SafetyNumber
    key: str
    generation: int
    record: Verified | None  # what the user verified before, if anything


async def safety(client: CoveClient, contact: str) -> ContactSafety:
    core = client.core
    key, generation = await contact_key(client, contact)
    assert core.account_id is not None
    number = safety_number(core.account_id, own_primary_key(core), contact, key)
    return ContactSafety(number, key, generation, core.store.verification(contact))


def mark_verified(core: ClientCore, contact: str, key: str, generation: int, method: str) -> Verified:
    record = Verified(contact, key, generation, method, int(time.time() * 1000))
    core.store.set_verified(record)
    return record


# SAS ------------------------------------------------------------------------------------------------------
Confirm = Callable[[SasVerification], Awaitable[bool]]


class SasFailed(Exception):
    """The comparison ended without verifying the contact; the message says why."""


async def _send(client: CoveClient, contact: str, payload: dict[str, Any]) -> None:
    await client.send(Outgoing(contact, uuid.uuid4().hex, json.dumps(payload).encode()))


def _fresh(payload: dict[str, Any], within: float) -> bool:
    """A start from an earlier, abandoned run is still queued for us: answering it would wait for nobody."""
    sent = payload.get("ts")
    return isinstance(sent, int) and sent >= (time.time() - within) * 1000


async def verify_by_sas(
    client: CoveClient,
    contact: str,
    confirm: Confirm,
    on_event: Callable[[Event], Awaitable[None]] | None = None,
    answer_within: float = SAS_TIMEOUT_SECONDS,
) -> Verified:
    """Compare emoji with one of the contact's devices, both online. ``confirm`` shows them and returns the
    user's answer; events that are not part of the comparison go to ``on_event``. Returns what was verified, or
    raises :class:`SasFailed` (mismatch, cancel, or no answer within ``answer_within`` seconds)."""
    core = client.core
    assert core.account_id is not None and core.device_id is not None
    me = Party(core.account_id, core.device_id)
    their_key, generation = await contact_key(client, contact)
    my_key = own_primary_key(core)
    sas, start = SasVerification.start(me, contact)
    start["ts"] = int(time.time() * 1000)
    await _send(client, contact, start)
    try:
        async with asyncio.timeout(answer_within):
            async for event in client.events():
                payload = event.payload if isinstance(event, PayloadReceived) and event.sender == contact else {}
                if payload.get("type") not in SAS_TYPES:
                    if on_event is not None:
                        await on_event(event)
                    continue
                assert isinstance(event, PayloadReceived)
                sender = Party(event.sender, event.sender_device)
                if payload["type"] == SAS_START:
                    sas = await _crossed_start(client, sas, start, sender, payload, answer_within)
                    continue
                for reply in sas.receive(sender, payload):
                    await _send(client, contact, reply)
                if sas.state is SasState.COMPARING:
                    if not await confirm(sas):
                        await _send(client, contact, sas.reject())
                        raise SasFailed("you said the emoji do not match: the contact is not verified")
                    await _send(client, contact, sas.confirm(my_key))
                if sas.state is SasState.CONFIRMED and sas.check(their_key):
                    return mark_verified(core, contact, their_key, generation, "sas")
                if sas.state is SasState.CANCELLED:
                    raise SasFailed(sas.cancel_reason or "cancelled")
    except TimeoutError:
        await _send(client, contact, cancel_payload(sas.txn, "timed out"))
        raise SasFailed(f"no answer from {contact} within {answer_within:g} s: run it on both sides at once") from None
    raise SasFailed("the connection to the relay ended")


async def _crossed_start(
    client: CoveClient,
    ours: SasVerification,
    our_start: dict[str, Any],
    sender: Party,
    payload: dict[str, Any],
    fresh_within: float,
) -> SasVerification:
    """The contact started too: keep one comparison (see the module's docstring)."""
    unanswered = ours.initiator and ours.peer is None and ours.state is SasState.WAITING_FOR_KEY
    if not unanswered or payload.get("txn") == ours.txn or not _fresh(payload, fresh_within):
        return ours
    if (sender.account_id, sender.device_id) < (ours.me.account_id, ours.me.device_id):
        try:
            theirs, answer = SasVerification.accept(ours.me, sender, payload)
        except VerificationError:
            return ours
        await _send(client, sender.account_id, answer)
        return theirs
    await _send(client, sender.account_id, our_start)
    return ours
