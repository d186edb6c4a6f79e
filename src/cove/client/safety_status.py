"""The SDK's side of the relay's safety actions: the requests (status, appeals, a challenge's answer) and the
words a person reads when a step refuses them. No I/O: :mod:`cove.client.transport` sends what this builds."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from cove.client.errors import RelayError
from cove.client.request import Request
from cove.protocol import challenge

# A sending challenge's seed starts with its purpose (cove.safety.challenges); other challenges (registration)
# are answered their own way, so the transport leaves them to their callers.
SENDING = "sending."


def sending_challenge(exc: RelayError) -> dict[str, Any] | None:
    """The challenge of a 428 that asks this account to prove work before it sends, if that is what ``exc`` is."""
    found = exc.details.get("challenge") if exc.status == 428 and exc.code == "challenge_required" else None
    if isinstance(found, dict) and str(found.get("seed", "")).startswith(SENDING):
        return found
    return None


def answer(found: dict[str, Any], progress: Callable[[int], None] | None = None) -> Request:
    """Do the work (CPU: run it off the event loop) and build the answer; raises ValueError for a bad challenge."""
    seed, bits = str(found["seed"]), int(found["bits"])
    return Request("PUT", "/v1/safety/challenge", {"seed": seed, "nonce": challenge.solve(seed, bits, progress)})


def status_request() -> Request:
    return Request("GET", "/v1/safety/status")


def appeal_code_request(phone_number: str) -> Request:
    return Request("POST", "/v1/verification/code", {"phone_number": phone_number, "purpose": "appeal"})


def appeal_request(phone_number: str, code: str, message: str) -> Request:
    return Request("POST", "/v1/safety/appeals", {"phone_number": phone_number, "code": code, "message": message})


def own_appeal_request(message: str) -> Request:
    return Request("POST", "/v1/safety/appeals/me", {"message": message})


def _when(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M") if ms is not None else ""


def refusal(exc: RelayError) -> str | None:
    """One clear line for a refusal by a safety step, or ``None`` for any other error."""
    reason = str(exc.details.get("reason", "")).replace("_", " ")
    if exc.code == "throttled":
        return f"this account is slowed down ({reason}): wait {exc.details.get('retry_after', 1)} s and send again"
    if exc.code == "account_restricted":
        until = exc.details.get("until")
        return (
            f"this account is restricted ({reason}){' until ' + _when(until) if until else ''}: it may message only "
            'people who accept it and may not create or add to groups; `cove appeal "why"` asks for a review'
        )
    if exc.code == "challenge_required":
        return "the relay asks this account to prove it is not a bulk sender, and the answer was not accepted: retry"
    return None


def describe(status: dict[str, Any]) -> list[str]:
    """``GET /v1/safety/status`` as lines for a person."""
    steps = status.get("steps", [])
    lines = [
        f"{s['step']}: {s['reason'].replace('_', ' ')} (since {_when(s['since'])}"
        + (f", until {_when(s['until'])})" if s.get("until") else ", until lifted)")
        for s in steps
    ] or ["no safety step is in force on this account"]
    appeal = status.get("appeal")
    if appeal:
        decided = f", decided {_when(appeal['decided_at'])}" if appeal.get("decided_at") else ""
        lines.append(f"appeal {appeal['id']}: {appeal['state']} (filed {_when(appeal['filed_at'])}{decided})")
    return lines
