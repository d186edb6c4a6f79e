"""Users' identity towards businesses (issue 15, "Identity of users"): per-business ids in Meta's BSUID format,
the name a user shows, the number shared only when the user chooses, and id changes, from the pure rules to a
real relay and gateway.

Shapes are Meta's (business-scoped user ids and the messages webhook reference, cited in
cove.business.gateway.identity).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from hypothesis import given
from hypothesis import strategies as st

from cove.business import identity_service
from cove.business.gateway import events, identity
from cove.business.gateway.cloud import parse_send
from cove.business.gateway.identity import Contact
from cove.business.gateway.statuses import Status
from cove.business.identity import UNKNOWN_REGION, bsuid_from_legacy, region_of, shown_name
from cove.business.keys import BSUID, BusinessKeys
from cove.client.core import PayloadReceived
from cove.db import _alembic_config, create_engine
from cove.keyfile import derive
from cove.testing import run_cove
from gateway_world import register_profile
from test_business_gateway import SHOP_PHONE, opt_in, send, text, user_call, world  # noqa: F401 - the fixture

USER_ID = "US.13491208655302741918"
KEYS = BusinessKeys(b"k" * 32)


# Pure rules ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "region"),
    [
        ("+14155550123", "US"),
        ("+15550100", "US"),  # a number valid nowhere: its calling code's main country
        ("+447700900123", "GB"),
        ("+5511987654321", "BR"),
        ("16505551234", "US"),  # a wa_id has no +
        ("+80012345678", UNKNOWN_REGION),  # a non-geographic code: no country to name
        ("not a number", UNKNOWN_REGION),
    ],
)
def test_the_id_starts_with_the_numbers_country(number, region):
    assert region_of(number) == region


@given(
    business=st.uuids().map(str),
    account=st.uuids().map(str),
    number=st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True),
)
def test_ids_have_metas_shape_are_stable_and_differ_between_businesses(business, account, number):
    one = KEYS.bsuid(business, account, number)
    assert re.match(BSUID, one) and one == KEYS.bsuid(business, account, number)
    assert one.split(".")[0] == region_of(number)
    assert KEYS.bsuid(business + "x", account, number) != one  # another business cannot match it
    assert KEYS.bsuid(business, account, number + "1") != one  # a new number is a new id, as Meta's
    assert number.lstrip("+") not in one.split(".")[1] or len(number) < 9  # the digits are no number


def test_a_legacy_id_keeps_its_hmac_bits_in_metas_format():
    digest = hmac.new(derive(KEYS.secret, "cove:business:bsuid"), b"b|a", hashlib.sha256).digest()
    legacy = "CC." + base64.b32encode(digest[:20]).decode().rstrip("=")
    converted = bsuid_from_legacy(legacy, "+14155550123")
    assert re.match(BSUID, converted)
    assert converted == f"US.{int.from_bytes(digest[:8], 'big'):020d}"
    with pytest.raises(ValueError):
        bsuid_from_legacy(converted, "+14155550123")


@pytest.mark.parametrize(("given_name", "kept"), [("  Ana  ", "Ana"), ("Ana\tMaria", "Ana Maria"), ("Zoë", "Zoë")])
def test_a_shown_name_is_one_line(given_name, kept):
    assert shown_name(given_name) == kept


@pytest.mark.parametrize("bad", ["", "   ", "x" * 65, "\x00bell"])
def test_a_shown_name_must_be_short_printable_text(bad):
    with pytest.raises(ValueError):
        shown_name(bad)


def test_a_bsuid_may_come_in_metas_recipient_field():
    body = {"messaging_product": "whatsapp", "recipient": USER_ID, "type": "text", "text": {"body": "hi"}}
    send_ = parse_send(body)
    assert send_.to == USER_ID and send_.user == USER_ID


def _value(event: events.Event) -> dict[str, Any]:
    return event.body["entry"][0]["changes"][0]["value"]


def test_a_message_from_a_user_who_hides_their_number_names_them_by_id_only():
    contact = Contact(USER_ID, None, "Ana")
    value = _value(events.inbound_message("w", "p", "+1", "", "", "wamid.A", 1, "hi", contact=contact))
    assert value["contacts"] == [{"profile": {"name": "Ana"}, "user_id": USER_ID}]
    assert value["messages"][0]["from_user_id"] == USER_ID and "from" not in value["messages"][0]


def test_a_message_from_a_user_who_shares_their_number_carries_both():
    contact = Contact(USER_ID, "14155550123", None)
    value = _value(events.inbound_message("w", "p", "+1", "", "", "wamid.A", 1, "hi", contact=contact))
    assert value["contacts"] == [{"profile": {"name": ""}, "wa_id": "14155550123", "user_id": USER_ID}]
    assert value["messages"][0]["from"] == "14155550123" and value["messages"][0]["from_user_id"] == USER_ID


def test_statuses_carry_recipient_user_id_and_contacts_with_the_users_name():
    contact = Contact(USER_ID, None, "Ana")
    sent = _value(events.status("w", "p", "+1", "wamid.A", Status.SENT, 1, "", contact=contact))
    # Meta: recipient_id is the number, left out when the business may not see it; the id is recipient_user_id.
    assert "recipient_id" not in sent["statuses"][0] and sent["statuses"][0]["recipient_user_id"] == USER_ID
    assert sent["contacts"] == [{"profile": {"name": "Ana"}, "user_id": USER_ID}]
    from cove.business.errors import CloudApiError

    # A failed send to a number: no recipient_user_id (Meta's), but contacts with the id (pywa 4.5.0 needs them).
    by_number = Contact(USER_ID, "14155550123", "Ana", id_in_status=False)
    failed = _value(
        events.status("w", "p", "+1", "wamid.A", Status.FAILED, 1, "", [CloudApiError(131026)], contact=by_number)
    )
    assert "recipient_user_id" not in failed["statuses"][0]
    assert failed["statuses"][0]["recipient_id"] == "14155550123"
    assert failed["contacts"] == [{"profile": {"name": "Ana"}, "wa_id": "14155550123", "user_id": USER_ID}]
    # A number no user of the business has: no id, so no contacts (Meta's contacts[] always has user_id).
    unknown = Contact(None, "14155550123", None)
    nobody = _value(
        events.status("w", "p", "+1", "wamid.A", Status.FAILED, 1, "", [CloudApiError(131026)], contact=unknown)
    )
    assert "contacts" not in nobody and nobody["statuses"][0]["recipient_id"] == "14155550123"


def test_an_id_change_is_a_system_message_of_metas_two_kinds():
    previous = Contact(USER_ID, None, None)
    only_id = identity.id_changed(previous, "US.00000000000000000001", None, "wamid.S", 5)
    assert "from" not in only_id and only_id["from_user_id"] == USER_ID
    assert only_id["system"] == {
        "body": "User's ID has changed",
        "type": "user_changed_user_id",
        "user_id": "US.00000000000000000001",
        "previous_user_id": USER_ID,
    }
    shared = Contact(USER_ID, "14155550123", "Ana")
    number = identity.id_changed(shared, "GB.00000000000000000002", "447700900123", "wamid.S", 5)
    assert number["from"] == "14155550123" and number["system"]["type"] == "user_changed_number"
    assert number["system"]["wa_id"] == "447700900123" and number["system"]["previous_user_id"] == USER_ID
    event = events.user_system_message("w", "p", "+1", number)
    assert "contacts" not in _value(event)  # Meta sends system messages without a contacts array


@given(number=st.from_regex(r"[1-9][0-9]{7,14}", fullmatch=True), name=st.text(max_size=20))
def test_the_number_leaves_only_when_the_business_may_see_it(number, name):
    """Whatever the name, a contact without a visible number puts no number into any webhook about the user."""
    hidden = Contact(USER_ID, None, name)
    bodies = [
        events.inbound_message("w", "p", "+1", "", "", "wamid.A", 1, "hi", contact=hidden).body,
        events.status("w", "p", "+1", "wamid.A", Status.READ, 1, "", contact=hidden).body,
        events.user_preferences("w", "p", "+1", USER_ID, "stop", 1, hidden).body,
    ]
    for body in bodies:
        assert number not in json.dumps(body).replace(json.dumps(name), "")


# The migration of stored ids ----------------------------------------------------------------------------------------


def test_migration_0018_rewrites_legacy_ids_and_tells_each_business(tmp_path: Path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'relay.db'}")
    digest = hashlib.sha256(b"x").digest()
    legacy = "CC." + base64.b32encode(digest[:20]).decode().rstrip("=")
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0017")
        conn.execute(
            sa.text(
                "INSERT INTO accounts (id, phone_number, created_at_ms, identity_generation) "
                "VALUES ('u', '+447700900123', 0, 1)"
            )
        )
        conn.execute(
            sa.text("INSERT INTO business_user_ids VALUES ('b', 'u', :bsuid, 0)"),
            {"bsuid": legacy},
        )
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0018")
        stored = conn.execute(sa.text("SELECT bsuid, shown_name, number_shared_at_ms FROM business_user_ids")).one()
        told = conn.execute(sa.text("SELECT business_id, kind, body FROM business_events")).all()
    new = f"GB.{int.from_bytes(digest[:8], 'big'):020d}"
    assert tuple(stored) == (new, None, None)
    assert [(b, k, json.loads(body)) for b, k, body in told] == [
        ("b", "user_id_changed", {"previous_user_id": legacy, "user_id": new, "wa_id": None})
    ]
    engine.dispose()


# Through a real relay and gateway -----------------------------------------------------------------------------------


def _messages(receiver: Any) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every user message webhook so far, with its change's value."""
    return [(c["value"], m) for c in receiver.changes("messages") for m in c["value"].get("messages", [])]


def _text(receiver: Any, body: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(v, m) for v, m in _messages(receiver) if m.get("text", {}).get("body") == body]


async def test_a_user_shows_a_name_and_shares_their_number_only_when_they_choose(world, users, relay):  # noqa: F811
    gateway, receiver = world
    shop = gateway.phone_number_id
    ivy = await users.register("ivy")
    digits = ivy.core.phone_number.lstrip("+")

    # Ivy writes first: the shop sees her id, in Meta's shape, and no number and no name.
    await ivy.send_text(shop, "Is my cake ready?")
    value, first = (await receiver.wait_for(_messages))[0]
    user_id = first["from_user_id"]
    assert re.match(BSUID, user_id) and user_id.startswith("US.")
    assert "from" not in first and value["contacts"] == [{"profile": {"name": ""}, "user_id": user_id}]
    assert digits not in json.dumps(receiver.changes())

    # She chooses the name the shop sees; other businesses see none of it.
    named = await user_call(relay, ivy, "PUT", f"/v1/business/{shop}/name", json={"name": "  Ivy  R. "})
    assert named.status_code == 200 and named.json() == {"user_id": user_id, "name": "Ivy R.", "wa_id": None}
    bad = await user_call(relay, ivy, "PUT", f"/v1/business/{shop}/name", json={"name": "x" * 65})
    assert bad.status_code == 400
    # (The gateway reads names from the relay's feed: her next switch's webhook shows it has read this one.)
    assert (await user_call(relay, ivy, "POST", f"/v1/business/{shop}/stop-promotions")).status_code == 200
    await receiver.wait_for(lambda r: r.changes("user_preferences"))
    await ivy.send_text(shop, "It's Ivy.")
    named_msg = await receiver.wait_for(
        lambda r: [v for v, m in _messages(r) if m.get("text", {}).get("body") == "It's Ivy."]
    )
    assert named_msg[0]["contacts"][0]["profile"]["name"] == "Ivy R."

    # The shop asks for her number (Meta's request_contact_info, to her id in the recipient field).
    ask = {
        "messaging_product": "whatsapp",
        "recipient": user_id,
        "type": "interactive",
        "interactive": {
            "type": "request_contact_info",
            "body": {"text": "Share your number so the driver can call you."},
            "action": {"name": "request_contact_info"},
        },
    }
    asked = await send(gateway, ask)
    assert asked["contacts"] == [{"input": user_id, "user_id": user_id}]
    shown = [e for e in await ivy.inbox() if isinstance(e, PayloadReceived)]
    assert shown[-1].payload["interactive"]["type"] == "request_contact_info"

    # She shares it: the shop gets Meta's contacts message, and from then on her number in every webhook.
    shared = await user_call(relay, ivy, "PUT", f"/v1/business/{shop}/number-sharing")
    assert shared.json() == {"user_id": user_id, "name": "Ivy R.", "wa_id": digits}
    card = await receiver.wait_for(lambda r: [m for v, m in _messages(r) if m["type"] == "contacts"])
    assert card[0]["origin"] == "contact_request" and card[0]["from_user_id"] == user_id
    assert card[0]["contacts"][0]["phones"][0] == {"phone": "+" + digits, "wa_id": digits, "type": "CELL"}
    await ivy.send_text(shop, "Here it is.")
    after = await receiver.wait_for(
        lambda r: [(v, m) for v, m in _messages(r) if m.get("text", {}).get("body") == "Here it is."]
    )
    assert after[0][1]["from"] == digits and after[0][0]["contacts"][0]["wa_id"] == digits
    reply = await send(gateway, text(user_id, "Thanks, Ivy."))
    assert reply["contacts"] == [{"input": user_id, "wa_id": digits, "user_id": user_id}]
    await ivy.inbox()
    delivered = await receiver.wait_for(
        lambda r: [
            (c["value"], s)
            for c in r.changes("messages")
            for s in c["value"].get("statuses", [])
            if s["id"] == reply["messages"][0]["id"] and s["status"] == "delivered"
        ]
    )
    status_value, status = delivered[0]
    assert status["recipient_id"] == digits and status["recipient_user_id"] == user_id
    assert status_value["contacts"] == [{"profile": {"name": "Ivy R."}, "wa_id": digits, "user_id": user_id}]

    # She stops sharing it: the next webhooks name her by id only again. (A withdrawal has no webhook of its own,
    # as in Meta's API; her next switch, resuming promotions, comes after it in the relay's feed, so its webhook
    # shows the gateway has read the withdrawal.)
    stopped = await user_call(relay, ivy, "DELETE", f"/v1/business/{shop}/number-sharing")
    assert stopped.json()["wa_id"] is None
    assert (await user_call(relay, ivy, "POST", f"/v1/business/{shop}/resume-promotions")).status_code == 200
    resumed = await receiver.wait_for(
        lambda r: [c for c in r.changes("user_preferences") if c["value"]["user_preferences"][0]["value"] == "resume"]
    )
    assert resumed[0]["value"]["contacts"] == [{"profile": {"name": "Ivy R."}, "user_id": user_id}]
    await ivy.send_text(shop, "Bye.")
    bye = await receiver.wait_for(
        lambda r: [(v, m) for v, m in _messages(r) if m.get("text", {}).get("body") == "Bye."]
    )
    assert "from" not in bye[0][1] and bye[0][0]["contacts"] == [{"profile": {"name": "Ivy R."}, "user_id": user_id}]

    # Her own view, and nothing for a business that does not exist.
    mine = await user_call(relay, ivy, "GET", f"/v1/business/{shop}/identity")
    assert mine.json() == {"user_id": user_id, "name": "Ivy R.", "wa_id": None}
    nobody = await user_call(relay, ivy, "PUT", "/v1/business/00000000-0000-4000-8000-000000000000/number-sharing")
    assert nobody.status_code == 404


async def test_a_new_number_gives_a_new_id_and_the_business_is_told(world, users, relay):  # noqa: F811
    gateway, receiver = world
    shop = gateway.phone_number_id
    ana = await users.register("ana")
    await ana.send_text(shop, "Hello")
    _, first = (await receiver.wait_for(_messages))[0]
    old_id = first["from_user_id"]

    # The relay moves her to a new number (what the accounts' change-number flow calls).
    engine = create_engine(relay.database_url)
    async with engine.begin() as conn:
        told = await identity_service.number_changed(
            conn, BusinessKeys.load_or_create(relay.data_dir), ana.core.account_id, "+447700900123"
        )
    await engine.dispose()
    assert told == 1
    system = await receiver.wait_for(lambda r: [m for v, m in _messages(r) if m["type"] == "system"])
    new_id = system[0]["system"]["user_id"]
    assert system[0]["system"]["type"] == "user_changed_user_id" and system[0]["system"]["previous_user_id"] == old_id
    assert re.match(BSUID, new_id) and new_id.startswith("GB.") and new_id != old_id
    # The gateway now answers to the new id, and no longer to the old one.
    await ana.send_text(shop, "Still me")
    later = await receiver.wait_for(
        lambda r: [m for v, m in _messages(r) if m.get("text", {}).get("body") == "Still me"]
    )
    assert later[0]["from_user_id"] == new_id


async def test_a_user_moves_to_a_new_number_and_a_business_they_share_it_with_is_told(world, users, relay):  # noqa: F811
    gateway, receiver = world
    shop = gateway.phone_number_id
    bo = await users.register("bo")
    old_digits = bo.core.phone_number.lstrip("+")
    await bo.send_text(shop, "Hi")
    _, first = (await receiver.wait_for(_messages))[0]
    old_id = first["from_user_id"]
    assert (await user_call(relay, bo, "PUT", f"/v1/business/{shop}/number-sharing")).status_code == 200
    await receiver.wait_for(lambda r: [m for v, m in _messages(r) if m["type"] == "contacts"])

    # The accounts' change-number flow: a code to the new number, submitted from Bo's device.
    new_number = "+447400123456"
    asked = await user_call(
        relay, bo, "POST", "/v1/verification/code", json={"phone_number": new_number, "purpose": "change_number"}
    )
    assert asked.status_code == 202, asked.text
    wrong = await user_call(
        relay, bo, "PUT", "/v1/accounts/me/number", json={"phone_number": new_number, "code": "000000"}
    )
    assert wrong.status_code in (400, 403)
    moved = await user_call(
        relay,
        bo,
        "PUT",
        "/v1/accounts/me/number",
        json={"phone_number": new_number, "code": users.inbox.latest(new_number)},
    )
    assert moved.status_code == 200, moved.text
    assert (await user_call(relay, bo, "GET", "/v1/accounts/me")).json()["phone_number"] == new_number

    # The shop is told in Meta's shape: the old number, the new one, the new id and the previous one.
    system = await receiver.wait_for(lambda r: [m for v, m in _messages(r) if m["type"] == "system"])
    assert system[0]["from"] == old_digits and system[0]["from_user_id"] == old_id
    assert system[0]["system"]["type"] == "user_changed_number"
    assert system[0]["system"]["wa_id"] == new_number.lstrip("+") and system[0]["system"]["previous_user_id"] == old_id
    new_id = system[0]["system"]["user_id"]
    assert new_id.startswith("GB.") and new_id != old_id
    await bo.send_text(shop, "New number, same me")
    later = await receiver.wait_for(lambda r: _text(r, "New number, same me"))
    assert later[0][1]["from"] == new_number.lstrip("+") and later[0][1]["from_user_id"] == new_id


async def test_the_command_line_sets_the_name_and_shares_the_number(world, relay, code_inbox):  # noqa: F811
    gateway, _ = world
    phone = "+14155550177"
    await register_profile(relay, code_inbox, gateway.home, "kim", phone)
    env = {**gateway.env, "COVE_PROFILE": "kim"}

    def cove(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cove(list(args), env)

    named = await asyncio.to_thread(cove, "businesses", "name", SHOP_PHONE, "Kim")
    assert named.returncode == 0, named.stderr
    assert "name it sees: Kim" in named.stdout and "your number: hidden" in named.stdout
    shared = await asyncio.to_thread(cove, "businesses", "share-number", SHOP_PHONE)
    assert shared.returncode == 0 and f"shared ({phone})" in shared.stdout
    stopped = await asyncio.to_thread(cove, "businesses", "share-number", SHOP_PHONE, "--stop")
    assert stopped.returncode == 0 and "your number: hidden" in stopped.stdout
    shown = await asyncio.to_thread(cove, "businesses", "identity", SHOP_PHONE)
    assert re.search(r"it knows you as: US\.[0-9]{20}", shown.stdout) and "name it sees: Kim" in shown.stdout
    neither = await asyncio.to_thread(cove, "businesses", "name", SHOP_PHONE)
    assert neither.returncode != 0 and "give a NAME, or --clear" in neither.stderr + neither.stdout
    too_long = await asyncio.to_thread(cove, "businesses", "name", SHOP_PHONE, "x" * 80)
    assert too_long.returncode != 0 and "Traceback" not in too_long.stderr
