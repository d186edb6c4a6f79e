"""Account, device and verification-code tables, and the queries the accounts service needs."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKeyConstraint,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    case,
    delete,
    exists,
    false,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import ColumnElement, FromClause

from cove.accounts.codes import PendingCode
from cove.clock import to_datetime, to_ms
from cove.db import metadata

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("phone_number", String(20), nullable=False, unique=True),
    Column("created_at_ms", BigInteger, nullable=False),
    # Bumped on every re-registration: contacts compare it to warn that the safety number changed.
    Column("identity_generation", Integer, nullable=False, default=1),
    Column("identity_changed_at_ms", BigInteger, nullable=True),
    # Fixed at registration so that a policy rollout (waves by hash bucket and country) is a query, not a
    # write to every account.
    Column("rollout_bucket", SmallInteger, nullable=False, server_default="0"),
    Column("calling_code", Integer, nullable=False, server_default="0"),
)

devices = Table(
    "devices",
    metadata,
    Column("account_id", String(36), primary_key=True),
    Column("device_id", Integer, primary_key=True),
    Column("registration_id", Integer, nullable=False),
    Column("identity_curve25519", String(64), nullable=False),
    Column("identity_ed25519", String(64), nullable=False),
    Column("token_hash", String(64), nullable=True, unique=True),
    Column("device_model", String(100), nullable=False),
    Column("os_name", String(50), nullable=False),
    Column("os_version", String(50), nullable=False),
    Column("app_version", String(50), nullable=False),
    Column("vendor_device_id", String(100), nullable=True),
    Column("created_at_ms", BigInteger, nullable=False),
    # When something the sharing gateway exports about the device changed: its model, OS or app version,
    # or the UTC day it was last seen (cove.accounts.presence). Indexed for the incremental export.
    Column("updated_at_ms", BigInteger, nullable=False),
    Column("last_seen_at_ms", BigInteger, nullable=False),
    ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
    Index("ix_devices_updated", "updated_at_ms"),
)

verification_codes = Table(
    "verification_codes",
    metadata,
    Column("phone_number", String(20), primary_key=True),
    Column("code_hash", String(64), nullable=False),
    Column("expires_at_ms", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
)


@dataclass(frozen=True)
class DeviceRecord:
    account_id: str
    device_id: int
    registration_id: int
    identity_curve25519: str
    identity_ed25519: str
    # The account has a business profile: its sends go through the business rules, and users' messages to it
    # open its service window. Loaded with the device (one outer join), so plain sends pay no extra query.
    business: bool = False
    # When the device was last seen (cove.accounts.presence): a token idle for too long stops working. Loaded
    # only with a token; 0 elsewhere.
    last_seen_at_ms: int = 0


async def load_code(conn: AsyncConnection, phone_number: str) -> PendingCode | None:
    row = (
        await conn.execute(select(verification_codes).where(verification_codes.c.phone_number == phone_number))
    ).first()
    if row is None:
        return None
    return PendingCode(
        phone_number=row.phone_number,
        code_hash=row.code_hash,
        expires_at=to_datetime(row.expires_at_ms),
        attempts=row.attempts,
    )


def _same_code(code: PendingCode) -> tuple:
    # The hash and the expiry change with every code issued and attempts with every guess, so together they
    # tell whether the stored record is still the one a rule judged.
    return (
        verification_codes.c.phone_number == code.phone_number,
        verification_codes.c.code_hash == code.code_hash,
        verification_codes.c.expires_at_ms == to_ms(code.expires_at),
        verification_codes.c.attempts == code.attempts,
    )


async def replace_code(conn: AsyncConnection, judged: PendingCode | None, code: PendingCode | None) -> bool:
    """Store ``code`` (or delete the record when it is ``None``) only if the stored record is still ``judged``.

    A compare-and-set: ``False`` when a concurrent request changed the record since it was loaded, so the
    caller must load and judge again. Without it, parallel guesses or code requests would all be judged
    against the same counters and each count only once.
    """
    if code is None:
        assert judged is not None
        return (await conn.execute(delete(verification_codes).where(*_same_code(judged)))).rowcount == 1
    values = {
        "code_hash": code.code_hash,
        "expires_at_ms": to_ms(code.expires_at),
        "attempts": code.attempts,
    }
    if judged is None:
        dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        statement = (
            dialect_insert(verification_codes)
            .values(phone_number=code.phone_number, **values)
            .on_conflict_do_nothing(index_elements=[verification_codes.c.phone_number])
        )
        return (await conn.execute(statement)).rowcount == 1
    updated = await conn.execute(update(verification_codes).where(*_same_code(judged)).values(values))
    return updated.rowcount == 1


async def account_by_phone(conn: AsyncConnection, phone_number: str):  # noqa: ANN201
    return (await conn.execute(select(accounts).where(accounts.c.phone_number == phone_number))).first()


async def account_by_id(conn: AsyncConnection, account_id: str):  # noqa: ANN201
    return (await conn.execute(select(accounts).where(accounts.c.id == account_id))).first()


# Whether an account is a business is the business capability's to say: it names its table's account id column
# when it is imported (cove.business.storage), and devices come with the flag from one outer join, so a send
# reads it with the cached devices rather than by a query of its own, and accounts imports no business module.
_business: list[Column] = []


def flag_businesses(account_id: Column) -> None:
    """A device's ``business`` flag is whether ``account_id``'s table has a row for its account."""
    _business[:] = [account_id]


def _with_business_flag() -> tuple[ColumnElement[bool], FromClause]:
    if not _business:
        return false().label("business"), devices
    (key,) = _business
    return key.isnot(None).label("business"), devices.outerjoin(key.table, key == devices.c.account_id)


# Which registered devices are the account's current ones is the devices capability's to say (its signed device
# list, cove.devices.storage): it names its tables when it is imported, as business does above.
_listing: list[Table] = []


def count_only_listed(lists: Table, members: Table) -> None:
    """An account's current devices are those named in its row of ``lists`` (device ids in ``members``), or all
    of its registered devices while it has no row there."""
    _listing[:] = [lists, members]


def _current() -> ColumnElement[bool]:
    if not _listing:
        return true()
    lists, members = _listing
    return or_(
        ~exists().where(lists.c.account_id == devices.c.account_id),
        exists().where(members.c.account_id == devices.c.account_id, members.c.device_id == devices.c.device_id),
    )


async def devices_of(conn: AsyncConnection, account_id: str, current_only: bool = True) -> list[DeviceRecord]:
    """The account's current devices (registered and named in its device list), or every registered one."""
    is_business, devices_and_business = _with_business_flag()
    rows = await conn.execute(
        select(
            devices.c.account_id,
            devices.c.device_id,
            devices.c.registration_id,
            devices.c.identity_curve25519,
            devices.c.identity_ed25519,
            is_business,
        )
        .select_from(devices_and_business)
        .where(devices.c.account_id == account_id, _current() if current_only else true())
        .order_by(devices.c.device_id)
    )
    return [DeviceRecord(*row) for row in rows]


async def device_by_token_hash(conn: AsyncConnection, token_hash: str) -> DeviceRecord | None:
    is_business, devices_and_business = _with_business_flag()
    row = (
        await conn.execute(
            select(
                devices.c.account_id,
                devices.c.device_id,
                devices.c.registration_id,
                devices.c.identity_curve25519,
                devices.c.identity_ed25519,
                is_business,
                devices.c.last_seen_at_ms,
            )
            .select_from(devices_and_business)
            .where(devices.c.token_hash == token_hash)
        )
    ).first()
    return DeviceRecord(*row) if row else None


async def touch_last_seen(conn: AsyncConnection, account_id: str, device_id: int, now_ms: int, stale_ms: int) -> bool:
    """Set the device's last seen to now if it is older than ``stale_ms``; ``updated_at_ms`` moves too when the
    UTC day of last seen changes (the export carries the day only). ``False`` when nothing was stale."""
    today_starts = now_ms - now_ms % 86_400_000
    result = await conn.execute(
        update(devices)
        .where(
            devices.c.account_id == account_id,
            devices.c.device_id == device_id,
            devices.c.last_seen_at_ms <= now_ms - stale_ms,
        )
        .values(
            last_seen_at_ms=now_ms,
            updated_at_ms=case((devices.c.last_seen_at_ms < today_starts, now_ms), else_=devices.c.updated_at_ms),
        )
    )
    return result.rowcount == 1
