"""HTTP routes of a user's identity towards one business: the name it shows, and sharing the number (Meta's
request-phone-number flow, answered by the user). Each is the user's own switch, for the calling account only.

Included after :mod:`cove.business.routes`, whose fixed paths (``/v1/business/templates/{name}``) come first.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from cove.accounts.auth import current_device
from cove.accounts.storage import DeviceRecord
from cove.business import identity, identity_service
from cove.business.keys import BusinessKeys
from cove.context import Relay, get_relay
from cove.errors import ApiError, error_responses

router = APIRouter(tags=["business"])

ACCOUNT_ID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"  # as the relay issues them
BusinessId = Path(pattern=ACCOUNT_ID, description="The business's account id")


class IdentityView(BaseModel):
    user_id: str | None = Field(description="My id as this business sees it (null: we never met)")
    name: str | None = Field(description="The name this business sees in my messages' webhooks (null: none)")
    wa_id: str | None = Field(description="My number as this business sees it, while I share it (null: hidden)")


class NameBody(BaseModel):
    # "Printable" is Unicode's judgement (categories, unassigned code points), which no JSON Schema pattern can
    # state: a name of none is refused 400 `invalid_name` by the route, the length by the schema.
    name: str = Field(min_length=1, max_length=identity.NAME_MAX, description="One line of printable text")


def _keys(relay: Relay) -> BusinessKeys:
    return BusinessKeys.load_or_create(relay.settings.data_dir)


@router.get(
    "/v1/business/{business_id}/identity",
    response_model=IdentityView,
    responses=error_responses(401, 404),
    summary="What this business sees of me: my id, the name I show it, my number if I share it",
)
async def my_identity(
    business_id: str = BusinessId, device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> dict[str, Any]:
    await identity_service.business_exists(relay.engine, business_id)
    return await identity_service.my_identity(relay.engine, business_id, device.account_id)


@router.put(
    "/v1/business/{business_id}/name",
    response_model=IdentityView,
    responses=error_responses(400, 401, 404, 422),
    summary="Show this business a name of my choosing (its webhooks' profile.name)",
    description="One line, at most 64 characters; runs of spaces become one. Each business sees only the name I "
    "set for it. 400 `invalid_name` when no printable character is left.",
)
async def set_name(
    body: NameBody,
    business_id: str = BusinessId,
    device: DeviceRecord = Depends(current_device),
    relay: Relay = Depends(get_relay),
) -> dict[str, Any]:
    try:
        name = identity.shown_name(body.name)
    except ValueError as refused:
        raise ApiError(400, "invalid_name", str(refused)) from refused
    return await identity_service.set_identity(relay.engine, _keys(relay), business_id, device.account_id, name=name)


@router.delete(
    "/v1/business/{business_id}/name",
    response_model=IdentityView,
    responses=error_responses(400, 401, 404),
    summary="Show this business no name",
)
async def forget_name(
    business_id: str = BusinessId, device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> dict[str, Any]:
    return await identity_service.set_identity(
        relay.engine, _keys(relay), business_id, device.account_id, forget_name=True
    )


@router.put(
    "/v1/business/{business_id}/number-sharing",
    response_model=IdentityView,
    responses=error_responses(400, 401, 404),
    summary="Share my phone number with this business (my answer to its request for it)",
    description="Until I share it, the business knows me only by my per-business id. It gets my number in a "
    "`contacts` webhook and then in every webhook about me, until I stop sharing it.",
)
async def share_number(
    business_id: str = BusinessId, device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> dict[str, Any]:
    return await identity_service.set_identity(
        relay.engine, _keys(relay), business_id, device.account_id, share_number=True
    )


@router.delete(
    "/v1/business/{business_id}/number-sharing",
    response_model=IdentityView,
    responses=error_responses(400, 401, 404),
    summary="Stop sharing my phone number with this business",
    description="Its webhooks carry my per-business id only from then on; what it already stored, it keeps.",
)
async def stop_sharing_number(
    business_id: str = BusinessId, device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> dict[str, Any]:
    return await identity_service.set_identity(
        relay.engine, _keys(relay), business_id, device.account_id, share_number=False
    )
