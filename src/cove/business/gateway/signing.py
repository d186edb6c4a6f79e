"""Webhook signatures: the two headers every POST carries, the receiver-side checks, and the GET handshake URL.

- ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>`` is Meta's header, kept verbatim so
  receivers written for the WhatsApp Cloud API work unchanged (Meta's webhooks overview).
- ``X-Cove-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(app secret, "<t>." + raw body)>`` also covers the
  time, so a captured request cannot be replayed later (the Stripe/Slack scheme).

Both are computed over the exact bytes sent: receivers that re-serialise the parsed JSON before checking get
a different MAC (a common receiver bug), so the checks here take the raw body too. The checks compare in constant time
and answer False, never raise, on a missing or malformed header.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode, urlsplit, urlunsplit

HUB_PREFIX = "sha256="
TOLERANCE_S = 300  # how old (or how far ahead) a timestamped signature may be; Stripe's default


def _mac(secret: bytes, message: bytes) -> str:
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def hub_signature(secret: bytes, body: bytes) -> str:
    return HUB_PREFIX + _mac(secret, body)


def timestamped_signature(secret: bytes, body: bytes, timestamp_s: int) -> str:
    return f"t={timestamp_s},v1={_mac(secret, f'{timestamp_s}.'.encode() + body)}"


def headers(secret: bytes, body: bytes, event_id: str, attempt: int, timestamp_s: int) -> dict[str, str]:
    """The headers of one delivery attempt (``attempt`` counts from 1, so a receiver can see retries)."""
    return {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": hub_signature(secret, body),
        "X-Cove-Signature": timestamped_signature(secret, body, timestamp_s),
        "X-Cove-Event-Id": event_id,
        "X-Cove-Delivery-Attempt": str(attempt),
    }


def _same(expected: str, given: str) -> bool:
    # compare_digest raises on non-ASCII str, and a header is attacker-controlled
    return given.isascii() and hmac.compare_digest(expected, given)


def verify_hub_signature(secret: bytes, body: bytes, header_value: str | None) -> bool:
    return header_value is not None and _same(hub_signature(secret, body), header_value)


def verify_timestamped(
    secret: bytes, body: bytes, header_value: str | None, now_s: int, tolerance_s: int = TOLERANCE_S
) -> bool:
    """True for a correct MAC whose timestamp is within ``tolerance_s`` of the receiver's clock, either way."""
    if header_value is None:
        return False
    fields = dict(part.split("=", 1) for part in header_value.split(",") if "=" in part)
    timestamp, mac = fields.get("t", ""), fields.get("v1")
    # isdigit alone also accepts non-ASCII digits, which int() would then parse
    if mac is None or not (timestamp.isascii() and timestamp.isdigit()):
        return False
    if abs(now_s - int(timestamp)) > tolerance_s:
        return False
    return _same(_mac(secret, f"{timestamp}.".encode() + body), mac)


def verification_url(url: str, verify_token: str, challenge: str) -> str:
    """The GET that proves the endpoint is the business's: it must echo ``hub.challenge`` (Meta's handshake)."""
    parts = urlsplit(url)
    handshake = urlencode({"hub.mode": "subscribe", "hub.verify_token": verify_token, "hub.challenge": challenge})
    query = f"{parts.query}&{handshake}" if parts.query else handshake
    return urlunsplit(parts._replace(query=query))
