"""Linking a companion device: the link code it shows, and the syntax of the relay's provisioning channels.

The companion opens a channel (``POST /v1/provisioning``: an ``address`` and a ``secret``) and shows
``cove-link:1:<address>:<ephemeral X25519 public key, unpadded base64url>`` (as a QR code, or text in the CLI).
The primary encrypts the account's details to that key and puts them in the channel; the companion answers
through the channel's reply slot. The relay stores both sealed: it cannot read them (cove.client.devices).
"""

from __future__ import annotations

import base64
import binascii
import re

LINK_CODE_PREFIX = "cove-link:1:"
ADDRESS = re.compile(r"^[0-9a-f]{32}$")
ADDRESS_PATTERN = ADDRESS.pattern
MAX_SEALED_CHARS = 16 * 1024  # a provisioning message or reply, sealed and base64: about 1 KiB in practice
MAX_LINK_CODE_CHARS = 128
PUBLIC_KEY_BYTES = 32


class InvalidLinkCode(ValueError):
    pass


def link_code(address: str, public_key: bytes) -> str:
    key = base64.urlsafe_b64encode(public_key).decode().rstrip("=")
    return f"{LINK_CODE_PREFIX}{address}:{key}"


def parse_link_code(code: str) -> tuple[str, bytes]:
    """``(address, ephemeral public key)`` of a link code; raises InvalidLinkCode."""
    code = code.strip()
    if len(code) > MAX_LINK_CODE_CHARS or not code.startswith(LINK_CODE_PREFIX):
        raise InvalidLinkCode(f"a link code starts with {LINK_CODE_PREFIX!r}; copy it whole from the new device")
    address, _, key = code[len(LINK_CODE_PREFIX) :].partition(":")
    if not ADDRESS.fullmatch(address):
        raise InvalidLinkCode("the link code's address is not 32 hex digits")
    try:
        public_key = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidLinkCode("the link code's key is not base64url") from exc
    if len(public_key) != PUBLIC_KEY_BYTES or not re.fullmatch(r"[A-Za-z0-9_-]+", key):
        raise InvalidLinkCode("the link code's key is not a 32-byte key")
    return address, public_key
