"""HTTP routes of a business's blocklist on the relay (its gateway serves them as Meta's Block Users API).

Only a business calls them, for itself, with its device's token; users are named by the business's own ids for
them, so an account id never comes in or goes out.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel, Field

from cove.accounts.auth import current_device
from cove.accounts.storage import DeviceRecord
from cove.business import blocks, blocks_storage
from cove.business.keys import BSUID
from cove.context import Relay, get_relay
from cove.errors import ApiError, error_responses

router = APIRouter(tags=["business"])

UserId = Annotated[str, Field(pattern=BSUID, description="The business's id for the user")]


class BlockBody(BaseModel):
    user_ids: list[UserId] = Field(min_length=1, max_length=blocks.MAX_PER_REQUEST)


class FailedUser(BaseModel):
    user_id: str
    cloud_api: dict[str, Any] = Field(description="The Cloud API error, as an entry of a webhook's errors[]")


class BlockResult(BaseModel):
    added: list[str] = Field(description="Blocked now, or already")
    failed: list[FailedUser] = Field(description="131047: not a user who wrote in the last 24 h; 139101: list full")


class UnblockResult(BaseModel):
    removed: list[str]


class BlockList(BaseModel):
    user_ids: list[str]
    before: str | None = Field(description="Pass as ?before= for the page before this one")
    after: str | None = Field(description="Pass as ?after= for the page after this one")


def _business(device: DeviceRecord) -> str:
    if not device.business:
        raise ApiError(403, "not_a_business", "create the business profile first (PUT /v1/business/profile)")
    return device.account_id


@router.post(
    "/v1/business/blocks",
    response_model=BlockResult,
    responses=error_responses(400, 401, 403),
    summary="Block users who wrote to my business in the last 24 hours (at most 1,000 per request)",
    description="Each user is blocked or failed on its own. A blocked user's messages to the business are "
    "withheld (the user is answered as if they were queued) and the business's sends to them fail with 131026, "
    "until unblocked. The blocklist holds at most 64,000 users.",
)
async def block(
    body: BlockBody, device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> dict[str, Any]:
    outcomes = await blocks_storage.block(relay.engine, _business(device), body.user_ids)
    return {
        "added": [o.user_id for o in outcomes if o.added],
        "failed": [
            {"user_id": o.user_id, "cloud_api": o.error.to_webhook_error()} for o in outcomes if o.error is not None
        ],
    }


@router.delete(
    "/v1/business/blocks",
    response_model=UnblockResult,
    responses=error_responses(400, 401, 403),
    summary="Unblock users (at most 1,000 per request)",
    description="Answers every id that is one of the business's users as removed, whether it was blocked or not.",
)
async def unblock(
    body: BlockBody = Body(...), device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> dict[str, Any]:
    return {"removed": await blocks_storage.unblock(relay.engine, _business(device), body.user_ids)}


@router.get(
    "/v1/business/blocks",
    response_model=BlockList,
    responses=error_responses(400, 401, 403),
    summary="The users my business blocked, a page at a time, ordered by id",
    description="The first `limit` after `after`, or the last `limit` before `before`; with both, the first "
    "`limit` between them.",
)
async def blocked(
    limit: int = Query(100, ge=1, le=blocks_storage.LIST_PAGE_MAX),
    after: str | None = Query(None, pattern=BSUID, description="The last id of the previous page"),
    before: str | None = Query(None, pattern=BSUID, description="The first id of the page after the one wanted"),
    device: DeviceRecord = Depends(current_device),
    relay: Relay = Depends(get_relay),
) -> dict[str, Any]:
    page = await blocks_storage.listed(relay.engine, _business(device), limit, after=after, before=before)
    return {"user_ids": page.user_ids, "before": page.before, "after": page.after}
