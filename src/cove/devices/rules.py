"""Pure rules of linked devices: may this device list replace the stored one, and which device id a companion
gets. They raise their own exceptions; cove.devices.routes turns them into HTTP errors."""

from __future__ import annotations

from collections.abc import Mapping

from cove.protocol.device_list import PRIMARY_DEVICE_ID, DeviceList, InvalidDeviceList, verify


class DeviceRuleError(Exception):
    status = 400
    code = "invalid_device_list"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.details = details


class BadDeviceList(DeviceRuleError):
    pass


class StaleDeviceList(DeviceRuleError):
    status = 409
    code = "stale_version"


class UnknownDevice(DeviceRuleError):
    code = "unknown_device"


class TooManyDevices(DeviceRuleError):
    status = 409
    code = "too_many_devices"


def check_list(
    text: str,
    signature: str,
    account_id: str,
    registered: Mapping[int, tuple[str, str]],
    stored_version: int | None,
    max_companions: int,
) -> DeviceList:
    """The list, if the account's primary signed it for this account, it is newer than the stored one and it names
    only registered devices with the keys they registered (``registered``: device id -> (curve25519, ed25519))."""
    primary = registered.get(PRIMARY_DEVICE_ID)
    if primary is None:
        raise BadDeviceList("the account has no primary device")
    try:
        listed = verify(text, signature, signer_ed25519=primary[1])
    except InvalidDeviceList as exc:
        raise BadDeviceList(str(exc)) from exc
    if listed.account_id != account_id:
        raise BadDeviceList("the device list is for another account")
    if stored_version is not None and listed.version <= stored_version:
        raise StaleDeviceList(
            f"the stored device list has version {stored_version}: sign version {stored_version + 1} or later",
            version=stored_version,
        )
    if len(listed.devices) > 1 + max_companions:
        raise TooManyDevices(f"an account has at most {max_companions} linked devices besides its primary")
    for device in listed.devices:
        if registered.get(device.device_id) != (device.curve25519, device.ed25519):
            raise UnknownDevice(
                f"device {device.device_id} is not registered with these keys", device_id=device.device_id
            )
    return listed


def next_device_id(used: set[int], max_companions: int) -> int:
    """The lowest free companion id (2 and up); raises TooManyDevices when the account has the maximum."""
    companions = {d for d in used if d != PRIMARY_DEVICE_ID}
    if len(companions) >= max_companions:
        raise TooManyDevices(f"this account already has {max_companions} linked devices: unlink one first")
    return next(d for d in range(PRIMARY_DEVICE_ID + 1, PRIMARY_DEVICE_ID + 2 + max_companions) if d not in used)
