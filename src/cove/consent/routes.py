"""HTTP routes of the consent capability: the notice, terms, choices, objections and transparency."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field

from cove.accounts.auth import current_device
from cove.accounts.storage import DeviceRecord
from cove.consent import notice, service
from cove.consent.acts import CHOICE, OBJECTION, WITHDRAWAL, Act
from cove.consent.decision import AgeBracket
from cove.consent.policy import Choice
from cove.context import Relay, get_relay
from cove.errors import error_responses

router = APIRouter(tags=["privacy"])


class Context(BaseModel):
    surface: str | None = Field(None, max_length=40, description="Where the user acted, e.g. 'notice', 'settings'")
    locale: str | None = Field(None, max_length=20)
    app_version: str | None = Field(None, max_length=50)


class Served(Context):
    version: str
    text_hash: str = Field(min_length=64, max_length=64)


class Acceptance(Served):
    age_bracket: Literal["adult", "minor"]


class ChoiceBody(Context):
    choice: Choice


def _context(body: Context) -> dict[str, Any]:
    return {"surface": body.surface, "locale": body.locale, "app_version": body.app_version}


@router.get(
    "/v1/privacy/notice",
    responses={204: {"description": "No notice is due"}, **error_responses(401)},
    summary="The privacy notice due for this account, layered: summary and purposes first, then the full text",
)
async def get_notice(device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)) -> Any:
    due = await service.due_notice(relay.engine, relay.policies, device.account_id)
    return notice.layered(due) if due else Response(status_code=204)


@router.post(
    "/v1/privacy/notice/served",
    status_code=204,
    responses=error_responses(400, 401, 404, 409),
    summary="Record that the notice (this version and text hash) was shown to the user",
)
async def served(
    body: Served, device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> Response:
    await service.record_served(
        relay.engine, relay.policies, device.account_id, body.version, body.text_hash, **_context(body)
    )
    return Response(status_code=204)


@router.post(
    "/v1/privacy/terms",
    status_code=204,
    responses=error_responses(400, 401, 404, 409),
    summary="Accept the terms of the notice due; records no purpose as agreed",
)
async def accept(
    body: Acceptance, device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> Response:
    await service.accept_terms(
        relay.engine,
        relay.policies,
        device.account_id,
        body.version,
        body.text_hash,
        AgeBracket(body.age_bracket),
        **_context(body),
    )
    return Response(status_code=204)


@router.put(
    "/v1/privacy/choices/{purpose_id}",
    status_code=204,
    responses=error_responses(400, 401, 404, 409),
    summary="Opt in or out of a consent purpose",
    description="Refused with 409 `choice_window_closed` (naming the deadline) when the policy limits changes to a "
    "window after acceptance; policies without a window allow changes at any time.",
)
async def choose(
    purpose_id: str, body: ChoiceBody, device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> Response:
    context = {k: v for k, v in _context(body).items() if v}
    await relay.consent_writer.submit(Act(device.account_id, purpose_id, CHOICE, body.choice, context))
    return Response(status_code=204)


@router.delete(
    "/v1/privacy/choices/{purpose_id}",
    status_code=204,
    responses=error_responses(400, 401, 404, 409),
    summary="Withdraw consent to a purpose: as easy as giving it, effective before the next export",
)
async def withdraw(
    purpose_id: str, device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> Response:
    await relay.consent_writer.submit(Act(device.account_id, purpose_id, WITHDRAWAL, context={"surface": "settings"}))
    return Response(status_code=204)


@router.post(
    "/v1/privacy/objections/{purpose_id}",
    status_code=204,
    responses=error_responses(400, 401, 404, 409),
    summary="Object to a purpose that rests on legitimate interest",
)
async def object_to(
    purpose_id: str, device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> Response:
    await relay.consent_writer.submit(Act(device.account_id, purpose_id, OBJECTION, context={"surface": "settings"}))
    return Response(status_code=204)


@router.get(
    "/v1/me/privacy",
    responses=error_responses(401),
    summary="My privacy: the policy in force, each purpose's state and why, deadlines, and what was shared",
    description="Each purpose says whether it is `active` and `why` (cove.consent.decision.Why: `chose_in`, "
    "`off_by_default`, `legitimate_interest`, `objected`, `closed_to_minors`...), the reason the same decision that "
    "selects the shared rows gives. `disclosures` lists, newest first, every batch my data went out in: recipient, "
    "purpose, the categories of data, the batch id and its time (milliseconds since the epoch).",
)
async def my_privacy(
    device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> dict[str, Any]:
    view = await service.privacy_view(relay.engine, relay.policies, device.account_id)
    async with relay.engine.connect() as conn:
        for section in relay.privacy_sections:  # what was shared: the sharing gateway's (cove.sharing.hooks)
            view.update(await section(conn, device.account_id))
    return view
