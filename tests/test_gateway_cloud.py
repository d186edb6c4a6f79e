"""The business gateway's Cloud API shapes: send bodies and their refusals, template values, plaintexts, webhook
bodies with stable event ids, and the order of message statuses (cove.business.gateway.cloud, .events,
.statuses)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from cloud_sends import changed, refusal
from cove.business.errors import CloudApiError
from cove.business.gateway import events
from cove.business.gateway.cloud import (
    MarkRead,
    SendInteractive,
    SendTemplate,
    SendText,
    accepted,
    business_plaintext,
    new_message_id,
    parse_send,
    read_ok,
    template_parameters,
)
from cove.business.gateway.events import Pricing, QualityEvent
from cove.business.gateway.statuses import Status, advance
from cove.business.tiers import Tier
from cove.client.core import ClientCore
from cove.client.events import MessageReceived
from cove.client.store import ClientStore
from cove.protocol.business import Category
from cove.protocol.business_messages import (
    ReplyChoice,
    compose_interactive_reply,
    parse_business_plaintext,
    parse_interactive_reply,
)
from cove.protocol.templates import Parameters, ReviewStatus, TemplateError, parse_template, render
from cove.protocol.templates.quick_reply import compose_button_reply, parse_button_reply
from test_business_templates import MARKETING_NAMED, UTILITY_POSITIONAL

# Known-good bodies, in the shapes of Meta's send-messages and interactive-messages pages.

TEXT: dict[str, Any] = {
    "messaging_product": "whatsapp",
    "recipient_type": "individual",
    "to": "+16505551234",
    "type": "text",
    "text": {"preview_url": True, "body": "As requested, here's the link: https://shop.example/spring"},
}

REPLY_TEXT: dict[str, Any] = {
    "messaging_product": "whatsapp",
    "to": "16505551234",
    "context": {"message_id": "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"},
    "type": "text",
    "text": {"body": "Your order shipped today."},
    "biz_opaque_callback_data": "ticket-8812",
}

TEMPLATE_POSITIONAL: dict[str, Any] = {
    "messaging_product": "whatsapp",
    "recipient_type": "individual",
    "to": "16505551234",
    "type": "template",
    "template": {
        "name": "order_shipped",
        "language": {"code": "de", "policy": "deterministic"},
        "components": [
            {"type": "header", "parameters": [{"type": "text", "text": "A-1001"}]},
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "Ana"},
                    {"type": "text", "text": "A-1001"},
                    {"type": "text", "text": "Friday"},
                ],
            },
            {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": "A-1001"}]},
        ],
    },
}

TEMPLATE_NAMED: dict[str, Any] = {
    "messaging_product": "whatsapp",
    "to": "16505551234",
    "type": "template",
    "template": {
        "name": "spring_sale",
        "language": {"code": "en_US"},
        "components": [
            {"type": "header", "parameters": [{"type": "text", "parameter_name": "first_name", "text": "Ana"}]},
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "parameter_name": "first_name", "text": "Ana"},
                    {"type": "text", "parameter_name": "percent", "text": "20%"},
                ],
            },
            {"type": "button", "sub_type": "url", "index": 1, "parameters": [{"type": "text", "text": "spring"}]},
        ],
    },
}

BUTTONS: dict[str, Any] = {
    "messaging_product": "whatsapp",
    "recipient_type": "individual",
    "to": "+16505551234",
    "type": "interactive",
    "interactive": {
        "type": "button",
        "header": {"type": "text", "text": "Workshop tomorrow"},
        "body": {
            "text": "Hi Pablo! Your gardening workshop is scheduled for 9am tomorrow. Use the buttons to change it."
        },
        "footer": {"text": "Lucky Shrub: Your gateway to succulents!"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": "change-button", "title": "Change"}},
                {"type": "reply", "reply": {"id": "cancel-button", "title": "Cancel"}},
            ]
        },
    },
}

LIST: dict[str, Any] = {
    "messaging_product": "whatsapp",
    "recipient_type": "individual",
    "to": "+16505551234",
    "type": "interactive",
    "interactive": {
        "type": "list",
        "header": {"type": "text", "text": "Choose Shipping Option"},
        "body": {"text": "Which shipping option do you prefer?"},
        "footer": {"text": "Lucky Shrub: Your gateway to succulents"},
        "action": {
            "button": "Shipping Options",
            "sections": [
                {
                    "title": "I want it ASAP!",
                    "rows": [
                        {
                            "id": "priority_express",
                            "title": "Priority Mail Express",
                            "description": "Next Day to 2 Days",
                        },
                        {"id": "priority_mail", "title": "Priority Mail", "description": "1–3 Days"},
                    ],
                },
                {
                    "title": "I can wait a bit",
                    "rows": [
                        {"id": "usps_ground_advantage", "title": "USPS Ground Advantage", "description": "2–5 Days"},
                        {"id": "media_mail", "title": "Media Mail"},
                    ],
                },
            ],
        },
    },
}

MARK_READ: dict[str, Any] = {
    "messaging_product": "whatsapp",
    "status": "read",
    "message_id": "wamid.HBgLMTY1MDUwNzY1MjAVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
    "typing_indicator": {"type": "text"},
}

# The templates the two template sends above fill in are tests/test_business_templates.py's.
ORDER_SHIPPED, SPRING_SALE = UTILITY_POSITIONAL, MARKETING_NAMED


# parsing: the good bodies


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (TEXT, SendText),
        (REPLY_TEXT, SendText),
        (TEMPLATE_POSITIONAL, SendTemplate),
        (TEMPLATE_NAMED, SendTemplate),
        (BUTTONS, SendInteractive),
        (LIST, SendInteractive),
        (MARK_READ, MarkRead),
    ],
)
def test_cloud_api_bodies_parse(body, kind):
    assert isinstance(parse_send(body), kind)


def test_defaults_follow_the_cloud_api():
    send = parse_send(changed(changed(TEXT, "type", ...), "recipient_type", ...))
    assert isinstance(send, SendText)
    assert (send.type, send.recipient_type) == ("text", "individual")
    assert parse_send({**TEXT, "preview_url": False}).text.body == TEXT["text"]["body"]  # Meta's older examples
    assert parse_send(changed(MARK_READ, "typing_indicator", ...)).typing_indicator is None


def test_a_reply_keeps_its_context_and_callback_data():
    send = parse_send(REPLY_TEXT)
    assert send.context.message_id == REPLY_TEXT["context"]["message_id"]
    assert send.biz_opaque_callback_data == "ticket-8812"


# parsing: every limit, with the field named


def _rows(n: int) -> list[dict[str, str]]:
    return [{"id": f"row-{i}", "title": f"Row {i}"} for i in range(n)]


def _buttons(n: int) -> list[dict[str, Any]]:
    return [{"type": "reply", "reply": {"id": f"b{i}", "title": f"Button {i}"}} for i in range(n)]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (changed(TEXT, "messaging_product", "sms"), "messaging_product"),
        (changed(TEXT, "messaging_product", ...), "messaging_product: required parameter is missing"),
        (changed(TEXT, "to", ...), "to: required parameter is missing"),
        (changed(TEXT, "to", "../../devices/current"), "to: must be a phone number"),
        (changed(TEXT, "to", "+1 650 555 1234"), "to: must be a phone number"),
        (changed(TEXT, "to", "+١٦٥٠٥٥٥١٢٣٤"), "to: must be a phone number"),  # digits, not ASCII ones
        (changed(TEXT, "to", "CC.ana"), "to: must be a phone number (digits, with or without +) or a user_id"),
        (changed(TEXT, "to", "CC." + "A" * 32), "to: must be a phone number"),  # the id before Meta's format
        (changed(TEXT, "to", "US.1234"), "to: must be a phone number"),  # Meta's shape, not a Cove id's 20 digits
        ({**TEXT, "recipient": "US.1349"}, "recipient: must be a user_id"),  # checked even when to wins
        ({**changed(TEXT, "to", ...), "recipient": "16505551234"}, "recipient: must be a user_id"),
        (changed(TEXT, "recipient_type", "group"), "recipient_type"),
        (changed(TEXT, "text.body", ""), "text.body"),
        (changed(TEXT, "text.body", "x" * 4097), "text.body"),
        (changed(TEXT, "text", ...), "text: required parameter is missing"),
        (changed(TEXT, "text.bdoy", "misspelt"), "text.bdoy: unknown parameter"),
        (changed(REPLY_TEXT, "biz_opaque_callback_data", "x" * 513), "biz_opaque_callback_data"),
        (changed(REPLY_TEXT, "context.message_id", ...), "context.message_id"),
        (changed(REPLY_TEXT, "context.message_id", "wamid.a/../b"), "context.message_id: must be a message id"),
        # reply buttons
        (changed(BUTTONS, "interactive.action.buttons", []), "interactive.action.buttons"),
        (changed(BUTTONS, "interactive.action.buttons", _buttons(4)), "interactive.action.buttons"),
        (changed(BUTTONS, "interactive.action.buttons.0.reply.id", "x" * 257), "interactive.action.buttons.0.reply.id"),
        (changed(BUTTONS, "interactive.action.buttons.1.reply.title", "x" * 21), "buttons.1.reply.title"),
        (changed(BUTTONS, "interactive.action.buttons.1.reply.id", "change-button"), "buttons.1.reply.id"),
        (changed(BUTTONS, "interactive.action.buttons.1.reply.title", "Change"), "buttons.1.reply.title"),
        (changed(BUTTONS, "interactive.action.buttons.0.type", "url"), "interactive.action.buttons.0.type"),
        (changed(BUTTONS, "interactive.header.text", "x" * 61), "interactive.header.text"),
        (changed(BUTTONS, "interactive.body.text", "x" * 1025), "interactive.body.text"),
        (changed(BUTTONS, "interactive.body", ...), "interactive.body: required parameter is missing"),
        (changed(BUTTONS, "interactive.footer.text", "x" * 61), "interactive.footer.text"),
        (changed(BUTTONS, "interactive.type", ...), "interactive.type: required parameter is missing"),
        # lists
        (changed(LIST, "interactive.action.button", "x" * 21), "interactive.action.button"),
        (changed(LIST, "interactive.action.sections", []), "interactive.action.sections"),
        (
            changed(LIST, "interactive.action.sections", [{"title": f"S{i}", "rows": _rows(1)} for i in range(11)]),
            "interactive.action.sections",
        ),
        (changed(LIST, "interactive.action.sections.0.rows", _rows(9)), "interactive.action.sections: 11 rows"),
        (changed(LIST, "interactive.action.sections.1.rows", []), "interactive.action.sections.1.rows"),
        (changed(LIST, "interactive.action.sections.0.rows.0.id", "x" * 201), "sections.0.rows.0.id"),
        (changed(LIST, "interactive.action.sections.0.rows.0.title", "x" * 25), "sections.0.rows.0.title"),
        (changed(LIST, "interactive.action.sections.0.rows.0.description", "x" * 73), "sections.0.rows.0.description"),
        (changed(LIST, "interactive.action.sections.1.title", "x" * 25), "interactive.action.sections.1.title"),
        (changed(LIST, "interactive.action.sections.1.title", ...), "interactive.action.sections.1.title: required"),
        (changed(LIST, "interactive.action.sections.1.rows.1.id", "priority_mail"), "sections.1.rows.1.id"),
        (changed(LIST, "interactive.body.text", "x" * 4097), "interactive.body.text"),
        # templates
        (changed(TEMPLATE_NAMED, "template.name", ""), "template.name"),
        (changed(TEMPLATE_NAMED, "template.name", "../spring_sale"), "template.name"),
        (changed(TEMPLATE_NAMED, "template.language.code", "english"), "template.language.code"),
        (changed(TEMPLATE_NAMED, "template.language.policy", "fallback"), "template.language.policy"),
        (changed(TEMPLATE_NAMED, "template.components.1.type", "footer"), "template.components.1.type"),
        (changed(TEMPLATE_NAMED, "template.components.1.parameters.0.type", "currency"), "parameters.0.type"),
        (changed(TEMPLATE_NAMED, "template.components.1.parameters.0.text", ...), "parameters.0.text"),
        (changed(TEMPLATE_NAMED, "template.components.1.parameters.1.parameter_name", ...), "components.1.parameters"),
        (changed(TEMPLATE_NAMED, "template.components.1.parameters.1.parameter_name", "first_name"), "parameters.1"),
        (changed(TEMPLATE_NAMED, "template.components.1.parameters.1.parameter_name", "Percent"), "parameters.1"),
        (changed(TEMPLATE_NAMED, "template.components.2.index", ...), "template.components.2.index"),
        (changed(TEMPLATE_NAMED, "template.components.2.index", 10), "template.components.2.index"),
        (changed(TEMPLATE_NAMED, "template.components.2.sub_type", "quick_reply"), "template.components.2.parameters"),
        (changed(TEMPLATE_NAMED, "template.components.2.parameters", []), "template.components.2.parameters"),
        (changed(TEMPLATE_NAMED, "template.components.1.index", 0), "template.components.1.index"),
        (changed(TEMPLATE_NAMED, "template.components.0.type", "body"), "template.components.1: a second body"),
        # mark as read
        (changed(MARK_READ, "message_id", ...), "message_id: required parameter is missing"),
        (changed(MARK_READ, "message_id", "wamid.\x00"), "message_id: must be a message id"),
        (changed(MARK_READ, "status", "delivered"), "status"),
        (changed(MARK_READ, "typing_indicator.type", "audio"), "typing_indicator.type"),
        ({**MARK_READ, "to": "16505551234"}, "to: unknown parameter"),
    ],
)
def test_each_violation_answers_100_naming_the_field(body, field):
    error = refusal(body)
    assert error.code == 100
    assert field in error.details
    assert error.to_graph_error("trace")["error"]["error_data"]["details"] == error.details


def test_a_body_that_is_not_an_object_is_100():
    assert refusal(["not", "an", "object"]).code == 100
    assert refusal({**TEXT, "type": 5}).details == "type: must be a string"


def test_every_problem_is_listed():
    error = refusal(changed(changed(TEXT, "text.body", ""), "to", ...))
    assert error.code == 100
    assert "text.body" in error.details and "to: required parameter is missing" in error.details


@pytest.mark.parametrize("kind", ["carrier_pigeon"])
def test_types_cove_does_not_carry_are_131051(kind):
    error = refusal({"messaging_product": "whatsapp", "to": "16505551234", "type": kind, kind: {"id": "1"}})
    assert error.code == 131051
    assert "not a Cloud API message type" in error.details and repr(kind) in error.details


def test_an_unknown_type_is_131051_too():
    error = refusal({"messaging_product": "whatsapp", "to": "16505551234", "type": "hologram"})
    assert (error.code, error.details) == (131051, "type: 'hologram' is not a Cloud API message type.")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (changed(BUTTONS, "interactive.type", "flow"), "interactive.type"),
        (changed(BUTTONS, "interactive.type", "product_list"), "interactive.type"),
        (changed(BUTTONS, "interactive.header", {"type": "image", "image": {"id": "1"}}), "interactive.header.type"),
        (
            changed(TEMPLATE_NAMED, "template.components.0.parameters", [{"type": "image", "image": {"id": "1"}}]),
            "template.components.0.parameters.0.type",
        ),
    ],
)
def test_unsupported_parts_inside_a_message_are_131051(body, field):
    error = refusal(body)
    assert error.code == 131051
    assert error.details.startswith(field) and "not supported by this gateway yet" in error.details


# template values in Cove's form


def test_positional_values_header_body_and_url_suffix():
    params = template_parameters(parse_send(TEMPLATE_POSITIONAL))
    assert params == Parameters(
        header={"1": "A-1001"}, body={"1": "Ana", "2": "A-1001", "3": "Friday"}, buttons={0: "A-1001"}
    )
    rendered = render(parse_template(ORDER_SHIPPED), params)
    assert rendered.header == "Order A-1001"
    assert rendered.body == "Hello Ana, your order A-1001 left our warehouse and arrives on Friday."
    assert rendered.buttons[0].url == "https://post.example/track/A-1001"


def test_named_values_and_a_url_button_by_its_index():
    params = template_parameters(parse_send(TEMPLATE_NAMED))
    assert params == Parameters(
        header={"first_name": "Ana"}, body={"first_name": "Ana", "percent": "20%"}, buttons={1: "spring"}
    )
    rendered = render(parse_template(SPRING_SALE), params)
    assert rendered.header == "Spring sale for Ana"
    assert rendered.buttons[1].url == "https://shop.example/s/spring"


def test_a_quick_reply_payload_by_its_index_given_as_a_string_as_in_metas_examples():
    tap = {
        "type": "button",
        "sub_type": "quick_reply",
        "index": "0",
        "parameters": [{"type": "payload", "payload": "S1"}],
    }
    body = changed(TEMPLATE_NAMED, "template.components", [*TEMPLATE_NAMED["template"]["components"], tap])
    params = template_parameters(parse_send(body))
    assert params.payloads == {0: "S1"} and params.buttons == {1: "spring"}
    rendered = render(parse_template(SPRING_SALE), params)
    assert (rendered.buttons[0].text, rendered.buttons[0].payload) == ("Stop promotions", "S1")
    # The user's tap carries that payload and the button's own text, and names no button the message lacks.
    plaintext = compose_button_reply(rendered, "wamid.X", "Stop promotions", "c1", 5)
    assert parse_button_reply(plaintext).button.model_dump() == {"payload": "S1", "text": "Stop promotions"}
    with pytest.raises(ValueError, match="not one of"):
        compose_button_reply(rendered, "wamid.X", "Shop", "c1", 5)


@pytest.mark.parametrize(
    ("component", "field"),
    [
        ({"type": "body", "parameters": [{"type": "payload", "payload": "x"}]}, "only for a quick_reply button"),
        ({"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "payload", "payload": "x"}]},
         "only for a quick_reply button"),
        ({"type": "button", "sub_type": "quick_reply", "index": "0", "parameters": []}, "exactly one parameter"),
        ({"type": "button", "sub_type": "quick_reply", "index": "0",
          "parameters": [{"type": "payload", "payload": "x" * 257}]}, "at most 256"),
    ],
)  # fmt: skip
def test_a_payload_only_on_a_quick_reply_button(component, field):
    error = refusal(changed(TEMPLATE_NAMED, "template.components", [component]))
    assert error.code == 100 and field in error.details


def test_a_payload_for_a_button_that_is_no_quick_reply_does_not_fit_the_template():
    with pytest.raises(TemplateError) as refused:
        values = {"first_name": "A", "percent": "2"}
        render(
            parse_template(SPRING_SALE),
            Parameters(header={"first_name": "A"}, body=values, buttons={1: "s"}, payloads={1: "x"}),
        )
    assert [(p.path, p.code) for p in refused.value.problems] == [("payloads.1", "unexpected_parameter")]


def test_no_components_is_no_values():
    send = parse_send(changed(TEMPLATE_POSITIONAL, "template.components", ...))
    assert template_parameters(send) == Parameters()


# answers


def test_the_accepted_answer_and_read_ok():
    assert accepted("+1 650-555-1234", {"wa_id": "16505551234"}, "wamid.X") == {
        "messaging_product": "whatsapp",
        "contacts": [{"input": "+1 650-555-1234", "wa_id": "16505551234"}],
        "messages": [{"id": "wamid.X", "message_status": "accepted"}],
    }
    # A user known by id only: Meta answers with the user_id (a BSUID), and no number.
    assert accepted("US.13491208655302741918", {"user_id": "US.13491208655302741918"}, "wamid.X")["contacts"] == [
        {"input": "US.13491208655302741918", "user_id": "US.13491208655302741918"}
    ]
    assert read_ok() == {"success": True}


def test_message_ids_look_like_meta_and_do_not_repeat():
    ids = {new_message_id() for _ in range(100)}
    assert len(ids) == 100
    for message_id in ids:
        assert message_id.startswith("wamid.") and "=" not in message_id
        assert len(message_id) >= len("wamid.") + 32


# plaintexts


def test_a_business_text_is_a_text_to_a_normal_client(tmp_path):
    plaintext = business_plaintext(parse_send(REPLY_TEXT), "wamid.A", 1_700_000_000_000)
    assert json.loads(plaintext) == {
        "v": 1,
        "type": "text",
        "id": "wamid.A",
        "text": "Your order shipped today.",
        "ts": 1_700_000_000_000,
        "context_id": REPLY_TEXT["context"]["message_id"],
    }
    core = ClientCore(ClientStore(tmp_path / "user.db"), b"k" * 32, {})
    frame = {"id": 1, "client_message_id": "wamid.A", "server_ts": 0}
    assert core.inbound.apply_payload("business", 1, plaintext, frame) == [
        MessageReceived("business", 1, "wamid.A", "Your order shipped today.", 1_700_000_000_000)
    ]


def test_an_interactive_message_round_trips_and_a_choice_names_what_was_offered():
    plaintext = business_plaintext(parse_send(LIST), "wamid.L", 5)
    message = parse_business_plaintext(plaintext)
    assert json.loads(plaintext)["interactive"] == LIST["interactive"]
    assert (message.type, message.id, message.ts) == ("interactive", "wamid.L", 5)

    reply = compose_interactive_reply(message, "usps_ground_advantage", "cmid-1", 9)
    assert json.loads(reply) == {
        "v": 1,
        "type": "interactive_reply",
        "id": "cmid-1",
        "ts": 9,
        "context_id": "wamid.L",
        "reply": {
            "type": "list_reply",
            "id": "usps_ground_advantage",
            "title": "USPS Ground Advantage",
            "description": "2–5 Days",
        },
    }
    assert parse_interactive_reply(reply).reply.title == "USPS Ground Advantage"
    with pytest.raises(ValueError, match="not one of"):
        compose_interactive_reply(message, "teleport", "cmid-2", 10)


def test_a_button_choice_and_the_checks_on_a_reply():
    message = parse_business_plaintext(business_plaintext(parse_send(BUTTONS), "wamid.B", 1))
    reply = parse_interactive_reply(compose_interactive_reply(message, "cancel-button", "cmid", 2))
    assert reply.reply == ReplyChoice(type="button_reply", id="cancel-button", title="Cancel")

    good = json.loads(compose_interactive_reply(message, "cancel-button", "cmid", 2))
    for bad in (
        changed(good, "reply.title", "x" * 21),
        changed(good, "reply.description", "a button has none"),
        changed(good, "context_id", ...),
        changed(good, "reply.type", "flow_reply"),
    ):
        with pytest.raises(ValidationError):
            parse_interactive_reply(json.dumps(bad).encode())


def test_the_users_client_checks_a_business_message_again():
    plaintext = json.loads(business_plaintext(parse_send(BUTTONS), "wamid.B", 1))
    plaintext["interactive"]["action"]["buttons"] = _buttons(4)
    with pytest.raises(ValidationError):
        parse_business_plaintext(json.dumps(plaintext).encode())


# webhook bodies

WABA, PHONE_ID, DISPLAY = "102290129340398", "106540352242922", "15550783881"


def test_an_inbound_text_has_the_cloud_api_shape():
    event = events.inbound_message(
        WABA, PHONE_ID, DISPLAY, "Sheena Nelson", "16505551234", "wamid.IN", 1749416383, "Hi"
    )
    assert event.body == {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WABA,
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": DISPLAY, "phone_number_id": PHONE_ID},
                            "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
                            "messages": [
                                {
                                    "from": "16505551234",
                                    "id": "wamid.IN",
                                    "timestamp": "1749416383",
                                    "type": "text",
                                    "text": {"body": "Hi"},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (
            ReplyChoice(type="button_reply", id="change-button", title="Change"),
            {"type": "button_reply", "button_reply": {"id": "change-button", "title": "Change"}},
        ),
        (
            ReplyChoice(type="list_reply", id="priority_express", title="Priority Mail Express", description="1 Day"),
            {
                "type": "list_reply",
                "list_reply": {"id": "priority_express", "title": "Priority Mail Express", "description": "1 Day"},
            },
        ),
    ],
)
def test_an_inbound_choice_is_an_interactive_message_with_context(choice, expected):
    event = events.inbound_message(WABA, PHONE_ID, DISPLAY, "Ana", "16505551234", "wamid.IN", 1, choice, "wamid.B")
    message = event.body["entry"][0]["changes"][0]["value"]["messages"][0]
    assert message["type"] == "interactive"
    assert message["interactive"] == expected
    assert message["context"] == {"from": DISPLAY, "id": "wamid.B"}


def _status(status: Status, **extra: Any) -> events.Event:
    return events.status(WABA, PHONE_ID, DISPLAY, "wamid.OUT", status, 1749416400, "16505551234", **extra)


def test_a_status_has_the_cloud_api_shape_with_pricing_and_callback_data():
    event = _status(
        Status.DELIVERED, biz_opaque_callback_data="ticket-8812", pricing=Pricing(Category.MARKETING, billable=True)
    )
    value = event.body["entry"][0]["changes"][0]["value"]
    assert event.body["entry"][0]["changes"][0]["field"] == "messages"
    assert value["metadata"] == {"display_phone_number": DISPLAY, "phone_number_id": PHONE_ID}
    assert value["statuses"] == [
        {
            "id": "wamid.OUT",
            "status": "delivered",
            "timestamp": "1749416400",
            "recipient_id": "16505551234",
            "biz_opaque_callback_data": "ticket-8812",
            "pricing": {"billable": True, "pricing_model": "PMP", "type": "regular", "category": "marketing"},
        }
    ]
    service = _status(Status.READ, pricing=Pricing(None, billable=False))
    assert service.body["entry"][0]["changes"][0]["value"]["statuses"][0]["pricing"] == {
        "billable": False,
        "pricing_model": "PMP",
        "type": "free_customer_service",
        "category": "service",
    }


def test_a_failed_status_carries_its_errors_and_only_it_does():
    event = _status(Status.FAILED, errors=[CloudApiError(131026)])
    entry = event.body["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert entry["status"] == "failed"
    assert entry["errors"] == [CloudApiError(131026).to_webhook_error()]
    with pytest.raises(ValueError):
        _status(Status.FAILED)
    with pytest.raises(ValueError):
        _status(Status.SENT, errors=[CloudApiError(131026)])
    with pytest.raises(ValueError):
        _status(Status.ACCEPTED)


def test_event_ids_are_stable_for_the_same_fact_and_differ_for_another():
    assert _status(Status.SENT).event_id == _status(Status.SENT).event_id
    assert _status(Status.SENT).event_id != _status(Status.DELIVERED).event_id
    other = events.status(WABA, PHONE_ID, DISPLAY, "wamid.OTHER", Status.SENT, 1749416400, "16505551234")
    assert other.event_id != _status(Status.SENT).event_id

    def inbound(message_id: str) -> events.Event:
        return events.inbound_message(WABA, PHONE_ID, DISPLAY, "Ana", "1", message_id, 1, "Hi")

    assert inbound("wamid.A").event_id == inbound("wamid.A").event_id != inbound("wamid.B").event_id
    assert inbound("wamid.A").event_id != events.event_id("messages", "wamid.A", "sent")


def test_a_template_status_update():
    event = events.template_status_update(
        WABA, "tpl-1", "spring_sale", "en_US", ReviewStatus.REJECTED, "INCORRECT_CATEGORY", 1674864290
    )
    assert event.body["entry"][0]["time"] == 1674864290
    assert event.body["entry"][0]["changes"] == [
        {
            "field": "message_template_status_update",
            "value": {
                "event": "REJECTED",
                "message_template_id": "tpl-1",
                "message_template_name": "spring_sale",
                "message_template_language": "en_US",
                "reason": "INCORRECT_CATEGORY",
            },
        }
    ]

    def paused(time_s: int) -> events.Event:
        return events.template_status_update(WABA, "tpl-1", "spring_sale", "en_US", ReviewStatus.PAUSED, None, time_s)

    assert paused(1).body["entry"][0]["changes"][0]["value"]["reason"] == "NONE"
    assert paused(1).event_id == paused(1).event_id != paused(2).event_id  # a second pause is a second event


def test_a_quality_update():
    event = events.quality_update(WABA, DISPLAY, QualityEvent.UPGRADE, Tier.T10K, 1748454394)
    assert event.body == {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WABA,
                "time": 1748454394,
                "changes": [
                    {
                        "field": "phone_number_quality_update",
                        "value": {
                            "display_phone_number": DISPLAY,
                            "event": "UPGRADE",
                            "current_limit": "TIER_10K",
                            "max_daily_conversations_per_business": "TIER_10K",
                        },
                    }
                ],
            }
        ],
    }
    downgrade = events.quality_update(WABA, DISPLAY, QualityEvent.DOWNGRADE, Tier.T2K, 1748454394)
    assert downgrade.event_id != event.event_id


def test_a_user_preference():
    event = events.user_preferences(WABA, PHONE_ID, DISPLAY, "16505551234", "stop", 1731705721)
    change = event.body["entry"][0]["changes"][0]
    assert change["field"] == "user_preferences"
    assert change["value"] == {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": DISPLAY, "phone_number_id": PHONE_ID},
        "contacts": [{"wa_id": "16505551234"}],
        "user_preferences": [
            {
                "wa_id": "16505551234",
                "detail": "User requested to stop marketing messages",
                "category": "marketing_messages",
                "value": "stop",
                "timestamp": 1731705721,
            }
        ],
    }
    resume = events.user_preferences(WABA, PHONE_ID, DISPLAY, "16505551234", "resume", 1731705722)
    assert resume.event_id != event.event_id
    again = events.user_preferences(WABA, PHONE_ID, DISPLAY, "16505551234", "stop", 1731705721)
    assert again.event_id == event.event_id


# status order

ORDER = [Status.ACCEPTED, Status.SENT, Status.DELIVERED, Status.READ]


@pytest.mark.parametrize(
    ("current", "new", "expected"),
    [
        (None, Status.SENT, Status.SENT),
        (Status.SENT, Status.READ, Status.READ),  # delivered skipped: only the new one is emitted
        (Status.READ, Status.DELIVERED, None),
        (Status.DELIVERED, Status.DELIVERED, None),
        (Status.SENT, Status.FAILED, Status.FAILED),
        (Status.ACCEPTED, Status.FAILED, Status.FAILED),
        (Status.DELIVERED, Status.FAILED, None),
        (Status.READ, Status.FAILED, None),
        (Status.FAILED, Status.READ, None),
        (Status.FAILED, Status.FAILED, None),
    ],
)
def test_advance(current, new, expected):
    assert advance(current, new) is expected


@given(st.lists(st.sampled_from(list(Status)), max_size=20))
def test_emitted_statuses_only_move_forward_and_failed_ends_early(updates):
    current, emitted = None, []
    for update in updates:
        moved = advance(current, update)
        if moved is not None:
            emitted.append(moved)
            current = moved
    if Status.FAILED in emitted:
        assert emitted.index(Status.FAILED) == len(emitted) - 1
        assert Status.DELIVERED not in emitted and Status.READ not in emitted
    progress = [ORDER.index(s) for s in emitted if s is not Status.FAILED]
    assert progress == sorted(set(progress))
