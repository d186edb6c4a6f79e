"""Safety verdicts as pure rules: why an account was banned, banning and lifting, and the refusal a banned
number gets. A verdict records a reason code and instants, never content."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from cove.errors import ApiError


class ReasonCode(StrEnum):
    SPAM = "spam"
    BULK_MESSAGING = "bulk_messaging"
    ABUSE = "abuse"
    FRAUD = "fraud"
    IMPERSONATION = "impersonation"
    BURST_FROM_NEW_ACCOUNT = "burst_from_new_account"
    MANY_GROUPS = "many_groups"
    REPORTED_BY_USERS = "reported_by_users"
    UNSOLICITED_FAN_OUT = "unsolicited_fan_out"


_EXPLAINED = {
    ReasonCode.SPAM: "sending spam",
    ReasonCode.BULK_MESSAGING: "bulk or automated messaging",
    ReasonCode.ABUSE: "abusing other users",
    ReasonCode.FRAUD: "fraud",
    ReasonCode.IMPERSONATION: "impersonating someone else",
    ReasonCode.BURST_FROM_NEW_ACCOUNT: "a burst of messages from a new account",
    ReasonCode.MANY_GROUPS: "creating groups or adding members in bulk",
    ReasonCode.REPORTED_BY_USERS: "being reported or blocked by many people",
    ReasonCode.UNSOLICITED_FAN_OUT: "messaging many people who did not want it",
}


@dataclass(frozen=True)
class Verdict:
    account_id: str
    reason: ReasonCode
    banned_at_ms: int
    lifted_at_ms: int | None = None

    @property
    def active(self) -> bool:
        return self.lifted_at_ms is None


def parse_reason(text: str) -> ReasonCode:
    try:
        return ReasonCode(text)
    except ValueError:
        codes = ", ".join(r.value for r in ReasonCode)
        raise ApiError(400, "unknown_reason", f"{text!r} is not a reason code (one of: {codes})") from None


def ban(previous: Verdict | None, account_id: str, reason: ReasonCode, now_ms: int) -> Verdict:
    """The account's verdict after a ban. Banning an account already banned keeps the first instant (the ban
    has run since then) and records the newer reason."""
    if previous is not None and previous.active:
        return replace(previous, reason=reason)
    return Verdict(account_id, reason, now_ms)


def lift(previous: Verdict | None, now_ms: int) -> Verdict | None:
    """The verdict after an unban; ``None`` when there is no active ban to lift."""
    if previous is None or not previous.active:
        return None
    return replace(previous, lifted_at_ms=now_ms)


def banned_error(reason: ReasonCode) -> ApiError:
    """What a banned number hears when it asks for a code or tries to register."""
    return ApiError(
        403,
        "account_banned",
        f"this phone number is banned from Cove for {_EXPLAINED[reason]}; "
        "if you think this is a mistake, contact the operator of this relay",
        reason=reason.value,
    )
