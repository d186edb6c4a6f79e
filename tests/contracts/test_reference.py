"""The reference shapes themselves: they accept Meta's own published examples (copied from the pages named in each
test), and they refuse what is not Meta's shape, including the webhooks the gateway posted before issue 15. A
reference that accepted anything would make every contract test pass; these show it does not."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from contracts.harness import against
from contracts.reference import responses, webhooks

METADATA = {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"}


def envelope(field: str, value: dict[str, Any], time: int | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": "102290129340398", "changes": [{"value": value, "field": field}]}
    if time is not None:
        entry["time"] = time
    return {"object": "whatsapp_business_account", "entry": [entry]}


# https://developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids : the delivered
# status example (a business with parent ids, a user with a username) and the incoming text example.
DELIVERED = envelope(
    "messages",
    {
        "messaging_product": "whatsapp",
        "metadata": METADATA,
        "contacts": [
            {
                "profile": {"name": "Pablo M.", "username": "@pablomorales"},
                "wa_id": "16505551234",
                "user_id": "US.13491208655302741918",
                "parent_user_id": "US.ENT.11815799212886844830",
            }
        ],
        "statuses": [
            {
                "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
                "status": "delivered",
                "timestamp": "1750030073",
                "recipient_id": "16505551234",
                "recipient_user_id": "US.13491208655302741918",
                "parent_recipient_user_id": "US.ENT.11815799212886844830",
                "pricing": {"billable": True, "pricing_model": "PMP", "type": "regular", "category": "marketing"},
            }
        ],
    },
)
INCOMING_TEXT = envelope(
    "messages",
    {
        "messaging_product": "whatsapp",
        "metadata": METADATA,
        "contacts": [{"profile": {"name": "Sheena Nelson"}, "user_id": "US.13491208655302741918"}],
        "messages": [
            {
                "from_user_id": "US.13491208655302741918",
                "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
                "timestamp": "1749416383",
                "type": "text",
                "text": {"body": "Does it come in another color?"},
            }
        ],
    },
)
# https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/status : a
# failed status carries no contacts.
FAILED = envelope(
    "messages",
    {
        "messaging_product": "whatsapp",
        "metadata": METADATA,
        "statuses": [
            {
                "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
                "status": "failed",
                "timestamp": "1750030073",
                "recipient_id": "16505551234",
                "errors": [
                    {
                        "code": 131047,
                        "title": "Re-engagement message",
                        "message": "Re-engagement message",
                        "error_data": {"details": "More than 24 hours have passed since the recipient last replied."},
                        "href": "https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes",
                    }
                ],
            }
        ],
    },
)
# https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/user_preferences with
# the business-scoped id added.
STOP = envelope(
    "user_preferences",
    {
        "messaging_product": "whatsapp",
        "metadata": METADATA,
        "contacts": [
            {"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234", "user_id": "US.13491208655302741918"}
        ],
        "user_preferences": [
            {
                "wa_id": "16505551234",
                "user_id": "US.13491208655302741918",
                "detail": "User requested to stop marketing messages",
                "category": "marketing_messages",
                "value": "stop",
                "timestamp": 1731705721,
            }
        ],
    },
)
# https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/message_template_status_update
APPROVED = envelope(
    "message_template_status_update",
    {
        "event": "APPROVED",
        "message_template_id": 806312974732579,
        "message_template_name": "welcome_template",
        "message_template_language": "en-US",
        "reason": None,
    },
    time=1739321024,
)
# https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/system with
# the business-scoped id change.
CHANGED_ID = envelope(
    "messages",
    {
        "messaging_product": "whatsapp",
        "metadata": METADATA,
        "messages": [
            {
                "from": "16505551234",
                "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
                "timestamp": "1749416383",
                "type": "system",
                "system": {
                    "body": "User Sheena Nelson changed from US.13491208655302741918 to US.13491208655302741919",
                    "user_id": "US.13491208655302741919",
                    "type": "user_changed_user_id",
                },
            }
        ],
    },
)

# https://developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids ("Requesting
# phone numbers"): the user tapped a template's REQUEST_CONTACT_INFO button and shared their number (the page's
# example leaves out from_user_id, which the page's own incoming-message syntax always includes; it is added here).
SHARED_NUMBER = envelope(
    "messages",
    {
        "messaging_product": "whatsapp",
        "metadata": METADATA,
        "contacts": [
            {"profile": {"name": "Sheena Nelson", "username": "@sheena"}, "user_id": "US.13491208655302741918"}
        ],
        "messages": [
            {
                "from_user_id": "US.13491208655302741918",
                "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
                "timestamp": "1749416383",
                "type": "contacts",
                "origin": "contact_request/other",
                "contacts": [
                    {
                        "vcard": "BEGIN:VCARD\nVERSION:3.0\nTEL:+16505551234\nEND:VCARD",
                        "phones": [{"phone": "+16505551234"}],
                    }
                ],
            }
        ],
    },
)


@pytest.mark.parametrize("example", [DELIVERED, INCOMING_TEXT, FAILED, STOP, APPROVED, CHANGED_ID, SHARED_NUMBER])
def test_metas_published_examples_conform(example: dict[str, Any]) -> None:
    assert against(webhooks.Webhook, example) == []


def _edit(example: dict[str, Any], change) -> dict[str, Any]:  # noqa: ANN001
    body = copy.deepcopy(example)
    change(body["entry"][0]["changes"][0]["value"])
    return body


def _pre_issue_15(value: dict[str, Any]) -> None:
    """The gateway's inbound message before issue 15: the per-business id as wa_id and as the name, no user_id."""
    value["contacts"] = [
        {"profile": {"name": "CC.TDPKOFMGQ3VW7X2RLNHA5J4ZKEBYS6CT"}, "wa_id": "CC.TDPKOFMGQ3VW7X2RLNHA5J4ZKEBYS6CT"}
    ]
    message = value["messages"][0]
    del message["from_user_id"]
    message["from"] = "CC.TDPKOFMGQ3VW7X2RLNHA5J4ZKEBYS6CT"


@pytest.mark.parametrize(
    ("example", "change"),
    [
        (INCOMING_TEXT, _pre_issue_15),
        (INCOMING_TEXT, lambda v: v["contacts"][0].pop("user_id")),
        (INCOMING_TEXT, lambda v: v.pop("contacts")),
        (INCOMING_TEXT, lambda v: v["messages"][0].update(image={"id": "1", "mime_type": "x", "sha256": "y"})),
        (INCOMING_TEXT, lambda v: v["messages"][0].update(text={"body": "hi", "preview_url": False})),
        (DELIVERED, lambda v: v.pop("contacts")),
        (DELIVERED, lambda v: v["statuses"][0].update(recipient_user_id="CC.TDPKOFMGQ3VW7X2RLNHA5J4ZKEBYS6CT")),
        (
            DELIVERED,
            lambda v: v["statuses"][0].update(
                errors=FAILED["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"]
            ),
        ),
        (FAILED, lambda v: v["statuses"][0].pop("errors")),
        (STOP, lambda v: v["user_preferences"][0].pop("user_id")),
        (STOP, lambda v: v["user_preferences"][0].update(value="maybe")),
        (APPROVED, lambda v: v.pop("message_template_name")),
    ],
)
def test_what_is_not_metas_shape_is_refused(example: dict[str, Any], change) -> None:  # noqa: ANN001
    assert against(webhooks.Webhook, _edit(example, change)) != []


def test_a_webhook_without_entries_or_of_another_object_is_refused() -> None:
    assert against(webhooks.Webhook, {"object": "page", "entry": INCOMING_TEXT["entry"]}) != []
    assert against(webhooks.Webhook, {"object": "whatsapp_business_account", "entry": []}) != []


@pytest.mark.parametrize(
    ("model", "answer", "conforms"),
    [
        # https://developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids
        (
            responses.SendResponse,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": "+16505551234", "wa_id": "16505551234"}],
                "messages": [{"id": "wamid.HBgLMTY0NjcwNDM1OTUVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA"}],
            },
            True,
        ),
        (
            responses.SendResponse,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": "US.13491208655302741918", "user_id": "US.13491208655302741918"}],
                "messages": [
                    {"id": "wamid.HBgLMTY0NjcwNDM1OTUVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA", "message_status": "accepted"}
                ],
            },
            True,
        ),
        (
            responses.SendResponse,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": "US.13491208655302741918", "wa_id": "16505551234"}],
                "messages": [{"id": "wamid.x"}],
            },
            False,
        ),
        (
            responses.SendResponse,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": "+16505551234", "wa_id": "CC.TDPKOFMGQ3VW7X2RLNHA5J4ZKEBYS6CT"}],
                "messages": [{"id": "wamid.x"}],
            },
            False,
        ),
        # https://developers.facebook.com/documentation/business-messaging/whatsapp/business-phone-numbers/media/
        (
            responses.MediaInfo,
            {
                "messaging_product": "whatsapp",
                "url": "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1",
                "mime_type": "image/jpeg",
                "sha256": "a" * 64,
                "file_size": 303833,
                "id": "1037543291543636",
            },
            True,
        ),
        (
            responses.MediaInfo,
            {
                "messaging_product": "whatsapp",
                "url": "https://x",
                "mime_type": "image/jpeg",
                "sha256": "a" * 64,
                "id": "1",
            },
            False,
        ),
        # https://developers.facebook.com/documentation/business-messaging/whatsapp/block-users
        (
            responses.BlockResponse,
            {
                "messaging_product": "whatsapp",
                "block_users": {"added_users": [{"input": "+16505551234", "wa_id": "16505551234"}]},
            },
            True,
        ),
        (
            responses.BlockedList,
            {
                "data": [{"messaging_product": "whatsapp", "wa_id": "16505551234"}],
                "paging": {"cursors": {"after": "eyJv", "before": "eyJv"}},
            },
            True,
        ),
        (responses.BlockedList, {"data": [{"wa_id": "16505551234"}]}, False),
        # https://developers.facebook.com/docs/graph-api/reference/whats-app-business-account/message_templates/
        (
            responses.TemplateList,
            {
                "data": [
                    {
                        "name": "order_ready",
                        "parameter_format": "POSITIONAL",
                        "components": [{"type": "BODY", "text": "Your order {{1}} is ready."}],
                        "language": "en_US",
                        "status": "APPROVED",
                        "category": "UTILITY",
                        "id": "1234",
                    }
                ],
                "paging": {
                    "cursors": {"before": "MAZDZD", "after": "MjQZD"},
                    "next": "https://graph.facebook.com/v21.0/1/message_templates?after=MjQZD",
                },
            },
            True,
        ),
        (
            responses.TemplateList,
            {
                "data": [
                    {
                        "name": "order_ready",
                        "components": [{"type": "body", "text": "x"}],
                        "language": "en_US",
                        "status": "APPROVED",
                        "category": "utility",
                        "id": "1",
                    }
                ]
            },
            False,
        ),
    ],
)
def test_answers_against_metas_examples(model, answer: dict[str, Any], conforms: bool) -> None:  # noqa: ANN001
    assert (against(model, answer) == []) is conforms
