"""Which devices of an account this client encrypts to and accepts messages from: those the account's verified
device list names with the keys the relay reports for them (cove.client.devices judges each served list).

Until an account has a list (a primary that registered before lists, or between its registration and its first
upload), only its primary, device 1, is trusted: the relay cannot slip a companion in by adding a device row.
"""

from __future__ import annotations

from typing import Any

from cove.client.devices import Pin, judge
from cove.client.events import DeviceListRefused, DevicesChanged, Event
from cove.client.store import ClientStore, PeerDevice
from cove.protocol.device_list import PRIMARY_DEVICE_ID, DeviceList, parse


def pin_of(store: ClientStore, account_id: str) -> Pin | None:
    row = store.device_pin(account_id)
    return Pin(*row) if row else None


def save(store: ClientStore, account_id: str, pin: Pin) -> None:
    store.save_device_pin(account_id, pin.generation, pin.primary_ed25519, pin.version, pin.text, pin.signature)


def _listed(pin: Pin | None) -> DeviceList | None:
    # Stored only once verified: reading it back needs no second signature check.
    return parse(pin.text) if pin is not None and pin.text is not None else None


def accept(store: ClientStore, account_id: str, generation: int, served: dict[str, Any] | None) -> list[Event]:
    """Judge the list the relay served with an account's identity; keep it if it may replace the trusted one."""
    old = pin_of(store, account_id)
    verdict = judge(account_id, old, generation, served)
    if verdict.refused is not None:
        return [DeviceListRefused(account_id, verdict.refused)]
    new = verdict.pin
    if new is None:
        if old is not None:
            store.drop_device_pin(account_id)
        return []
    if new == old:
        return []
    save(store, account_id, new)
    before, after = _listed(old), _listed(new)
    if before is None or after is None or old is None or old.generation != new.generation:
        return []
    added, removed = sorted(after.device_ids() - before.device_ids()), sorted(before.device_ids() - after.device_ids())
    return [DevicesChanged(account_id, added, removed)] if added or removed else []


def trusted(store: ClientStore, account_id: str) -> dict[int, PeerDevice]:
    """The account's devices this client may encrypt to: named in its verified list with the keys the relay gave."""
    known = store.peer_devices(account_id)
    pin = pin_of(store, account_id)
    listed = _listed(pin)
    if listed is None:
        primary = known.get(PRIMARY_DEVICE_ID)
        if primary is None or (pin is not None and primary.ed25519 != pin.primary_ed25519):
            return {}
        return {PRIMARY_DEVICE_ID: primary}
    return {
        d.device_id: known[d.device_id]
        for d in listed.devices
        if d.device_id in known
        and (known[d.device_id].curve25519, known[d.device_id].ed25519) == (d.curve25519, d.ed25519)
    }
