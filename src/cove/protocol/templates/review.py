"""Review: the status machine of a template, and what a send of a template in each status gets.

PENDING → APPROVED or REJECTED(reason); APPROVED ⇄ PAUSED; an edit goes back to PENDING; anything → DISABLED,
which is final. The quality module (:mod:`cove.business.quality`) decides when a template is paused (3 h, then
6 h) or disabled; this module only says which moves are legal (:func:`transition`). A send of a template that is
not APPROVED is refused with the code in :data:`REFUSAL_CODES`.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from cove.protocol.templates.components import _Strict


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
