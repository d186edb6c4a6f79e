"""The parts of a template: Meta's limits, the variable syntax, and the components and buttons it is built from.

These are the JSON shapes a WhatsApp Cloud API client sends to ``POST /{waba-id}/message_templates``, as strict
pydantic models, so a field the Cloud API does not know, or a value beyond its limits, is refused where it
stands. Enum-valued fields are case-insensitive, as in the Cloud API, and stored upper-case. The rules that span
several components (one body, where a variable may go, which buttons fit together) are checked by the
:class:`~cove.protocol.templates.model.Template` that holds them.

Limits (Meta's components page, [M]
https://developers.facebook.com/documentation/business-messaging/whatsapp/templates/components): name ≤512 lower-case
letters, digits and underscores; text header ≤60 characters with at most one variable, or an IMAGE/VIDEO/DOCUMENT
header; body ≤1,024; footer ≤60 without variables; ≤10 buttons, of which ≤2 URL and ≤1 PHONE_NUMBER, quick replies
grouped together; button text ≤25; URL ≤2,000 with at most one variable, ``{{1}}`` at its end; phone number ≤20. A
business has at most 250 template names, each in any number of languages (as restated by [3P]
https://help.eocean.net/knowledge/template-guidelines).
AUTHENTICATION templates have no header, exactly one OTP button of type COPY_CODE, and one body parameter (the code the
button copies). Meta's preset-text authentication body (``add_security_recommendation``, ``code_expiration_minutes``) is
not accepted: Cove templates carry their text, in their language.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag

# Limits (see the module docstring for their sources).
NAME_MAX = 512
TEMPLATE_NAMES_MAX = 250  # per business; a name's languages count once
HEADER_TEXT_MAX = 60
BODY_TEXT_MAX = 1_024
FOOTER_TEXT_MAX = 60
BUTTONS_MAX = 10
URL_BUTTONS_MAX = 2
PHONE_BUTTONS_MAX = 1
BUTTON_TEXT_MAX = 25
URL_MAX = 2_000
PHONE_MAX = 20

#: Something meant as a variable: ``{{`` ... ``}}`` with no brace inside. Only some are well-formed.
CANDIDATE = re.compile(r"\{\{([^{}]*)\}\}")
#: The inside of a well-formed variable: a positional number from 1 without leading zero, or a lower-case name.
PARAMETER_KEY = re.compile(r"[1-9][0-9]*|[a-z_][a-z0-9_]*")
LANGUAGE = r"^[a-z]{2,3}(_[A-Z]{2})?$"  # Cloud API codes: en, en_US, pt_BR, fil
NAME = r"^[a-z0-9_]+$"  # a template's name: lower-case letters, digits and underscores
IDENTIFIER = r"^[A-Za-z0-9_.:-]{1,128}$"  # template and business ids, as the registry issues them


def placeholders(text: str) -> list[str]:
    """The keys of the well-formed variables in ``text``, in order and with repeats (``["1", "2"]``)."""
    return [m.group(1) for m in CANDIDATE.finditer(text) if PARAMETER_KEY.fullmatch(m.group(1))]


def _var(key: str) -> str:
    return "{{" + key + "}}"


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


_UPPER = BeforeValidator(_upper)


class ParameterFormat(StrEnum):
    NAMED = "NAMED"  # {{order_id}}
    POSITIONAL = "POSITIONAL"  # {{1}}, the Cloud API's default


class HeaderFormat(StrEnum):
    TEXT = "TEXT"
    IMAGE = "IMAGE"
    VIDEO = "VIDEO"
    DOCUMENT = "DOCUMENT"


class ButtonType(StrEnum):
    QUICK_REPLY = "QUICK_REPLY"
    URL = "URL"
    PHONE_NUMBER = "PHONE_NUMBER"
    OTP = "OTP"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ExampleValue = Annotated[str, Field(min_length=1)]
ButtonText = Annotated[str, Field(min_length=1, max_length=BUTTON_TEXT_MAX)]


class NamedExample(_Strict):
    param_name: str = Field(min_length=1)
    example: ExampleValue


class HeaderExample(_Strict):
    header_text: list[ExampleValue] | None = Field(None, min_length=1, max_length=1)
    header_text_named_params: list[NamedExample] | None = Field(None, min_length=1, max_length=1)
    header_handle: list[str] | None = Field(None, description="Sample media for review (media headers)")


class BodyExample(_Strict):
    body_text: list[list[ExampleValue]] | None = Field(None, min_length=1, max_length=1)
    body_text_named_params: list[NamedExample] | None = Field(None, min_length=1)


class Header(_Strict):
    type: Annotated[Literal["HEADER"], _UPPER]
    format: Annotated[HeaderFormat, _UPPER]
    text: str | None = Field(None, min_length=1, max_length=HEADER_TEXT_MAX)
    example: HeaderExample | None = None


class Body(_Strict):
    type: Annotated[Literal["BODY"], _UPPER]
    text: str = Field(min_length=1, max_length=BODY_TEXT_MAX)
    example: BodyExample | None = None


class Footer(_Strict):
    type: Annotated[Literal["FOOTER"], _UPPER]
    text: str = Field(min_length=1, max_length=FOOTER_TEXT_MAX)


class QuickReplyButton(_Strict):
    type: Annotated[Literal["QUICK_REPLY"], _UPPER]
    text: ButtonText


class UrlButton(_Strict):
    type: Annotated[Literal["URL"], _UPPER]
    text: ButtonText
    url: str = Field(max_length=URL_MAX, pattern=r"^https?://\S+$")
    example: list[ExampleValue] | None = Field(None, min_length=1, max_length=1, description="The whole URL")


class PhoneNumberButton(_Strict):
    type: Annotated[Literal["PHONE_NUMBER"], _UPPER]
    text: ButtonText
    phone_number: str = Field(max_length=PHONE_MAX, pattern=r"^\+?[0-9]{4,}$")


class OtpButton(_Strict):
    type: Annotated[Literal["OTP"], _UPPER]
    otp_type: Annotated[Literal["COPY_CODE"], _UPPER]
    text: ButtonText = "Copy code"


def _tag(value: object) -> str | None:
    """The upper-cased ``type`` of a component or button, raw or parsed: the Cloud API accepts either case."""
    raw = value.get("type") if isinstance(value, Mapping) else getattr(value, "type", None)
    return raw.upper() if isinstance(raw, str) else None


Button = Annotated[
    Annotated[QuickReplyButton, Tag("QUICK_REPLY")]
    | Annotated[UrlButton, Tag("URL")]
    | Annotated[PhoneNumberButton, Tag("PHONE_NUMBER")]
    | Annotated[OtpButton, Tag("OTP")],
    Discriminator(
        _tag,
        custom_error_type="unknown_button",
        custom_error_message="type must be QUICK_REPLY, URL, PHONE_NUMBER or OTP",
    ),
]


class Buttons(_Strict):
    type: Annotated[Literal["BUTTONS"], _UPPER]
    buttons: list[Button] = Field(min_length=1, max_length=BUTTONS_MAX)


Component = Annotated[
    Annotated[Header, Tag("HEADER")]
    | Annotated[Body, Tag("BODY")]
    | Annotated[Footer, Tag("FOOTER")]
    | Annotated[Buttons, Tag("BUTTONS")],
    Discriminator(
        _tag, custom_error_type="unknown_component", custom_error_message="type must be HEADER, BODY, FOOTER or BUTTONS"
    ),
]

#: Discriminator tags pydantic puts in error locations; they are not part of the JSON path.
_TAGS = frozenset({"HEADER", "BODY", "FOOTER", "BUTTONS", *ButtonType})
