"""The privacy center's rules, pure: what the relay says about the account turned into what a person reads, and
the one request each button makes. The routes (cove.desktop.privacy) fetch and call; this decides.

Refusing is as easy as accepting by construction: a purpose the person may choose always gets both ``on`` and
``off``, rendered by one template line as the same element with the same class, each one click.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from markdown_it import MarkdownIt

BASIS = {
    "consent": "your consent",
    "legitimate_interest": "legitimate interest",
    "contract": "contract",
    "legal_obligation": "legal obligation",
}
ROLE = {
    "processor": "processor, under contract",
    "joint_controller": "joint controller",
    "independent_controller": "independent controller",
}
# The relay's reason for a purpose's state (cove.consent.decision.Why), in words.
WHY = {
    "not_accepted": "Off: you have not accepted these terms.",
    "not_yet_effective": "Off: this policy is not in effect yet.",
    "unknown_purpose": "Off: the policy no longer has this purpose.",
    "closed_to_minors": "Off: never used for anyone under 18, whatever is chosen.",
    "contract": "On: it is needed to provide the service.",
    "legal_obligation": "On: the law requires it.",
    "legitimate_interest": "On: it rests on a legitimate interest, not on your consent.",
    "objected": "Off: you objected to it.",
    "chose_in": "On: you turned it on.",
    "chose_out": "Off: you turned it off.",
    "off_by_default": "Off: it stays off until you turn it on.",
    "window_open": "Off for now: the policy turns it on when your time to choose ends.",
    "on_by_default": "On: the policy starts it on and you have not turned it off.",
}
AGE_BRACKETS = {"adult": "18 or older", "minor": "Under 18"}
# Safe for text an operator wrote: raw HTML in it is shown as text, and javascript: links are dropped.
_MARKDOWN = MarkdownIt("commonmark", {"html": False})


class Action(StrEnum):
    ON = "on"
    OFF = "off"
    OBJECT = "object"


LABELS = {Action.ON: "Turn on", Action.OFF: "Turn off", Action.OBJECT: "Object"}
DONE = {Action.ON: "turned on", Action.OFF: "turned off", Action.OBJECT: "objection recorded"}


class NotOffered(Exception):
    """A button the page did not offer for that purpose (an old page, or a hand-made request)."""


@dataclass(frozen=True)
class Call:
    """One SDK call: ``CoveClient.<method>(purpose_id, *args)``."""

    method: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class PurposeView:
    id: str
    title: str
    description: str
    basis: str
    recipients: str
    active: bool
    why: str
    chosen: str | None  # "on since …" / "off since …" / "objected on …"
    deadline: str | None
    actions: tuple[Action, ...]
    pressed: Action | None
    note: str | None  # why there is no button, when there is none


def when(ms: int | None) -> str:
    """A time as the person reads it, in this machine's zone (the app runs on their machine)."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000).astimezone().strftime("%Y-%m-%d %H:%M %Z")


def markdown(text: str, top: int) -> str:
    """HTML of an operator's Markdown whose headings start at level ``top``, under the page's own."""
    tokens = _MARKDOWN.parse(text)
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(int(token.tag[1]) + top - 1, 6)}"
    return _MARKDOWN.renderer.render(tokens, _MARKDOWN.options, {})


def basis_of(value: str | None) -> str:
    return BASIS.get(value or "", "not stated")


def _actions(p: dict[str, Any]) -> tuple[tuple[Action, ...], str | None]:
    basis = p["legal_basis"]
    if basis == "legitimate_interest":
        if p["objected_at"]:
            return (), None  # the page says when, under "your choice"
        if not p["objectable"]:
            return (), "Declared strictly necessary: it has no objection switch. You can still object by writing to us."
        offered: tuple[Action, ...] = (Action.OBJECT,)
    elif basis in ("consent", None):
        if p["why"] == "closed_to_minors":
            return (), "Closed to anyone under 18: it stays off whatever is chosen."
        offered = (Action.ON, Action.OFF)
    else:
        return (), f"It rests on {basis_of(basis)}: there is nothing to choose."
    if not p["can_change"]:
        closed = f" on {when(p['deadline'])}" if p["deadline"] else ""
        return (), f"The time to change this choice ended{closed}."
    return offered, None


def _chosen(p: dict[str, Any]) -> str | None:
    if p["objected_at"]:
        return f"You objected on {when(p['objected_at'])}."
    if p["your_choice"] is None:
        return None
    state = "on" if p["your_choice"] == "in" else "off"
    how = {"withdraw": "you withdrew your consent", "opt_in": "you turned it on", "opt_out": "you turned it off"}
    return f"Your choice: {state} since {when(p['chosen_at'])} ({how.get(p['method'] or '', 'your choice')})."


def purposes(view: dict[str, Any]) -> list[PurposeView]:
    """Each purpose of the policy in force, from ``GET /v1/me/privacy``."""
    shown = []
    for p in view["purposes"]:
        actions, note = _actions(p)
        pressed = {"in": Action.ON, "out": Action.OFF}.get(p["your_choice"] or "") if actions else None
        shown.append(
            PurposeView(
                id=p["id"],
                title=p["title"],
                description=p.get("description") or "",
                basis=basis_of(p["legal_basis"]),
                recipients=", ".join(p["recipients"]),
                active=bool(p["active"]),
                why=WHY.get(p.get("why") or "", "On." if p["active"] else "Off."),
                chosen=_chosen(p),
                deadline=when(p["deadline"]) if p["deadline"] else None,
                actions=actions,
                pressed=pressed,
                note=note,
            )
        )
    return shown


def saved(p: PurposeView) -> str:
    """The confirmation of a change, as the relay now sees the purpose."""
    return f"Saved. {p.title}: {p.why}"


def call_for(view: dict[str, Any], purpose_id: str, action: Action) -> Call:
    """The SDK call a button makes. Turning off what you turned on withdraws consent (the ledger says so, and the
    gateway revokes what it shared); turning off an undecided purpose refuses it."""
    purpose = next((p for p in view["purposes"] if p["id"] == purpose_id), None)
    if purpose is None or action not in _actions(purpose)[0]:
        raise NotOffered(f"{purpose_id!r} offers no {action.value!r} now: reload the page")
    if action is Action.ON:
        return Call("choose", ("in",))
    if action is Action.OBJECT:
        return Call("object_to")
    return Call("withdraw") if purpose["your_choice"] == "in" else Call("choose", ("out",))


@dataclass(frozen=True)
class NoticePurpose:
    title: str
    description: str
    basis: str
    recipients: str
    choice: str
    retention: str
    data: str


def _notice_choice(p: dict[str, Any]) -> str:
    if not p["optional"]:
        return "No choice: " + ("it is strictly necessary." if p["legal_basis"] else "no legal basis is stated.")
    choice = "Off until you turn it on." if p["default"] == "out" else "On unless you turn it off."
    if p["window_days"]:
        choice += f" You can change it only within {p['window_days']} days of accepting."
    return choice


def notice_purposes(notice: dict[str, Any]) -> list[NoticePurpose]:
    """The second layer of a notice (``GET /v1/privacy/notice``): each purpose in full."""
    return [
        NoticePurpose(
            title=p["title"],
            description=p["description"],
            basis=basis_of(p["legal_basis"]),
            recipients=", ".join(
                f"{r['name']} ({ROLE.get(r['role'] or '', 'role not stated')})" for r in p["recipients"]
            ),
            choice=_notice_choice(p),
            retention=f"{p['retention_days']} days" if p["retention_days"] else "not stated",
            data=", ".join(p["data_categories"]),
        )
        for p in notice["purposes"]
    ]


@dataclass(frozen=True)
class Disclosure:
    recipient: str
    purpose: str
    fields: str
    batch_id: str
    kind: str
    at: str


def disclosures(view: dict[str, Any]) -> list[Disclosure]:
    """What was shared about me: every batch the account's data went out in, newest first, as the relay lists."""
    titles = {p["id"]: p["title"] for p in view["purposes"]}
    return [
        Disclosure(
            recipient=d["recipient"],
            purpose=titles.get(d["purpose"], d["purpose"]),
            fields=", ".join(d["categories"]),
            batch_id=d["batch_id"],
            kind=d["kind"],
            at=when(d["at"]),
        )
        for d in view.get("disclosures", [])
    ]


@dataclass(frozen=True)
class Revocation:
    recipient: str
    purpose: str
    reason: str
    batch_id: str
    at: str
    acknowledged: str | None  # when the recipient said it applied it; None while it has not


REASONS = {  # cove.sharing.wire.RevocationReason
    "withdrawn": "you withdrew your consent",
    "objected": "you objected",
    "erased": "your account was deleted",
    "banned": "the account was banned",
    "not_permitted": "no longer permitted (terms, age or policy)",
}


def revocations(view: dict[str, Any]) -> list[Revocation]:
    """What stopped being shared: each revocation a batch carried to its recipient, and its acknowledgement."""
    titles = {p["id"]: p["title"] for p in view["purposes"]}
    return [
        Revocation(
            recipient=r["recipient"],
            purpose=titles.get(r["purpose"], r["purpose"]),
            reason=REASONS.get(r["reason"], r["reason"].replace("_", " ")),
            batch_id=r["batch_id"],
            at=when(r["at"]),
            acknowledged=when(r["acknowledged_at"]) if r["acknowledged_at"] else None,
        )
        for r in view.get("revocations", [])
    ]


def export_file_name(at_ms: int) -> str:
    """The download's name: the account's data on that day (a date only, nothing from the caller)."""
    return f"cove-my-data-{datetime.fromtimestamp(at_ms / 1000).astimezone():%Y-%m-%d}.json"


@dataclass(frozen=True)
class Erasure:
    recipient: str
    event_id: str
    requested_at: str
    state: str
    check_url: str  # the relay answers it without a token: the id is the right to ask


STATES = {
    "requested": "requested: the next batch to this recipient carries it",
    "sent": "sent to the recipient, waiting for its confirmation",
    "acknowledged": "done: the recipient confirmed it erased your data",
}


def erasures(server: str, receipts: list[dict[str, Any]], states: dict[str, str | None]) -> list[Erasure]:
    """The deletion's receipts, with each one's state as the relay last said (None: it could not say)."""
    return [
        Erasure(
            recipient=r["recipient"],
            event_id=r["event_id"],
            requested_at=when(r["requested_at"]),
            state=STATES.get(states.get(r["event_id"]) or "", "not known yet: check it later"),
            check_url=f"{server.rstrip('/')}/v1/erasures/{r['event_id']}",
        )
        for r in receipts
    ]
