"""Requests, one way, for template sends with buttons: a quick-reply button's ``payload`` and a URL button's suffix,
built as Meta's reference builds them (``index`` a string, ``sub_type`` lower case) and as pywa 4.5.0 builds them
(``index`` a number, ``sub_type`` upper case, component types upper case), are taken by the gateway's parser."""

from __future__ import annotations

from pywa import WhatsApp
from pywa.types.templates import BodyText, QuickReplyButton, TemplateLanguage, URLButton

from contracts.harness import pywa_requests, refusal
from contracts.reference import sends

TO = "+16505551234"


def test_a_quick_reply_payload_parses() -> None:
    assert refusal(sends.template(TO, "order_ready", ["A-17"], quick_reply="unsubscribe")) is None


def test_a_url_button_suffix_parses() -> None:
    assert refusal(sends.template(TO, "order_ready", ["A-17"], url_suffix="order/A-17")) is None


def test_quick_reply_and_url_buttons_together_parse() -> None:
    assert refusal(sends.template(TO, "order_ready", ["A-17"], quick_reply="stop", url_suffix="A-17")) is None


def _calls(wa: WhatsApp) -> None:
    params = [
        BodyText.params("A-17"),
        QuickReplyButton.params(callback_data="stop", index=0),
        URLButton.params(url_variable="order/A-17", index=1),
    ]
    wa.send_template("16505551234", name="order_ready", language=TemplateLanguage.ENGLISH, params=params)


def test_the_template_send_pywa_builds_with_buttons_parses() -> None:
    (body,) = pywa_requests(_calls)
    assert refusal(body) is None
