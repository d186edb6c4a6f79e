"""HTTP routes of the graduated actions: an account's standing, the challenge's answer, and appeals."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from cove.accounts.auth import current_device
from cove.accounts.storage import DeviceRecord
from cove.context import Relay, get_relay
from cove.errors import ApiError, error_responses
from cove.safety import actions, appeals, challenges
from cove.safety.actions_storage import MAX_APPEAL_CHARS, Appeal

router = APIRouter(tags=["safety"])
Device = Annotated[DeviceRecord, Depends(current_device)]
RelayDep = Annotated[Relay, Depends(get_relay)]

SEED_PATTERN = r"^[a-z]{1,20}\.[0-9]{1,2}\.[0-9]{1,15}\.[0-9a-f]{16}\.[0-9a-f]{32}$"
Message = Annotated[
    str,
    Field(min_length=1, max_length=MAX_APPEAL_CHARS, description="Your own words about your case; never forwarded"),
]


class ChallengeAnswer(BaseModel):
    seed: str = Field(pattern=SEED_PATTERN, max_length=120, description="The `seed` of the 428's `challenge`")
    nonce: str = Field(pattern=r"^[0-9]{1,20}$", description="Decimal digits that solve it")


class StepView(BaseModel):
    step: str = Field(description="throttle, challenge, restrict or ban")
    reason: str = Field(description="The reason code")
    source: str = Field(description="rule, model or operator")
    since: int = Field(description="Milliseconds since the epoch")
    until: int | None = Field(description="When it ends by itself; null: when solved (challenge) or lifted")


class AppealView(BaseModel):
    id: int
    state: str = Field(description="open, granted or denied")
    filed_at: int
    decided_at: int | None


class SafetyStatus(BaseModel):
    steps: list[StepView] = Field(description="The steps in force, highest first; empty: none")
    appeal: AppealView | None = Field(description="The account's latest appeal, if any")


class CodeAppeal(BaseModel):
    phone_number: str = Field(max_length=32, examples=["+14155550123"])
    code: str = Field(pattern=r"^[0-9]{6}$", description="The code sent with `purpose: appeal`")
    message: Message


class OwnAppeal(BaseModel):
    message: Message


def _appeal_view(a: Appeal) -> AppealView:
    return AppealView(id=a.id, state=a.state, filed_at=a.created_at_ms, decided_at=a.decided_at_ms)


async def _status(relay: Relay, account_id: str) -> SafetyStatus:
    steps, appeal = await appeals.status(relay, account_id)
    views = [
        StepView(
            step=a.step.label,
            reason=a.reason.value,
            source=a.source.value,
            since=a.created_at_ms,
            until=a.expires_at_ms,
        )
        for a in steps
    ]
    return SafetyStatus(steps=views, appeal=_appeal_view(appeal) if appeal else None)


@router.get(
    "/v1/safety/status",
    response_model=SafetyStatus,
    responses=error_responses(401),
    summary="The safety steps in force on my account, why, until when, and my latest appeal",
)
async def get_status(device: Device, relay: RelayDep) -> SafetyStatus:
    return await _status(relay, device.account_id)


@router.put(
    "/v1/safety/challenge",
    response_model=SafetyStatus,
    responses=error_responses(400, 401),
    summary="Answer the proof-of-work challenge a send was refused with (428 `challenge_required`)",
    description="A right answer lifts the `challenge` step set before the seed was issued; 400 `wrong_answer` "
    "when it does not solve a challenge this relay set for this account, or it expired.",
)
async def answer_challenge(body: ChallengeAnswer, device: Device, relay: RelayDep) -> SafetyStatus:
    if not await actions.solve(relay, device.account_id, challenges.Answer(body.seed, body.nonce)):
        raise ApiError(400, "wrong_answer", "the answer does not solve a challenge set for this account, or expired")
    return await _status(relay, device.account_id)


@router.post(
    "/v1/safety/appeals",
    status_code=201,
    response_model=AppealView,
    responses=error_responses(400, 409, 429),
    summary="Appeal a ban: prove the number with a code requested with `purpose: appeal`",
    description="409 `not_banned`, `no_account` or `appeal_open` (one open appeal per account). A wrong code is "
    "counted as at registration (400 `wrong_code`, then 429 `too_many_attempts`).",
)
async def appeal_with_code(body: CodeAppeal, relay: RelayDep) -> AppealView:
    return _appeal_view(await appeals.file_with_code(relay, body.phone_number, body.code, body.message))


@router.post(
    "/v1/safety/appeals/me",
    status_code=201,
    response_model=AppealView,
    responses=error_responses(400, 401, 409),
    summary="Appeal a throttle, challenge or restriction of my account",
    description="409 `nothing_to_appeal` when no step is in force, `appeal_open` when one is waiting already.",
)
async def appeal_own(body: OwnAppeal, device: Device, relay: RelayDep) -> AppealView:
    return _appeal_view(await appeals.file_for_account(relay, device.account_id, body.message))
