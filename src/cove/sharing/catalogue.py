"""The catalogue: every field that can ever leave the messenger, where it is read from and how it is transformed.

This is the only place that names the messenger's columns the gateway may read. The source tables below are
declared column by column (lightweight ``table()`` clauses, not the full models), so a field can leave only if it
is listed here. Message tables, ciphertext and contact books are not declared and therefore cannot be selected;
``tests/test_sharing_boundary.py`` checks that every statement an export runs touches only :data:`READABLE_TABLES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import BigInteger, Integer, String, column, table

from cove.consent.categories import DataCategory
from cove.sharing import wire

accounts = table("accounts", column("id", String), column("phone_number", String), column("created_at_ms", BigInteger))
devices = table(
    "devices",
    column("account_id", String),
    column("device_id", Integer),
    column("device_model", String),
    column("os_name", String),
    column("os_version", String),
    column("app_version", String),
    column("vendor_device_id", String),
    column("updated_at_ms", BigInteger),
    column("last_seen_at_ms", BigInteger),
)
usage_daily = table(
    "usage_daily",
    column("account_id", String),
    column("day", Integer),
    column("messages_sent", Integer),
    column("messages_received", Integer),
    column("app_opens", Integer),
    column("updated_at_ms", BigInteger),
)
safety_verdicts = table(
    "safety_verdicts",
    column("account_id", String),
    column("reason_code", String),
    column("banned_at_ms", BigInteger),
    column("lifted_at_ms", BigInteger),
    column("updated_at_ms", BigInteger),
)

# The device whose details leave: multi-device is not built yet, so every account has its primary device.
PRIMARY_DEVICE_ID = 1

READABLE_TABLES = frozenset(
    {
        "accounts",
        "devices",
        "usage_daily",
        "safety_verdicts",
        # the consent state the permitted-set predicate reads
        "consent_accounts",
        "consent_purposes",
        "consent_policies",
        # the gateway's own bookkeeping
        "sharing_subjects",
        "sharing_batches",
        "sharing_held",
        "sharing_disclosures",
        "sharing_erasures",
        "sharing_revocations",  # written (each batch's revocations, per account), never read by an export
        "sharing_scope",  # the export's temporary table of accounts to re-check
    }
)


class Transform(StrEnum):
    AS_IS = "as_is"
    PHONE = "phone"  # a keyed hash per recipient, or the number itself for a purpose that is not pseudonymised
    DAY = "day"  # milliseconds coarsened to a calendar day (UTC)


@dataclass(frozen=True)
class Field:
    wire_name: str
    source: str  # "table.column"
    transform: Transform = Transform.AS_IS


FIELDS: dict[DataCategory, tuple[Field, ...]] = {
    DataCategory.PHONE_NUMBER: (Field("phone", "accounts.phone_number", Transform.PHONE),),
    DataCategory.ACCOUNT_CREATED: (Field("account_created_day", "accounts.created_at_ms", Transform.DAY),),
    DataCategory.LAST_SEEN_DAY: (Field("last_seen_day", "devices.last_seen_at_ms", Transform.DAY),),
    DataCategory.DEVICE_MODEL: (Field("device_model", "devices.device_model"),),
    DataCategory.DEVICE_OS: (Field("os_name", "devices.os_name"), Field("os_version", "devices.os_version")),
    DataCategory.APP_VERSION: (Field("app_version", "devices.app_version"),),
    DataCategory.VENDOR_DEVICE_ID: (Field("vendor_device_id", "devices.vendor_device_id"),),
    DataCategory.SAFETY_VERDICTS: (
        Field("reason_code", "safety_verdicts.reason_code"),
        Field("banned_day", "safety_verdicts.banned_at_ms", Transform.DAY),
    ),
    # Usage counters are rows per day, not profile fields: see usage_daily above and cove.sharing.gateway.
    DataCategory.USAGE_COUNTERS: (),
}


def fields_for(categories: list[DataCategory]) -> list[Field]:
    return [f for category in sorted(categories) for f in FIELDS[category]]


# The categories read from the primary device: a change to it (its ``updated_at_ms``, which also moves when
# last seen moves to a later day) makes an incremental batch resend the profile row.
DEVICE_READS = frozenset(
    {
        DataCategory.DEVICE_MODEL,
        DataCategory.DEVICE_OS,
        DataCategory.APP_VERSION,
        DataCategory.VENDOR_DEVICE_ID,
        DataCategory.LAST_SEEN_DAY,
    }
)

assert set(FIELDS) == set(DataCategory), "every data category needs catalogue fields"
assert {c.value for c in DataCategory} == wire.CATEGORIES, "the catalogue and the wire format name the same categories"
