"""The registration gate's history: code requests and registrations per key, and the parent's signals.

Keys are stored as HMACs under the relay's secret (:func:`key_hash`), never as the address, vendor id or number
they stand for: the gate only needs to count and compare them, and a leaked table then names nobody. Rows older
than ``registration_gate_history_days`` are deleted as new ones come (:func:`forget_before`), so the tables stay
bounded by the traffic of that window.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import NamedTuple

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.db import metadata
from cove.safety.registration_rules import History, Key
from cove.safety.storage import safety_verdicts

_id = BigInteger().with_variant(Integer(), "sqlite")

safety_code_requests = Table(
    "safety_code_requests",
    metadata,
    Column("id", _id, primary_key=True, autoincrement=True),
    Column("at_ms", BigInteger, nullable=False),
    Column("number_key", String(32), nullable=False),
    Column("range_key", String(32), nullable=False),
    Column("source_key", String(32), nullable=False),
    Column("device_key", String(32), nullable=True),  # the client said nothing about its device
    Column("challenged", Boolean, nullable=False),
    Column("answered", Boolean, nullable=False),  # it came with a right answer to a challenge
    Index("ix_safety_code_requests_number", "number_key", "at_ms"),
    Index("ix_safety_code_requests_range", "range_key", "at_ms"),
    Index("ix_safety_code_requests_source", "source_key", "at_ms"),
    Index("ix_safety_code_requests_device", "device_key", "at_ms"),
    Index("ix_safety_code_requests_at", "at_ms"),
    sqlite_autoincrement=True,
)

# The signals of each account's last registration: its keys, the gate's four scores then, and whether its code
# request had to prove work. An account banned later counts against the keys it registered from.
safety_registrations = Table(
    "safety_registrations",
    metadata,
    Column("account_id", String(36), primary_key=True),
    Column("number_key", String(32), nullable=False),
    Column("range_key", String(32), nullable=False),
    Column("source_key", String(32), nullable=False),
    Column("device_key", String(32), nullable=False),
    Column("number_score", Float, nullable=False),
    Column("range_score", Float, nullable=False),
    Column("source_score", Float, nullable=False),
    Column("device_score", Float, nullable=False),
    Column("challenged", Boolean, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Index("ix_safety_registrations_number", "number_key"),
    Index("ix_safety_registrations_range", "range_key"),
    Index("ix_safety_registrations_source", "source_key"),
    Index("ix_safety_registrations_device", "device_key"),
    Index("ix_safety_registrations_at", "at_ms"),
)

# What the parent signed: it banned the number behind ``number_hash`` (cove.sharing.wire.phone_hash under the
# key the messenger handed that recipient) for ``reason``. One row per number and sender, the latest kept.
safety_parent_signals = Table(
    "safety_parent_signals",
    metadata,
    Column("recipient", String(40), primary_key=True),
    Column("number_hash", String(64), primary_key=True),
    Column("reason", String(40), nullable=False),
    Column("at_ms", BigInteger, nullable=False),  # when the parent banned it, as it says
    Column("received_at_ms", BigInteger, nullable=False),
    Column("batch_id", String(80), nullable=False),
    Index("ix_safety_parent_signals_hash", "number_hash"),
)


class ParentSignal(NamedTuple):
    recipient: str
    reason: str
    at_ms: int
    received_at_ms: int


_REQUEST_COLUMNS = {
    Key.NUMBER: safety_code_requests.c.number_key,
    Key.RANGE: safety_code_requests.c.range_key,
    Key.SOURCE: safety_code_requests.c.source_key,
    Key.DEVICE: safety_code_requests.c.device_key,
}
_REGISTRATION_COLUMNS = {
    Key.NUMBER: safety_registrations.c.number_key,
    Key.RANGE: safety_registrations.c.range_key,
    Key.SOURCE: safety_registrations.c.source_key,
    Key.DEVICE: safety_registrations.c.device_key,
}


def key_hash(secret: bytes, key: Key, value: str) -> str:
    return hmac.new(secret, f"cove:safety:{key.value}:{value}".encode(), hashlib.sha256).hexdigest()[:32]


async def history(conn: AsyncConnection, key: Key, hashed: str, now_ms: int, parent_flagged: bool = False) -> History:
    """The key's code requests in the last hour and day, and its accounts banned now."""
    t = safety_code_requests
    column = _REQUEST_COLUMNS[key]
    hour_ago, day_ago = now_ms - 3_600_000, now_ms - 86_400_000
    hour, day = (
        await conn.execute(
            select(func.coalesce(func.sum(case((t.c.at_ms >= hour_ago, 1), else_=0)), 0), func.count()).where(
                column == hashed, t.c.at_ms >= day_ago
            )
        )
    ).one()
    r, v = safety_registrations, safety_verdicts
    banned = (
        await conn.execute(
            select(func.count())
            .select_from(r.join(v, v.c.account_id == r.c.account_id))
            .where(_REGISTRATION_COLUMNS[key] == hashed, v.c.lifted_at_ms.is_(None))
        )
    ).scalar_one()
    return History(int(hour), int(day), int(banned), parent_flagged)


async def record_request(
    conn: AsyncConnection, keys: dict[Key, str], challenged: bool, answered: bool, now_ms: int
) -> None:
    await conn.execute(
        insert(safety_code_requests).values(
            at_ms=now_ms,
            number_key=keys[Key.NUMBER],
            range_key=keys[Key.RANGE],
            source_key=keys[Key.SOURCE],
            device_key=keys.get(Key.DEVICE),
            challenged=challenged,
            answered=answered,
        )
    )


async def last_request_proved_work(conn: AsyncConnection, number_key: str, since_ms: int) -> bool:
    """Whether the number's last code request since ``since_ms`` came with a right answer to a challenge."""
    t = safety_code_requests
    row = (
        await conn.execute(
            select(t.c.answered)
            .where(t.c.number_key == number_key, t.c.at_ms >= since_ms)
            .order_by(t.c.at_ms.desc(), t.c.id.desc())
            .limit(1)
        )
    ).first()
    return bool(row and row.answered)


async def save_registration(
    conn: AsyncConnection,
    account_id: str,
    keys: dict[Key, str],
    scores: dict[Key, float],
    challenged: bool,
    now_ms: int,
) -> None:
    values = {f"{key.value}_key": keys[key] for key in Key} | {f"{key.value}_score": scores[key] for key in Key}
    values |= {"challenged": challenged, "at_ms": now_ms}
    t = safety_registrations
    if (await conn.execute(update(t).where(t.c.account_id == account_id).values(values))).rowcount == 0:
        await conn.execute(insert(t).values(account_id=account_id, **values))


async def registration_of(conn: AsyncConnection, account_id: str):  # noqa: ANN201 - a Row
    t = safety_registrations
    return (await conn.execute(select(t).where(t.c.account_id == account_id))).first()


async def forget_account(conn: AsyncConnection, account_id: str) -> None:
    """A deleted account's registration goes, unless it is banned: then it still counts against its keys."""
    r, v = safety_registrations, safety_verdicts
    banned = exists().where(and_(v.c.account_id == r.c.account_id, v.c.lifted_at_ms.is_(None)))
    await conn.execute(delete(r).where(r.c.account_id == account_id, ~banned))


async def forget_before(conn: AsyncConnection, before_ms: int) -> None:
    await conn.execute(delete(safety_code_requests).where(safety_code_requests.c.at_ms < before_ms))
    await conn.execute(delete(safety_registrations).where(safety_registrations.c.at_ms < before_ms))


async def parent_flagged(conn: AsyncConnection, hashes: list[tuple[str, str]]) -> list[ParentSignal]:
    """Of ``(recipient, number_hash)`` pairs (one per sender of signals: a handful), the ones flagged."""
    t = safety_parent_signals
    found = []
    for recipient, number_hash in hashes:
        row = (
            await conn.execute(
                select(t.c.reason, t.c.at_ms, t.c.received_at_ms).where(
                    t.c.recipient == recipient, t.c.number_hash == number_hash
                )
            )
        ).first()
        if row is not None:
            found.append(ParentSignal(recipient, row.reason, row.at_ms, row.received_at_ms))
    return found


async def save_parent_signal(
    conn: AsyncConnection, recipient: str, number_hash: str, reason: str, at_ms: int, batch_id: str, now_ms: int
) -> None:
    t = safety_parent_signals
    values = {"reason": reason, "at_ms": at_ms, "received_at_ms": now_ms, "batch_id": batch_id}
    where = and_(t.c.recipient == recipient, t.c.number_hash == number_hash)
    if (await conn.execute(update(t).where(where).values(values))).rowcount == 0:
        await conn.execute(insert(t).values(recipient=recipient, number_hash=number_hash, **values))
