"""Users' identity as businesses see it, as pure rules: the business-scoped user id's format (Meta's BSUID: the
ISO 3166 alpha-2 code of the user's number, a period, digits) and the name and number a user chose to show.

:mod:`cove.business.keys` computes an id with the relay's key; the format is here so that the migration of stored
ids (0018) and the key agree on it without the key.
"""

from __future__ import annotations

import base64
import re

import phonenumbers

#: The region of a number that belongs to no country, or that cannot be read: the code phonenumbers itself uses
#: for "unknown region", a user-assigned one in ISO 3166 (so it names no real country).
UNKNOWN_REGION = "ZZ"
BSUID_DIGITS = 20  # 64 bits in decimal: at most 18,446,744,073,709,551,615
NAME_MAX = 64  # what a user shows a business as their name: a profile name, not a paragraph

_REGION = re.compile(r"^[A-Z]{2}$")


def region_of(phone_number: str) -> str:
    """The ISO 3166 alpha-2 code of the country a number belongs to. A number valid for no region (a test range,
    a reserved block) gets its calling code's main country (``+1 555…`` is ``US``); a non-geographic calling code
    (``+800``, the ``001`` pseudo-region) or an unreadable number gets :data:`UNKNOWN_REGION`."""
    try:
        parsed = phonenumbers.parse(phone_number if phone_number.startswith("+") else "+" + phone_number, None)
    except phonenumbers.NumberParseException:
        return UNKNOWN_REGION
    region = phonenumbers.region_code_for_number(parsed) or phonenumbers.region_code_for_country_code(
        parsed.country_code or 0
    )
    return region if region and _REGION.match(region) else UNKNOWN_REGION


def bsuid_from_digest(phone_number: str, digest: bytes) -> str:
    """The id from an HMAC digest: the number's region, a period, the digest's first 64 bits in 20 digits."""
    if len(digest) < 8:
        raise ValueError("a business-scoped user id needs at least 64 bits of digest")
    return f"{region_of(phone_number)}.{int.from_bytes(digest[:8], 'big'):0{BSUID_DIGITS}d}"


def bsuid_from_legacy(legacy: str, phone_number: str) -> str:
    """The id in Meta's format for an id the relay gave before it (``CC.`` and 20 bytes of the same HMAC in
    base32): the same HMAC bits, so the pair keeps an id derived from the key, only written differently."""
    if not legacy.startswith("CC."):
        raise ValueError("not a legacy per-business user id")
    raw = legacy[3:]
    digest = base64.b32decode(raw + "=" * (-len(raw) % 8))
    return bsuid_from_digest(phone_number, digest)


def shown_name(name: str) -> str:
    """A name a user shows businesses, normalised: one line of printable text, surrounding spaces removed, at
    most :data:`NAME_MAX` characters. Raises ValueError if nothing is left or it is too long."""
    cleaned = " ".join(name.split())
    if not cleaned or not cleaned.isprintable():
        raise ValueError("a name needs printable characters")
    if len(cleaned) > NAME_MAX:
        raise ValueError(f"a name has at most {NAME_MAX} characters")
    return cleaned


def wa_id_of_number(phone_number: str) -> str:
    """A number as the Cloud API writes a ``wa_id``: its digits, without the ``+``."""
    return phone_number.lstrip("+")
