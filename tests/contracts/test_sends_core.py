"""Requests, one way: the sends the gateway carried before issue 15 (text, replies, reply buttons, lists, templates
with body values, mark as read), built as Meta's reference builds them and as pywa 4.5.0 builds them, are taken by
the gateway's parser; and what Meta refuses the gateway refuses too, with Meta's code."""

from __future__ import annotations

from typing import Any

import pytest
from pywa import WhatsApp, types
from pywa.types.templates import BodyText, TemplateLanguage

from contracts.harness import pywa_requests, refusal
from contracts.reference import sends

TO = "+16505551234"
CORE = ("text", "reply", "interactive_button", "interactive_list")
MESSAGE_ID = "wamid.HBgLMTY0NjcwNDM1OTUVAgASGBQzQTdCNTg5RjY1MEMyRjlGMjRGNgA="


@pytest.mark.parametrize("name", CORE)
def test_meta_examples_of_free_form_sends_parse(name: str) -> None:
    assert refusal(sends.free_form(TO)[name]) is None


@pytest.mark.parametrize("to", ["+16505551234", "16505551234"])
def test_a_template_with_body_values_parses_with_or_without_the_plus(to: str) -> None:
    assert refusal(sends.template(to, "order_ready", ["A-17"])) is None


@pytest.mark.parametrize("typing", [False, True])
def test_mark_as_read_parses_with_and_without_the_typing_indicator(typing: bool) -> None:
    assert refusal(sends.mark_read(MESSAGE_ID, typing)) is None


def test_type_defaults_to_text_as_in_the_cloud_api() -> None:
    body = {"messaging_product": "whatsapp", "to": TO, "text": {"body": "hi"}}
    assert refusal(body) is None


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"messaging_product": "whatsapp", "to": TO, "type": "text"}, 100),  # text missing
        ({"messaging_product": "sms", "to": TO, "type": "text", "text": {"body": "x"}}, 100),
        ({"messaging_product": "whatsapp", "to": TO, "type": "carrier_pigeon", "carrier_pigeon": {}}, 131051),
        ({"messaging_product": "whatsapp", "to": "not a number", "type": "text", "text": {"body": "x"}}, 100),
    ],
)
def test_what_meta_refuses_is_refused_with_metas_code(body: dict[str, Any], code: int) -> None:
    refused = refusal(body)
    assert refused is not None and refused.startswith(f"{code}:"), refused


def _core_calls(wa: WhatsApp) -> None:
    to = "16505551234"
    wa.send_message(to, "hi")
    wa.send_message(to, "hi again", reply_to_message_id=MESSAGE_ID)
    wa.send_message(to, "pick", header="Pickup", footer="Lucky Shrimp", buttons=[types.Button("A", "a")])
    rows = [types.SectionRow(title="Express", callback_data="express", description="Next day")]
    wa.send_message(to, "ship", buttons=types.SectionList("Options", [types.Section(title="Fast", rows=rows)]))
    wa.send_template(to, name="order_ready", language=TemplateLanguage.ENGLISH, params=[BodyText.params("A-17")])
    wa.mark_message_as_read(MESSAGE_ID)
    wa.indicate_typing(MESSAGE_ID)


def test_the_sends_pywa_builds_for_these_types_parse() -> None:
    bodies = pywa_requests(_core_calls)
    assert len(bodies) == 7
    assert {i: refusal(body) for i, body in enumerate(bodies)} == dict.fromkeys(range(7))
