"""The SDK's group state without a relay: real vodozemac Megolm sessions, frames as the relay would send them."""

from __future__ import annotations

import base64
import itertools
import json
import os
import uuid
from pathlib import Path

import pytest

from cove.client import attachments
from cove.client.core import ClientCore
from cove.client.events import (
    AttachmentReceived,
    GroupChanged,
    GroupDelivered,
    GroupInfoChanged,
    GroupMessageReceived,
    GroupRead,
    Undecryptable,
)
from cove.client.store import ClientStore
from cove.protocol import groups as proto
from cove.protocol.attachments import Pointer
from cove.protocol.envelope import EnvelopeKind

GROUP = "ab" * 16
OTHER_GROUP = "cd" * 16
_ids = itertools.count(1)


def _core(folder: Path, name: str, account: str, device: int = 1) -> ClientCore:
    folder.mkdir(parents=True, exist_ok=True)
    key = folder / f"{name}.key"
    if not key.exists():
        key.write_bytes(os.urandom(32))
    core = ClientCore(ClientStore(folder / f"{name}.db"), key.read_bytes(), {})
    core.store.set("account_id", account)
    core.store.set("device_id", str(device))
    return core


def _view(*members: tuple[str, list[int]], revision: int = 1) -> dict:
    return {
        "group_id": GROUP,
        "revision": revision,
        "members": [
            {"account_id": a, "role": "admin" if i == 0 else "member", "devices": d} for i, (a, d) in enumerate(members)
        ],
    }


def _hand_key(sender: ClientCore, receiver: ClientCore, group: str = GROUP) -> None:
    """What the pairwise Olm path delivers: the sender's current session key, as the receiver's core applies it."""
    key = sender.groups.sender_key(group)
    with receiver.store.transaction():
        assert receiver.groups.pairwise(sender.account_id, sender.device_id, key.payload()) == []
    sender.groups.key_shared(key, receiver.account_id, [receiver.device_id])


def _send(sender: ClientCore, text: str, group: str = GROUP) -> dict:
    cmid = uuid.uuid4().hex
    body = sender.groups.encrypt(group, cmid, proto.text_payload(group, cmid, text, 1000), text)
    return _frame(sender, cmid, body, group)


def _frame(sender: ClientCore, cmid: str, body: str, group: str = GROUP) -> dict:
    return {
        "type": "envelope",
        "id": next(_ids),
        "kind": EnvelopeKind.MEGOLM,
        "sender": sender.account_id,
        "sender_device": sender.device_id,
        "client_message_id": cmid,
        "server_ts": 1000,
        "group": group,
        "body": body,
    }


def _change(actor: str, action: str, accounts: list[str], revision: int) -> dict:
    return {
        "type": "envelope",
        "id": next(_ids),
        "kind": EnvelopeKind.GROUP_CHANGE,
        "sender": actor,
        "sender_device": 1,
        "client_message_id": uuid.uuid4().hex,
        "server_ts": 1000,
        "group": GROUP,
        "change": {"revision": revision, "action": action, "accounts": accounts},
    }


@pytest.fixture
def trio(tmp_path: Path) -> tuple[ClientCore, ClientCore, ClientCore]:
    alice, bob, carol = (_core(tmp_path, n, str(uuid.uuid4())) for n in ("alice", "bob", "carol"))
    for core in (alice, bob, carol):
        core.groups.view_received(_view((alice.account_id, [1]), (bob.account_id, [1]), (carol.account_id, [1])))
    return alice, bob, carol


def test_a_member_decrypts_a_group_message_once_and_a_replay_is_refused(trio) -> None:
    alice, bob, _ = trio
    _hand_key(alice, bob)
    frame = _send(alice, "hello group")
    [event] = bob.receive(frame).events
    assert event == GroupMessageReceived(GROUP, alice.account_id, 1, frame["client_message_id"], "hello group", 1000)
    assert [m.text for m in bob.groups.db.messages(GROUP)] == ["hello group"]
    assert bob.receive(frame).events == []  # the same envelope again: already applied
    replayed = bob.receive(frame | {"id": next(_ids)}).events  # the relay sends the ciphertext again as new
    assert [type(e) for e in replayed] == [Undecryptable] and "replayed" in replayed[0].reason
    assert len(bob.groups.db.messages(GROUP)) == 1


def test_a_message_decrypts_only_as_from_the_device_and_group_its_key_came_with(trio) -> None:
    alice, bob, carol = trio
    _hand_key(alice, bob)
    frame = _send(alice, "for the group")
    as_carol = bob.receive(frame | {"sender": carol.account_id}).events
    other_device = bob.receive(frame | {"id": next(_ids), "sender_device": 2}).events
    other_group = bob.receive(frame | {"id": next(_ids), "group": OTHER_GROUP}).events
    for events in (as_carol, other_device, other_group):
        assert [type(e) for e in events] == [Undecryptable]
    assert bob.groups.db.messages(GROUP) == []
    # the key, but the plaintext names another group than the envelope: the relay moved it
    with bob.store.transaction():
        bob.groups.pairwise(alice.account_id, 1, alice.groups.sender_key(GROUP).payload() | {"group_id": OTHER_GROUP})
    cmid = uuid.uuid4().hex
    body = alice.groups.encrypt(GROUP, cmid, proto.text_payload(GROUP, cmid, "moved", 1), "moved")
    [moved] = bob.receive(_frame(alice, cmid, body, OTHER_GROUP)).events
    assert isinstance(moved, Undecryptable) and "another group" in moved.reason


def test_a_forged_or_broken_sender_key_is_refused(trio) -> None:
    alice, bob, _ = trio
    payload = alice.groups.sender_key(GROUP).payload()
    other = proto.SenderKey(GROUP, payload["session_id"], _other_session_key())
    for bad in (other.payload(), payload | {"session_key": "AAAA"}, payload | {"group_id": "../x"}):
        with bob.store.transaction():
            [event] = bob.groups.pairwise(alice.account_id, 1, bad)
        assert isinstance(event, Undecryptable)
    [event] = bob.receive(_send(alice, "unreadable")).events
    assert isinstance(event, Undecryptable)


def _other_session_key() -> str:
    import vodozemac as vz

    return vz.GroupSession().session_key.to_base64()


def test_a_key_handed_out_later_does_not_open_earlier_messages(trio) -> None:
    alice, bob, _ = trio
    early = _send(alice, "before bob had the key")
    _hand_key(alice, bob)
    late = _send(alice, "after")
    assert isinstance(bob.receive(early).events[0], Undecryptable)
    assert bob.receive(late).events[0].text == "after"


def test_a_message_that_came_before_its_key_is_read_once_when_the_key_comes(trio) -> None:
    alice, bob, carol = trio
    key = alice.groups.sender_key(GROUP)  # the key as alice sends it 1:1, delayed on its way to bob
    first, second = _send(alice, "before the key"), _send(alice, "also before")
    for frame in (first, second):
        [waiting] = bob.receive(frame).events
        assert isinstance(waiting, Undecryptable) and "kept" in waiting.reason
    assert bob.groups.db.messages(GROUP) == []
    _hand_key(carol, bob)  # another member's key opens none of them
    with bob.store.transaction():
        events = bob.groups.pairwise(alice.account_id, 1, key.payload())
    assert [(type(e), e.text) for e in events] == [(GroupMessageReceived, "before the key"),
                                                   (GroupMessageReceived, "also before")]  # fmt: skip
    with bob.store.transaction():
        assert bob.groups.pairwise(alice.account_id, 1, key.payload()) == []  # the key again: nothing twice
    assert bob.receive(first | {"id": next(_ids)}).events[0].reason == "a replayed group message"
    assert [m.text for m in bob.groups.db.messages(GROUP)] == ["before the key", "also before"]
    assert bob.groups.db.pending(GROUP, alice.account_id, 1) == []


def test_messages_kept_for_a_key_are_bounded_in_number_and_age(trio, monkeypatch) -> None:
    from cove.client import group_store

    alice, bob, _ = trio
    monkeypatch.setattr(group_store, "MAX_PENDING", 3)
    frames = [_send(alice, f"m{i}") for i in range(5)]
    for frame in frames:
        bob.receive(frame)
    kept = bob.groups.db.pending(GROUP, alice.account_id, 1)
    assert [f["id"] for f in kept] == [f["id"] for f in frames[2:]]
    later = group_store.time.time() + group_store.PENDING_SECONDS + 1
    monkeypatch.setattr(group_store.time, "time", lambda: later)
    assert bob.groups.db.pending(GROUP, alice.account_id, 1) == []


def test_removal_rotates_and_the_removed_member_cannot_read_what_follows(trio) -> None:
    alice, bob, carol = trio
    for member in (bob, carol):
        _hand_key(alice, member)
    before = alice.groups.sender_key(GROUP).session_id
    assert alice.groups.lacking_key(GROUP, alice.account_id, 1) == {}
    assert carol.receive(_send(alice, "carol still here")).events[0].text == "carol still here"
    [changed] = alice.receive(_change(alice.account_id, "remove", [carol.account_id], 2)).events
    assert changed == GroupChanged(GROUP, alice.account_id, "remove", [carol.account_id], 2)
    assert carol.account_id not in alice.groups.members(GROUP)
    assert alice.groups.sender_key(GROUP).session_id != before
    assert alice.groups.lacking_key(GROUP, alice.account_id, 1) == {bob.account_id: [1]}
    _hand_key(alice, bob)
    after = _send(alice, "carol is gone")
    assert bob.receive(after).events[0].text == "carol is gone"
    [refused] = carol.receive(after).events
    assert isinstance(refused, Undecryptable)
    [told] = carol.receive(_change(alice.account_id, "remove", [carol.account_id], 2)).events
    assert told.action == "remove" and carol.groups.group(GROUP).member is False


def test_a_view_without_a_device_that_had_the_key_rotates(trio) -> None:
    alice, bob, carol = trio
    alice.groups.view_received(_view((alice.account_id, [1]), (bob.account_id, [1, 2]), (carol.account_id, [1])))
    key = alice.groups.sender_key(GROUP)
    alice.groups.key_shared(key, bob.account_id, [1, 2])
    alice.groups.key_shared(key, carol.account_id, [1])
    alice.groups.view_received(_view((alice.account_id, [1]), (bob.account_id, [1, 2]), (carol.account_id, [1])))
    assert alice.groups.sender_key(GROUP).session_id == key.session_id  # nothing changed: no new session
    alice.groups.view_received(_view((alice.account_id, [1]), (bob.account_id, [1]), (carol.account_id, [1])))
    assert alice.groups.sender_key(GROUP).session_id != key.session_id


def test_sessions_survive_a_restart_and_the_ratchet_never_repeats(trio, tmp_path: Path) -> None:
    alice, bob, _ = trio
    _hand_key(alice, bob)
    first = _send(alice, "one")
    accounts = alice.account_id, bob.account_id
    alice.store.close()
    bob.store.close()
    alice, bob = _core(tmp_path, "alice", accounts[0]), _core(tmp_path, "bob", accounts[1])
    second = _send(alice, "two")
    assert base64.b64decode(second["body"]) != base64.b64decode(first["body"])
    assert [e.text for e in bob.receive(first).events + bob.receive(second).events] == ["one", "two"]


def test_changes_keep_the_mirror(trio) -> None:
    alice, bob, carol = trio
    dave = str(uuid.uuid4())
    bob.receive(_change(alice.account_id, "add", [dave], 2))
    assert bob.groups.members(GROUP)[dave].role == "member"
    bob.receive(_change(alice.account_id, "promote", [dave], 3))
    assert bob.groups.members(GROUP)[dave].role == "admin"
    bob.receive(_change(dave, "leave", [dave], 4))
    assert dave not in bob.groups.members(GROUP) and bob.groups.group(GROUP).revision == 4
    [bad] = bob.receive(_change(alice.account_id, "explode", [], 5)).events
    assert isinstance(bad, Undecryptable)


def test_group_info_and_receipts(trio) -> None:
    alice, bob, carol = trio
    _hand_key(alice, bob)
    info = proto.GroupInfo("Climbing", "Saturdays", b"\x89PNG")
    cmid = uuid.uuid4().hex
    body = alice.groups.encrypt(GROUP, cmid, info.payload(GROUP) | {"ts": 1}, None)
    assert bob.receive(_frame(alice, cmid, body)).events == [GroupInfoChanged(GROUP, alice.account_id, "Climbing")]
    stored = bob.groups.group(GROUP)
    assert (stored.name, stored.description, stored.avatar) == ("Climbing", "Saturdays", b"\x89PNG")
    sent = _send(alice, "who is in")
    cmid = sent["client_message_id"]
    with alice.store.transaction():
        [read] = alice.groups.pairwise(bob.account_id, 1, {"v": 1, "type": "read", "group": GROUP, "ids": [cmid]})
    assert read == GroupRead(GROUP, bob.account_id, [cmid])
    receipt = {
        "type": "envelope",
        "id": next(_ids),
        "kind": EnvelopeKind.GROUP_RECEIPT,
        "sender": GROUP,
        "sender_device": 0,
        "server_ts": 1,
        "group": GROUP,
        "receipts": [
            {"client_message_id": cmid, "account": bob.account_id, "device": 1},
            {"client_message_id": cmid, "account": carol.account_id, "device": 1},
        ],
    }
    events = alice.receive(receipt).events
    assert events[1] == GroupDelivered(GROUP, cmid, carol.account_id, 1)
    assert alice.groups.db.receipts(GROUP, cmid) == {bob.account_id: "read", carol.account_id: "delivered"}


def test_payload_limits() -> None:
    with pytest.raises(proto.GroupPayloadError):
        proto.GroupInfo("x" * (proto.MAX_NAME + 1))
    with pytest.raises(proto.GroupPayloadError):
        proto.GroupInfo("ok", avatar=b"x" * (proto.MAX_AVATAR_BYTES + 1))
    too_big = base64.b64encode(b"x" * (proto.MAX_AVATAR_BYTES * 2)).decode()
    with pytest.raises(proto.GroupPayloadError):
        proto.parse_group_info({"name": "n", "avatar": too_big})
    with pytest.raises(proto.GroupPayloadError):
        proto.parse_group_info({"name": "n", "avatar": "not base64!"})
    assert json.dumps(proto.GroupInfo("n").payload(GROUP))


def test_only_a_member_names_the_group_over_1_1(trio, tmp_path: Path) -> None:
    alice, bob, _ = trio
    mallory = str(uuid.uuid4())
    info = proto.GroupInfo("Renamed by mallory").payload(GROUP)
    with bob.store.transaction():
        [refused] = bob.groups.pairwise(mallory, 1, info)
        [named] = bob.groups.pairwise(alice.account_id, 1, proto.GroupInfo("Climbing").payload(GROUP))
    assert isinstance(refused, Undecryptable) and named == GroupInfoChanged(GROUP, alice.account_id, "Climbing")
    assert bob.groups.group(GROUP).name == "Climbing"
    # someone just added knows the adder from the change alone, before any view of the group
    dave = _core(tmp_path, "dave", str(uuid.uuid4()))
    dave.receive(_change(bob.account_id, "add", [dave.account_id], 2))
    assert dave.groups.members(GROUP)[bob.account_id].role == "admin"
    with dave.store.transaction():
        assert dave.groups.pairwise(bob.account_id, 1, proto.GroupInfo("Climbing").payload(GROUP))[0].name == "Climbing"


def test_a_group_file_names_its_group_and_a_broken_pointer_is_refused(trio) -> None:
    alice, bob, _ = trio
    _hand_key(alice, bob)
    pointer = Pointer("0f" * 16, os.urandom(32), "a" * 64, 10, "text/plain", "notes.txt")
    cmid = uuid.uuid4().hex
    payload = attachments.payload(cmid, pointer, "see this", 1000, GROUP)
    [event] = bob.receive(_frame(alice, cmid, alice.groups.encrypt(GROUP, cmid, payload, None))).events
    assert event == AttachmentReceived(alice.account_id, 1, cmid, pointer.to_json(), "see this", 1000, GROUP)
    assert [m.text for m in bob.groups.db.messages(GROUP)] == ["[file notes.txt, 10 bytes] see this"]

    for broken in ({"id": "../../etc"}, pointer.to_json() | {"key": "short"}, "not an object"):
        cmid = uuid.uuid4().hex
        body = alice.groups.encrypt(GROUP, cmid, payload | {"id": cmid, "attachment": broken}, None)
        [refused] = bob.receive(_frame(alice, cmid, body)).events
        assert isinstance(refused, Undecryptable) and "attachment" in refused.reason
    cmid = uuid.uuid4().hex
    unsafe = payload | {"id": cmid, "attachment": pointer.to_json() | {"name": "../../.bashrc"}}
    [event] = bob.receive(_frame(alice, cmid, alice.groups.encrypt(GROUP, cmid, unsafe, None))).events
    assert isinstance(event, AttachmentReceived) and "/" not in event.attachment["name"]
    assert len(bob.groups.db.messages(GROUP)) == 2
