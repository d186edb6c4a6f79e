"""``GET /{waba_id}/message_templates`` and ``GET /{template_id}`` as Meta answers them, as pure functions over the
relay's list of the business's templates.

Shapes, from Meta's template-management page and the message-template reference ([M]
https://developers.facebook.com/documentation/business-messaging/whatsapp/templates/template-management ,
https://developers.facebook.com/docs/graph-api/reference/whats-app-business-hsm):

- a template is ``{name, parameter_format, components, language, status, category, id}`` by default; ``fields``
  asks for others (``rejected_reason``, ``quality_score`` ``{score, date}``...). A field Meta has and Cove does
  not (``previous_category``, ``message_send_ttl_seconds``...) is left out, as Meta leaves out an unset one, so
  a client library that asks for every field it knows still works; a name Meta does not have is refused (100).
- the list is ``{data, paging: {cursors: {before, after}, next?, previous?}}`` with ``limit``, ``after`` and
  ``before``, and ``summary`` when asked (``total_count``, ``message_template_count``...); filters ``name`` and
  ``content`` (parts of the name or of the body), ``name_or_content``, and comma-separated ``status``,
  ``category``, ``language`` and ``quality_score``.

Cursors are opaque (base64url of the position: name, language, id). Paging is keyset, so a template created or
deleted between two pages moves no other template to the wrong page.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from cove.business.errors import CloudApiError
from cove.protocol.templates import LANGUAGE, TEMPLATE_NAMES_MAX

DEFAULT_LIMIT = 25
MAX_LIMIT = 100  # a bigger limit is served as this one, as Graph caps its pages
CURSOR_MAX = 1_400  # base64 of a 512-character name, a language and an id, with room to spare

DEFAULT_FIELDS = ("name", "parameter_format", "components", "language", "status", "category", "id")
#: Meta's template fields Cove has no value for: asked for, they are left out (Meta omits unset fields too).
ABSENT_FIELDS = frozenset(
    {
        "previous_category",
        "correct_category",
        "sub_category",
        "message_send_ttl_seconds",
        "library_template_name",
        "cta_url_link_tracking_opted_out",
        "degrees_of_freedom_spec",
    }
)
KNOWN_FIELDS = frozenset({*DEFAULT_FIELDS, "rejected_reason", "quality_score", "version"})  # version: Cove's
SUMMARY_FIELDS = frozenset(
    {"total_count", "message_template_count", "message_template_limit", "are_translations_complete"}
)
STATUSES = frozenset({"APPROVED", "IN_APPEAL", "PENDING", "REJECTED", "PENDING_DELETION", "DELETED", "DISABLED",
                      "PAUSED", "LIMIT_EXCEEDED", "ARCHIVED"})  # fmt: skip
CATEGORIES = frozenset({"MARKETING", "UTILITY", "AUTHENTICATION"})
QUALITY_SCORES = frozenset({"GREEN", "YELLOW", "RED", "UNKNOWN"})
#: Meta's rejection codes; an operator's reason that starts with one is listed as that code.
REJECTION_CODES = ("ABUSIVE_CONTENT", "INCORRECT_CATEGORY", "INVALID_FORMAT", "PROMOTIONAL", "SCAM",
                   "TAG_CONTENT_MISMATCH")  # fmt: skip
SEARCH_MAX = 512
NAME_PART = r"[a-z0-9_]+"  # a part of a template name (cove.protocol.templates.NAME)


def _invalid(what: str) -> CloudApiError:
    return CloudApiError(100, what)


def _names(raw: str | None, what: str) -> list[str]:
    """A comma-separated parameter as its items (Graph's list syntax), blank items dropped."""
    if raw is None:
        return []
    items = [item.strip() for item in raw.split(",") if item.strip()]
    if len(items) > 50:
        raise _invalid(f"{what}: at most 50 values")
    return items


def _one_of(raw: str | None, allowed: frozenset[str], what: str) -> frozenset[str]:
    values = {v.upper() for v in _names(raw, what)}
    unknown = sorted(values - allowed)
    if unknown:
        raise _invalid(f"{what}: {unknown[0][:40]!r} is not one of {', '.join(sorted(allowed))}")
    return frozenset(values)


def _search(raw: str | None, what: str, pattern: str | None = None) -> str | None:
    if raw is None:
        return None
    if len(raw) > SEARCH_MAX or (pattern is not None and re.fullmatch(pattern, raw) is None):
        raise _invalid(f"{what}: must be part of a template name (a-z, 0-9, _), at most {SEARCH_MAX} characters")
    return raw.lower() if pattern is None else raw


@dataclass(frozen=True)
class Query:
    """A listing request, checked: every caller value against its syntax before it is used."""

    fields: tuple[str, ...] = DEFAULT_FIELDS
    summary: tuple[str, ...] = ()
    statuses: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    languages: frozenset[str] = frozenset()
    quality_scores: frozenset[str] = frozenset()
    name: str | None = None
    content: str | None = None
    name_or_content: str | None = None
    limit: int = DEFAULT_LIMIT
    after: tuple[str, ...] | None = None
    before: tuple[str, ...] | None = None
    raw: dict[str, str] = field(default_factory=dict)  # the caller's parameters, for next and previous


def fields_of(raw: str | None) -> tuple[str, ...]:
    """The fields asked for (``id`` always comes too, as in Graph); a name Meta does not have is refused."""
    if raw is None:
        return DEFAULT_FIELDS
    names = _names(raw, "fields")
    unknown = [n for n in names if n not in KNOWN_FIELDS | ABSENT_FIELDS]
    if unknown:
        raise _invalid(f"fields: Tried accessing nonexisting field ({unknown[0][:40]}) on node type (WhatsAppTemplate)")
    return tuple(dict.fromkeys([*names, "id"]))


def decode_cursor(raw: str, what: str) -> tuple[str, ...]:
    try:
        if len(raw) > CURSOR_MAX:
            raise ValueError
        key = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        if not (isinstance(key, list) and len(key) == 3 and all(isinstance(k, str) for k in key)):
            raise ValueError
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _invalid(f"{what}: not a cursor this API gave") from None
    return tuple(key)


def encode_cursor(key: Sequence[str]) -> str:
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def parse_query(params: dict[str, str]) -> Query:
    """The listing's query parameters, or the Graph error (100) for the first bad one."""
    limit = DEFAULT_LIMIT
    if "limit" in params:
        if not params["limit"].isdigit() or int(params["limit"]) < 1:
            raise _invalid("limit: must be a positive whole number")
        limit = min(int(params["limit"]), MAX_LIMIT)
    if "after" in params and "before" in params:
        raise _invalid("after, before: give one cursor, not both")
    summary = _names(params.get("summary"), "summary")
    unknown = [s for s in summary if s not in SUMMARY_FIELDS]
    if unknown:
        raise _invalid(f"summary: {unknown[0][:40]!r} is not one of {', '.join(sorted(SUMMARY_FIELDS))}")
    languages = frozenset(_names(params.get("language"), "language"))
    bad = [code for code in languages if re.fullmatch(LANGUAGE, code) is None]
    if bad:
        raise _invalid(f"language: {bad[0][:40]!r} is not a language code (en, en_US)")
    return Query(
        fields=fields_of(params.get("fields")),
        summary=tuple(summary),
        statuses=_one_of(params.get("status"), STATUSES, "status"),
        categories=_one_of(params.get("category"), CATEGORIES, "category"),
        languages=languages,
        quality_scores=_one_of(params.get("quality_score"), QUALITY_SCORES, "quality_score"),
        name=_search(params.get("name"), "name", NAME_PART),
        content=_search(params.get("content"), "content"),
        name_or_content=_search(params.get("name_or_content"), "name_or_content"),
        limit=limit,
        after=decode_cursor(params["after"], "after") if "after" in params else None,
        before=decode_cursor(params["before"], "before") if "before" in params else None,
        raw=dict(params),
    )


# one template -----------------------------------------------------------------------------------------------------


def _body_text(view: dict[str, Any]) -> str:
    return " ".join(c.get("text", "") for c in view["components"] if c.get("type") == "BODY").lower()


def rejected_reason(view: dict[str, Any]) -> str:
    """Meta's code: NONE unless rejected; the code the operator's reason starts with, else NONE (the reason in the
    operator's words comes in the ``message_template_status_update`` webhook)."""
    reason = (view.get("reason") or "").strip().upper()
    if view["status"] != "REJECTED":
        return "NONE"
    return next((code for code in REJECTION_CODES if reason.startswith(code)), "NONE")


def cloud_template(view: dict[str, Any], fields: Iterable[str] = DEFAULT_FIELDS) -> dict[str, Any]:
    """One template of the relay's list (``/v1/business/templates``) in Meta's shape, with only ``fields``."""
    everything: dict[str, Any] = {
        "name": view["name"],
        "parameter_format": view["parameter_format"],
        "components": view["components"],
        "language": view["language"],
        "status": view["status"],
        "category": view["category"].upper(),
        "id": view["template_id"],
        "rejected_reason": rejected_reason(view),
        # Meta's {score, date}; the date is the template's last change, which is when Cove last rated it at the latest.
        "quality_score": {"score": view["quality"], "date": view.get("updated_at_ms", 0) // 1000},
        "version": view["version"],
    }
    return {name: everything[name] for name in fields if name in everything}


# the list ---------------------------------------------------------------------------------------------------------


def _key(view: dict[str, Any]) -> tuple[str, str, str]:
    return (view["name"], view["language"], view["template_id"])


def _matches(view: dict[str, Any], q: Query) -> bool:
    if q.statuses and view["status"] not in q.statuses:
        return False
    if q.categories and view["category"].upper() not in q.categories:
        return False
    if q.languages and view["language"] not in q.languages:
        return False
    if q.quality_scores and view["quality"] not in q.quality_scores:
        return False
    if q.name is not None and q.name not in view["name"]:
        return False
    if q.content is not None and q.content not in _body_text(view):
        return False
    wanted = q.name_or_content
    return wanted is None or wanted in view["name"] or wanted in _body_text(view)


@dataclass(frozen=True)
class Page:
    data: list[dict[str, Any]]
    before: str | None  # cursor of the first item
    after: str | None  # cursor of the last item
    has_previous: bool
    has_next: bool
    summary: dict[str, Any]


def page(views: list[dict[str, Any]], q: Query) -> Page:
    """The page ``q`` asks for of the business's templates (``views``, the relay's list), in Meta's shapes."""
    matching = sorted((v for v in views if _matches(v, q)), key=_key)
    keys = [_key(v) for v in matching]
    if q.after is not None:
        start = next((i for i, k in enumerate(keys) if k > q.after), len(keys))
        end = min(start + q.limit, len(keys))
    elif q.before is not None:
        end = next((i for i, k in enumerate(keys) if k >= q.before), len(keys))
        start = max(0, end - q.limit)
    else:
        start, end = 0, min(q.limit, len(keys))
    chosen = matching[start:end]
    everything = {
        "total_count": len(matching),
        # Meta's limit counts names: a template's languages count once.
        "message_template_count": len({v["name"] for v in views}),
        "message_template_limit": TEMPLATE_NAMES_MAX,
        # Every name in every language the business writes in.
        "are_translations_complete": len({_key(v)[:2] for v in views})
        == len({v["name"] for v in views}) * len({v["language"] for v in views}),
    }
    return Page(
        data=[cloud_template(v, q.fields) for v in chosen],
        before=encode_cursor(_key(chosen[0])) if chosen else None,
        after=encode_cursor(_key(chosen[-1])) if chosen else None,
        has_previous=start > 0,
        has_next=end < len(keys),
        summary={name: everything[name] for name in q.summary},
    )


def answer(p: Page, q: Query, url: str) -> dict[str, Any]:
    """The response body: ``data``, ``paging`` (when there is data; ``next``/``previous`` links to this same
    ``url`` with the caller's parameters and the cursor), and ``summary`` when asked for."""
    body: dict[str, Any] = {"data": p.data}
    if p.data:
        paging: dict[str, Any] = {"cursors": {"before": p.before, "after": p.after}}
        others = {k: v for k, v in q.raw.items() if k not in ("after", "before")}
        if p.has_next:
            paging["next"] = _link(url, {**others, "after": p.after})
        if p.has_previous:
            paging["previous"] = _link(url, {**others, "before": p.before})
        body["paging"] = paging
    if q.summary:
        body["summary"] = p.summary
    return body


def _link(url: str, params: dict[str, Any]) -> str:
    return f"{url}?{urlencode(params)}"
