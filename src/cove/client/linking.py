"""Linking and unlinking devices, and keeping the account's signed device list, over the relay.

A companion (not registered) opens a provisioning channel and shows its link code; the primary puts a sealed
message there (the account, a one-time link token, its identity keys, a reply key); the companion registers with
the token as a device of its own (its own identity keys and token; it never sees the primary's private keys) and
answers with its device id and keys, signed over the primary's key; the primary checks that answer against the
relay's record of the device and signs the next device list naming it. See cove.client.devices for the sealing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cove.client import crypto, devices, paths, trust
from cove.client.core import Request
from cove.client.devices import LINK, TO_COMPANION, TO_PRIMARY, LinkReply, Pin, Provisioning, ProvisioningError
from cove.protocol.device_list import PRIMARY_DEVICE_ID, DeviceList, ListedDevice
from cove.protocol.provisioning import link_code, parse_link_code

if TYPE_CHECKING:
    from cove.client.transport import CoveClient

# A channel lives 10 minutes and each wait is answered within about 20 s: this many waits outlast it.
MAX_WAITS = 40


class LinkError(Exception):
    """Linking cannot go on: said in one line to the user."""


@dataclass(frozen=True)
class PendingLink:
    """A companion's open channel: show ``code``, then :func:`finish_link`."""

    address: str
    secret: str
    key: X25519PrivateKey
    code: str


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _wait(client: CoveClient, request: Request) -> str:
    for _ in range(MAX_WAITS):
        body = await client.call(request)
        if body:
            return body["body"]
    raise LinkError("nothing came through the provisioning channel before it expired: start again")


# the primary ----------------------------------------------------------------------------------------------------
async def publish(client: CoveClient, device_list: list[ListedDevice], generation: int) -> DeviceList:
    """Sign and publish the account's next device list (the primary only) and trust it from now on."""
    core = client.core
    assert core.account_id is not None
    pin = trust.pin_of(core.store, core.account_id)
    version = pin.version + 1 if pin is not None and pin.generation == generation else 1
    listed = DeviceList(core.account_id, version, _now_ms(), tuple(device_list))
    request = core.device_list_upload(listed)
    await client.call(request)
    assert request.json is not None
    trust.save(
        core.store,
        core.account_id,
        Pin(generation, listed.primary.ed25519, version, request.json["list"], request.json["signature"]),
    )
    return listed


async def publish_first_list(client: CoveClient, generation: int) -> None:
    """Right after registering: the list that names this primary alone (version 1)."""
    curve25519, ed25519 = client.core.own_keys()
    await publish(client, [ListedDevice(PRIMARY_DEVICE_ID, curve25519, ed25519)], generation)


def _own_pin(client: CoveClient) -> Pin:
    core = client.core
    if core.device_id != PRIMARY_DEVICE_ID:
        raise LinkError("only the account's primary device (its phone, device 1) can do this")
    assert core.account_id is not None
    pin = trust.pin_of(core.store, core.account_id)
    if pin is None or pin.text is None:
        raise LinkError("this device has not published a device list yet: register it again")
    return pin


async def registered_devices(client: CoveClient) -> dict[str, Any]:
    """The relay's ``GET /v1/devices``: every registered device of the account and the stored list."""
    return await client.call(Request("GET", "/v1/devices"))


async def _republish(client: CoveClient, pin: Pin, add: ListedDevice | None = None) -> list[int]:
    """Publish a list of the devices still registered with their listed keys (plus ``add``); returns those dropped."""
    relay_view = {d["device_id"]: d for d in (await registered_devices(client))["devices"]}
    listed = pin.listed()
    assert listed is not None
    keep = [
        d
        for d in listed.devices
        if d.device_id in relay_view
        and (relay_view[d.device_id]["identity_curve25519"], relay_view[d.device_id]["identity_ed25519"])
        == (d.curve25519, d.ed25519)
    ]
    dropped = sorted(listed.device_ids() - {d.device_id for d in keep})
    if add is not None:
        keep = [d for d in keep if d.device_id != add.device_id] + [add]
    if dropped or add is not None:
        await publish(client, keep, pin.generation)
    return dropped


async def link_companion(client: CoveClient, code: str) -> int:
    """On the primary: link the device that shows ``code``; returns its device id once the new list is published."""
    pin = _own_pin(client)
    core = client.core
    address, companion_key = parse_link_code(code)
    token = await client.call(Request("POST", "/v1/devices/link-token"))
    reply_key = devices.new_key()
    curve25519, ed25519 = core.own_keys()
    assert core.account_id is not None
    message = Provisioning(
        core.account_id,
        core.phone_number or "",
        pin.generation,
        token["link_token"],
        curve25519,
        ed25519,
        devices.public_bytes(reply_key),
    )
    sealed = devices.seal(companion_key, message.to_json(), TO_COMPANION + address.encode())
    await client.call(Request("PUT", paths.build(paths.PROVISIONING, address=address), {"body": sealed}))
    answer = await _wait(client, Request("GET", paths.build(paths.PROVISIONING_REPLY, address=address)))
    try:
        reply = LinkReply.from_json(devices.open_sealed(reply_key, answer, TO_PRIMARY + address.encode()))
    except ProvisioningError as exc:
        raise LinkError(f"the new device's answer is not valid: {exc}") from exc
    statement = devices.link_statement(core.account_id, ed25519)
    if not crypto.verify_key_signature(reply.ed25519, LINK, statement, reply.signature):
        raise LinkError("the new device's answer is not signed by the key it names: it was not linked")
    relay_view = {d["device_id"]: d for d in (await registered_devices(client))["devices"]}
    recorded = relay_view.get(reply.device_id)
    if recorded is None or (recorded["identity_curve25519"], recorded["identity_ed25519"]) != (
        reply.curve25519,
        reply.ed25519,
    ):
        raise LinkError("the relay's record of the new device does not match what the device said: not trusted")
    await _republish(client, pin, ListedDevice(reply.device_id, reply.curve25519, reply.ed25519))
    return reply.device_id


async def unlink_companion(client: CoveClient, device_id: int) -> None:
    """On the primary: remove a linked device and publish a list without it."""
    pin = _own_pin(client)
    await client.call(Request("DELETE", paths.build(paths.DEVICE, device_id=str(device_id))))
    await _republish(client, pin)


async def reconcile(client: CoveClient) -> list[int]:
    """On the primary: drop from the list the devices that unlinked themselves; returns their ids."""
    core = client.core
    pin = trust.pin_of(core.store, core.account_id) if core.account_id else None
    if core.device_id != PRIMARY_DEVICE_ID or pin is None or pin.text is None:
        return []
    return await _republish(client, pin)


# the companion --------------------------------------------------------------------------------------------------
async def open_link(client: CoveClient) -> PendingLink:
    """On the new device: open a provisioning channel; show the returned code to the primary."""
    if client.core.token:
        raise LinkError("this profile is already registered: link a new profile instead")
    channel = await client.call(Request("POST", "/v1/provisioning"))
    key = devices.new_key()
    return PendingLink(
        channel["address"], channel["secret"], key, link_code(channel["address"], devices.public_bytes(key))
    )


async def finish_link(client: CoveClient, pending: PendingLink) -> dict[str, Any]:
    """On the new device: wait for the primary, register as its companion, publish keys, answer. Returns the
    registration (``account_id``, ``device_id``...)."""
    core = client.core
    secret = {"Authorization": f"Provisioning {pending.secret}"}
    address = pending.address
    sealed = await _wait(client, Request("GET", paths.build(paths.PROVISIONING, address=address), headers=secret))
    try:
        message = Provisioning.from_json(devices.open_sealed(pending.key, sealed, TO_COMPANION + address.encode()))
    except ProvisioningError as exc:
        raise LinkError(f"the primary's message is not valid: {exc}") from exc
    registered = await client.call(
        Request("POST", "/v1/devices/link", {"link_token": message.link_token, **core.new_identity()})
    )
    if registered["account_id"] != message.account_id:
        raise LinkError("the relay linked this device to another account than the primary's")
    core.registered(registered)
    core.registered_phone(message.phone_number)
    # The primary's key comes from the primary itself: every device list of the account must verify under it.
    trust.save(
        core.store, message.account_id, Pin(registered["identity_generation"], message.primary_ed25519, 0, None, None)
    )
    await client.refill_keys(force_fallback=True)
    curve25519, ed25519 = core.own_keys()
    statement = devices.link_statement(message.account_id, message.primary_ed25519)
    reply = LinkReply(registered["device_id"], curve25519, ed25519, core.sign(LINK, statement))
    body = {"body": devices.seal(message.reply_key, reply.to_json(), TO_PRIMARY + address.encode())}
    await client.call(Request("PUT", paths.build(paths.PROVISIONING_REPLY, address=address), body, headers=secret))
    return registered


async def leave(client: CoveClient) -> None:
    """On a companion: unlink this device; the primary drops it from the list when it next talks to the relay."""
    if client.core.device_id == PRIMARY_DEVICE_ID:
        raise LinkError("the primary cannot unlink itself: unlink the other devices, or delete the account")
    await client.call(Request("DELETE", "/v1/devices/current"))
