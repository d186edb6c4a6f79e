"""The catalogue of data categories that may ever leave the messenger (../shared/VISION.md).

Message content, ciphertext, contact books of non-users and group membership are deliberately absent:
no policy can name them, so no purpose can ever declare them.
"""

from __future__ import annotations

from enum import StrEnum


class DataCategory(StrEnum):
    PHONE_NUMBER = "contact.phone_number"
    ACCOUNT_CREATED = "behaviour.account_created"
    LAST_SEEN_DAY = "behaviour.last_seen_day"
    DEVICE_MODEL = "device.model"
    DEVICE_OS = "device.os"
    APP_VERSION = "device.app_version"
    VENDOR_DEVICE_ID = "device.vendor_device_id"
    USAGE_COUNTERS = "analytics.usage_counters"
    SAFETY_VERDICTS = "safety.verdicts"


# "Account information" in the 2016 sense: everything about the account short of safety verdicts.
ACCOUNT_INFORMATION = frozenset(
    {
        DataCategory.PHONE_NUMBER,
        DataCategory.ACCOUNT_CREATED,
        DataCategory.LAST_SEEN_DAY,
        DataCategory.DEVICE_MODEL,
        DataCategory.DEVICE_OS,
        DataCategory.APP_VERSION,
        DataCategory.VENDOR_DEVICE_ID,
        DataCategory.USAGE_COUNTERS,
    }
)
