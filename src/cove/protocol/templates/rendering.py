"""Rendering: an approved template with a message's parameter values filled in, as the user sees it.

The relay never sees what a business writes, so the recipient's client renders (:func:`render`): it is pure and
deterministic. The sender runs it too, to refuse values the recipient would refuse: a missing or extra value,
an empty or overlong one, or one with whitespace that would break the layout it is put in.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated

from pydantic import BeforeValidator, Field

from cove.protocol.templates.components import (
    BODY_TEXT_MAX,
    CANDIDATE,
    HEADER_TEXT_MAX,
    URL_MAX,
    ButtonType,
    Footer,
    Header,
    HeaderFormat,
    OtpButton,
    PhoneNumberButton,
    QuickReplyButton,
    UrlButton,
    _Strict,
    _var,
    placeholders,
)
from cove.protocol.templates.model import Problem, Template, TemplateError, _validated

# Parameter values at send time (Cove's choice): a header value may be as long as a whole header, a body value
# as long as a whole body; a URL value is bounded by the rendered URL's limit; a quick-reply payload as a reply
# button's id (Meta documents no limit for it).
HEADER_VALUE_MAX = HEADER_TEXT_MAX
BODY_VALUE_MAX = BODY_TEXT_MAX
QUICK_REPLY_PAYLOAD_MAX = 256


def _by_position(values: object) -> object:
    """A list of values is keyed by position: ``["Ana", "A1"]`` is ``{"1": "Ana", "2": "A1"}``."""
    return {str(i): v for i, v in enumerate(values, start=1)} if isinstance(values, list | tuple) else values


Values = Annotated[dict[str, str], BeforeValidator(_by_position)]


class Parameters(_Strict):
    """The values of one template message, the only part inside the ciphertext: by variable (a list is taken
    in order for ``{{1}}``, ``{{2}}``...), URL button suffixes by button index, and quick-reply payloads by button
    index (what comes back to the business when the user taps that button)."""

    header: Values = Field(default_factory=dict)
    body: Values = Field(default_factory=dict)
    buttons: dict[int, str] = Field(default_factory=dict)
    payloads: dict[int, Annotated[str, Field(max_length=QUICK_REPLY_PAYLOAD_MAX)]] = Field(default_factory=dict)


class RenderedButton(_Strict):
    type: ButtonType
    text: str
    url: str | None = None
    phone_number: str | None = None
    copy_code: str | None = None
    payload: str | None = None  # a quick reply's: the business's payload, else the button's text (as Meta does)


class RenderedMessage(_Strict):
    """What the user sees. A media header's file travels as an attachment of the same message."""

    header_format: HeaderFormat | None = None
    header: str | None = None
    body: str
    footer: str | None = None
    buttons: list[RenderedButton] = Field(default_factory=list)


#: A value breaks the layout it is put in if it has line breaks (anything str.splitlines splits on), tabs or
#: more than four spaces in a row (the Cloud API refuses such values with 132018); in a URL, any whitespace.
_BAD_WHITESPACE = re.compile("[\r\n\t\v\f\x1c-\x1e\x85\u2028\u2029]| {5}")


def _value_problems(path: str, value: str, limit: int) -> Iterator[Problem]:
    if not value.strip():
        yield Problem(path, "empty_value", "a value cannot be empty")
    elif len(value) > limit:
        yield Problem(path, "value_too_long", f"{len(value)} characters, at most {limit}")
    elif _BAD_WHITESPACE.search(value):
        yield Problem(path, "value_whitespace", "no line breaks, tabs or more than four spaces in a row")


def _fill(text: str, values: dict[str, str], path: str, limit: int) -> tuple[str, list[Problem]]:
    """``text`` with every well-formed variable replaced in one pass (a value is never read as a variable)."""
    keys = dict.fromkeys(placeholders(text))
    problems = [Problem(f"{path}.{k}", "missing_parameter", f"no value for {_var(k)}") for k in keys if k not in values]
    problems += [Problem(f"{path}.{k}", "unexpected_parameter", f"no {_var(k)} here") for k in values if k not in keys]
    for key in keys:
        if key in values:
            problems += _value_problems(f"{path}.{key}", values[key], limit)
    if problems:
        return text, problems
    return CANDIDATE.sub(lambda m: values[m.group(1)] if m.group(1) in keys else m.group(0), text), []


def _url(button: UrlButton, path: str, value: str | None) -> tuple[str | None, list[Problem]]:
    if not button.url.endswith("{{1}}"):
        return button.url, [] if value is None else [Problem(path, "unexpected_parameter", "this URL is fixed")]
    if value is None:
        return None, [Problem(path, "missing_parameter", "no value for the URL's {{1}}")]
    prefix = button.url.removesuffix("{{1}}")
    problems = list(_value_problems(path, value, URL_MAX - len(prefix)))
    if not problems and re.search(r"\s", value):
        problems.append(Problem(path, "value_whitespace", "a URL value cannot contain whitespace"))
    return prefix + value, problems


def _as_parameters(params: Parameters | list[str] | dict[str, str]) -> Parameters:
    """A bare list or mapping is shorthand for body values, the common case."""
    return params if isinstance(params, Parameters) else _validated(Parameters, {"body": params})


def render(template: Template, params: Parameters | list[str] | dict[str, str]) -> RenderedMessage:
    """The message with its values filled in; raises :class:`TemplateError` for missing, extra or bad values.

    Value paths are ``header.<key>``, ``body.<key>`` (the key is the variable: ``body.1``, ``body.order_id``)
    and ``buttons.<index>``.
    """
    params = _as_parameters(params)
    problems: list[Problem] = []
    header_found = template.find(Header)
    header_text = header_found[1].text if header_found else None
    header, found = _fill(header_text or "", params.header, "header", HEADER_VALUE_MAX)
    problems += found
    body_text = template.body()[1].text
    body, found = _fill(body_text, params.body, "body", BODY_VALUE_MAX)
    problems += found
    footer = found_footer[1].text if (found_footer := template.find(Footer)) else None

    buttons = []
    suffixes, payloads = dict(params.buttons), dict(params.payloads)
    for j, (_, button) in enumerate(template.buttons()):
        rendered = RenderedButton(type=ButtonType(button.type), text=button.text)
        if isinstance(button, QuickReplyButton):
            payload = payloads.pop(j, button.text)
            if not payload.strip():
                problems.append(Problem(f"payloads.{j}", "empty_value", "a payload cannot be empty"))
            rendered = rendered.model_copy(update={"payload": payload})
        elif isinstance(button, UrlButton):
            url, found = _url(button, f"buttons.{j}", suffixes.pop(j, None))
            problems += found
            rendered = rendered.model_copy(update={"url": url})
        elif isinstance(button, PhoneNumberButton):
            rendered = rendered.model_copy(update={"phone_number": button.phone_number})
        elif isinstance(button, OtpButton):
            code = next((params.body[k] for k in placeholders(body_text) if k in params.body), None)
            rendered = rendered.model_copy(update={"copy_code": code})
        buttons.append(rendered)
    problems += [Problem(f"buttons.{j}", "unexpected_parameter", "no URL variable there") for j in suffixes]
    problems += [Problem(f"payloads.{j}", "unexpected_parameter", "no quick reply button there") for j in payloads]
    if problems:
        raise TemplateError(problems)
    return RenderedMessage(
        header_format=header_found[1].format if header_found else None,
        header=header if header_text is not None else None,
        body=body,
        footer=footer,
        buttons=buttons,
    )
