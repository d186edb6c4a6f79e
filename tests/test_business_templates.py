"""Templates: Cloud-API-shaped parsing with precise errors, the linter, review states, rendering, signing of
approved texts and the end-to-end split of a template message (cove.protocol.templates)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from cove.protocol.business import Category
from cove.protocol.templates import (
    BODY_TEXT_MAX,
    REFUSAL_CODES,
    RULES,
    Approve,
    ApprovedTemplate,
    ButtonType,
    Disable,
    Finding,
    IllegalTransition,
    ParameterFormat,
    Parameters,
    Pause,
    Reject,
    RenderedButton,
    Resume,
    ReviewState,
    ReviewStatus,
    Severity,
    Submit,
    Template,
    TemplateError,
    TemplateHeader,
    approved_payload,
    blocks_approval,
    canonical_json,
    header_for,
    lint,
    parse_template,
    read_template_message,
    render,
    sign_approved,
    split_template_message,
    transition,
    verify_approved,
)

# Three clean templates, one per category, in the Cloud API's JSON shapes.

MARKETING_NAMED: dict[str, Any] = {
    "name": "spring_sale",
    "language": "en_US",
    "category": "MARKETING",
    "parameter_format": "NAMED",
    "components": [
        {
            "type": "HEADER",
            "format": "TEXT",
            "text": "Spring sale for {{first_name}}",
            "example": {"header_text_named_params": [{"param_name": "first_name", "example": "Ana"}]},
        },
        {
            "type": "BODY",
            "text": "Hi {{first_name}}, everything in store is {{percent}} off until Sunday. See you soon!",
            "example": {
                "body_text_named_params": [
                    {"param_name": "first_name", "example": "Ana"},
                    {"param_name": "percent", "example": "20%"},
                ]
            },
        },
        {"type": "FOOTER", "text": "Reply STOP to opt out"},
        {
            "type": "BUTTONS",
            "buttons": [
                {"type": "QUICK_REPLY", "text": "Stop promotions"},
                {
                    "type": "URL",
                    "text": "Shop",
                    "url": "https://shop.example/s/{{1}}",
                    "example": ["https://shop.example/s/spring"],
                },
                {"type": "PHONE_NUMBER", "text": "Call us", "phone_number": "+4930123456"},
            ],
        },
    ],
}

UTILITY_POSITIONAL: dict[str, Any] = {
    "name": "order_shipped",
    "language": "de",
    "category": "UTILITY",
    "components": [
        {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}", "example": {"header_text": ["A-1001"]}},
        {
            "type": "BODY",
            "text": "Hello {{1}}, your order {{2}} left our warehouse and arrives on {{3}}.",
            "example": {"body_text": [["Ana", "A-1001", "Friday"]]},
        },
        {"type": "FOOTER", "text": "Questions? Just reply."},
        {
            "type": "BUTTONS",
            "buttons": [
                {
                    "type": "URL",
                    "text": "Track parcel",
                    "url": "https://post.example/track/{{1}}",
                    "example": ["https://post.example/track/A-1001"],
                }
            ],
        },
    ],
}

AUTHENTICATION: dict[str, Any] = {
    "name": "login_code",
    "language": "en",
    "category": "AUTHENTICATION",
    "components": [
        {
            "type": "BODY",
            "text": "{{1}} is your verification code. For your security, do not share it.",
            "example": {"body_text": [["482913"]]},
        },
        {"type": "FOOTER", "text": "This code expires in 10 minutes."},
        {"type": "BUTTONS", "buttons": [{"type": "OTP", "otp_type": "COPY_CODE", "text": "Copy code"}]},
    ],
}

MEDIA_HEADER: dict[str, Any] = {
    "name": "ticket",
    "language": "pt_BR",
    "category": "UTILITY",
    "components": [
        {"type": "HEADER", "format": "DOCUMENT", "example": {"header_handle": ["4::aW..."]}},
        {"type": "BODY", "text": "Your ticket for the concert is attached. Enjoy the show!"},
    ],
}

CLEAN = {
    "marketing_named": MARKETING_NAMED,
    "utility_positional": UTILITY_POSITIONAL,
    "authentication": AUTHENTICATION,
    "media_header": MEDIA_HEADER,
}


def variant(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with the values at dotted paths replaced (``...`` deletes the key or item; an index
    one past the end appends)."""
    data = copy.deepcopy(base)
    for where, value in changes.items():
        *parents, last = where.split(".")
        target: Any = data
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        key: Any = int(last) if isinstance(target, list) else last
        if value is ...:
            del target[key]
        elif isinstance(target, list) and key == len(target):
            target.append(value)
        else:
            target[key] = value
    return data


def problems(data: dict[str, Any]) -> set[tuple[str, str]]:
    with pytest.raises(TemplateError) as exc:
        parse_template(data)
    return {(p.path, p.code) for p in exc.value.problems}


def findings(data: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f.code, f.path) for f in lint(parse_template(data))}


# Parsing


@pytest.mark.parametrize("data", CLEAN.values(), ids=CLEAN.keys())
def test_clean_templates_parse_and_lint_clean(data: dict[str, Any]) -> None:
    template = parse_template(data)
    assert template.name == data["name"]
    assert lint(template) == []
    # The dump is a Cloud API body again: parsing it gives the same template.
    assert parse_template(template.model_dump(mode="json", exclude_none=True)) == template


def test_enum_values_are_case_insensitive_as_in_the_cloud_api() -> None:
    lower = json.loads(json.dumps(AUTHENTICATION).replace('"BODY"', '"body"').replace('"OTP"', '"otp"'))
    lower["category"] = "authentication"
    lower["components"][2]["buttons"][0]["otp_type"] = "copy_code"
    template = parse_template(lower)
    assert template.category is Category.AUTHENTICATION
    assert template.components[0].type == "BODY"
    assert template == parse_template(AUTHENTICATION)
    assert parse_template(variant(MARKETING_NAMED, {"parameter_format": "named"})).parameter_format is (
        ParameterFormat.NAMED
    )


def test_positional_is_the_default_parameter_format() -> None:
    assert parse_template(UTILITY_POSITIONAL).parameter_format is ParameterFormat.POSITIONAL


TWO_URLS = [
    {"type": "URL", "text": "A", "url": "https://a.example"},
    {"type": "URL", "text": "B", "url": "https://b.example"},
]
AUTH_BUTTONS = "components.2.buttons"

LIMIT_CASES: list[tuple[str, dict[str, Any], dict[str, Any], str, str]] = [
    ("name upper case", UTILITY_POSITIONAL, {"name": "Order"}, "name", "string_pattern_mismatch"),
    ("name too long", UTILITY_POSITIONAL, {"name": "a" * 513}, "name", "string_too_long"),
    ("language", UTILITY_POSITIONAL, {"language": "english"}, "language", "string_pattern_mismatch"),
    ("legacy category", UTILITY_POSITIONAL, {"category": "TRANSACTIONAL"}, "category", "enum"),
    ("parameter format", UTILITY_POSITIONAL, {"parameter_format": "mixed"}, "parameter_format", "enum"),
    ("extra field", UTILITY_POSITIONAL, {"allow_category_change": True}, "allow_category_change", "extra_forbidden"),
    ("no components", UTILITY_POSITIONAL, {"components": []}, "components", "too_short"),
    ("unknown component", UTILITY_POSITIONAL, {"components.2.type": "CAROUSEL"}, "components.2", "unknown_component"),
    ("header too long", UTILITY_POSITIONAL, {"components.0.text": "x" * 61}, "components.0.text", "string_too_long"),
    (
        "header two variables",
        UTILITY_POSITIONAL,
        {"components.0.text": "Order {{1}} of {{2}}"},
        "components.0.text",
        "header_too_many_variables",
    ),
    ("header format", UTILITY_POSITIONAL, {"components.0.format": "LOCATION"}, "components.0.format", "enum"),
    (
        "text header without text",
        UTILITY_POSITIONAL,
        {"components.0.text": ..., "components.0.example": ...},
        "components.0.text",
        "header_text_missing",
    ),
    (
        "media header with text",
        UTILITY_POSITIONAL,
        {"components.0.format": "IMAGE"},
        "components.0.text",
        "header_text_not_allowed",
    ),
    ("body too long", UTILITY_POSITIONAL, {"components.1.text": "x" * 1025}, "components.1.text", "string_too_long"),
    ("body missing", UTILITY_POSITIONAL, {"components.1": ...}, "components", "missing_body"),
    (
        "two bodies",
        UTILITY_POSITIONAL,
        {"components.2": {"type": "BODY", "text": "Another body"}},
        "components.2",
        "duplicate_component",
    ),
    ("footer too long", UTILITY_POSITIONAL, {"components.2.text": "x" * 61}, "components.2.text", "string_too_long"),
    ("footer variable", UTILITY_POSITIONAL, {"components.2.text": "Bye {{1}}"}, "components.2.text", "footer_variable"),
    (
        "eleven buttons",
        MARKETING_NAMED,
        {"components.3.buttons": [{"type": "QUICK_REPLY", "text": f"Reply {i}"} for i in range(11)]},
        "components.3.buttons",
        "too_long",
    ),
    (
        "three URL buttons",
        MARKETING_NAMED,
        {"components.3.buttons": [*TWO_URLS, {"type": "URL", "text": "C", "url": "https://c.example"}]},
        "components.3.buttons",
        "too_many_url_buttons",
    ),
    (
        "two phone buttons",
        MARKETING_NAMED,
        {"components.3.buttons": [{"type": "PHONE_NUMBER", "text": "Call", "phone_number": "+4930123456"}] * 2},
        "components.3.buttons",
        "too_many_phone_buttons",
    ),
    (
        "quick replies split",
        MARKETING_NAMED,
        {
            "components.3.buttons": [
                {"type": "QUICK_REPLY", "text": "A"},
                TWO_URLS[0],
                {"type": "QUICK_REPLY", "text": "B"},
            ]
        },
        "components.3.buttons",
        "buttons_not_grouped",
    ),
    (
        "button text too long",
        MARKETING_NAMED,
        {"components.3.buttons.0.text": "x" * 26},
        "components.3.buttons.0.text",
        "string_too_long",
    ),
    (
        "URL too long",
        MARKETING_NAMED,
        {"components.3.buttons.1.url": "https://shop.example/" + "x" * 1980},
        "components.3.buttons.1.url",
        "string_too_long",
    ),
    (
        "URL not http",
        MARKETING_NAMED,
        {"components.3.buttons.1.url": "javascript:alert(1)"},
        "components.3.buttons.1.url",
        "string_pattern_mismatch",
    ),
    (
        "URL variable inside",
        MARKETING_NAMED,
        {"components.3.buttons.1.url": "https://shop.example/{{1}}/x"},
        "components.3.buttons.1.url",
        "url_variable",
    ),
    (
        "phone too long",
        MARKETING_NAMED,
        {"components.3.buttons.2.phone_number": "+" + "1" * 20},
        "components.3.buttons.2.phone_number",
        "string_too_long",
    ),
    (
        "unknown button",
        MARKETING_NAMED,
        {"components.3.buttons.0": {"type": "FLOW", "text": "Go"}},
        "components.3.buttons.0",
        "unknown_button",
    ),
    (
        "OTP outside authentication",
        MARKETING_NAMED,
        {"components.3.buttons.0": {"type": "OTP", "otp_type": "COPY_CODE"}},
        "components.3.buttons.0",
        "otp_outside_authentication",
    ),
    (
        "named examples in a positional template",
        UTILITY_POSITIONAL,
        {"components.1.example": {"body_text_named_params": [{"param_name": "a", "example": "b"}]}},
        "components.1.example.body_text_named_params",
        "example_format",
    ),
    (
        "positional examples in a named template",
        MARKETING_NAMED,
        {"components.0.example": {"header_text": ["Ana"]}},
        "components.0.example.header_text",
        "example_format",
    ),
    (
        "authentication header",
        AUTHENTICATION,
        {"components.1": {"type": "HEADER", "format": "TEXT", "text": "Your code"}},
        "components.1",
        "authentication_header",
    ),
    (
        "authentication without buttons",
        AUTHENTICATION,
        {"components.2": ...},
        "components",
        "authentication_buttons",
    ),
    (
        "authentication with a quick reply",
        AUTHENTICATION,
        {f"{AUTH_BUTTONS}.1": {"type": "QUICK_REPLY", "text": "Not me"}},
        AUTH_BUTTONS.removesuffix(".buttons"),
        "authentication_buttons",
    ),
    (
        "authentication one-tap",
        AUTHENTICATION,
        {f"{AUTH_BUTTONS}.0.otp_type": "ONE_TAP"},
        f"{AUTH_BUTTONS}.0.otp_type",
        "literal_error",
    ),
    (
        "authentication two parameters",
        AUTHENTICATION,
        {"components.0.text": "{{1}} is your code for {{2}}."},
        "components.0.text",
        "authentication_code_parameter",
    ),
]


@pytest.mark.parametrize(
    ("base", "changes", "path", "code"), [c[1:] for c in LIMIT_CASES], ids=[c[0] for c in LIMIT_CASES]
)
def test_each_violation_has_its_path_and_code(base: dict, changes: dict, path: str, code: str) -> None:
    assert (path, code) in problems(variant(base, changes))


def test_every_problem_is_reported_at_once() -> None:
    data = variant(UTILITY_POSITIONAL, {"name": "Bad Name", "language": "xx-yy", "components.1.text": "x" * 1025})
    assert problems(data) == {
        ("name", "string_pattern_mismatch"),
        ("language", "string_pattern_mismatch"),
        ("components.1.text", "string_too_long"),
    }
    data = variant(MARKETING_NAMED, {"components.2.text": "{{x}}", "components.3.buttons.1.url": "https://a/{{2}}"})
    assert problems(data) == {("components.2.text", "footer_variable"), ("components.3.buttons.1.url", "url_variable")}


def test_error_message_names_path_and_code() -> None:
    with pytest.raises(TemplateError, match=r"components\.1\.text: .* \[string_too_long\]"):
        parse_template(variant(UTILITY_POSITIONAL, {"components.1.text": "x" * (BODY_TEXT_MAX + 1)}))


# Lint

POSITIONAL_BODY = "components.1.text"
LINT_CASES: list[tuple[str, dict[str, Any], dict[str, Any], str, str]] = [
    (
        "variable at start",
        MARKETING_NAMED,
        {"components.1.text": "{{first_name}}, everything in store is {{percent}} off until Sunday."},
        "variable_at_start",
        POSITIONAL_BODY,
    ),
    (
        "variable at end",
        UTILITY_POSITIONAL,
        {"components.1.text": "Hello {{1}}, your order {{2}} left our warehouse and arrives on {{3}}  "},
        "variable_at_end",
        POSITIONAL_BODY,
    ),
    (
        "adjacent variables",
        UTILITY_POSITIONAL,
        {"components.1.text": "Hello {{1}}, your order {{2}} {{3}} left our warehouse today."},
        "adjacent_variables",
        POSITIONAL_BODY,
    ),
    (
        "space in a variable",
        UTILITY_POSITIONAL,
        {"components.1.text": "Hello {{ 1}}, your order {{2}} left our warehouse and arrives on {{3}}."},
        "malformed_parameter",
        POSITIONAL_BODY,
    ),
    (
        "letter in a number",
        UTILITY_POSITIONAL,
        {"components.0.text": "Order {{1a}}"},
        "malformed_parameter",
        "components.0.text",
    ),
    (
        "unbalanced braces",
        UTILITY_POSITIONAL,
        {"components.1.text": "Hello {{1}, your order {{2}} left our warehouse and arrives on {{3}}."},
        "unbalanced_braces",
        POSITIONAL_BODY,
    ),
    (
        "triple braces",
        UTILITY_POSITIONAL,
        {"components.1.text": "Hello {{{1}}}, your order {{2}} left our warehouse and arrives on {{3}}."},
        "unbalanced_braces",
        POSITIONAL_BODY,
    ),
    (
        "named in positional",
        UTILITY_POSITIONAL,
        {"components.1.text": "Hello {{1}}, your order {{order_id}} left our warehouse and arrives on {{3}}."},
        "mixed_parameters",
        POSITIONAL_BODY,
    ),
    (
        "positional in named",
        MARKETING_NAMED,
        {"components.1.text": "Hi {{first_name}}, everything in store is {{1}} off until Sunday."},
        "mixed_parameters",
        POSITIONAL_BODY,
    ),
    (
        "gap in positions",
        UTILITY_POSITIONAL,
        {"components.1.text": "Hello {{1}}, your order {{2}} left our warehouse and arrives on {{4}}."},
        "positional_not_sequential",
        POSITIONAL_BODY,
    ),
    (
        "duplicate named variable",
        MARKETING_NAMED,
        {"components.1.text": "Hi {{first_name}}, {{percent}} off for you, dear {{first_name}}, until Sunday."},
        "duplicate_parameter",
        POSITIONAL_BODY,
    ),
    (
        "duplicate named example",
        MARKETING_NAMED,
        {"components.1.example.body_text_named_params.1.param_name": "first_name"},
        "duplicate_parameter",
        "components.1.example.body_text_named_params.1.param_name",
    ),
    (
        "positional examples missing",
        UTILITY_POSITIONAL,
        {"components.1.example": ...},
        "example_missing",
        "components.1.example",
    ),
    (
        "named example missing",
        MARKETING_NAMED,
        {"components.1.example.body_text_named_params": [{"param_name": "first_name", "example": "Ana"}]},
        "example_missing",
        "components.1.example",
    ),
    (
        "URL example missing",
        UTILITY_POSITIONAL,
        {"components.3.buttons.0.example": ...},
        "example_missing",
        "components.3.buttons.0.example",
    ),
    (
        "too few examples",
        UTILITY_POSITIONAL,
        {"components.1.example.body_text": [["Ana", "A-1001"]]},
        "example_mismatch",
        "components.1.example.body_text.0",
    ),
    (
        "example for an unknown name",
        MARKETING_NAMED,
        {"components.0.example.header_text_named_params.0.param_name": "last_name"},
        "example_mismatch",
        "components.0.example.header_text_named_params.0.param_name",
    ),
    (
        "mostly variables",
        UTILITY_POSITIONAL,
        {"components.1.text": "Hello {{1}}, order {{2}}: {{3}} ok."},
        "too_many_variables",
        POSITIONAL_BODY,
    ),
    (
        "authentication selling",
        AUTHENTICATION,
        {"components.0.text": "{{1}} is your code. Get 20% off your next order!"},
        "authentication_promotional",
        "components.0.text",
    ),
    (
        "authentication link",
        AUTHENTICATION,
        {"components.1.text": "Log in at https://cove.example"},
        "authentication_url",
        "components.1.text",
    ),
    (
        "utility with a discount",
        UTILITY_POSITIONAL,
        {"components.2.text": "Discounts for members every week"},
        "utility_promotional",
        "components.2.text",
    ),
    (
        "utility button selling",
        UTILITY_POSITIONAL,
        {"components.3.buttons.0.text": "Shop now"},
        "utility_promotional",
        "components.3.buttons.0.text",
    ),
    (
        "emoji in header",
        UTILITY_POSITIONAL,
        {"components.0.text": "Order {{1}} 📦"},
        "emoji_in_header",
        "components.0.text",
    ),
    (
        "newline in header",
        UTILITY_POSITIONAL,
        {"components.0.text": "Order\n{{1}}"},
        "newline_in_header",
        "components.0.text",
    ),
    (
        "emoji in authentication",
        AUTHENTICATION,
        {"components.0.text": "{{1}} is your verification code 🔐 Keep it to yourself."},
        "emoji_in_authentication",
        "components.0.text",
    ),
]


@pytest.mark.parametrize(
    ("base", "changes", "code", "path"), [c[1:] for c in LINT_CASES], ids=[c[0] for c in LINT_CASES]
)
def test_each_rule_fires(base: dict, changes: dict, code: str, path: str) -> None:
    assert (code, path) in findings(variant(base, changes))


def test_every_rule_has_a_firing_case() -> None:
    assert {r.code for r in RULES} == {c[3] for c in LINT_CASES}
    assert all(r.doc for r in RULES)


@pytest.mark.parametrize("rule", RULES, ids=[r.code for r in RULES])
@pytest.mark.parametrize("data", CLEAN.values(), ids=CLEAN.keys())
def test_no_rule_fires_on_clean_templates(rule: Any, data: dict[str, Any]) -> None:
    assert list(rule.check(parse_template(data))) == []


NEAR_MISSES: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    (
        "punctuation after last variable",
        UTILITY_POSITIONAL,
        {"components.1.text": "Hello {{1}}, order {{2}} is {{3}}."},
        "variable_at_end",
    ),
    (
        "wholesale is not a sale",
        UTILITY_POSITIONAL,
        {"components.2.text": "Wholesale orders ship Mondays"},
        "utility_promotional",
    ),
    ("offer in marketing", MARKETING_NAMED, {"components.2.text": "Offer ends Sunday"}, "utility_promotional"),
    ("code first in authentication", AUTHENTICATION, {}, "variable_at_start"),
    ("single braces", UTILITY_POSITIONAL, {"components.2.text": "Sets {a, b} are fine"}, "unbalanced_braces"),
]


@pytest.mark.parametrize(("base", "changes", "code"), [c[1:] for c in NEAR_MISSES], ids=[c[0] for c in NEAR_MISSES])
def test_rule_does_not_fire_on_near_misses(base: dict, changes: dict, code: str) -> None:
    assert code not in {c for c, _ in findings(variant(base, changes))}


def test_errors_block_approval_and_warnings_do_not() -> None:
    warned = lint(parse_template(variant(UTILITY_POSITIONAL, {"components.2.text": "Big sale on Friday"})))
    assert [f.severity for f in warned] == [Severity.WARNING]
    assert not blocks_approval(warned)
    refused = lint(parse_template(variant(UTILITY_POSITIONAL, {"components.1.example": ...})))
    assert blocks_approval(refused)
    assert refused[0].to_dict() == {
        "code": "example_missing",
        "severity": "error",
        "path": "components.1.example",
        "message": "the variables have no example values",
    }


# Review states

LEGAL = {
    (ReviewStatus.PENDING, "approve"): ReviewStatus.APPROVED,
    (ReviewStatus.PENDING, "reject"): ReviewStatus.REJECTED,
    (ReviewStatus.PENDING, "disable"): ReviewStatus.DISABLED,
    (ReviewStatus.APPROVED, "submit"): ReviewStatus.PENDING,
    (ReviewStatus.APPROVED, "pause"): ReviewStatus.PAUSED,
    (ReviewStatus.APPROVED, "disable"): ReviewStatus.DISABLED,
    (ReviewStatus.REJECTED, "submit"): ReviewStatus.PENDING,
    (ReviewStatus.REJECTED, "disable"): ReviewStatus.DISABLED,
    (ReviewStatus.PAUSED, "submit"): ReviewStatus.PENDING,
    (ReviewStatus.PAUSED, "resume"): ReviewStatus.APPROVED,
    (ReviewStatus.PAUSED, "disable"): ReviewStatus.DISABLED,
}
EVENTS = {
    "submit": Submit(),
    "approve": Approve(),
    "reject": Reject(reason="INVALID_FORMAT"),
    "pause": Pause(until_ms=10_800_000),
    "resume": Resume(),
    "disable": Disable(reason="paused three times"),
}
STATES = {
    ReviewStatus.PENDING: ReviewState(),
    ReviewStatus.APPROVED: ReviewState(status=ReviewStatus.APPROVED),
    ReviewStatus.REJECTED: ReviewState(status=ReviewStatus.REJECTED, reason="PROMOTIONAL"),
    ReviewStatus.PAUSED: ReviewState(status=ReviewStatus.PAUSED, paused_until_ms=5),
    ReviewStatus.DISABLED: ReviewState(status=ReviewStatus.DISABLED, reason="spam"),
}


@pytest.mark.parametrize("event", EVENTS)
@pytest.mark.parametrize("status", list(ReviewStatus))
def test_transitions(status: ReviewStatus, event: str) -> None:
    expected = LEGAL.get((status, event))
    if expected is None:
        with pytest.raises(IllegalTransition, match=f"cannot {event} a {status} template"):
            transition(STATES[status], EVENTS[event])
    else:
        assert transition(STATES[status], EVENTS[event]).status is expected


def test_states_carry_reason_and_pause_end() -> None:
    rejected = transition(ReviewState(), Reject(reason="TAG_CONTENT_MISMATCH"))
    assert rejected.reason == "TAG_CONTENT_MISMATCH"
    assert transition(rejected, Submit()) == ReviewState()  # the reason goes with the old text
    paused = transition(STATES[ReviewStatus.APPROVED], Pause(until_ms=1_000))
    assert paused.paused_until_ms == 1_000
    assert transition(paused, Resume()) == STATES[ReviewStatus.APPROVED]
    assert transition(paused, Disable(reason="red again")).reason == "red again"


def test_inconsistent_states_and_events_are_refused() -> None:
    with pytest.raises(ValueError, match="reason"):
        ReviewState(status=ReviewStatus.REJECTED)
    with pytest.raises(ValueError, match="paused_until_ms"):
        ReviewState(status=ReviewStatus.PAUSED)
    with pytest.raises(ValueError):
        Reject(reason="")


def test_only_approved_templates_may_be_sent() -> None:
    assert ReviewStatus.APPROVED not in REFUSAL_CODES
    assert REFUSAL_CODES[ReviewStatus.PAUSED] == 132015
    assert REFUSAL_CODES[ReviewStatus.DISABLED] == 132016
    assert REFUSAL_CODES[ReviewStatus.PENDING] == REFUSAL_CODES[ReviewStatus.REJECTED] == 132001


# Rendering

MARKETING_VALUES = Parameters(
    header={"first_name": "Ana"}, body={"first_name": "Ana", "percent": "30%"}, buttons={1: "spring"}
)


def test_render_named() -> None:
    message = render(parse_template(MARKETING_NAMED), MARKETING_VALUES)
    assert message.header == "Spring sale for Ana"
    assert message.body == "Hi Ana, everything in store is 30% off until Sunday. See you soon!"
    assert message.footer == "Reply STOP to opt out"
    assert message.buttons == [
        RenderedButton(type=ButtonType.QUICK_REPLY, text="Stop promotions", payload="Stop promotions"),
        RenderedButton(type=ButtonType.URL, text="Shop", url="https://shop.example/s/spring"),
        RenderedButton(type=ButtonType.PHONE_NUMBER, text="Call us", phone_number="+4930123456"),
    ]


def test_render_positional_and_shorthand() -> None:
    template = parse_template(UTILITY_POSITIONAL)
    message = render(template, Parameters(header=["B-7"], body=["Jo", "B-7", "Monday"], buttons={0: "B-7"}))
    assert message.header == "Order B-7"
    assert message.body == "Hello Jo, your order B-7 left our warehouse and arrives on Monday."
    assert message.buttons[0].url == "https://post.example/track/B-7"
    # A bare list is the body's values; a mapping by position works too.
    media = parse_template(MEDIA_HEADER)
    assert render(media, []).header is None
    assert render(media, []).header_format == "DOCUMENT"
    assert (
        render(template, Parameters(header={"1": "B-7"}, body=["Jo", "B-7", "Monday"], buttons={0: "B-7"})) == message
    )


def test_render_authentication_copies_the_code() -> None:
    message = render(parse_template(AUTHENTICATION), ["771234"])
    assert message.body.startswith("771234 is your verification code.")
    assert message.buttons == [RenderedButton(type=ButtonType.OTP, text="Copy code", copy_code="771234")]


def test_values_are_not_read_as_variables() -> None:
    message = render(parse_template(AUTHENTICATION), ["{{1}}{{2}}"])
    assert message.body.startswith("{{1}}{{2}} is your verification code.")


BAD_VALUES: list[tuple[str, Parameters, str, str]] = [
    ("missing", Parameters(header=["B-7"], body=["Jo", "B-7"], buttons={0: "x"}), "body.3", "missing_parameter"),
    (
        "extra",
        Parameters(header=["B-7"], body=["Jo", "B-7", "Mon", "x"], buttons={0: "x"}),
        "body.4",
        "unexpected_parameter",
    ),
    (
        "named key",
        Parameters(header=["B-7"], body={"name": "Jo"}, buttons={0: "x"}),
        "body.name",
        "unexpected_parameter",
    ),
    (
        "header too long",
        Parameters(header=["x" * 61], body=["Jo", "B-7", "Mon"], buttons={0: "x"}),
        "header.1",
        "value_too_long",
    ),
    (
        "body too long",
        Parameters(header=["B"], body=["x" * 1025, "B-7", "Mon"], buttons={0: "x"}),
        "body.1",
        "value_too_long",
    ),
    (
        "header newline",
        Parameters(header=["B\n7"], body=["Jo", "B-7", "Mon"], buttons={0: "x"}),
        "header.1",
        "value_whitespace",
    ),
    ("body tab", Parameters(header=["B"], body=["Jo\t", "B-7", "Mon"], buttons={0: "x"}), "body.1", "value_whitespace"),
    (
        "five spaces",
        Parameters(header=["B"], body=["J     o", "B-7", "Mon"], buttons={0: "x"}),
        "body.1",
        "value_whitespace",
    ),
    ("empty", Parameters(header=["B"], body=[" ", "B-7", "Mon"], buttons={0: "x"}), "body.1", "empty_value"),
    ("URL missing", Parameters(header=["B"], body=["Jo", "B-7", "Mon"]), "buttons.0", "missing_parameter"),
    (
        "URL space",
        Parameters(header=["B"], body=["Jo", "B-7", "Mon"], buttons={0: "a b"}),
        "buttons.0",
        "value_whitespace",
    ),
    (
        "URL too long",
        Parameters(header=["B"], body=["Jo", "B-7", "Mon"], buttons={0: "x" * 1990}),
        "buttons.0",
        "value_too_long",
    ),
    (
        "no such button",
        Parameters(header=["B"], body=["Jo", "B-7", "Mon"], buttons={0: "x", 5: "y"}),
        "buttons.5",
        "unexpected_parameter",
    ),
]


@pytest.mark.parametrize(("params", "path", "code"), [c[1:] for c in BAD_VALUES], ids=[c[0] for c in BAD_VALUES])
def test_render_rejects_bad_values(params: Parameters, path: str, code: str) -> None:
    with pytest.raises(TemplateError) as exc:
        render(parse_template(UTILITY_POSITIONAL), params)
    assert (path, code) in {(p.path, p.code) for p in exc.value.problems}


def test_render_rejects_values_of_the_wrong_type_with_their_path() -> None:
    with pytest.raises(TemplateError) as exc:
        render(parse_template(AUTHENTICATION), [482913])  # type: ignore[list-item]
    assert [(p.path, p.code) for p in exc.value.problems] == [("body.1", "string_type")]


def test_render_rejects_values_for_a_media_header_or_fixed_url() -> None:
    with pytest.raises(TemplateError) as exc:
        render(parse_template(MEDIA_HEADER), Parameters(header=["x"]))
    assert [(p.path, p.code) for p in exc.value.problems] == [("header.1", "unexpected_parameter")]
    fixed = variant(
        UTILITY_POSITIONAL,
        {"components.3.buttons.0.url": "https://post.example", "components.3.buttons.0.example": ...},
    )
    with pytest.raises(TemplateError, match="buttons.0: this URL is fixed"):
        render(parse_template(fixed), Parameters(header=["B"], body=["Jo", "B-7", "Mon"], buttons={0: "x"}))


# Signing

KEY = Ed25519PrivateKey.generate()


def approved(data: dict[str, Any] = AUTHENTICATION, version: int = 1) -> tuple[bytes, str]:
    payload = approved_payload(parse_template(data), "tpl_42", version, business_id="biz_7")
    return payload, sign_approved(KEY, payload)


def test_signed_approved_text_verifies() -> None:
    payload, signature = approved()
    result = verify_approved(KEY.public_key(), payload, signature)
    assert result == ApprovedTemplate(
        template_id="tpl_42", business_id="biz_7", version=1, template=parse_template(AUTHENTICATION)
    )
    assert payload == canonical_json(json.loads(payload))  # canonical: the signer's bytes are reproducible


def test_tampered_text_does_not_verify() -> None:
    payload, signature = approved()
    tampered = payload.replace(b"do not share it", b"send it to us")
    assert tampered != payload
    with pytest.raises(TemplateError, match="bad_signature"):
        verify_approved(KEY.public_key(), tampered, signature)
    with pytest.raises(TemplateError, match="bad_signature"):
        verify_approved(Ed25519PrivateKey.generate().public_key(), payload, signature)
    with pytest.raises(TemplateError, match="bad_signature"):
        verify_approved(KEY.public_key(), payload, "not base64!")


def test_signed_but_invalid_payload_is_refused_with_paths() -> None:
    document = json.loads(approved()[0])
    document["template"]["components"][0]["text"] = "x" * 1025
    document["type"] = "something.else"
    payload = canonical_json(document)
    with pytest.raises(TemplateError) as exc:
        verify_approved(KEY.public_key(), payload, sign_approved(KEY, payload))
    assert {(p.path, p.code) for p in exc.value.problems} == {
        ("type", "literal_error"),
        ("template.components.0.text", "string_too_long"),
    }


# The end-to-end split


def approved_template(data: dict[str, Any] = MARKETING_NAMED, version: int = 3) -> ApprovedTemplate:
    payload = approved_payload(parse_template(data), "tpl_9", version, business_id="biz_7")
    return verify_approved(KEY.public_key(), payload, sign_approved(KEY, payload))


def test_header_is_visible_and_values_are_not() -> None:
    template = approved_template()
    header, plaintext = split_template_message(template, MARKETING_VALUES)
    assert header == TemplateHeader(template_id="tpl_9", version=3, language="en_US", category=Category.MARKETING)
    assert set(TemplateHeader.model_fields) == {"template_id", "version", "language", "category"}
    visible = header.model_dump_json()
    for value in ("Ana", "30%", "spring"):
        assert value not in visible
        assert value in plaintext.decode()
    assert read_template_message(header, plaintext, template, "biz_7") == render(template.template, MARKETING_VALUES)


def test_sender_checks_values_before_sending() -> None:
    with pytest.raises(TemplateError, match="missing_parameter"):
        split_template_message(approved_template(), Parameters(body={"first_name": "Ana"}))


def test_recipient_refuses_swapped_header_other_business_and_garbage() -> None:
    marketing = approved_template()
    header, plaintext = split_template_message(marketing, MARKETING_VALUES)
    swapped = header.model_copy(update={"template_id": "tpl_other"})
    with pytest.raises(TemplateError) as exc:
        read_template_message(swapped, plaintext, marketing, "biz_7")
    assert {p.code for p in exc.value.problems} == {"header_mismatch", "wrong_template"}
    # A relay that swaps both the visible header and the approved text still fails: the encrypted copy differs.
    other = approved_template(UTILITY_POSITIONAL, version=1)
    with pytest.raises(TemplateError, match="header_mismatch"):
        read_template_message(header_for(other), plaintext, other, "biz_7")
    with pytest.raises(TemplateError, match="wrong_business"):
        read_template_message(header, plaintext, marketing, "biz_8")
    with pytest.raises(TemplateError, match="json_invalid"):
        read_template_message(header, b"\x00not json", marketing, "biz_7")


# Properties

NAMES = st.lists(st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True), min_size=1, max_size=6, unique=True)
SEGMENT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="{}"), min_size=1, max_size=30)
VALUE = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\r\n\t\v\f\x1c\x1d\x1e\x85\u2028\u2029"),
    min_size=1,
    max_size=40,
).filter(lambda v: v.strip() and "     " not in v)


@settings(max_examples=200)
@given(data=st.data(), names=NAMES, named=st.booleans())
def test_render_puts_each_value_exactly_where_its_variable_was(
    data: st.DataObject, names: list[str], named: bool
) -> None:
    keys = names if named else [str(i) for i in range(1, len(names) + 1)]
    segments = [data.draw(SEGMENT) for _ in range(len(keys) + 1)]
    values = [data.draw(VALUE) for _ in keys]
    text = segments[0] + "".join("{{" + k + "}}" + s for k, s in zip(keys, segments[1:], strict=True))
    template = parse_template(
        {
            "name": "prop",
            "language": "en",
            "category": "UTILITY",
            "parameter_format": "NAMED" if named else "POSITIONAL",
            "components": [{"type": "BODY", "text": text}],
        }
    )
    params = dict(zip(keys, values, strict=True)) if named else values
    expected = segments[0] + "".join(v + s for v, s in zip(values, segments[1:], strict=True))
    assert render(template, params).body == expected


@settings(max_examples=300)
@given(
    body=st.text(min_size=1, max_size=BODY_TEXT_MAX),
    header=st.one_of(st.none(), st.text(min_size=1, max_size=60)),
    category=st.sampled_from(list(Category)),
    parameter_format=st.sampled_from(list(ParameterFormat)),
)
def test_lint_never_crashes(
    body: str, header: str | None, category: Category, parameter_format: ParameterFormat
) -> None:
    components: list[dict[str, Any]] = [{"type": "BODY", "text": body}]
    if header is not None:
        components.insert(0, {"type": "HEADER", "format": "TEXT", "text": header})
    if category is Category.AUTHENTICATION:
        components.append({"type": "BUTTONS", "buttons": [{"type": "OTP", "otp_type": "COPY_CODE"}]})
    try:
        template = parse_template(
            {
                "name": "p",
                "language": "en",
                "category": category,
                "parameter_format": parameter_format,
                "components": components,
            }
        )
    except TemplateError as exc:
        assert exc.problems
        return
    result = lint(template)
    assert all(isinstance(f, Finding) and f.code in {r.code for r in RULES} for f in result)
    assert isinstance(template, Template)
