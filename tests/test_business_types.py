"""Reactions, locations, contacts, CTA URL buttons and location requests as shapes, both ways
(cove.protocol.business_content, cove.business.gateway.cloud, .inbound), and the check of a user's choice
against what the business offered (cove.business.gateway.offered).

The send bodies are the examples of Meta's send-messages reference pages (reaction, location, contacts,
interactive CTA URL and location request messages), as a Cloud API client library such as pywa sends them; the
webhook parts are those of Meta's webhook reference for ``messages``."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud_sends import changed, refusal
from cove.business.gateway import events
from cove.business.gateway.cloud import (
    SendContacts,
    SendInteractive,
    SendLocation,
    SendReaction,
    business_plaintext,
    parse_send,
)
from cove.business.gateway.inbound import webhook_part
from cove.business.gateway.offered import Offered
from cove.client.business_replies import compose_contacts, compose_location, compose_reaction
from cove.client.business_show import history_text
from cove.protocol.business_content import (
    ContactsMessage,
    LocationMessage,
    ReactionMessage,
    describe,
    parse_business_message,
    parse_content,
)
from cove.protocol.business_messages import (
    BusinessInteractive,
    ButtonMessage,
    ListMessage,
    ReplyChoice,
    compose_interactive_reply,
    parse_interactive_reply,
)

TO = "16505551234"
WAMID = "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"

REACTION: dict[str, Any] = {
    "messaging_product": "whatsapp",
    "recipient_type": "individual",
    "to": TO,
    "type": "reaction",
    "reaction": {"message_id": WAMID, "emoji": "\U0001f600"},
}
LOCATION: dict[str, Any] = {
    "messaging_product": "whatsapp",
    "recipient_type": "individual",
    "to": TO,
    "type": "location",
    "location": {
        "latitude": "37.44216251868683",
        "longitude": "-122.16153582049394",
        "name": "Philz Coffee",
        "address": "101 Forest Ave, Palo Alto, CA 94301",
    },
}
CONTACT: dict[str, Any] = {
    "addresses": [
        {
            "street": "1 Lucky Shrub Way",
            "city": "Menlo Park",
            "state": "CA",
            "zip": "94025",
            "country": "United States",
            "country_code": "US",
            "type": "WORK",
        }
    ],
    "birthday": "1999-01-23",
    "emails": [{"email": "bjohnson@luckyshrub.com", "type": "WORK"}],
    "name": {
        "formatted_name": "Barbara J. Johnson",
        "first_name": "Barbara",
        "last_name": "Johnson",
        "middle_name": "Joana",
        "suffix": "Esq.",
        "prefix": "Dr.",
    },
    "org": {"company": "Lucky Shrub", "department": "Legal", "title": "Lawyer"},
    "phones": [
        {"phone": "+1 (940) 555-1234", "type": "HOME"},
        {"phone": "+1 (650) 555-1234", "type": "WORK", "wa_id": "16505551234"},
    ],
    "urls": [{"url": "https://www.luckyshrub.com", "type": "WORK"}],
}
CONTACTS: dict[str, Any] = {
    "messaging_product": "whatsapp",
    "to": TO,
    "type": "contacts",
    "contacts": [CONTACT],
}
CTA_URL: dict[str, Any] = {
    "messaging_product": "whatsapp",
    "recipient_type": "individual",
    "to": TO,
    "type": "interactive",
    "interactive": {
        "type": "cta_url",
        "header": {"type": "text", "text": "Available Dates"},
        "body": {"text": "Tap the button below to see available dates."},
        "footer": {"text": "Dates subject to change."},
        "action": {
            "name": "cta_url",
            "parameters": {"display_text": "See Dates", "url": "https://www.luckyshrub.com?clickID=kqDGWd24Q5TR"},
        },
    },
}
LOCATION_REQUEST: dict[str, Any] = {
    "messaging_product": "whatsapp",
    "recipient_type": "individual",
    "type": "interactive",
    "to": TO,
    "interactive": {
        "type": "location_request_message",
        "body": {"text": "Let's start with your pickup. You can either manually *enter an address* or *share"},
        "action": {"name": "send_location"},
    },
}


# sends in Meta's shapes


def test_metas_example_bodies_are_accepted():
    reaction = parse_send(REACTION)
    assert isinstance(reaction, SendReaction) and reaction.reaction.emoji == "😀"
    location = parse_send(LOCATION)
    assert isinstance(location, SendLocation)
    assert (location.location.latitude, location.location.longitude) == (37.44216251868683, -122.16153582049394)
    contacts = parse_send(CONTACTS)
    assert isinstance(contacts, SendContacts) and contacts.contacts[0].name.formatted_name == "Barbara J. Johnson"
    for body in (CTA_URL, LOCATION_REQUEST):
        assert isinstance(parse_send(body), SendInteractive)


def test_numbers_as_numbers_and_a_cta_without_header_body_or_footer_are_accepted():
    numeric = changed(changed(LOCATION, "location.latitude", -33.9249), "location.longitude", 18.4241)
    assert parse_send(numeric).location.latitude == -33.9249  # type: ignore[union-attr]
    bare = CTA_URL
    for part in ("header", "body", "footer"):
        bare = changed(bare, f"interactive.{part}", ...)
    assert isinstance(parse_send(bare), SendInteractive)
    removal = changed(REACTION, "reaction.emoji", "")
    assert parse_send(removal).reaction.emoji == ""  # type: ignore[union-attr]


def test_nulls_and_empty_lists_as_client_libraries_send_them_are_accepted():
    """pywa 4.5.0 sends a contact's unset fields as null and its empty lists as [], and a location's unset name
    and address as null; Meta accepts both."""
    contact = {
        "name": {"formatted_name": "Ben", "first_name": "Ben", "last_name": None, "prefix": None},
        "birthday": None,
        "phones": [{"phone": "1234", "type": "MOBILE", "wa_id": None}],
        "emails": [],
        "addresses": [],
        "org": None,
    }
    sent = parse_send(changed(CONTACTS, "contacts", [contact]))
    assert isinstance(sent, SendContacts) and sent.contacts[0].phones[0].phone == "1234"  # type: ignore[index]
    location = changed(changed(LOCATION, "location.name", None), "location.address", None)
    assert parse_send(location).location.name is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (changed(REACTION, "reaction.emoji", "ok"), "reaction.emoji"),
        (changed(REACTION, "reaction.emoji", "👍 thanks, see https://x.example"), "reaction.emoji"),
        (changed(REACTION, "reaction.message_id", "12345"), "reaction.message_id"),
        (changed(REACTION, "reaction.emoji", ...), "reaction.emoji"),
        (changed(LOCATION, "location.latitude", "91"), "location.latitude"),
        (changed(LOCATION, "location.longitude", -180.5), "location.longitude"),
        (changed(LOCATION, "location.latitude", "north"), "location.latitude"),
        (changed(LOCATION, "location.altitude", 3), "location.altitude"),
        (changed(CONTACTS, "contacts", []), "contacts"),
        (changed(CONTACTS, "contacts", [CONTACT] * 258), "contacts"),
        (changed(CONTACTS, "contacts.0.name.formatted_name", ...), "contacts.0.name.formatted_name"),
        (changed(CONTACTS, "contacts.0.birthday", "23/01/1999"), "contacts.0.birthday"),
        (changed(CONTACTS, "contacts.0.urls.0.url", "javascript:alert(1)"), "contacts.0.urls.0.url"),
        (changed(CONTACTS, "contacts.0.phones", [{"phone": "1"}] * 21), "contacts.0.phones"),
        (changed(CTA_URL, "interactive.action.parameters.url", "javascript:alert(1)"), "interactive.action"),
        (changed(CTA_URL, "interactive.action.parameters.url", "intent://scan/#Intent;end"), "interactive.action"),
        (changed(CTA_URL, "interactive.action.parameters.display_text", "x" * 21), "interactive.action"),
        (changed(CTA_URL, "interactive.action.name", "cta"), "interactive.action.name"),
        (changed(LOCATION_REQUEST, "interactive.body", ...), "interactive.body"),
        (changed(LOCATION_REQUEST, "interactive.action.name", "send"), "interactive.action.name"),
        (changed(LOCATION_REQUEST, "interactive.footer", {"text": "hi"}), "interactive.footer"),
    ],
)
def test_bad_values_are_100_naming_the_field(body, field):
    error = refusal(body)
    assert error.code == 100
    assert error.details.startswith(field), error.details


def test_a_media_header_on_a_cta_is_131051_and_other_interactive_types_name_the_ones_carried():
    header = refusal(changed(CTA_URL, "interactive.header", {"type": "image", "image": {"link": "https://x.y/a"}}))
    assert header.code == 131051 and header.details.startswith("interactive.header.type")
    flow = refusal(changed(CTA_URL, "interactive.type", "flow"))
    assert flow.code == 131051 and "'cta_url'" in flow.details and "'location_request_message'" in flow.details


# what goes inside the ciphertext, and what the user's client reads back


def test_business_plaintexts_read_back_as_sent():
    location = parse_send(LOCATION)
    shown = parse_business_message(business_plaintext(location, "wamid.loc", 5))  # type: ignore[arg-type]
    assert isinstance(shown, LocationMessage) and shown.location.name == "Philz Coffee"
    contacts = parse_send(changed(CONTACTS, "context", {"message_id": WAMID}))
    shown = parse_business_message(business_plaintext(contacts, "wamid.c", 5))  # type: ignore[arg-type]
    assert isinstance(shown, ContactsMessage) and shown.context_id == WAMID
    assert shown.contacts[0].model_dump(mode="json", exclude_none=True) == CONTACT
    cta = parse_business_message(business_plaintext(parse_send(CTA_URL), "wamid.cta", 5))  # type: ignore[arg-type]
    assert isinstance(cta, BusinessInteractive)
    assert "[See Dates] → https://www.luckyshrub.com?clickID=kqDGWd24Q5TR" in describe(cta)
    request = parse_business_message(business_plaintext(parse_send(LOCATION_REQUEST), "wamid.r", 5))  # type: ignore[arg-type]
    assert "[Send location]" in describe(request)


def test_a_reaction_names_the_users_own_message_id_which_the_gateway_looked_up():
    reaction = parse_send(REACTION)
    with pytest.raises(ValueError, match="client message id"):
        business_plaintext(reaction, "wamid.r", 5)  # type: ignore[arg-type]
    shown = parse_business_message(business_plaintext(reaction, "wamid.r", 5, reacted_to="c0ffee"))  # type: ignore[arg-type]
    assert isinstance(shown, ReactionMessage) and shown.reaction.message_id == "c0ffee"
    assert describe(shown) == "reacted 😀 to your message c0ffee"


def test_the_users_client_checks_a_business_message_again():
    """A gateway that skipped the checks cannot make a client show a javascript: button or 300 contacts."""
    bad_cta = {
        "v": 1,
        "type": "interactive",
        "id": "wamid.x",
        "ts": 1,
        "interactive": {
            "type": "cta_url",
            "action": {"name": "cta_url", "parameters": {"display_text": "Pay", "url": "javascript:steal()"}},
        },
    }
    too_many = {
        "v": 1,
        "type": "contacts",
        "id": "wamid.y",
        "ts": 1,
        "contacts": [{"name": {"formatted_name": "a"}}] * 300,
    }
    for payload in (bad_cta, too_many):
        with pytest.raises(ValueError):
            parse_business_message(json.dumps(payload).encode())


def test_the_command_line_reports_a_business_message_that_fails_the_checks_instead_of_showing_it():
    bad = {"v": 1, "type": "location", "id": "wamid.z", "ts": 1, "location": {"latitude": 100, "longitude": 0}}
    assert history_text(bad) == "a location message that does not pass Cove's checks was not shown"
    good = {**bad, "location": {"latitude": 52.52, "longitude": 13.405, "name": "Bakery"}}
    assert history_text(good) == "location: Bakery (52.520000, 13.405000)"


def test_a_users_composed_messages_parse_on_the_gateways_side():
    reaction = parse_content(compose_reaction("shop", "wamid.abc", "👍").payload)
    assert isinstance(reaction, ReactionMessage) and reaction.reaction.message_id == "wamid.abc"
    location = parse_content(compose_location("shop", -33.9, 18.4, "Home", None, reply_to="wamid.req").payload)
    assert isinstance(location, LocationMessage) and location.context_id == "wamid.req"
    contacts = parse_content(compose_contacts("shop", [{"name": {"formatted_name": "Ana"}}]).payload)
    assert isinstance(contacts, ContactsMessage)
    for bad in (lambda: compose_reaction("shop", "wamid.abc", "hello"), lambda: compose_location("shop", 95, 0)):
        with pytest.raises(ValueError):
            bad()


# webhooks in Meta's shapes


def test_webhook_parts_are_metas_shapes():
    reaction = parse_content(compose_reaction("shop", "wamid.abc", "❤️").payload)
    assert webhook_part(reaction, "wamid.abc") == {
        "type": "reaction",
        "reaction": {"message_id": "wamid.abc", "emoji": "❤️"},
    }
    assert webhook_part(reaction, None) is None  # a message the gateway does not know: nothing to name
    removed = parse_content(compose_reaction("shop", "wamid.abc", "").payload)
    assert webhook_part(removed, "wamid.abc") == {"type": "reaction", "reaction": {"message_id": "wamid.abc"}}
    location = parse_content(compose_location("shop", 37.4, -122.1, "Philz", "101 Forest Ave").payload)
    part = webhook_part(location, None)
    assert part == {
        "type": "location",
        "location": {"latitude": 37.4, "longitude": -122.1, "name": "Philz", "address": "101 Forest Ave"},
    }
    event = events.inbound_message("waba", "pn", "+1415", "ana", "US.1", "wamid.in", 7, part, "wamid.req")
    message = event.body["entry"][0]["changes"][0]["value"]["messages"][0]
    assert message["type"] == "location" and message["location"]["name"] == "Philz"
    assert message["context"] == {"from": "+1415", "id": "wamid.req"}


phone_like = st.text(alphabet="0123456789+ ()-", min_size=1, max_size=20)


@given(
    st.lists(
        st.fixed_dictionaries(
            {"phone": phone_like},
            optional={"wa_id": st.text(alphabet="0123456789USC.", min_size=1, max_size=30), "type": st.just("WORK")},
        ),
        max_size=5,
    )
)
def test_no_wa_id_a_user_wrote_into_a_contact_leaves_the_gateway(phones):
    """Meta sets a phone's wa_id; a user's client cannot know the ids this business gives others, and a made-up
    one would point the business's records at someone else."""
    card: dict[str, Any] = {"name": {"formatted_name": "Friend"}}
    if phones:
        card["phones"] = phones
    shared = parse_content(compose_contacts("shop", [card]).payload)
    part = webhook_part(shared, None)
    assert part is not None
    assert all("wa_id" not in phone for c in part["contacts"] for phone in c.get("phones", []))
    assert [p["phone"] for c in part["contacts"] for p in c.get("phones", [])] == [p["phone"] for p in phones]


# the check of a user's choice


BUTTONS = ButtonMessage.model_validate(
    {
        "type": "button",
        "body": {"text": "Pick a time"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": "slot-4", "title": "4 pm"}},
                {"type": "reply", "reply": {"id": "slot-6", "title": "6 pm"}},
            ]
        },
    }
)
LIST = ListMessage.model_validate(
    {
        "type": "list",
        "body": {"text": "Choose"},
        "action": {"button": "Menu", "sections": [{"rows": [{"id": "r1", "title": "Bread", "description": "Rye"}]}]},
    }
)


@pytest.fixture
def offered() -> Offered:
    return Offered(sqlite3.connect(":memory:", isolation_level=None))


def test_a_choice_the_message_offered_passes_and_anything_else_says_why(offered):
    offered.record("wamid.b", "ana", BUTTONS, 1_000)
    offered.record("wamid.l", "ana", LIST, 1_000)
    six = ReplyChoice(type="button_reply", id="slot-6", title="6 pm")
    assert offered.verdict("ana", "wamid.b", six) is None
    assert (
        offered.verdict("ana", "wamid.l", ReplyChoice(type="list_reply", id="r1", title="Bread", description="Rye"))
        is None
    )
    assert "not one the message offered" in offered.verdict("ana", "wamid.b", six.model_copy(update={"id": "refund"}))
    assert "not one" in offered.verdict("ana", "wamid.b", six.model_copy(update={"title": "Refund"}))
    assert "not one" in offered.verdict("ana", "wamid.b", ReplyChoice(type="list_reply", id="slot-6", title="6 pm"))
    assert "someone else" in offered.verdict("bob", "wamid.b", six)
    assert "remembers" in offered.verdict("ana", "wamid.other", six)


def test_what_is_offered_is_bounded_and_pruned(offered):
    small = Offered(offered.db, limit=3)
    for i in range(5):
        small.record(f"wamid.{i}", "ana", BUTTONS, 1_000 + i)
    count = offered.db.execute("SELECT count(*) FROM gw_offered").fetchone()[0]
    assert count == 3
    four = ReplyChoice(type="button_reply", id="slot-4", title="4 pm")
    assert small.verdict("ana", "wamid.0", four) is not None and small.verdict("ana", "wamid.4", four) is None
    small.prune(1_004)
    assert [r[0] for r in offered.db.execute("SELECT message_id FROM gw_offered")] == ["wamid.4"]
    small.forget("wamid.4")
    assert small.verdict("ana", "wamid.4", four) is not None
    for i in range(5):
        small.record_reaction(f"wamid.r{i}", 2_000 + i)
    assert not small.is_reaction("wamid.r1") and small.is_reaction("wamid.r2") and small.is_reaction("wamid.r4")
    small.prune(2_004)
    assert [small.is_reaction(f"wamid.r{i}") for i in (3, 4)] == [False, True]


@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=20))
def test_only_an_offered_choice_passes(choice_id, title):
    """Whatever a modified client writes into a reply, only the exact choices offered pass."""
    offered = Offered(sqlite3.connect(":memory:", isolation_level=None))
    offered.record("wamid.b", "ana", BUTTONS, 1)
    reply = ReplyChoice(type="button_reply", id=choice_id, title=title)
    passes = offered.verdict("ana", "wamid.b", reply) is None
    assert passes == ((choice_id, title) in {("slot-4", "4 pm"), ("slot-6", "6 pm")})


def test_a_cta_or_location_request_offers_no_choice(offered):
    for body in (CTA_URL, LOCATION_REQUEST):
        offered.record("wamid.x", "ana", parse_send(body).interactive, 1)  # type: ignore[union-attr]
    assert offered.db.execute("SELECT count(*) FROM gw_offered").fetchone()[0] == 0
    message = parse_business_message(business_plaintext(parse_send(LOCATION_REQUEST), "wamid.r", 5))  # type: ignore[arg-type]
    assert isinstance(message, BusinessInteractive)
    with pytest.raises(ValueError, match="not one of"):
        compose_interactive_reply(message, "anything", "c1", 1)
    reply = parse_interactive_reply(
        compose_interactive_reply(
            parse_business_message(  # type: ignore[arg-type]
                business_plaintext(parse_send({**CTA_URL, "interactive": {"type": "button", **_buttons()}}), "w", 1)
            ),
            "slot-4",
            "c2",
            1,
        )
    )
    assert reply.reply.id == "slot-4"


def _buttons() -> dict[str, Any]:
    return BUTTONS.model_dump(mode="json", exclude={"type"}, exclude_none=True)
