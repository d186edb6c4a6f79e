"""E.164 phone numbers: the one place a user-typed number becomes an account key."""

from __future__ import annotations

import phonenumbers

from cove.errors import ApiError

INTERNATIONAL_FORMAT = "write the number in international format, with + and the country code, like +14155550101"


def normalise(raw: str, default_region: str | None = None) -> str:
    """Return ``raw`` in E.164 form, or raise ``invalid_phone_number`` saying why."""
    try:
        parsed = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as exc:
        raise ApiError(400, "invalid_phone_number", f"{raw!r} is not a phone number: {INTERNATIONAL_FORMAT}") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise ApiError(
            400,
            "invalid_phone_number",
            f"{raw!r} is not a valid number for its country (use +<country><number>)",
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def try_normalise(raw: str, default_region: str | None = None) -> str | None:
    try:
        return normalise(raw, default_region)
    except ApiError:
        return None
