"""The pure parts of linked devices: the signed list's format, which served list a client may trust, the relay's
rules for a new list and device ids, and the provisioning channel's sealing."""

from __future__ import annotations

import json

import pytest
import vodozemac as vz

from cove.client import devices as sealing
from cove.client.devices import Pin, judge
from cove.devices import rules
from cove.protocol.device_list import DEVICE_LIST, DeviceList, InvalidDeviceList, ListedDevice, parse, verify
from cove.protocol.provisioning import InvalidLinkCode, link_code, parse_link_code

ACCOUNT = "2f1c6a8e-4a4b-4c1e-9a53-0d1f3c5e7b9a"


def _device(device_id: int, account: vz.Account) -> ListedDevice:
    return ListedDevice(device_id, account.curve25519_key.to_base64(), account.ed25519_key.to_base64())


def _signed(primary: vz.Account, listed: DeviceList, signer: vz.Account | None = None) -> dict[str, str]:
    text = listed.canonical()
    signature = (signer or primary).sign(f"cove:v1:{DEVICE_LIST}:{text}".encode()).to_base64()
    return {"list": text, "signature": signature}


@pytest.fixture
def phone() -> vz.Account:
    return vz.Account()


@pytest.fixture
def laptop() -> vz.Account:
    return vz.Account()


def test_a_list_reads_back_only_in_its_canonical_form(phone):
    listed = DeviceList(ACCOUNT, 3, 1700000000000, (_device(1, phone),))
    assert parse(listed.canonical()) == listed
    spaced = json.dumps(json.loads(listed.canonical()), sort_keys=True)
    with pytest.raises(InvalidDeviceList, match="canonical"):
        parse(spaced)


@pytest.mark.parametrize(
    "change",
    [
        lambda body: body["devices"].reverse(),  # device 1 not first
        lambda body: body["devices"].append(dict(body["devices"][0])),  # a device named twice
        lambda body: body.update(version=0),
        lambda body: body.update(extra=1),
        lambda body: body["devices"][0].update(curve25519="short"),
        lambda body: body.update(version=True),
    ],
)
def test_a_malformed_list_is_refused(phone, laptop, change):
    body = json.loads(DeviceList(ACCOUNT, 1, 1, (_device(1, phone), _device(2, laptop))).canonical())
    change(body)
    with pytest.raises(InvalidDeviceList):
        parse(json.dumps(body, sort_keys=True, separators=(",", ":")))


def test_a_list_verifies_under_its_primary_and_no_other_key(phone, laptop):
    served = _signed(phone, DeviceList(ACCOUNT, 1, 1, (_device(1, phone), _device(2, laptop))))
    assert verify(served["list"], served["signature"]).version == 1
    with pytest.raises(InvalidDeviceList, match="signature"):
        verify(served["list"], served["signature"], laptop.ed25519_key.to_base64())
    forged = _signed(phone, DeviceList(ACCOUNT, 1, 1, (_device(1, phone),)), signer=laptop)
    with pytest.raises(InvalidDeviceList, match="signature"):
        verify(forged["list"], forged["signature"])


def test_the_first_list_pins_the_key_later_ones_must_match_it_and_not_go_back(phone, laptop):
    v1 = _signed(phone, DeviceList(ACCOUNT, 1, 1, (_device(1, phone),)))
    first = judge(ACCOUNT, None, 1, v1)
    assert first.refused is None and first.pin.primary_ed25519 == phone.ed25519_key.to_base64()
    v2 = _signed(phone, DeviceList(ACCOUNT, 2, 2, (_device(1, phone), _device(2, laptop))))
    second = judge(ACCOUNT, first.pin, 1, v2)
    assert second.refused is None and second.pin.version == 2

    assert judge(ACCOUNT, second.pin, 1, v1).refused.startswith("the served device list (version 1) is older")
    impostor = vz.Account()
    taken_over = _signed(impostor, DeviceList(ACCOUNT, 3, 3, (_device(1, impostor),)))
    assert "signature" in judge(ACCOUNT, second.pin, 1, taken_over).refused
    assert judge(ACCOUNT, second.pin, 1, None).refused == "the relay withheld the account's signed device list"
    assert "another account" in judge("someone-else", None, 1, v1).refused
    # A new phone (a higher identity generation) may bring a new key and start again at version 1.
    assert judge(ACCOUNT, second.pin, 2, taken_over).pin.primary_ed25519 == impostor.ed25519_key.to_base64()
    assert "older than" in judge(ACCOUNT, second.pin, 0, v2).refused


def test_a_companion_pinned_by_its_primary_trusts_only_lists_that_primary_signed(phone, laptop):
    pinned = Pin(1, phone.ed25519_key.to_base64(), 0, None, None)
    impostor = vz.Account()
    assert (
        "signature"
        in judge(ACCOUNT, pinned, 1, _signed(impostor, DeviceList(ACCOUNT, 1, 1, (_device(1, impostor),)))).refused
    )
    assert judge(ACCOUNT, pinned, 1, _signed(phone, DeviceList(ACCOUNT, 1, 1, (_device(1, phone),)))).refused is None


def test_the_relay_takes_a_newer_list_of_registered_devices_signed_by_the_primary(phone, laptop):
    registered = {1: (_device(1, phone).curve25519, _device(1, phone).ed25519)}
    served = _signed(phone, DeviceList(ACCOUNT, 2, 1, (_device(1, phone), _device(2, laptop))))
    with pytest.raises(rules.UnknownDevice):
        rules.check_list(served["list"], served["signature"], ACCOUNT, registered, 1, 4)
    registered[2] = (_device(2, laptop).curve25519, _device(2, laptop).ed25519)
    assert rules.check_list(served["list"], served["signature"], ACCOUNT, registered, 1, 4).version == 2
    with pytest.raises(rules.StaleDeviceList):
        rules.check_list(served["list"], served["signature"], ACCOUNT, registered, 2, 4)
    with pytest.raises(rules.TooManyDevices):
        rules.check_list(served["list"], served["signature"], ACCOUNT, registered, 1, 0)
    with pytest.raises(rules.BadDeviceList):
        rules.check_list(served["list"], served["signature"], "another", registered, 1, 4)


def test_a_companion_gets_the_lowest_free_id_up_to_the_maximum():
    assert rules.next_device_id({1}, 4) == 2
    assert rules.next_device_id({1, 2, 4}, 4) == 3
    with pytest.raises(rules.TooManyDevices):
        rules.next_device_id({1, 2, 3, 4, 5}, 4)


def test_a_sealed_message_opens_only_with_its_key_channel_and_direction():
    key = sealing.new_key()
    context = sealing.TO_COMPANION + b"0" * 32
    sealed = sealing.seal(sealing.public_bytes(key), {"secret": "x"}, context)
    assert sealing.open_sealed(key, sealed, context) == {"secret": "x"}
    for wrong_key, wrong_context in (
        (sealing.new_key(), context),
        (key, sealing.TO_PRIMARY + b"0" * 32),
        (key, sealing.TO_COMPANION + b"1" * 32),
    ):
        with pytest.raises(sealing.ProvisioningError):
            sealing.open_sealed(wrong_key, sealed, wrong_context)
    with pytest.raises(sealing.ProvisioningError):
        sealing.open_sealed(key, "not base64!", context)


def test_a_link_code_carries_the_address_and_key_and_nothing_else_passes():
    key = sealing.public_bytes(sealing.new_key())
    code = link_code("ab" * 16, key)
    assert parse_link_code(code) == ("ab" * 16, key)
    for bad in ("cove-link:2:" + code[12:], code.replace("ab", "AB", 1), code[:-2], code + "A", "x" * 500):
        with pytest.raises(InvalidLinkCode):
            parse_link_code(bad)
