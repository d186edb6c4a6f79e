"""The table of attachment blobs and of the devices that fetched each: who uploaded it, how big it is, how much
has arrived, its ciphertext's digest once complete, and when it expires. Never a key, a name or a byte of it."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, case, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.db import insert_new, metadata

attachments = Table(
    "attachments",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("uploader_account_id", String(36), nullable=False),
    Column("uploader_device_id", Integer, nullable=False),
    Column("size", BigInteger, nullable=False),  # ciphertext bytes announced
    Column("received", BigInteger, nullable=False),  # as of the last upload request's end
    Column("digest", String(64), nullable=True),  # SHA-256 of the ciphertext, once complete
    Column("recipients", Integer, nullable=False),  # devices expected to fetch it
    Column("fetches", Integer, nullable=False),  # distinct devices that fetched it to the end
    Column("created_at_ms", BigInteger, nullable=False),
    Column("completed_at_ms", BigInteger, nullable=True),
    Column("expires_at_ms", BigInteger, nullable=False),
    Index("ix_attachments_expiry", "expires_at_ms"),
)

attachment_fetches = Table(
    "attachment_fetches",
    metadata,
    Column("attachment_id", String(32), primary_key=True),
    Column("account_id", String(36), primary_key=True),
    Column("device_id", Integer, primary_key=True),
)


class Blob(NamedTuple):
    id: str
    uploader_account_id: str
    uploader_device_id: int
    size: int
    received: int
    digest: str | None
    recipients: int
    fetches: int
    created_at_ms: int
    completed_at_ms: int | None
    expires_at_ms: int

    @property
    def complete(self) -> bool:
        return self.completed_at_ms is not None


async def create(
    conn: AsyncConnection, blob_id: str, account_id: str, device_id: int, size: int, recipients: int, now: int, ttl: int
) -> None:
    await conn.execute(
        attachments.insert().values(
            id=blob_id,
            uploader_account_id=account_id,
            uploader_device_id=device_id,
            size=size,
            received=0,
            recipients=recipients,
            fetches=0,
            created_at_ms=now,
            expires_at_ms=now + ttl,
        )
    )


async def get(conn: AsyncConnection, blob_id: str) -> Blob | None:
    row = (await conn.execute(select(*attachments.c).where(attachments.c.id == blob_id))).first()
    return Blob(*row) if row else None


async def set_received(conn: AsyncConnection, blob_id: str, received: int) -> None:
    await conn.execute(update(attachments).where(attachments.c.id == blob_id).values(received=received))


async def complete(conn: AsyncConnection, blob_id: str, digest: str, now: int, retention_ms: int) -> None:
    await conn.execute(
        update(attachments)
        .where(attachments.c.id == blob_id)
        .values(received=attachments.c.size, digest=digest, completed_at_ms=now, expires_at_ms=now + retention_ms)
    )


_RECORD_FETCH = insert_new(attachment_fetches)


# Once every expected device fetched a blob it stays this long, for those devices only: the relay counts a fetch
# when it sends the last byte, which the device may never have received (its connection broke), and it resumes.
FETCHED_GRACE_MS = 3_600_000


async def record_fetch(conn: AsyncConnection, blob_id: str, account_id: str, device_id: int, now: int) -> int:
    """Count a device's complete fetch once; when as many devices as expected have fetched it, it expires after
    ``FETCHED_GRACE_MS``. Returns the number of distinct devices that fetched it."""
    row = {"attachment_id": blob_id, "account_id": account_id, "device_id": device_id}
    await conn.execute(_RECORD_FETCH[conn.dialect.name], [row])
    fetched = select(func.count()).where(attachment_fetches.c.attachment_id == blob_id).scalar_subquery()
    await conn.execute(update(attachments).where(attachments.c.id == blob_id).values(fetches=fetched))
    await conn.execute(
        update(attachments)
        .where(
            attachments.c.id == blob_id,
            attachments.c.fetches >= attachments.c.recipients,
            attachments.c.expires_at_ms > now + FETCHED_GRACE_MS,
        )
        .values(expires_at_ms=now + FETCHED_GRACE_MS)
    )
    return int((await conn.execute(select(attachments.c.fetches).where(attachments.c.id == blob_id))).scalar_one())


async def add_recipients(
    conn: AsyncConnection, blob_id: str, count: int, most: int, now: int, retention_ms: int
) -> bool:
    """Expect ``count`` more devices to fetch a complete, unexpired blob, as long as it then expects no more than
    ``most``; a blob that every expected device had fetched (in its grace hour) lives again until the retention
    after its upload ended, never longer. ``False`` when that would pass ``most`` (or it expired meanwhile)."""
    more = attachments.c.recipients + count
    done = await conn.execute(
        update(attachments)
        .where(
            attachments.c.id == blob_id,
            attachments.c.completed_at_ms.is_not(None),
            attachments.c.expires_at_ms > now,
            more <= most,
        )
        .values(
            recipients=more,
            expires_at_ms=case(
                (attachments.c.fetches < more, attachments.c.completed_at_ms + retention_ms),
                else_=attachments.c.expires_at_ms,
            ),
        )
    )
    return done.rowcount == 1


async def has_fetched(conn: AsyncConnection, blob_id: str, account_id: str, device_id: int) -> bool:
    found = await conn.execute(
        select(attachment_fetches.c.device_id).where(
            attachment_fetches.c.attachment_id == blob_id,
            attachment_fetches.c.account_id == account_id,
            attachment_fetches.c.device_id == device_id,
        )
    )
    return found.first() is not None


async def expired(conn: AsyncConnection, now: int, limit: int) -> list[str]:
    rows = await conn.execute(
        select(attachments.c.id).where(attachments.c.expires_at_ms <= now).order_by(attachments.c.id).limit(limit)
    )
    return [row[0] for row in rows]


async def forget(conn: AsyncConnection, blob_ids: list[str]) -> None:
    await conn.execute(delete(attachment_fetches).where(attachment_fetches.c.attachment_id.in_(blob_ids)))
    await conn.execute(delete(attachments).where(attachments.c.id.in_(blob_ids)))
