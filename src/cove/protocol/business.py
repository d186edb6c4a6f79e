"""The business vocabulary a user's client and the relay share: template categories, where a user opted in, and
why a user blocked a business (cove.business.optin holds the rules that read them)."""

from __future__ import annotations

from enum import StrEnum


class Category(StrEnum):
    """Template categories (Meta's templates overview); free-form messages have none."""

    MARKETING = "marketing"
    UTILITY = "utility"
    AUTHENTICATION = "authentication"


class OptInSource(StrEnum):
    """Where the user agreed; any channel counts if it names the business (Meta's opt-in page)."""

    WEB = "web"
    SMS = "sms"
    IVR = "ivr"
    IN_THREAD = "in_thread"
    QR = "qr"
    EMAIL = "email"


class BlockReason(StrEnum):
    """The reasons a user may give when blocking (WhatsApp's help centre); they weigh differently in the quality
    rating."""

    DIDNT_SIGN_UP = "didnt_sign_up"
    SPAM = "spam"
    NO_LONGER_NEEDED = "no_longer_needed"
    OFFENSIVE = "offensive"
    OTHER = "other"
