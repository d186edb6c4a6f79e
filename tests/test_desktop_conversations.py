"""The app's pure view of conversations (cove.desktop.conversations) and the event pump's rules (which chat an event
changes, the reconnect pauses)."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cove.client.codes import registration_code
from cove.client.events import (
    AttachmentReceived,
    Delivered,
    GroupMessageReceived,
    MessageReceived,
    QueueEmpty,
    Read,
)
from cove.desktop.conversations import (
    BUSINESS,
    GROUP,
    PERSON,
    Choice,
    Kept,
    NotAChat,
    Said,
    bubbles,
    chat_kind,
    chat_rows,
    group_status,
    interactive_shown,
    template_shown,
    tick,
)
from cove.desktop.pump import FIRST_PAUSE, LAST_PAUSE, chat_of, next_pause
from cove.protocol.templates.rendering import RenderedButton, RenderedMessage

ACCOUNT = str(uuid.uuid4())
GROUP_ID = uuid.uuid4().hex


def test_a_chat_key_is_an_account_id_or_a_group_id_and_nothing_else() -> None:
    assert chat_kind(ACCOUNT) == PERSON
    assert chat_kind(GROUP_ID) == GROUP
    for bad in ("", "list", "../etc/passwd", ACCOUNT + "x", GROUP_ID.upper(), f"{GROUP_ID}/files"):
        with pytest.raises(NotAChat):
            chat_kind(bad)


def test_ticks_say_what_they_show() -> None:
    assert tick("sent") == ("✓", "sent")
    assert tick("delivered") == ("✓✓", "delivered")
    assert tick("read") == ("✓✓", "read")
    assert tick("something new") == ("✓", "sent")


def test_a_group_message_is_read_once_every_other_member_read_it() -> None:
    assert group_status([], 2) == "sent"
    assert group_status(["read"], 2) == "sent"
    assert group_status(["read", "delivered"], 2) == "delivered"
    assert group_status(["read", "read"], 2) == "read"
    assert group_status([], 0) == "sent"


said = st.builds(
    Said,
    mine=st.booleans(),
    sender=st.sampled_from([ACCOUNT, "me"]),
    client_message_id=st.uuids().map(lambda u: u.hex),
    text=st.text(max_size=20),
    sent_at=st.integers(min_value=0, max_value=2**41),
    status=st.sampled_from(["sent", "delivered", "read", "received"]),
)


@given(st.lists(said, max_size=20, unique_by=lambda m: m.client_message_id))
def test_every_message_is_one_bubble_in_time_order_and_only_mine_have_ticks(history: list[Said]) -> None:
    shown = bubbles(history, {ACCOUNT: "+14155550101"}, {})
    assert sorted(b.client_message_id for b in shown) == sorted(m.client_message_id for m in history)
    assert [b.sent_at for b in shown] == sorted(m.sent_at for m in history)
    by_id = {m.client_message_id: m for m in history}
    for b in shown:
        m = by_id[b.client_message_id]
        assert b.mine == m.mine and bool(b.tick) == m.mine
        assert b.who == ("You" if m.mine else {ACCOUNT: "+14155550101"}.get(m.sender, m.sender))


def test_a_saved_file_links_and_a_kept_business_message_adds_its_choices() -> None:
    history = [
        Said(False, ACCOUNT, "m1", "[file map.pdf, 3 bytes]", 1, "received"),
        Said(False, ACCOUNT, "m2", "Pick", 2, "read"),
    ]
    shown_choices = {"lines": ["Pick a time"], "choices": [{"kind": "answer", "value": "slot-4", "title": "4 pm"}]}
    template = {"lines": ["Your order shipped"], "choices": [{"kind": "tap", "value": "Thanks", "title": "Thanks"}]}
    kept = [Kept("m2", 2, shown_choices, False), Kept("t1", 3, template, True)]
    shown = bubbles(history, {ACCOUNT: "Acme"}, {"m1": "/chats/x/files/m1"}, kept, business="Acme")
    assert [b.client_message_id for b in shown] == ["m1", "m2", "t1"]
    assert shown[0].file == "/chats/x/files/m1"
    assert shown[1].choices == (Choice("answer", "slot-4", "4 pm"),) and shown[1].lines == ("Pick a time",)
    assert shown[2].lines == ("Your order shipped",) and shown[2].choices == ()  # answered: nothing to tap
    assert shown[2].who == "Acme" and all(b.business for b in shown)


def test_the_chat_list_is_newest_first_and_names_businesses_with_their_badge() -> None:
    other = str(uuid.uuid4())
    rows = chat_rows(
        [(ACCOUNT, "+14155550101", "hi", 10, True, 0), (other, "+14155550102", "offer", 30, False, 2)],
        [(GROUP_ID, "Climbing", "top rope?", 20, False, 1)],
        {other: ("Acme", True)},
    )
    assert [(r.title, r.kind) for r in rows] == [("Acme", BUSINESS), ("Climbing", GROUP), ("+14155550101", PERSON)]
    assert rows[0].verified and rows[0].unread == 2
    assert rows[2].last == "You: hi" and rows[2].href == f"/chats/{ACCOUNT}"


def _interactive(interactive: dict) -> dict:
    return {"v": 1, "type": "interactive", "id": "wamid.1", "ts": 1, "interactive": interactive}


def test_reply_buttons_and_list_rows_are_choices_after_the_shared_checks() -> None:
    buttons = _interactive(
        {
            "type": "button",
            "body": {"text": "Pick a time"},
            "action": {"buttons": [{"type": "reply", "reply": {"id": "slot-4", "title": "4 pm"}}]},
        }
    )
    assert interactive_shown(buttons) == {
        "lines": ["Pick a time"],
        "choices": [{"kind": "answer", "value": "slot-4", "title": "4 pm"}],
    }
    rows = _interactive(
        {
            "type": "list",
            "body": {"text": "Choose"},
            "action": {"button": "Menu", "sections": [{"rows": [{"id": "r1", "title": "Bread"}]}]},
        }
    )
    assert interactive_shown(rows)["choices"] == [{"kind": "answer", "value": "r1", "title": "Bread"}]
    too_long = _interactive(
        {
            "type": "button",
            "body": {"text": "x"},
            "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "t" * 200}}]},
        }
    )
    assert interactive_shown(too_long) is None
    assert interactive_shown({"v": 1, "type": "text", "id": "w", "ts": 1, "text": {"body": "hi"}}) is None


def test_a_template_shows_its_quick_replies_as_choices_and_its_links_as_text() -> None:
    rendered = RenderedMessage(
        header="Order 42",
        body="It shipped",
        footer="Acme",
        buttons=[
            RenderedButton(type="QUICK_REPLY", text="Thanks"),
            RenderedButton(type="URL", text="Track", url="https://acme.example/42"),
        ],
    )
    assert template_shown(rendered) == {
        "lines": ["Order 42", "It shipped", "Acme", "[Track] https://acme.example/42"],
        "choices": [{"kind": "tap", "value": "Thanks", "title": "Thanks"}],
    }


def test_each_event_names_the_conversation_it_changes() -> None:
    other = str(uuid.uuid4())
    assert chat_of(MessageReceived(ACCOUNT, 1, "m", "hi", 1)) == ACCOUNT
    assert chat_of(Delivered(other, "m")) == other
    assert chat_of(Read(other, ["m"])) == other
    assert chat_of(GroupMessageReceived(GROUP_ID, ACCOUNT, 1, "m", "hi", 1)) == GROUP_ID
    assert chat_of(AttachmentReceived(ACCOUNT, 1, "m", {}, None, 1, group=GROUP_ID)) == GROUP_ID
    assert chat_of(AttachmentReceived(ACCOUNT, 1, "m", {}, None, 1)) == ACCOUNT
    assert chat_of(QueueEmpty()) is None


def test_the_reconnect_pause_doubles_up_to_a_minute() -> None:
    pauses = [FIRST_PAUSE]
    for _ in range(10):
        pauses.append(next_pause(pauses[-1]))
    assert pauses[:4] == [1.0, 2.0, 4.0, 8.0]
    assert max(pauses) == LAST_PAUSE == pauses[-1]


def test_a_registration_code_is_six_digits_as_an_sms_may_space_them() -> None:
    assert registration_code("123456") == registration_code("123 456") == registration_code("123-456") == "123456"
    for bad in ("", "12345", "1234567", "12a456", "１２３４５６"):
        assert registration_code(bad) is None
