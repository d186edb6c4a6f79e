"""Lint: the review of a template's text, as findings that a business sees all at once.

A template may be sent to a user who has not written in the last 24 hours, so it is reviewed before use ([M]
https://developers.facebook.com/documentation/business-messaging/whatsapp/templates/overview). :func:`lint` is that
review: what gets a template rejected (variables at the edges, malformed or missing parameters, wrong category) and what
Meta would silently re-categorise. Errors block approval (:func:`blocks_approval`); warnings are for the operator and
the business. Parameters are left to the linter rather than the parser so a business sees every such problem at once, as
findings, and so the linter can be run on drafts.

One small check per rule, registered with :func:`rule` in :data:`RULES`; :func:`lint` runs them in that order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from cove.protocol.business import Category
from cove.protocol.templates.components import (
    CANDIDATE,
    PARAMETER_KEY,
    Body,
    BodyExample,
    Footer,
    Header,
    HeaderExample,
    NamedExample,
    ParameterFormat,
    UrlButton,
    _var,
    placeholders,
)
from cove.protocol.templates.model import Template


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
#: endings s/es/ed/ing). Meta re-categorises UTILITY templates that read as marketing (its
#: template_category_update webhook) and rejects promotional AUTHENTICATION templates; the list is English only
#: and meant to catch, not to judge.
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
    """A UTILITY template does not read as marketing: Meta re-categorises such templates, and Cove must not
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
