"""Telling one's own other devices over the relay: sent transcripts, read state and a new device's history.

The payloads and their effects are :mod:`cove.client.sync`'s; here they are sent to the own account, which the
relay fans out to every device but the sender. Nothing is sent when the account's verified list names no other
device, so a person with one device pays nothing for this.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

from cove.client import sync, trust
from cove.client.core import ClientCore, Outgoing

if TYPE_CHECKING:
    from cove.client.transport import CoveClient

DAY_MS = 86_400_000
MAX_HISTORY_DAYS = 3650


def _list_is_ahead(core: ClientCore) -> bool:
    """Whether this device knows its account's devices less well than the list it trusts: a device it linked (the
    primary) or a list it last saw names a device whose keys it has not read yet. Never asked: it reads them."""
    assert core.account_id is not None
    known = core.store.peer_devices(core.account_id)
    pin = trust.pin_of(core.store, core.account_id)
    listed = pin.listed() if pin is not None else None
    return not known or (listed is not None and not listed.device_ids() <= set(known))


async def _tell_own_devices(client: CoveClient, payload: bytes) -> bool:
    """Send ``payload`` to this account's other trusted devices; ``False`` when it has none."""
    core = client.core
    assert core.account_id is not None
    if _list_is_ahead(core):
        core.identity_received(await client.call(core.identity_request(core.account_id)))
    if not any(d != core.device_id for d in core.trusted_devices(core.account_id)):
        return False
    await client.send(Outgoing(core.account_id, uuid.uuid4().hex, payload))
    return True


async def mirror(client: CoveClient, outgoing: Outgoing) -> None:
    """After a message to someone else was accepted: its transcript to this account's other devices."""
    if outgoing.recipient == client.core.account_id or outgoing.receipt:
        return
    payload = sync.transcript(outgoing.recipient, outgoing.payload)
    if payload is not None:
        await _tell_own_devices(client, payload)


def not_read_yet(client: CoveClient, peer: str, client_message_ids: list[str]) -> list[str]:
    """Those of ``peer``'s messages not read yet, here or on another device: only they need a read receipt."""
    seen = client.core.store.already_read(peer, client_message_ids)
    return [i for i in client_message_ids if i not in seen]


async def read_here(client: CoveClient, peer: str, client_message_ids: list[str]) -> None:
    """The user saw these messages of ``peer`` here (and their read receipt has gone): mark them read and tell
    the other devices, which then send no receipt of their own."""
    client.core.store.mark_read_in(peer, client_message_ids)
    for start in range(0, len(client_message_ids), sync.MAX_READ_IDS):
        await _tell_own_devices(client, sync.read_sync(peer, client_message_ids[start : start + sync.MAX_READ_IDS]))


async def send_history(client: CoveClient, device_id: int, days: int) -> int:
    """On the primary, right after linking ``device_id``: the last ``days`` days of this device's history, end to
    end encrypted in parts that every other device ignores. Returns how many messages were sent."""
    if not 0 < days <= MAX_HISTORY_DAYS:
        raise ValueError(f"history is sent for 1 to {MAX_HISTORY_DAYS} days")
    store = client.core.store
    messages = store.messages_since(int(time.time() * 1000) - days * DAY_MS, sync.MAX_HISTORY_MESSAGES)
    for part in sync.history_parts(messages, device_id):
        if not await _tell_own_devices(client, part):
            return 0
    return len(messages)
