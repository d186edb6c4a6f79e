"""What `cove app` keeps in the profile's own SQLite file beside the SDK's state (cove.desktop.appstore)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from cove.client.events import AttachmentReceived, PayloadReceived, TemplateReceived
from cove.client.group_store import GroupMessage, GroupStore
from cove.client.store import ClientStore
from cove.desktop import appstore
from cove.desktop.appstore import AppStore

PEER = str(uuid.uuid4())


@pytest.fixture
def store(tmp_path: Path) -> ClientStore:
    return ClientStore(tmp_path / "state.db")


def test_the_conversations_have_their_last_message_and_unread_count(store: ClientStore) -> None:
    other = str(uuid.uuid4())
    store.add_message(PEER, "in", "a", "hello", 1, "received")
    store.add_message(PEER, "in", "b", "there", 2, "received")
    store.add_message(PEER, "out", "c", "hi!", 3, "sent")
    store.add_message(other, "in", "d", "seen", 4, "received")
    store.mark_read_in(other, ["d"])
    found = {s.key: s for s in AppStore(store).one_to_one()}
    assert (found[PEER].last_text, found[PEER].last_out, found[PEER].unread) == ("hi!", True, 2)
    assert (found[other].last_text, found[other].unread) == ("seen", 0)


def test_a_group_is_unread_past_what_was_shown_here_and_never_less(store: ClientStore) -> None:
    group_id = uuid.uuid4().hex
    groups = GroupStore(store)
    groups.save_group(group_id, 1)
    for i in range(3):
        groups.add_message(GroupMessage(group_id, PEER, "in", f"m{i}", f"text {i}", i))
    app = AppStore(store)
    unread = app.group_unread(group_id)
    assert [cmid for _, _, cmid in unread] == ["m0", "m1", "m2"]
    app.group_seen(group_id, unread[1][0])
    app.group_seen(group_id, unread[0][0])  # an older mark does not bring messages back
    assert [cmid for _, _, cmid in app.group_unread(group_id)] == ["m2"]
    [summary] = app.groups()
    assert (summary.key, summary.last_text, summary.unread) == (group_id, "text 2", 1)


def test_saved_files_are_found_by_their_chat(store: ClientStore, tmp_path: Path) -> None:
    app = AppStore(store)
    app.file_saved(PEER, "m1", tmp_path / "files" / "map.pdf")
    assert app.files(PEER) == {"m1": tmp_path / "files" / "map.pdf"}
    assert app.files(str(uuid.uuid4())) == {}


def test_answerable_messages_come_back_as_events_and_are_bounded(
    store: ClientStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(appstore, "MAX_ANSWERABLE", 3)
    app = AppStore(store)
    template = TemplateReceived(PEER, 1, "t0", {"template_id": "x"}, b"sealed", 0)
    app.keep_answerable(template, {"lines": ["Shipped"], "choices": []})
    for i in range(1, 4):
        event = PayloadReceived(PEER, 1, f"p{i}", {"type": "interactive"}, i, {"kind": "free_form"})
        app.keep_answerable(event, {"lines": [f"pick {i}"], "choices": []})
    kept = app.answerable(PEER)
    assert [k.client_message_id for k in kept] == ["p1", "p2", "p3"]  # the oldest went first
    assert kept[0].event == PayloadReceived(PEER, 1, "p1", {"type": "interactive"}, 1, {"kind": "free_form"})
    app.answered(PEER, "p2")
    assert [k.answered for k in app.answerable(PEER)] == [False, True, False]


def test_a_business_keeps_its_name_and_badge(store: ClientStore) -> None:
    app = AppStore(store)
    assert app.business(PEER) is None
    app.save_business(PEER, "Acme", True)
    assert app.business(PEER) == ("Acme", True)
    assert app.businesses() == {PEER}


def test_a_requests_files_wait_bounded_until_accepted_or_dropped(
    store: ClientStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(appstore, "MAX_HELD", 2)
    app = AppStore(store)
    files = [AttachmentReceived(PEER, 1, f"f{i}", {"name": f"{i}.txt"}, None, i) for i in range(3)]
    for event in files:
        app.hold_file(event)
    assert app.held_files(PEER) == files[1:]  # the oldest was given up
    app.drop_held(PEER)
    assert app.held_files(PEER) == []
