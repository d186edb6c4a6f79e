"""Signed abuse signals from a partner (the parent): whose key verifies them, and taking a batch in.

A partner makes its own Ed25519 key (``cove partner signals keys``) and hands the public half to the messenger's
operator out of band, as the messenger hands it the trust bundle; ``cove share partner-key`` registers it. A
batch (cove.sharing.wire.SignedSignals) is taken only when its signature verifies with the key registered for
the sender it names, and its sequence is above the last taken from that sender (else it is a replay). Its
entries then go to safety (cove.safety.parent_signals), which weighs them and never bans for them alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import lru_cache
from pathlib import Path

from sqlalchemy import BigInteger, Column, String, Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cove.accounts.storage import accounts
from cove.clock import now_ms
from cove.context import Relay
from cove.db import metadata
from cove.errors import ApiError
from cove.safety import parent_signals
from cove.sharing import wire
from cove.sharing.keys import SharingKeys

sharing_partner_keys = Table(
    "sharing_partner_keys",
    metadata,
    Column("recipient", String(40), primary_key=True),
    Column("public_key", String(64), nullable=False),  # Ed25519, raw 32 bytes, base64
    Column("key_id", String(16), nullable=False),
    # Batches count up per partner (from 1; the creation instant in ms will do): one at or below this is a replay.
    Column("last_sequence", BigInteger, nullable=False),
    Column("registered_at_ms", BigInteger, nullable=False),
)

_STATUS = {"bad_batch": 400, "bad_signature": 403}
_MATCH_CHUNK = 10_000  # accounts hashed between two yields to the event loop (about 25 ms of CPU)


async def register_key(engine: AsyncEngine, partner: wire.PartnerKey) -> str:
    """Trust ``partner``'s key for its signals from now on (replacing an older one); returns its key id. The last
    sequence taken stays: a batch signed with the old key is no less a replay."""
    key_id = wire.key_id(partner.key())
    values = {"public_key": partner.public_key, "key_id": key_id, "registered_at_ms": now_ms()}
    t = sharing_partner_keys
    async with engine.begin() as conn:
        if (await conn.execute(update(t).where(t.c.recipient == partner.recipient).values(values))).rowcount == 0:
            await conn.execute(insert(t).values(recipient=partner.recipient, last_sequence=0, **values))
    return key_id


async def receive(relay: Relay, signed: wire.SignedSignals) -> wire.SignalBatch:
    """Verify and keep a batch: 400 ``bad_batch``, 403 ``unknown_partner`` or ``bad_signature``, 409 a replay."""
    try:
        sender = wire.signals_sender(signed)
        t = sharing_partner_keys
        async with relay.engine.connect() as conn:
            row = (await conn.execute(select(t.c.public_key).where(t.c.recipient == sender))).first()
        if row is None:
            raise ApiError(403, "unknown_partner", "no partner key is registered for the sender this batch names")
        batch = wire.verify_signals(wire.load_public_key(row.public_key), signed)
    except wire.BadBatch as exc:
        raise ApiError(_STATUS[exc.code], exc.code, str(exc)) from None
    now = now_ms()
    entries = [(e.number_hash, e.reason, e.at) for e in batch.entries]
    async with relay.engine.begin() as conn:
        taken = await conn.execute(
            update(t)
            .where(t.c.recipient == batch.sender, t.c.last_sequence < batch.sequence)
            .values(last_sequence=batch.sequence)
        )
        if taken.rowcount == 0:
            raise ApiError(409, "replayed_batch", f"batch sequence {batch.sequence} was already taken from this sender")
        await parent_signals.keep(conn, batch.sender, batch.batch_id, entries, now)
    flagged = await _accounts_named(relay, batch)
    parent_signals.received(relay, batch.sender, batch.batch_id, len(entries), flagged, now)
    return batch


async def _accounts_named(relay: Relay, batch: wire.SignalBatch) -> dict[str, str]:
    """The accounts whose number the batch names, ``{account_id: reason}``.

    A hash cannot be turned back into a number, so every account's number is hashed under the sender's key and
    compared: O(accounts) per batch (about 2.5 s of CPU per million accounts, measured), in chunks between which the
    relay serves other requests. A batch arrives once a day or so; per-partner hash columns would trade that for
    a write on every registration.
    """
    reasons = {e.number_hash: e.reason for e in batch.entries}
    if not reasons:
        return {}
    key = _keys(relay).phone_key(batch.sender)
    found: dict[str, str] = {}
    async with relay.engine.connect() as conn:
        rows = await conn.stream(select(accounts.c.id, accounts.c.phone_number))
        async for chunk in rows.partitions(_MATCH_CHUNK):
            for account_id, phone in chunk:
                reason = reasons.get(wire.phone_hash(key, phone))
                if reason is not None:
                    found[account_id] = reason
            await asyncio.sleep(0)
    return found


def _keys(relay: Relay) -> SharingKeys:
    return _keys_in(relay.settings.data_dir)


@lru_cache(maxsize=1)  # a process serves one data directory: read its secret once
def _keys_in(data_dir: Path) -> SharingKeys:
    return SharingKeys.load_or_create(data_dir)


def number_hashes(relay: Relay) -> Callable[[AsyncConnection, str], Awaitable[list[tuple[str, str]]]]:
    """For safety's registration gate: a number as each partner with a registered key hashes it."""

    async def hashes(conn: AsyncConnection, phone_number: str) -> list[tuple[str, str]]:
        partners = (await conn.execute(select(sharing_partner_keys.c.recipient))).scalars().all()
        if not partners:
            return []
        keys = _keys(relay)
        return [(p, wire.phone_hash(keys.phone_key(p), phone_number)) for p in partners]

    return hashes
