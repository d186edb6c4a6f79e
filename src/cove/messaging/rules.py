"""Pure send rules: does a send address exactly the recipient's current devices, and is it small enough?"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cove.errors import ApiError


@dataclass(frozen=True)
class DeviceCheck:
    missing: list[int]
    extra: list[int]
    stale: list[int]


def check_devices(
    registered: Mapping[int, int], addressed: Mapping[int, int], sending_device: int | None = None
) -> DeviceCheck:
    """Compare ``device_id -> registration_id`` maps.

    ``registered`` is what the recipient account has now, ``addressed`` what the sender encrypted for.
    When a user sends to their own account the sending device is neither required nor allowed.
    """
    expected = {d: r for d, r in registered.items() if d != sending_device}
    missing = sorted(set(expected) - set(addressed))
    extra = sorted(set(addressed) - set(expected))
    stale = sorted(d for d, reg in addressed.items() if d in expected and expected[d] != reg)
    return DeviceCheck(missing, extra, stale)


def raise_for_mismatch(check: DeviceCheck) -> None:
    """409 when the set of devices is wrong, 410 when a device was reinstalled (new registration id)."""
    if check.missing or check.extra:
        raise ApiError(
            409,
            "device_mismatch",
            "the message does not address exactly the recipient's devices; fetch their keys and retry",
            missing_devices=check.missing,
            extra_devices=check.extra,
        )
    if check.stale:
        raise ApiError(
            410,
            "stale_devices",
            "some devices were reinstalled; drop their sessions, fetch new keys and retry",
            stale_devices=check.stale,
        )


def check_size(body_length: int, limit: int) -> None:
    if body_length > limit:
        raise ApiError(413, "message_too_large", f"a ciphertext may be at most {limit} bytes, got {body_length}")
