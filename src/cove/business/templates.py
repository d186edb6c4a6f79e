"""Message templates: the Cloud-API-shaped model, its linter, review states, rendering, signing and the E2E split.

A template is what a business may send to a user who has not written in the last 24 hours, so it is reviewed
before use (business-platform.md §2 "Templates", §6.3). Everything here is pure: the registry, routes and the
gateway call it.

**Parse** (:func:`parse_template`) takes the JSON body a WhatsApp Cloud API client sends to
``POST /{waba-id}/message_templates`` and refuses what that API refuses at creation: unknown fields, the limits
below, a malformed component layout. Every problem has a path into that body (``components.1.text``) and a
machine-readable code: pydantic's error type for schema errors (``string_too_long``, ``missing``,
``extra_forbidden``...), a Cove code for the cross-field layout rules (``too_many_url_buttons``...), which are
checked once every field is valid. Enum-valued fields
are case-insensitive, as in the Cloud API; the category is stored as the package's lower-case
:class:`~cove.business.optin.Category`, the others upper-case.

**Lint** (:func:`lint`) is the review: what gets a template rejected (variables at the edges, malformed or
missing parameters, wrong category) and what Meta would silently re-categorise. Errors block approval; warnings
are for the operator and the business. Parameters are left to the linter rather than the parser so a business
sees every such problem at once, as findings, and so the linter can be run on drafts.

**Review** (:func:`transition`) is the status machine: PENDING → APPROVED or REJECTED(reason); APPROVED ⇄
PAUSED; an edit goes back to PENDING; anything → DISABLED, which is final. The quality module decides when a
template is paused (3 h, then 6 h) or disabled; this module only says which moves are legal.

**End-to-end encryption.** The relay never sees what a business writes, template or not. An approved template's
text is signed by the server (:func:`approved_payload`, :func:`sign_approved`); the user's client verifies that
signature (:func:`verify_approved`) and renders the text itself (:func:`render`), so neither the relay nor the
business can change approved wording after review. The signed payload names the business that owns the
template, so one business cannot send another's approved text. A template message is split in two
(:func:`split_template_message`):

- the envelope's visible header, :class:`TemplateHeader`: template id, version, language and category. That is
  all the relay needs to enforce opt-in per category, the 24-hour window, pauses, tiers and caps;
- inside the ciphertext: the parameter values, with a copy of that header. The copy lets the recipient's client
  (:func:`read_template_message`) notice a relay that swapped the visible header to make the user's values
  appear in another approved text.

Limits (Meta's components page, business-platform.md §2): name ≤512 lower-case letters, digits and underscores;
text header ≤60 characters with at most one variable, or an IMAGE/VIDEO/DOCUMENT header; body ≤1,024; footer
≤60 without variables; ≤10 buttons, of which ≤2 URL and ≤1 PHONE_NUMBER, quick replies grouped together; button
text ≤25; URL ≤2,000 with at most one variable, ``{{1}}`` at its end; phone number ≤20. AUTHENTICATION
templates have no header, exactly one OTP button of type COPY_CODE, and one body parameter (the code the button
copies). Meta's preset-text authentication body (``add_security_recommendation``, ``code_expiration_minutes``)
is not accepted: Cove templates carry their text, in their language.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from itertools import groupby
from typing import Annotated, Any, Literal, NamedTuple, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from cove.business.optin import Category

# Limits (see the module docstring for their sources).
NAME_MAX = 512
HEADER_TEXT_MAX = 60
BODY_TEXT_MAX = 1_024
FOOTER_TEXT_MAX = 60
BUTTONS_MAX = 10
URL_BUTTONS_MAX = 2
PHONE_BUTTONS_MAX = 1
BUTTON_TEXT_MAX = 25
URL_MAX = 2_000
PHONE_MAX = 20

# Parameter values at send time (Cove's choice): a header value may be as long as a whole header, a body value
# as long as a whole body; a URL value is bounded by the rendered URL's limit.
HEADER_VALUE_MAX = HEADER_TEXT_MAX
BODY_VALUE_MAX = BODY_TEXT_MAX

#: Something meant as a variable: ``{{`` ... ``}}`` with no brace inside. Only some are well-formed.
CANDIDATE = re.compile(r"\{\{([^{}]*)\}\}")
#: The inside of a well-formed variable: a positional number from 1 without leading zero, or a lower-case name.
PARAMETER_KEY = re.compile(r"[1-9][0-9]*|[a-z_][a-z0-9_]*")
LANGUAGE = r"^[a-z]{2,3}(_[A-Z]{2})?$"  # Cloud API codes: en, en_US, pt_BR, fil
IDENTIFIER = r"^[A-Za-z0-9_.:-]{1,128}$"  # template and business ids, as the registry issues them


def placeholders(text: str) -> list[str]:
    """The keys of the well-formed variables in ``text``, in order and with repeats (``["1", "2"]``)."""
    return [m.group(1) for m in CANDIDATE.finditer(text) if PARAMETER_KEY.fullmatch(m.group(1))]


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


_UPPER = BeforeValidator(_upper)


# The model


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

_C = TypeVar("_C", Header, Body, Footer, Buttons)


class Template(_Strict):
    """One language variant of a template, as a Cloud API client creates it."""

    name: str = Field(max_length=NAME_MAX, pattern=r"^[a-z0-9_]+$")
    language: str = Field(pattern=LANGUAGE)
    category: Annotated[Category, BeforeValidator(_lower)]
    parameter_format: Annotated[ParameterFormat, _UPPER] = ParameterFormat.POSITIONAL
    components: list[Component] = Field(min_length=1)

    @model_validator(mode="after")
    def _layout(self) -> Template:
        problems = [p for check in _LAYOUT_CHECKS for p in check(self)]
        if problems:
            raise PydanticCustomError("template_layout", "the template's layout is invalid", {"problems": problems})
        return self

    def find(self, kind: type[_C]) -> tuple[str, _C] | None:
        """The first component of this kind and its path (``components.1``), if the template has one."""
        for i, component in enumerate(self.components):
            if isinstance(component, kind):
                return f"components.{i}", component
        return None

    def body(self) -> tuple[str, Body]:
        """The body and its path; the layout checks make sure there is one."""
        found = self.find(Body)
        if found is None:
            raise ValueError("a template without a body")  # never for a validated template
        return found

    def buttons(self) -> Iterator[tuple[str, Button]]:
        """Every button and its path (``components.3.buttons.0``)."""
        if found := self.find(Buttons):
            path, component = found
            for j, button in enumerate(component.buttons):
                yield f"{path}.buttons.{j}", button


# Parsing


class Problem(NamedTuple):
    """What is wrong, where: ``path`` into the JSON body, a machine-readable ``code`` and a sentence."""

    path: str
    code: str
    message: str


class TemplateError(Exception):
    """A template, parameter set or signed payload that cannot be used; ``problems`` says why and where."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.path}: {p.message} [{p.code}]" for p in problems))


_M = TypeVar("_M", bound=BaseModel)


def _path(loc: Iterable[str | int]) -> str:
    return ".".join(str(part) for part in loc if part not in _TAGS) or "(top level)"


def _validated(model: type[_M], data: Any) -> _M:
    """``model`` validated from ``data`` (JSON if bytes), or a :class:`TemplateError` with a path and a code per
    problem."""
    try:
        return model.model_validate_json(data) if isinstance(data, bytes) else model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            if err["type"] == "template_layout":
                prefix = _path(err["loc"]) + "." if err["loc"] else ""
                problems.extend(p._replace(path=prefix + p.path) for p in err["ctx"]["problems"])
            else:
                problems.append(Problem(_path(err["loc"]), err["type"], err["msg"]))
        raise TemplateError(problems) from None


def parse_template(data: Mapping[str, Any]) -> Template:
    """The template in a Cloud API creation body; raises :class:`TemplateError` listing every problem found."""
    return _validated(Template, data)


# Layout checks: run by the model itself, so no Template exists that breaks them. Each yields Problems.


def _components_once(t: Template) -> Iterator[Problem]:
    """A template has exactly one body and at most one header, footer and button list."""
    seen: set[type] = set()
    for i, component in enumerate(t.components):
        if type(component) in seen:
            yield Problem(f"components.{i}", "duplicate_component", f"a second {component.type} component")
        seen.add(type(component))
    if Body not in seen:
        yield Problem("components", "missing_body", "a template needs a BODY component")


def _header_layout(t: Template) -> Iterator[Problem]:
    """A TEXT header has text with at most one variable; a media header has none (the media comes at send)."""
    if not (found := t.find(Header)):
        return
    path, header = found
    if header.format is HeaderFormat.TEXT and header.text is None:
        yield Problem(f"{path}.text", "header_text_missing", "a TEXT header needs text")
    elif header.format is not HeaderFormat.TEXT and header.text is not None:
        yield Problem(f"{path}.text", "header_text_not_allowed", f"a {header.format} header has no text")
    elif header.text is not None and len(CANDIDATE.findall(header.text)) > 1:
        yield Problem(f"{path}.text", "header_too_many_variables", "a header may have at most one variable")


def _footer_layout(t: Template) -> Iterator[Problem]:
    """A footer is fixed text."""
    if (found := t.find(Footer)) and ("{{" in found[1].text or "}}" in found[1].text):
        yield Problem(f"{found[0]}.text", "footer_variable", "a footer cannot have variables")


def _button_counts(t: Template) -> Iterator[Problem]:
    """At most two URL buttons and one phone button; quick replies in one run, before or after the others."""
    if not (found := t.find(Buttons)):
        return
    path, component = found
    kinds = [ButtonType(b.type) for b in component.buttons]
    if kinds.count(ButtonType.URL) > URL_BUTTONS_MAX:
        yield Problem(f"{path}.buttons", "too_many_url_buttons", f"at most {URL_BUTTONS_MAX} URL buttons")
    if kinds.count(ButtonType.PHONE_NUMBER) > PHONE_BUTTONS_MAX:
        yield Problem(f"{path}.buttons", "too_many_phone_buttons", f"at most {PHONE_BUTTONS_MAX} PHONE_NUMBER button")
    runs = [quick for quick, _ in groupby(k is ButtonType.QUICK_REPLY for k in kinds)]
    if len(runs) > 2:
        yield Problem(f"{path}.buttons", "buttons_not_grouped", "quick replies come together, before or after the rest")


def _url_variable(t: Template) -> Iterator[Problem]:
    """A URL has at most one variable, ``{{1}}`` at its very end: the value is appended to a reviewed prefix."""
    for path, button in t.buttons():
        if isinstance(button, UrlButton) and "{{" in button.url and not re.fullmatch(r"[^{}]*\{\{1\}\}", button.url):
            yield Problem(f"{path}.url", "url_variable", "a URL may only end in {{1}}")


def _authentication_layout(t: Template) -> Iterator[Problem]:
    """Authentication: no header, one COPY_CODE button and nothing else, one body parameter (the code)."""
    buttons = list(t.buttons())
    otp_paths = [path for path, button in buttons if isinstance(button, OtpButton)]
    if t.category is not Category.AUTHENTICATION:
        for path in otp_paths:
            yield Problem(path, "otp_outside_authentication", "only AUTHENTICATION templates have an OTP button")
        return
    if header := t.find(Header):
        yield Problem(header[0], "authentication_header", "an AUTHENTICATION template has no header")
    if len(buttons) != 1 or not otp_paths:
        button_list = t.find(Buttons)
        yield Problem(
            button_list[0] if button_list else "components",
            "authentication_buttons",
            "an AUTHENTICATION template has exactly one OTP button",
        )
    if (body := t.find(Body)) and len(set(placeholders(body[1].text))) != 1:
        yield Problem(f"{body[0]}.text", "authentication_code_parameter", "the body has one parameter: the code")


def _example_format(t: Template) -> Iterator[Problem]:
    """Examples have the shape of the parameter format: value lists if positional, name/value pairs if named."""
    named = t.parameter_format is ParameterFormat.NAMED
    for i, component in enumerate(t.components):
        example = getattr(component, "example", None)
        if not isinstance(example, HeaderExample | BodyExample):
            continue
        for field in ("header_text", "header_text_named_params", "body_text", "body_text_named_params"):
            if getattr(example, field, None) is not None and field.endswith("_named_params") != named:
                yield Problem(
                    f"components.{i}.example.{field}",
                    "example_format",
                    f"{field} does not fit a {t.parameter_format} template",
                )


_LAYOUT_CHECKS: tuple[Callable[[Template], Iterable[Problem]], ...] = (
    _components_once,
    _header_layout,
    _footer_layout,
    _button_counts,
    _url_variable,
    _authentication_layout,
    _example_format,
)


# Lint: what review refuses (errors) or flags (warnings). One small check per rule, registered with @rule.


class Severity(StrEnum):
    ERROR = "error"  # blocks approval
    WARNING = "warning"  # shown to the operator and the business; approval may go ahead


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    path: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "severity": str(self.severity), "path": self.path, "message": self.message}


class Issue(NamedTuple):
    """What a check yields: the path in the template's JSON and what is wrong there."""

    path: str
    message: str


Check = Callable[[Template], Iterable[Issue]]


@dataclass(frozen=True)
class Rule:
    code: str
    severity: Severity
    check: Check

    @property
    def doc(self) -> str:
        return (self.check.__doc__ or "").strip().splitlines()[0]


RULES: list[Rule] = []


def rule(code: str, severity: Severity = Severity.ERROR) -> Callable[[Check], Check]:
    """Register a check whose issues become findings with this code and severity."""

    def register(check: Check) -> Check:
        RULES.append(Rule(code, severity, check))
        return check

    return register


def lint(template: Template) -> list[Finding]:
    """Every finding of every registered rule, in registry order."""
    return [Finding(r.code, r.severity, i.path, i.message) for r in RULES for i in r.check(template)]


def blocks_approval(findings: Iterable[Finding]) -> bool:
    return any(f.severity is Severity.ERROR for f in findings)


#: Wording that makes a message promotional (Cove's list, matched case-insensitively as whole words, with the
#: endings s/es/ed/ing). Meta re-categorises UTILITY templates that read as marketing (business-platform.md §5.7)
#: and rejects promotional AUTHENTICATION templates; the list is English only and meant to catch, not to judge.
PROMOTIONAL_WORDING = (
    "sale",
    "% off",
    "discount",
    "offer",
    "promo",
    "promotion",
    "promotional",
    "limited time",
    "buy now",
    "shop now",
    "coupon",
    "free shipping",
    "clearance",
    "black friday",
    "last chance",
    "special price",
)
_PROMOTIONAL = re.compile(
    "|".join(
        ("(?<!\\w)" if phrase[0].isalnum() else "")
        + r"\s+".join(map(re.escape, phrase.split()))
        + r"(?:s|es|ed|ing)?(?!\w)"
        for phrase in PROMOTIONAL_WORDING
    ),
    re.IGNORECASE,
)
_URL = re.compile(r"https?://|www\.", re.IGNORECASE)
#: Pictographs, dingbats, symbols and the emoji variation selector: an approximation of Unicode's emoji ranges.
_EMOJI = re.compile("[\U0001f000-\U0001faff\u2300-\u23ff\u2600-\u27bf\u2b00-\u2bff\ufe0f]")
_WORD = re.compile(r"\w+")
#: Fixed words a body needs per variable (Cove's rule): variables may be at most a third of all words, a
#: variable counting as one word. "Hi {{1}}, your order {{2}} shipped." just passes (4 fixed words, 2 variables).
WORDS_PER_VARIABLE = 2


def _var(key: str) -> str:
    return "{{" + key + "}}"


@dataclass(frozen=True)
class _Part:
    """A text that takes parameters (a TEXT header or the body), and where its examples are."""

    path: str
    text: str
    example_path: str
    positional_path: str
    positional: list[str] | None
    named_path: str
    named: list[NamedExample] | None


def _parts(t: Template) -> Iterator[_Part]:
    """The texts whose variables are filled at send time: a TEXT header's and the body's."""
    if (found := t.find(Header)) and (text := found[1].text) is not None:
        path, header = found
        hx = header.example or HeaderExample()
        yield _Part(
            f"{path}.text",
            text,
            f"{path}.example",
            f"{path}.example.header_text",
            hx.header_text,
            f"{path}.example.header_text_named_params",
            hx.header_text_named_params,
        )
    path, body = t.body()
    bx = body.example or BodyExample()
    yield _Part(
        f"{path}.text",
        body.text,
        f"{path}.example",
        f"{path}.example.body_text.0",
        bx.body_text[0] if bx.body_text else None,
        f"{path}.example.body_text_named_params",
        bx.body_text_named_params,
    )


def _texts(t: Template) -> Iterator[tuple[str, str]]:
    """Every text a user reads: header, body, footer and button labels."""
    for i, component in enumerate(t.components):
        if isinstance(component, Header | Body | Footer) and component.text is not None:
            yield f"components.{i}.text", component.text
    for path, button in t.buttons():
        yield f"{path}.text", button.text


@rule("variable_at_start")
def variable_at_start(t: Template) -> Iterator[Issue]:
    """The body does not open with a variable: review rejects text whose sense depends on what is filled in.

    Authentication is exempt: its one variable is a code, and Meta's own preset text starts with it.
    """
    path, body = t.body()
    if t.category is not Category.AUTHENTICATION and body.text.lstrip().startswith("{{"):
        yield Issue(f"{path}.text", "the body starts with a variable; put fixed text before it")


@rule("variable_at_end")
def variable_at_end(t: Template) -> Iterator[Issue]:
    """The body does not end with a variable, for the same reason (authentication is exempt here too)."""
    path, body = t.body()
    if t.category is not Category.AUTHENTICATION and body.text.rstrip().endswith("}}"):
        yield Issue(f"{path}.text", "the body ends with a variable; put fixed text after it")


@rule("adjacent_variables")
def adjacent_variables(t: Template) -> Iterator[Issue]:
    """Two variables are separated by words: side by side they could carry any message at all."""
    path, body = t.body()
    if re.search(r"\}\}\s*\{\{", body.text):
        yield Issue(f"{path}.text", "two variables stand side by side; put fixed text between them")


@rule("malformed_parameter")
def malformed_parameter(t: Template) -> Iterator[Issue]:
    """Every {{...}} is {{1}}, {{2}}... or {{lower_case_name}}: anything else would reach the user verbatim."""
    for part in _parts(t):
        bad = [m.group(0) for m in CANDIDATE.finditer(part.text) if not PARAMETER_KEY.fullmatch(m.group(1))]
        if bad:
            yield Issue(part.path, f"malformed variables {', '.join(bad)}: write {{{{1}}}} or {{{{lower_case_name}}}}")


@rule("unbalanced_braces")
def unbalanced_braces(t: Template) -> Iterator[Issue]:
    """Every {{ has its }} and no third brace: a half-written variable is a typo the user would see."""
    for part in _parts(t):
        rest = CANDIDATE.sub("", part.text)
        if "{{" in rest or "}}" in rest or "{{{" in part.text or "}}}" in part.text:
            yield Issue(part.path, "unbalanced braces: each {{ needs a matching }}")


@rule("mixed_parameters")
def mixed_parameters(t: Template) -> Iterator[Issue]:
    """Variables follow the template's parameter_format: the sender fills them by number or by name, not both."""
    named = t.parameter_format is ParameterFormat.NAMED
    for part in _parts(t):
        strays = dict.fromkeys(k for k in placeholders(part.text) if k.isdigit() == named)
        if strays:
            listed = ", ".join(map(_var, strays))
            yield Issue(part.path, f"{listed} in a {t.parameter_format} template")


@rule("positional_not_sequential")
def positional_not_sequential(t: Template) -> Iterator[Issue]:
    """Positional variables are numbered 1, 2, 3... in each text, with no gaps: values are matched by position."""
    if t.parameter_format is not ParameterFormat.POSITIONAL:
        return
    for part in _parts(t):
        numbers = sorted({int(k) for k in placeholders(part.text) if k.isdigit()})
        if numbers != list(range(1, len(numbers) + 1)):
            found = ", ".join(_var(str(n)) for n in numbers)
            yield Issue(part.path, f"positional variables must be numbered from {{{{1}}}} without gaps, found {found}")


@rule("duplicate_parameter")
def duplicate_parameter(t: Template) -> Iterator[Issue]:
    """A named variable appears once in a text and has one example: a repeat is usually a copy-paste slip."""
    for part in _parts(t):
        names = [k for k in placeholders(part.text) if not k.isdigit()]
        for name in dict.fromkeys(n for n in names if names.count(n) > 1):
            yield Issue(part.path, f"{_var(name)} appears more than once")
        examples = [e.param_name for e in part.named or []]
        for j, name in enumerate(examples):
            if name in examples[:j]:
                yield Issue(f"{part.named_path}.{j}.param_name", f"a second example for {_var(name)}")


@rule("example_missing")
def example_missing(t: Template) -> Iterator[Issue]:
    """Every variable has an example value: review judges the message as a user would read it."""
    named = t.parameter_format is ParameterFormat.NAMED
    for part in _parts(t):
        keys = [k for k in dict.fromkeys(placeholders(part.text)) if k.isdigit() != named]
        if not named and keys and part.positional is None:
            yield Issue(part.example_path, "the variables have no example values")
        given = {e.param_name for e in part.named or []}
        for key in keys if named else ():
            if key not in given:
                yield Issue(part.example_path, f"no example for {_var(key)}")
    for path, button in t.buttons():
        if isinstance(button, UrlButton) and button.url.endswith("{{1}}") and button.example is None:
            yield Issue(f"{path}.example", "the URL's variable has no example (the whole URL, as a user would open it)")


@rule("example_mismatch")
def example_mismatch(t: Template) -> Iterator[Issue]:
    """Examples match the variables: one value per positional variable, no example for a name the text lacks."""
    for part in _parts(t):
        keys = set(placeholders(part.text))
        numbers = {k for k in keys if k.isdigit()}
        if part.positional is not None and len(part.positional) != len(numbers):
            yield Issue(part.positional_path, f"{len(part.positional)} example values for {len(numbers)} variables")
        for j, example in enumerate(part.named or []):
            if example.param_name not in keys:
                yield Issue(f"{part.named_path}.{j}.param_name", f"the text has no {_var(example.param_name)}")


@rule("too_many_variables", Severity.WARNING)
def too_many_variables(t: Template) -> Iterator[Issue]:
    """Each variable has at least two fixed words in the body: Meta rejects texts that are mostly variables."""
    path, body = t.body()
    variables = len(CANDIDATE.findall(body.text))
    words = len(_WORD.findall(CANDIDATE.sub(" ", body.text)))
    if variables and words < WORDS_PER_VARIABLE * variables:
        yield Issue(
            f"{path}.text",
            f"{variables} variables in {words} fixed words: write at least {WORDS_PER_VARIABLE} words per variable",
        )


@rule("authentication_promotional")
def authentication_promotional(t: Template) -> Iterator[Issue]:
    """An AUTHENTICATION template carries a code and nothing to sell."""
    if t.category is Category.AUTHENTICATION:
        for path, text in _texts(t):
            if m := _PROMOTIONAL.search(text):
                yield Issue(path, f"promotional wording ({m.group(0)!r}) in an AUTHENTICATION template")


@rule("authentication_url")
def authentication_url(t: Template) -> Iterator[Issue]:
    """An AUTHENTICATION template has no links: a code message with a link is the shape of phishing."""
    if t.category is Category.AUTHENTICATION:
        for path, text in _texts(t):
            if _URL.search(text):
                yield Issue(path, "a link in an AUTHENTICATION template")


@rule("utility_promotional", Severity.WARNING)
def utility_promotional(t: Template) -> Iterator[Issue]:
    """A UTILITY template does not read as marketing: Meta re-categorises such templates (§5.7), and Cove must not
    deliver promotions as utility to users who stopped promotions."""
    if t.category is Category.UTILITY:
        for path, text in _texts(t):
            if m := _PROMOTIONAL.search(text):
                yield Issue(path, f"marketing wording ({m.group(0)!r}) in a UTILITY template: make it MARKETING")


@rule("emoji_in_header")
def emoji_in_header(t: Template) -> Iterator[Issue]:
    """A text header has no emoji (Meta's header rule)."""
    if (found := t.find(Header)) and found[1].text and _EMOJI.search(found[1].text):
        yield Issue(f"{found[0]}.text", "a header cannot contain emoji")


@rule("newline_in_header")
def newline_in_header(t: Template) -> Iterator[Issue]:
    """A text header is one line (Meta's header rule)."""
    if (found := t.find(Header)) and found[1].text and re.search(r"[\r\n]", found[1].text):
        yield Issue(f"{found[0]}.text", "a header is a single line")


@rule("emoji_in_authentication")
def emoji_in_authentication(t: Template) -> Iterator[Issue]:
    """An AUTHENTICATION template has no emoji (Meta: URLs, media and emoji are not supported there)."""
    if t.category is Category.AUTHENTICATION:
        for path, text in _texts(t):
            if _EMOJI.search(text):
                yield Issue(path, "emoji in an AUTHENTICATION template")


# Review: PENDING -> APPROVED / REJECTED(reason); APPROVED <-> PAUSED; anything -> DISABLED, which is final.


class ReviewStatus(StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    PAUSED = "PAUSED"
    DISABLED = "DISABLED"


class ReviewState(_Strict):
    """Where a template is in review; stored by the registry, changed only through :func:`transition`."""

    status: ReviewStatus = ReviewStatus.PENDING
    reason: str | None = Field(None, description="Why it was rejected or disabled")
    paused_until_ms: int | None = Field(None, description="When the quality pause ends (PAUSED only)")

    @model_validator(mode="after")
    def _consistent(self) -> ReviewState:
        if (self.status is ReviewStatus.REJECTED) and self.reason is None:
            raise ValueError("a rejection has a reason")
        if self.reason is not None and self.status not in (ReviewStatus.REJECTED, ReviewStatus.DISABLED):
            raise ValueError(f"a {self.status} template has no reason")
        if (self.status is ReviewStatus.PAUSED) != (self.paused_until_ms is not None):
            raise ValueError("a paused template, and only a paused one, has paused_until_ms")
        return self


class Submit(_Strict):
    """The business resubmits an edited template (a new one starts PENDING); approved text is reviewed again."""


class Approve(_Strict):
    """The operator approves a pending template (after lint found no errors)."""


class Reject(_Strict):
    """The operator rejects a pending template, saying why."""

    reason: str = Field(min_length=1)


class Pause(_Strict):
    """The quality module pauses an approved template until ``until_ms`` (3 h, then 6 h)."""

    until_ms: int = Field(ge=0)


class Resume(_Strict):
    """The quality module unpauses a paused template."""


class Disable(_Strict):
    """The quality module (third pause) or the operator takes a template out of use for good."""

    reason: str = Field(min_length=1)


Event = Submit | Approve | Reject | Pause | Resume | Disable

_S = ReviewStatus
#: For each event: the statuses it may happen in, and the status it leads to. Nothing leaves DISABLED.
_MOVES: dict[type[_Strict], tuple[frozenset[ReviewStatus], ReviewStatus]] = {
    Submit: (frozenset({_S.APPROVED, _S.REJECTED, _S.PAUSED}), _S.PENDING),
    Approve: (frozenset({_S.PENDING}), _S.APPROVED),
    Reject: (frozenset({_S.PENDING}), _S.REJECTED),
    Pause: (frozenset({_S.APPROVED}), _S.PAUSED),
    Resume: (frozenset({_S.PAUSED}), _S.APPROVED),
    Disable: (frozenset({_S.PENDING, _S.APPROVED, _S.REJECTED, _S.PAUSED}), _S.DISABLED),
}


class IllegalTransition(Exception):
    def __init__(self, status: ReviewStatus, event: Event) -> None:
        self.status = status
        self.event = event
        super().__init__(f"cannot {type(event).__name__.lower()} a {status} template")


def transition(state: ReviewState, event: Event) -> ReviewState:
    """The state after ``event``; raises :class:`IllegalTransition` if it cannot happen now."""
    sources, target = _MOVES[type(event)]
    if state.status not in sources:
        raise IllegalTransition(state.status, event)
    return ReviewState(
        status=target, reason=getattr(event, "reason", None), paused_until_ms=getattr(event, "until_ms", None)
    )


#: What a send of a template in each status gets (cove.business.errors.CATALOGUE): only APPROVED may be sent.
REFUSAL_CODES = {
    ReviewStatus.PENDING: 132001,
    ReviewStatus.REJECTED: 132001,
    ReviewStatus.PAUSED: 132015,
    ReviewStatus.DISABLED: 132016,
}


# Rendering: done by the recipient's client, so pure and deterministic; the sender runs it too, to refuse values
# the recipient would refuse.


def _by_position(values: object) -> object:
    """A list of values is keyed by position: ``["Ana", "A1"]`` is ``{"1": "Ana", "2": "A1"}``."""
    return {str(i): v for i, v in enumerate(values, start=1)} if isinstance(values, list | tuple) else values


Values = Annotated[dict[str, str], BeforeValidator(_by_position)]


class Parameters(_Strict):
    """The values of one template message, the only part inside the ciphertext: by variable (a list is taken
    in order for ``{{1}}``, ``{{2}}``...), and URL button suffixes by button index."""

    header: Values = Field(default_factory=dict)
    body: Values = Field(default_factory=dict)
    buttons: dict[int, str] = Field(default_factory=dict)


class RenderedButton(_Strict):
    type: ButtonType
    text: str
    url: str | None = None
    phone_number: str | None = None
    copy_code: str | None = None


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
    suffixes = dict(params.buttons)
    for j, (_, button) in enumerate(template.buttons()):
        rendered = RenderedButton(type=ButtonType(button.type), text=button.text)
        if isinstance(button, UrlButton):
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
    if problems:
        raise TemplateError(problems)
    return RenderedMessage(
        header_format=header_found[1].format if header_found else None,
        header=header if header_text is not None else None,
        body=body,
        footer=footer,
        buttons=buttons,
    )


# Signing: the server signs what it approved; the client renders only what verifies.


APPROVED_TYPE = "cove.business.template.approved.v1"


class ApprovedTemplate(_Strict):
    """An approved text as signed: the template, its id and version, and the business allowed to send it.

    ``type`` keeps the server's signature over it from meaning anything else; ``business_id`` stops one business
    from sending another's approved text (a bank's, say) in its own chat.
    """

    type: Literal["cove.business.template.approved.v1"] = APPROVED_TYPE
    template_id: str = Field(pattern=IDENTIFIER)
    business_id: str = Field(pattern=IDENTIFIER)
    version: int = Field(ge=1)
    template: Template


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8, no NaN: one byte string for one value, so signatures are reproducible."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def approved_payload(template: Template, template_id: str, version: int, *, business_id: str) -> bytes:
    """The bytes the server signs when it approves ``version`` of a template."""
    approved = ApprovedTemplate(template_id=template_id, business_id=business_id, version=version, template=template)
    return canonical_json(approved.model_dump(mode="json", exclude_none=True))


def sign_approved(private_key: Ed25519PrivateKey, payload: bytes) -> str:
    """The server's Ed25519 signature over an :func:`approved_payload`, base64."""
    return base64.b64encode(private_key.sign(payload)).decode()


def verify_approved(public_key: Ed25519PublicKey, payload: bytes, signature: str) -> ApprovedTemplate:
    """The approved template in ``payload`` if the server signed exactly these bytes; else :class:`TemplateError`."""
    try:
        public_key.verify(base64.b64decode(signature, validate=True), payload)
    except (InvalidSignature, ValueError):
        raise TemplateError([Problem("(signature)", "bad_signature", "not signed by the server's key")]) from None
    return _validated(ApprovedTemplate, payload)


# The end-to-end split of a template message.


class TemplateHeader(_Strict):
    """The visible part of a template message: enough for the relay to enforce opt-in per category, the window,
    pauses, tiers and caps, and for the client to fetch the signed text (the version pins the text the values
    were checked against)."""

    template_id: str = Field(pattern=IDENTIFIER)
    version: int = Field(ge=1)
    language: str = Field(pattern=LANGUAGE)
    category: Category


class _Sealed(_Strict):
    """The plaintext that is encrypted: the values, and the header they were written for."""

    header: TemplateHeader
    parameters: Parameters


class TemplateMessageParts(NamedTuple):
    header: TemplateHeader  # goes in the envelope, visible to the relay
    plaintext: bytes  # goes into the ciphertext


def header_for(approved: ApprovedTemplate) -> TemplateHeader:
    return TemplateHeader(
        template_id=approved.template_id,
        version=approved.version,
        language=approved.template.language,
        category=approved.template.category,
    )


def split_template_message(
    approved: ApprovedTemplate, params: Parameters | list[str] | dict[str, str]
) -> TemplateMessageParts:
    """What goes where in a template message, after checking the values as the recipient's client will."""
    params = _as_parameters(params)
    render(approved.template, params)
    header = header_for(approved)
    sealed = _Sealed(header=header, parameters=params)
    return TemplateMessageParts(header, canonical_json(sealed.model_dump(mode="json")))


def read_template_message(
    header: TemplateHeader, plaintext: bytes, approved: ApprovedTemplate, sender_business_id: str
) -> RenderedMessage:
    """The recipient's side: check that the visible header, the encrypted copy, the verified approved template
    and the chat's business agree, then render. Raises :class:`TemplateError`."""
    sealed = _validated(_Sealed, plaintext)
    problems = []
    if sealed.header != header:
        problems.append(Problem("header", "header_mismatch", "the visible header is not the one sent with the values"))
    if header != header_for(approved):
        problems.append(Problem("header", "wrong_template", "the header does not name this approved template"))
    if approved.business_id != sender_business_id:
        problems.append(Problem("business_id", "wrong_business", "the template belongs to another business"))
    if problems:
        raise TemplateError(problems)
    return render(approved.template, sealed.parameters)
