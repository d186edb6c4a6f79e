"""The rules of message requests (cove.client.message_requests) and the address book that applies them on a device
(cove.client.contacts_store), without a relay: events are fed to the core as an envelope's would be."""

from __future__ import annotations

import itertools
import os

import pytest

from cove.client.cli import _reply_read, _show
from cove.client.contacts_store import ACCEPTED, ADDED, RELAY, WROTE
from cove.client.core import ClientCore, Outgoing
from cove.client.events import (
    AttachmentReceived,
    Delivered,
    GroupMessageReceived,
    MessageReceived,
    PayloadReceived,
    Read,
    RequestReceived,
    SentElsewhere,
    TemplateReceived,
)
from cove.client.message_requests import request_of, wrote_to
from cove.client.safety_client import MAX_ATTACHED_TEXT, chat_messages
from cove.client.store import ClientStore
from cove.client.transport import CoveClient

ME, STRANGER, FRIEND = "me", "stranger", "friend"
ENVELOPES = itertools.count(1)
INFO = {"model": "test", "os_name": "TestOS", "os_version": "1", "app_version": "0"}
FILE = {"id": "f", "key": "k", "digest": "d", "size": 3, "mime": "text/plain", "name": "a.txt"}


def text(sender: str, cmid: str, at: int = 1, business: dict | None = None) -> MessageReceived:
    return MessageReceived(sender, 1, cmid, f"text of {cmid}", at, business)


@pytest.fixture
def core(tmp_path) -> ClientCore:
    made = ClientCore(ClientStore(tmp_path / "me.db"), os.urandom(32), INFO)
    made.store.set("account_id", ME)
    return made


def arrive(core: ClientCore, *events) -> list:
    """What the app takes after an envelope with these events was stored."""
    with core.store.transaction():
        core.inbound.processed(next(ENVELOPES), list(events))
    return core.take_events()


# the rules ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "event",
    [
        text(STRANGER, "m1"),
        PayloadReceived(STRANGER, 1, "m1", {"type": "verify_start"}, 1),
        AttachmentReceived(STRANGER, 1, "m1", FILE, "a caption", 1),
    ],
)
def test_a_one_to_one_message_from_someone_else_may_be_a_request(event):
    assert request_of(event, ME) == RequestReceived(STRANGER, "m1", 1)


@pytest.mark.parametrize(
    "event",
    [
        text(STRANGER, "m1", business={"label": "Bakery"}),  # its users opted in
        PayloadReceived(STRANGER, 1, "m1", {"type": "interactive"}, 1, {"label": "Bakery"}),
        TemplateReceived(STRANGER, 1, "m1", {"template_id": "t"}, b"sealed", 1),
        AttachmentReceived(STRANGER, 1, "m1", FILE, None, 1, group="g"),  # joining the group was the consent
        GroupMessageReceived("g", STRANGER, 1, "m1", "in a group", 1),
        text(ME, "m1"),  # another of one's own devices
        Delivered(STRANGER, "m1"),
        Read(STRANGER, ["m1"]),
    ],
)
def test_businesses_groups_ones_own_devices_and_receipts_are_never_requests(event):
    assert request_of(event, ME) is None


def test_a_transcript_from_another_own_device_says_the_user_wrote_to_its_peer():
    assert wrote_to(SentElsewhere(FRIEND, 2, "m1", "hi", 1, {"type": "text"}), ME) == FRIEND
    assert wrote_to(SentElsewhere(ME, 2, "m1", "note to self", 1, {"type": "text"}), ME) is None
    assert wrote_to(text(FRIEND, "m1"), ME) is None


# the address book ---------------------------------------------------------------------------------------------
def test_each_message_of_a_stranger_comes_after_its_request_until_accepted(core):
    assert arrive(core, text(STRANGER, "m1", 10)) == [RequestReceived(STRANGER, "m1", 10), text(STRANGER, "m1", 10)]
    assert arrive(core, text(STRANGER, "m2", 20))[0] == RequestReceived(STRANGER, "m2", 20)
    [waiting] = core.contacts.requests()
    assert (waiting.account_id, waiting.first_at, waiting.last_at, waiting.messages) == (STRANGER, 10, 20, 2)
    assert core.contacts.waiting(text(STRANGER, "m2")) and not core.contacts.is_contact(STRANGER)

    assert core.contacts.add(STRANGER, ACCEPTED) is True  # a request was waiting: its messages are due receipts
    assert core.contacts.requests() == [] and not core.contacts.waiting(text(STRANGER, "m2"))
    assert arrive(core, text(STRANGER, "m3")) == [text(STRANGER, "m3")]
    assert core.contacts.add(STRANGER, ACCEPTED) is False


def test_a_business_or_group_message_from_a_stranger_opens_no_request(core):
    bakery = text(STRANGER, "m1", business={"label": "Bakery"})
    group = GroupMessageReceived("g", STRANGER, 1, "m2", "hello all", 1)
    assert arrive(core, bakery, group) == [bakery, group]
    assert core.contacts.requests() == []


def test_writing_to_someone_makes_them_a_contact_and_accepts_their_request(core):
    arrive(core, text(STRANGER, "m1"))
    core.sent(core.compose_text(STRANGER, "who is this?"))
    assert core.contacts.is_contact(STRANGER) and core.contacts.requests() == []
    [contact] = core.contacts.contacts()
    assert (contact.account_id, contact.how) == (STRANGER, WROTE)


def test_receipts_and_group_keys_sent_one_to_one_make_nobody_a_contact(core):
    core.sent(core.compose_read_receipt(STRANGER, ["m1"]))
    core.sent(Outgoing(FRIEND, "k1", b'{"type": "group_key"}'))  # a sender key: no text the user wrote
    core.sent(core.compose_text(ME, "a note to my other devices"))
    assert core.contacts.contacts() == []


def test_writing_from_another_device_makes_a_contact_here_too(core):
    arrive(core, text(FRIEND, "m1"))
    arrive(core, SentElsewhere(FRIEND, 2, "m2", "hello back", 2, {"type": "text"}))
    assert core.contacts.is_contact(FRIEND) and core.contacts.requests() == []


def test_a_name_is_kept_and_how_someone_became_a_contact_is_not_rewritten(core):
    core.contacts.add(FRIEND, ADDED, "Fran")
    core.contacts.add(FRIEND, WROTE)
    [contact] = core.contacts.contacts()
    assert (contact.name, contact.how) == ("Fran", ADDED)


def test_a_removed_contact_writes_requests_again_and_the_relays_list_does_not_bring_them_back(core):
    core.contacts.add(FRIEND, ADDED, "Fran")
    assert core.contacts.remove(FRIEND) is True and core.contacts.remove(FRIEND) is False
    assert arrive(core, text(FRIEND, "m1"))[0] == RequestReceived(FRIEND, "m1", 1)
    core.contacts.learned([FRIEND])
    assert not core.contacts.is_contact(FRIEND) and core.contacts.requested(FRIEND)
    core.contacts.add(FRIEND, WROTE)  # writing to them again is the user's choice
    [contact] = core.contacts.contacts()
    assert (contact.how, contact.name) == (WROTE, None)


def test_acceptances_learnt_from_the_relay_become_contacts_and_accept_their_requests(core):
    arrive(core, text(STRANGER, "m1"))
    request = core.contacts.accepted_page()
    assert (request.method, request.path, request.params) == ("GET", "/v1/safety/accepted", None)
    assert core.contacts.accepted_received({"accepted": [FRIEND, STRANGER], "next": STRANGER}) == STRANGER
    assert core.contacts.accepted_page(STRANGER).params == {"after": STRANGER}
    assert core.contacts.accepted_received({"accepted": [], "next": None}) is None
    assert {(c.account_id, c.how) for c in core.contacts.contacts()} == {(FRIEND, RELAY), (STRANGER, RELAY)}
    assert core.contacts.requests() == []


def test_a_block_forgets_the_contact_and_the_request(core):
    core.contacts.add(FRIEND, ADDED)
    arrive(core, text(STRANGER, "m1"))
    core.contacts.forget(FRIEND)
    core.contacts.forget(STRANGER)
    assert core.contacts.contacts() == [] and core.contacts.requests() == []
    assert arrive(core, text(FRIEND, "m2"))[0] == RequestReceived(FRIEND, "m2", 1)


def test_a_deleted_account_leaves_no_contact_or_request_behind(core):
    core.contacts.add(FRIEND, ADDED)
    arrive(core, text(STRANGER, "m1"))
    core.account_deleted()
    assert core.contacts.contacts() == [] and core.contacts.requests() == []


def test_a_report_attaches_the_chats_last_messages_as_shown_and_a_long_one_in_part(core):
    core.store.add_message(STRANGER, "in", "m1", "x" * 5000, 1, "received")
    core.store.add_message(STRANGER, "out", "m2", "stop", 2, "sent")
    core.store.add_message(FRIEND, "in", "m3", "another chat", 3, "received")
    attached = chat_messages(core, STRANGER, 5)
    assert [(m.sender, m.client_message_id, len(m.text)) for m in attached] == [
        (STRANGER, "m1", MAX_ATTACHED_TEXT),
        (ME, "m2", 4),
    ]
    assert attached[1].to_json() == {"sender": ME, "client_message_id": "m2", "sent_at": 2, "text": "stop"}
    assert [m.client_message_id for m in chat_messages(core, STRANGER, 1)] == ["m2"]


async def test_the_command_line_shows_a_request_not_its_text_and_answers_it_with_no_receipt(core, capsys):
    arrive(core, text(STRANGER, "m1"))
    core.store.save_peer(STRANGER, 1, "+14155550100")
    async with CoveClient("http://127.0.0.1:1", core) as client:  # nothing listens there: no request may leave
        await _show(client, RequestReceived(STRANGER, "m1", 1))
        await _show(client, text(STRANGER, "m1"))
        shown = " ".join(capsys.readouterr().out.split())
        assert "message request from +14155550100" in shown and "text of m1" not in shown
        await _reply_read(client, [text(STRANGER, "m1")])

        core.contacts.add(STRANGER, ACCEPTED)
        await _show(client, text(STRANGER, "m1"))
        assert "+14155550100: text of m1" in " ".join(capsys.readouterr().out.split())
