"""Requests, one way, for the message types issue 15 adds: reactions, locations, contacts, call-to-action URL
buttons and location requests, built as Meta's reference builds them (coordinates as strings, as in Meta's example)
and as pywa 4.5.0 builds them (coordinates as numbers, unset contact fields as ``null``), are taken by the
gateway's parser."""

from __future__ import annotations

import pytest
from pywa import WhatsApp, types

from contracts.harness import pywa_requests, refusal
from contracts.reference import sends

TO = "+16505551234"
MESSAGE_ID = "wamid.HBgLMTY0NjcwNDM1OTUVAgASGBQzQTdCNTg5RjY1MEMyRjlGMjRGNgA="
TYPES = ("reaction", "location", "contacts", "interactive_cta_url", "interactive_location_request")


@pytest.mark.parametrize("name", TYPES)
def test_meta_examples_parse(name: str) -> None:
    assert refusal(sends.free_form(TO)[name]) is None


def test_a_location_with_numeric_coordinates_parses() -> None:
    location = sends.LOCATION | {"latitude": 37.44216251868683, "longitude": -122.16153582049394}
    assert refusal(sends.addressed(TO, "location", location)) is None


def test_removing_a_reaction_is_an_empty_emoji() -> None:
    """Meta: "to remove a reaction, send the same request with an empty string as the emoji"."""
    assert refusal(sends.addressed(TO, "reaction", sends.REACTION | {"emoji": ""})) is None


def _calls(wa: WhatsApp) -> None:
    to = "16505551234"
    wa.send_reaction(to, "\U0001f600", MESSAGE_ID)
    wa.remove_reaction(to, MESSAGE_ID)
    wa.send_location(to, 37.44216251868683, -122.16153582049394, name="Philz Coffee", address="101 Forest Ave")
    phone = types.Contact.Phone(phone="+1 (650) 555-1234", type="WORK", wa_id="16505551234")
    wa.send_contact(to, types.Contact(name=types.Contact.Name(formatted_name="Barbara J. Johnson"), phones=[phone]))
    wa.send_message(to, "See the dates", buttons=types.URLButton(title="See Dates", url="https://luckyshrimp.example"))
    wa.request_location(to, "Where should we pick you up?")


def test_the_sends_pywa_builds_for_these_types_parse() -> None:
    bodies = pywa_requests(_calls)
    assert [b["type"] for b in bodies] == ["reaction", "reaction", "location", "contacts", "interactive", "interactive"]
    assert {i: refusal(body) for i, body in enumerate(bodies)} == dict.fromkeys(range(len(bodies)))
