"""HTTP routes of the business capability: profiles, templates and their review, and users' controls.

Errors are the relay's ``{"error": {...}}`` shape; the Cloud-API shapes belong to the business gateway.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from cove.accounts.auth import current_device
from cove.accounts.storage import DeviceRecord
from cove.business import service
from cove.business.keys import BusinessKeys
from cove.context import Relay, get_relay
from cove.errors import ApiError, error_responses
from cove.events import AccountChanged
from cove.protocol.business import BlockReason, Category, OptInSource

router = APIRouter(tags=["business"])
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"  # template ids, as issued

Vertical = Literal[
    "OTHER", "AUTO", "BEAUTY", "APPAREL", "EDU", "ENTERTAIN", "EVENT_PLAN", "FINANCE", "GROCERY", "GOVT", "HOTEL",
    "HEALTH", "NONPROFIT", "PROF_SERVICES", "RETAIL", "TRAVEL", "RESTAURANT",
]  # fmt: skip


class Profile(BaseModel):
    """The business profile (Meta's business-profiles page: about 1-139 characters, at most two websites)."""

    display_name: str = Field(min_length=3, max_length=128)
    about: str | None = Field(None, min_length=1, max_length=139)
    description: str | None = Field(None, max_length=512)
    address: str | None = Field(None, max_length=256)
    email: str | None = Field(None, max_length=128, pattern=r"^[^@ \t\n\r]+@[^@ \t\n\r]+\.[^@ \t\n\r]+$")
    websites: list[Annotated[str, Field(max_length=256, pattern=r"^https?://")]] = Field(
        default_factory=list, max_length=2
    )
    vertical: Vertical | None = None


class ProfileView(Profile):
    business_id: str
    verified: bool = Field(description="The operator verified this business and its display name")


class OwnProfileView(ProfileView):
    quality: Literal["GREEN", "YELLOW", "RED"] = Field(description="The number's quality rating (7 days of feedback)")
    messaging_limit: int | None = Field(description="Unique users a day outside service windows; null: unlimited")
    throughput_mps: int = Field(description="Messages per second this number may send")


class TemplateView(BaseModel):
    template_id: str
    name: str
    language: str
    category: str
    status: str
    reason: str | None = Field(description="Why it was rejected")
    version: int = Field(description="0 until approved; each approval makes a new version")
    warnings: list[dict[str, str]] = Field(description="Lint warnings: they do not block approval")
    parameter_format: Literal["POSITIONAL", "NAMED"]
    components: list[dict[str, Any]] = Field(description="As created (Cloud API shapes), with their examples")
    quality: Literal["GREEN", "YELLOW", "RED"] = Field(description="The template's quality from users' feedback")
    updated_at_ms: int = Field(description="When it last changed (an edit, a review, a quality move)")


class TemplateEdit(BaseModel):
    """An edit of a template (Meta's ``POST /{template_id}``): the new components, category or parameter format."""

    model_config = ConfigDict(extra="forbid")
    components: list[dict[str, Any]] | None = Field(None, min_length=1, max_length=4)
    category: str | None = Field(None, max_length=20, description="MARKETING, UTILITY or AUTHENTICATION")
    parameter_format: str | None = Field(None, max_length=12, description="POSITIONAL or NAMED")


class TemplateKey(BaseModel):
    algorithm: Literal["Ed25519"] = "Ed25519"
    key_id: str
    public_key: str = Field(description="The raw 32-byte public key, base64")


class ApprovedView(BaseModel):
    template_id: str
    version: int
    payload: str = Field(description="The exact signed bytes (canonical JSON of the approved template), base64")
    signature: str = Field(description="Ed25519 over the payload, base64")
    key_id: str


class OptInBody(BaseModel):
    categories: list[Category] = Field(min_length=1)
    source: OptInSource


class BlockBody(BaseModel):
    reason: BlockReason


class ReportBody(BaseModel):
    reason: BlockReason = BlockReason.SPAM
    block: bool = Field(False, description="Block the business too (Report and block)")


class ConsentView(BaseModel):
    user_id: str = Field(description="My id as this business sees it")
    opt_ins: list[dict[str, Any]]
    promotions_stopped: bool
    blocked: bool
    block_reason: str | None
    sendable_categories: list[str] = Field(description="What the business may send me outside a conversation")


class BusinessEvent(BaseModel):
    seq: int = Field(description="Read on from here with ?after=")
    kind: str = Field(description="template_status, quality, tier, user_preferences, user_identity or user_id_changed")
    at: int = Field(description="When it happened, ms since the epoch")
    body: dict[str, Any]


class ResolveBody(BaseModel):
    user_ids: list[str] = Field(default_factory=list, max_length=1000, description="Per-business user ids")
    account_ids: list[str] = Field(default_factory=list, max_length=1000, description="Accounts that wrote to me")


class UserPair(BaseModel):
    user_id: str
    account_id: str
    name: str | None = Field(None, description="The name the user chose to show me (null: none)")
    wa_id: str | None = Field(None, description="The user's number, digits only, while they share it with me")


class Customer(BaseModel):
    user_id: str
    opt_ins: list[str]
    promotions_stopped: bool


def _keys(relay: Relay) -> BusinessKeys:
    return BusinessKeys.load_or_create(relay.settings.data_dir)


# The business's side -----------------------------------------------------------------------------------------


@router.put(
    "/v1/business/profile",
    response_model=ProfileView,
    responses=error_responses(400, 401),
    summary="Create or update my business profile; the account becomes a business",
    description="Changing the display name of a verified business removes the badge until the operator "
    "verifies it again.",
)
async def put_profile(
    body: Profile, device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> dict[str, Any]:
    profile = await service.put_profile(relay.engine, device.account_id, body.model_dump())
    # Its devices are cached with a "business" flag (the send path reads it): every relay process forgets them.
    await relay.hooks.emit(AccountChanged(device.account_id))
    return profile


@router.get(
    "/v1/business/profile",
    response_model=OwnProfileView,
    responses=error_responses(401, 404),
    summary="My business profile, with my quality rating, messaging limit and throughput",
)
async def own_profile(device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)) -> Any:
    return await service.own_profile(relay.engine, device.account_id)


@router.post(
    "/v1/business/templates",
    status_code=201,
    response_model=TemplateView,
    responses=error_responses(400, 401, 403, 409),
    summary="Submit a template (a Cloud API creation body) for review",
    description="400 `invalid_template` with `problems` (path, code, message) when it cannot be parsed; 400 "
    "`template_lint_errors` with `findings` when a lint error would block approval; 409 `template_exists` when "
    "the name exists in that language (edit it instead). Otherwise it is stored PENDING with its lint warnings.",
)
async def submit_template(
    body: dict[str, Any] = Body(..., examples=[{"name": "order_ready", "language": "en", "category": "UTILITY"}]),
    device: DeviceRecord = Depends(current_device),
    relay: Relay = Depends(get_relay),
) -> Any:
    return await service.submit_template(relay.engine, device.account_id, body)


@router.post(
    "/v1/business/templates/{template_id}/edit",
    response_model=TemplateView,
    responses=error_responses(400, 401, 404, 409),
    summary="Edit a template: new components (or category), back to review",
    description="The body holds `components`, and optionally `category` (not for an approved template: 400 "
    "`category_locked`) and `parameter_format`. The edit is linted like a new template and goes back to review; "
    "the next approval is a new version, and messages sent with older versions keep their text. 409 for a "
    "disabled template.",
)
async def edit_template(
    template_id: Annotated[str, Path(pattern=UUID_PATTERN)],
    edit: TemplateEdit,
    device: DeviceRecord = Depends(current_device),
    relay: Relay = Depends(get_relay),
) -> Any:
    body = edit.model_dump(exclude_none=True)
    return await service.edit_template(relay.engine, device.account_id, template_id, body)


@router.get(
    "/v1/business/templates",
    response_model=list[TemplateView],
    responses=error_responses(401),
    summary="My templates, with their review status, reason and version",
)
async def own_templates(
    device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> list[dict[str, Any]]:
    return await service.own_templates(relay.engine, device.account_id)


@router.delete(
    "/v1/business/templates/{name}",
    status_code=204,
    responses=error_responses(401, 404),
    summary="Delete a template in every language, or in one with ?language=",
)
async def delete_template(
    name: str,
    language: str | None = Query(None, max_length=16),
    device: DeviceRecord = Depends(current_device),
    relay: Relay = Depends(get_relay),
) -> Response:
    await service.delete_templates(relay.engine, device.account_id, name, language)
    return Response(status_code=204)


@router.get(
    "/v1/business/customers",
    response_model=list[Customer],
    responses=error_responses(401),
    summary="The users who opted in to my messages, by their per-business id, with categories",
)
async def customers(
    device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> list[dict[str, Any]]:
    return await service.customers(relay.engine, device.account_id)


@router.get(
    "/v1/business/events",
    response_model=list[BusinessEvent],
    responses=error_responses(401, 403),
    summary="What happened to my business outside its chats: template reviews and pauses, quality and tier "
    "moves, users stopping or resuming promotions",
    description="Oldest first, after the sequence number `after`; the business gateway turns each into a webhook.",
)
async def business_events(
    after: int = Query(0, ge=0, le=2**63 - 1),  # a sequence number is a signed 64-bit integer in the database
    limit: int = Query(100, ge=1, le=1000),
    device: DeviceRecord = Depends(current_device),
    relay: Relay = Depends(get_relay),
) -> list[dict[str, Any]]:
    if not device.business:
        raise ApiError(403, "not_a_business", "create the business profile first (PUT /v1/business/profile)")
    return await service.events(relay.engine, device.account_id, after, limit)


@router.post(
    "/v1/business/users/resolve",
    response_model=list[UserPair],
    responses=error_responses(400, 401, 404),
    summary="Pair my per-business user ids with the account ids my gateway encrypts to",
)
async def resolve_users(
    body: ResolveBody, device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> list[dict[str, Any]]:
    return await service.resolve_users(relay.engine, _keys(relay), device.account_id, body.user_ids, body.account_ids)


@router.delete(
    "/v1/business/customers/{user_id}/opt-in",
    response_model=ConsentView,
    responses=error_responses(400, 401, 404),
    summary="Record that one of my users opted out (every category, or those given with ?category=)",
    description="For a STOP the user wrote in the chat: only the business can read it. A business can withdraw "
    "an opt-in, never give one.",
)
async def withdraw_for_user(
    user_id: str,
    category: list[Category] | None = Query(None),
    device: DeviceRecord = Depends(current_device),
    relay: Relay = Depends(get_relay),
) -> dict[str, Any]:
    categories = category or list(Category)
    return await service.withdraw_for_user(relay.engine, _keys(relay), device.account_id, user_id, categories)


# Anyone's side ---------------------------------------------------------------------------------------------------


@router.get(
    "/v1/business/template-key",
    response_model=TemplateKey,
    responses=error_responses(500),
    summary="The server's public key that signs approved templates",
)
async def template_key(relay: Relay = Depends(get_relay)) -> TemplateKey:
    keys = _keys(relay)
    return TemplateKey(key_id=keys.key_id, public_key=keys.public_key_b64)


@router.get(
    "/v1/business/templates/{template_id}/approved",
    response_model=ApprovedView,
    responses=error_responses(401, 404),
    summary="An approved template as signed by the server, for the client to verify and render",
    description="404 `template_not_approved` unless it is approved (or paused: messages already sent with it "
    "must still render).",
)
async def approved_template(
    template_id: str,
    version: int | None = Query(
        None, ge=1, le=2**31 - 1, description="The version a message names [default: the current one]"
    ),
    device: DeviceRecord = Depends(current_device),
    relay: Relay = Depends(get_relay),
) -> ApprovedView:
    signed = await service.approved(relay.engine, template_id, version)
    return ApprovedView(
        template_id=signed.template_id,
        version=signed.version,
        payload=base64.b64encode(signed.payload).decode(),
        signature=signed.signature,
        key_id=_keys(relay).key_id,
    )


@router.get(
    "/v1/business/{business_id}/profile",
    response_model=ProfileView,
    responses=error_responses(401, 404),
    summary="A business's public profile, with its verified badge",
)
async def public_profile(
    business_id: str, device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> dict[str, Any]:
    return await service.public_profile(relay.engine, business_id)


# The user's controls -------------------------------------------------------------------------------------------


async def _change(relay: Relay, business_id: str, device: DeviceRecord, change: Any, **kw: Any) -> dict[str, Any]:
    return await service.change_consent(relay.engine, _keys(relay), business_id, device.account_id, change, **kw)


@router.get(
    "/v1/business/{business_id}/preferences",
    response_model=ConsentView,
    responses=error_responses(401, 404),
    summary="What I told this business: opt-ins, promotions, block; and what it may send me",
)
async def my_preferences(
    business_id: str, device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> dict[str, Any]:
    return await service.my_consent(relay.engine, _keys(relay), business_id, device.account_id)


@router.put(
    "/v1/business/{business_id}/opt-in",
    response_model=ConsentView,
    responses=error_responses(400, 401, 404),
    summary="Opt in to this business's messages of these categories, saying where I agreed",
)
async def opt_in(
    business_id: str, body: OptInBody, device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> dict[str, Any]:
    return await _change(relay, business_id, device, service.grant(body.categories, body.source))


@router.delete(
    "/v1/business/{business_id}/opt-in",
    response_model=ConsentView,
    responses=error_responses(400, 401, 404),
    summary="Withdraw my opt-in: every category, or those given with ?category=",
)
async def withdraw(
    business_id: str,
    category: list[Category] | None = Query(None),
    device: DeviceRecord = Depends(current_device),
    relay: Relay = Depends(get_relay),
) -> dict[str, Any]:
    return await _change(relay, business_id, device, service.withdraw(category or list(Category)))


@router.post(
    "/v1/business/{business_id}/stop-promotions",
    response_model=ConsentView,
    responses=error_responses(400, 401, 404),
    summary="Stop marketing messages from this business (utility and replies still come)",
)
async def stop_promotions(
    business_id: str, device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> dict[str, Any]:
    return await _change(relay, business_id, device, service.stop_promotions)


@router.post(
    "/v1/business/{business_id}/resume-promotions",
    response_model=ConsentView,
    responses=error_responses(400, 401, 404),
    summary="Resume marketing messages from this business",
)
async def resume_promotions(
    business_id: str, device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> dict[str, Any]:
    return await _change(relay, business_id, device, service.resume_promotions)


@router.post(
    "/v1/business/{business_id}/block",
    response_model=ConsentView,
    responses=error_responses(400, 401, 404),
    summary="Block this business, saying why; the reason counts in its quality rating",
)
async def block(
    business_id: str, body: BlockBody, device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> dict[str, Any]:
    feedback = [("block", body.reason)]
    return await _change(relay, business_id, device, service.block(body.reason), feedback=feedback)


@router.delete(
    "/v1/business/{business_id}/block",
    response_model=ConsentView,
    responses=error_responses(400, 401, 404),
    summary="Unblock this business",
)
async def unblock(
    business_id: str, device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> dict[str, Any]:
    return await _change(relay, business_id, device, service.unblock)


@router.post(
    "/v1/business/{business_id}/report",
    response_model=ConsentView,
    responses=error_responses(400, 401, 404),
    summary="Report this business (and block it with block=true)",
)
async def report(
    business_id: str,
    body: ReportBody,
    device: DeviceRecord = Depends(current_device),
    relay: Relay = Depends(get_relay),
) -> dict[str, Any]:
    if body.block:  # Report and block: both count in the quality rating
        feedback = [("report", body.reason), ("block", body.reason)]
        return await _change(relay, business_id, device, service.block(body.reason), feedback=feedback)
    return await _change(relay, business_id, device, lambda consent, _: consent, feedback=[("report", body.reason)])
