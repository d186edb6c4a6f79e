"""The template itself: its cross-field layout rules, parsing, and how a refusal says what is wrong and where.

A template is one language variant of a message a business may send outside the 24-hour window ([M]
https://developers.facebook.com/documentation/business-messaging/whatsapp/templates/overview). **Parse**
(:func:`parse_template`) takes the JSON body a WhatsApp Cloud API client sends to ``POST /{waba-id}/message_templates``
and refuses what that API refuses at creation: unknown fields, Meta's limits (kept on the components,
:mod:`.components`), a malformed component layout. Every problem has a path into that body (``components.1.text``) and a
machine-readable code: pydantic's error type for schema errors (``string_too_long``, ``missing``,
``extra_forbidden``...), a Cove code for the cross-field layout rules (``too_many_url_buttons``...), which are checked
once every field is valid. The category is stored as the package's lower-case :class:`~cove.business.optin.Category`.

The layout checks live here, with :class:`Template`, because its validator runs them: no ``Template`` exists
that breaks them. :class:`Problem`, :class:`TemplateError` and ``_validated`` are shared by the rest of the
package, so that parameters and signed payloads are refused the same way, with a path and a code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import groupby
from typing import Annotated, Any, NamedTuple, TypeVar

from pydantic import BaseModel, BeforeValidator, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from cove.protocol.business import Category
from cove.protocol.templates.components import (
    _TAGS,
    _UPPER,
    CANDIDATE,
    LANGUAGE,
    NAME,
    NAME_MAX,
    PHONE_BUTTONS_MAX,
    URL_BUTTONS_MAX,
    Body,
    BodyExample,
    Button,
    Buttons,
    ButtonType,
    Component,
    Footer,
    Header,
    HeaderExample,
    HeaderFormat,
    OtpButton,
    ParameterFormat,
    UrlButton,
    _lower,
    _Strict,
    placeholders,
)

_C = TypeVar("_C", Header, Body, Footer, Buttons)


class Template(_Strict):
    """One language variant of a template, as a Cloud API client creates it."""

    name: str = Field(max_length=NAME_MAX, pattern=NAME)
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
