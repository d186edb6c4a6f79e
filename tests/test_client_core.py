"""The sans-I/O client core, driven by hand-made relay answers: no sockets, no server."""

from __future__ import annotations

import os

import pytest
import vodozemac

from cove.client.core import ClientCore, IdentityChanged, PayloadReceived
from cove.client.events import (
    Delivered,
    MessageReceived,
    QueueEmpty,
    Read,
    RequestReceived,
    TemplateReceived,
    Undecryptable,
)
from cove.client.store import ClientStore
from helpers import texts

INFO = {"model": "test", "os_name": "TestOS", "os_version": "1", "app_version": "0"}


class FakeRelay:
    """Just enough of the relay's answers, computed from the cores' own requests."""

    def __init__(self) -> None:
        self.devices: dict[str, dict] = {}
        self.one_time_keys: dict[str, list[dict]] = {}
        self.generation: dict[str, int] = {}
        self.next_envelope = 0

    def register(self, core: ClientCore, account_id: str) -> None:
        request = core.registration("+14155550100", "000000")
        body = request.json
        self.generation[account_id] = self.generation.get(account_id, 0) + 1
        self.devices[account_id] = {
            "device_id": 1,
            "registration_id": body["registration_id"],
            "identity_curve25519": body["identity_key"]["curve25519"],
            "identity_ed25519": body["identity_key"]["ed25519"],
        }
        core.registered({"account_id": account_id, "device_id": 1, "token": f"token-{account_id}"})
        upload = core.key_upload(0, has_fallback=False)
        self.one_time_keys[account_id] = list(upload.json["one_time_keys"])
        core.keys_uploaded()

    def identity(self, account_id: str) -> dict:
        return {
            "account_id": account_id,
            "identity_generation": self.generation[account_id],
            "identity_changed_at": None,
            "devices": [self.devices[account_id]],
        }

    def bundles(self, account_id: str) -> dict:
        key = self.one_time_keys[account_id].pop(0)
        device = {**self.devices[account_id], "one_time_key": key, "is_fallback": False}
        return {**self.identity(account_id), "devices": [device]}

    def deliver(self, sender: ClientCore, request_json: dict) -> dict:
        self.next_envelope += 1
        message = request_json["messages"][0]
        return {
            "type": "envelope",
            "id": self.next_envelope,
            "kind": message["kind"],
            "sender": sender.account_id,
            "sender_device": sender.device_id,
            "client_message_id": request_json["client_message_id"],
            "body": message["body"],
            "server_ts": 0,
        }


def make_core(tmp_path, name: str, key: bytes | None = None) -> ClientCore:
    return ClientCore(ClientStore(tmp_path / f"{name}.db"), key or os.urandom(32), INFO)


def send(relay: FakeRelay, sender: ClientCore, recipient: str, text: str) -> dict:
    missing = sender.devices_without_session(recipient)
    if missing is None:
        sender.identity_received(relay.identity(recipient))
        missing = sender.devices_without_session(recipient)
    if missing:
        sender.bundles_received(relay.bundles(recipient))
    outgoing = sender.compose_text(recipient, text)
    request = sender.encrypt(outgoing)
    sender.sent(outgoing)
    return relay.deliver(sender, request.json)


def receive(relay: FakeRelay, core: ClientCore, frame: dict):
    received = core.receive(frame)
    if received.need_identity:
        core.identity_received(relay.identity(received.need_identity))
        received = core.receive(frame, identity_refreshed=True)
    return received


@pytest.fixture
def pair(tmp_path):
    relay = FakeRelay()
    alice, bob = make_core(tmp_path, "alice"), make_core(tmp_path, "bob")
    relay.register(alice, "alice")
    relay.register(bob, "bob")
    return relay, alice, bob


def test_two_cores_talk_through_hand_made_frames(pair):
    relay, alice, bob = pair
    first = receive(relay, bob, send(relay, alice, "bob", "hello from a pre-key message"))
    assert [e.text for e in first.events if isinstance(e, MessageReceived)] == ["hello from a pre-key message"]
    assert first.ack_ids == [1]

    reply = receive(relay, alice, send(relay, bob, "alice", "and back"))
    assert [e.text for e in reply.events if isinstance(e, MessageReceived)] == ["and back"]
    again = receive(relay, bob, send(relay, alice, "bob", "a normal Olm message now"))
    assert [e.text for e in again.events if isinstance(e, MessageReceived)] == ["a normal Olm message now"]


def test_a_redelivered_envelope_is_acked_without_being_decrypted_again(pair):
    relay, alice, bob = pair
    frame = send(relay, alice, "bob", "once")
    assert len(receive(relay, bob, frame).events) == 1
    repeat = bob.receive(frame)
    assert repeat.events == [] and repeat.ack_ids == [frame["id"]]


def test_a_tampered_ciphertext_is_reported_and_acked_not_retried_forever(pair):
    relay, alice, bob = pair
    receive(relay, bob, send(relay, alice, "bob", "establish"))
    frame = send(relay, alice, "bob", "will be corrupted")
    frame["body"] = frame["body"][:-8] + "AAAAAAA="
    result = receive(relay, bob, frame)
    assert [type(e) for e in result.events] == [Undecryptable] and result.ack_ids == [frame["id"]]


def test_delivery_receipts_and_queue_empty_become_events(pair):
    relay, alice, bob = pair
    frame = send(relay, alice, "bob", "track me")
    receipt = {"type": "envelope", "id": 99, "kind": 5, "sender": "bob", "sender_device": 1,
               "client_message_id": frame["client_message_id"], "body": "", "server_ts": 0}  # fmt: skip
    assert alice.receive(receipt).events == [Delivered("bob", frame["client_message_id"])]
    assert alice.store.messages()[0].status == "delivered"
    assert alice.receive({"type": "queue_empty"}).events == [QueueEmpty()]


def test_a_higher_identity_generation_drops_sessions_and_warns(pair, tmp_path):
    relay, alice, bob = pair
    receive(relay, bob, send(relay, alice, "bob", "to the old phone"))
    new_bob = make_core(tmp_path, "bob-new")
    relay.register(new_bob, "bob")
    events = alice.identity_received(relay.identity("bob"))
    assert events == [IdentityChanged("bob", 2)]
    assert alice.devices_without_session("bob") == [1]
    frame = send(relay, alice, "bob", "to the new phone")
    assert [e.text for e in receive(relay, new_bob, frame).events] == ["to the new phone"]


def test_a_410_drops_the_stale_session_so_the_next_attempt_fetches_keys(pair):
    relay, alice, _ = pair
    send(relay, alice, "bob", "opens a session")
    assert alice.devices_without_session("bob") == []
    alice.send_refused("bob", 410, {"stale_devices": [1]})
    assert alice.devices_without_session("bob") is None  # re-read the device list, then fetch keys


def test_the_state_file_holds_no_plaintext_key_material_and_needs_its_key(pair, tmp_path):
    _, alice, _ = pair
    account_pickle = alice.store.get("olm_account")
    with pytest.raises(vodozemac.PickleException):
        vodozemac.Account.from_pickle(account_pickle, os.urandom(32))
    with pytest.raises(ValueError):
        make_core(tmp_path, "short-key", key=b"too short")


def test_refill_tops_the_relay_back_up_only_when_it_runs_low(pair):
    _, alice, _ = pair
    assert alice.key_upload(40) is None
    request = alice.key_upload(10)
    assert len(request.json["one_time_keys"]) == 40 and "fallback_key" not in request.json


def app_takes(core: ClientCore) -> list:
    """What an app sees: the events waiting in the outbox, each then marked taken."""
    seen = []
    for item in core.pending_events():
        seen.append(item.event)
        core.event_taken(item.seq)
    return seen


def test_events_stored_before_a_lost_ack_reach_the_app_once_after_the_redelivery(pair):
    relay, alice, bob = pair
    frames = [send(relay, alice, "bob", f"message {i}") for i in range(3)]
    for frame in frames:  # stored, then the socket dies: neither the ack nor the events leave the transport
        receive(relay, bob, frame)
    for frame in frames:  # the relay redelivers what was not acked: recognised and acked, no second event
        again = receive(relay, bob, frame)
        assert again.ack_ids == [frame["id"]]
    assert texts(app_takes(bob)) == ["message 0", "message 1", "message 2"]
    for frame in frames:
        receive(relay, bob, frame)
    assert app_takes(bob) == []


def test_a_client_restart_between_the_save_and_the_app_keeps_the_events_for_the_next_run(pair, tmp_path):
    relay, alice, bob = pair
    frame = send(relay, alice, "bob", "survives a restart")
    receipt = {"type": "envelope", "id": 98, "kind": 5, "sender": "bob", "sender_device": 1,
               "client_message_id": frame["client_message_id"], "body": "", "server_ts": 0}  # fmt: skip
    receive(relay, bob, frame)
    alice.receive(receipt)
    key = bob._key
    bob.store.close()  # the process stops before the app saw the message

    restarted = ClientCore(ClientStore(tmp_path / "bob.db"), key, INFO)
    assert texts([p.event for p in restarted.pending_events()]) == ["survives a restart"]
    assert receive(relay, restarted, frame).events == []  # the relay redelivers it too: no second event
    assert texts(app_takes(restarted)) == ["survives a restart"]
    assert app_takes(restarted) == []
    assert app_takes(alice) == [Delivered("bob", frame["client_message_id"])]


def test_every_stored_event_kind_comes_back_from_the_outbox_as_it_went_in(tmp_path):
    core = make_core(tmp_path, "carol")
    core.contacts.add("a", "added")  # else the interactive payload would come after a request of its own
    stored = [
        RequestReceived("b", "m0", 4),
        MessageReceived("a", 1, "m1", "hi", 5, {"label": "Bakery"}),
        TemplateReceived("a", 1, "m2", {"template_id": "t"}, b"\x00sealed\xff", 6),
        PayloadReceived("a", 1, "m3", {"type": "interactive"}, 7, None),
        Delivered("a", "m4"),
        Read("a", ["m5", "m6"]),
        IdentityChanged("a", 2),
        Undecryptable("a", 1, 9, "no session decrypts it"),
    ]
    with core.store.transaction():
        core.inbound.processed(1, stored)
    assert core.take_events() == stored
    assert core.pending_events() == []
