"""HTTP routes of groups: membership, roles, invites, and the group send (see docs/protocol.md, "Groups")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response
from starlette.convertors import Convertor, register_url_convertor

from cove.accounts.auth import current_device
from cove.accounts.storage import DeviceRecord
from cove.context import Relay, get_relay
from cove.errors import error_responses
from cove.groups import service
from cove.groups.models import (
    AddMembers,
    CreateGroup,
    GroupList,
    GroupMessage,
    GroupRevision,
    GroupView,
    Invite,
    JoinGroup,
    SetRole,
)
from cove.groups.rules import GROUP_ID, GROUP_ID_PATTERN, INVITE_CODE_PATTERN
from cove.messaging.models import SendResult


class _HexIdConvertor(Convertor[str]):
    """Matches a group id (or invite code) only: ``/v1/groups/join`` is then no group's path, and a GET of it is
    405, not a look-up (cove.errors names the methods of a 405 by the same patterns)."""

    regex = GROUP_ID.pattern

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("hex32", _HexIdConvertor())

router = APIRouter(tags=["groups"])

GroupId = Annotated[str, Path(pattern=GROUP_ID_PATTERN, description="The group's id: 32 lowercase hex characters")]
AccountId = Annotated[str, Path(min_length=1, max_length=36, description="A member's account id")]
InviteCode = Annotated[str, Path(pattern=INVITE_CODE_PATTERN, description="An invite code of the group")]
Device = Annotated[DeviceRecord, Depends(current_device)]
RelayDep = Annotated[Relay, Depends(get_relay)]

_CHANGE = "Every current device of every member before and after the change gets a GROUP_CHANGE envelope (kind 7)."


@router.post(
    "/v1/groups",
    status_code=201,
    response_model=GroupView,
    responses=error_responses(400, 401, 403, 404, 409),
    summary="Create a group",
    description="The creator is its first admin; the accounts listed join as members. 400 `duplicate_account`, "
    "404 `unknown_account`, 409 `group_full` (over COVE_GROUP_MAX_MEMBERS, the creator included), 403 "
    "`business_not_allowed` when a business creates a group or is listed. " + _CHANGE,
)
async def create_group(body: CreateGroup, device: Device, relay: RelayDep) -> GroupView:
    return await service.create(relay, device, body.members)


@router.get(
    "/v1/groups",
    response_model=GroupList,
    responses=error_responses(401),
    summary="The groups this account is in",
    description="Each with its revision, the account's role and the number of members.",
)
async def list_groups(device: Device, relay: RelayDep) -> GroupList:
    return GroupList(groups=await service.list_groups(relay, device))


@router.get(
    "/v1/groups/{group_id:hex32}",
    response_model=GroupView,
    responses=error_responses(400, 401, 404),
    summary="A group's members, roles and the devices group messages reach",
    description="Members only: anyone else gets 404 `unknown_group`, as for a group that does not exist.",
)
async def show_group(group_id: GroupId, device: Device, relay: RelayDep) -> GroupView:
    return await service.view(relay, device, group_id)


@router.post(
    "/v1/groups/{group_id:hex32}/members",
    response_model=GroupView,
    responses=error_responses(400, 401, 403, 404, 409),
    summary="Add members (admins only)",
    description="403 `not_admin`, 409 `already_member` or `group_full`, 404 `unknown_account`, 403 "
    "`business_not_allowed`. " + _CHANGE,
)
async def add_members(group_id: GroupId, body: AddMembers, device: Device, relay: RelayDep) -> GroupView:
    return await service.add_members(relay, device, group_id, body.accounts)


@router.delete(
    "/v1/groups/{group_id:hex32}/members/{account_id}",
    response_model=GroupRevision,
    responses=error_responses(400, 401, 403, 404),
    summary="Remove a member, or leave",
    description="An admin removes anyone; anyone removes themselves (leaves). When no admin is left, the "
    "longest-standing member becomes admin (a second change, `promote`); when nobody is left, the group is "
    "deleted. " + _CHANGE,
)
async def remove_member(group_id: GroupId, account_id: AccountId, device: Device, relay: RelayDep) -> GroupRevision:
    return await service.remove_member(relay, device, group_id, account_id)


@router.put(
    "/v1/groups/{group_id:hex32}/members/{account_id}/role",
    response_model=GroupView,
    responses=error_responses(400, 401, 403, 404, 409),
    summary="Promote or demote a member (admins only)",
    description="403 `not_admin`; 409 `last_admin` for demoting the group's only admin. Setting the role a member "
    "has already changes nothing. " + _CHANGE,
)
async def set_role(
    group_id: GroupId, account_id: AccountId, body: SetRole, device: Device, relay: RelayDep
) -> GroupView:
    return await service.set_role(relay, device, group_id, account_id, body.role)


@router.post(
    "/v1/groups/{group_id:hex32}/invites",
    status_code=201,
    response_model=Invite,
    responses=error_responses(400, 401, 403, 404),
    summary="Create an invite code (admins only)",
    description="Anyone with the code can join until an admin revokes it; the relay stores only its hash.",
)
async def create_invite(group_id: GroupId, device: Device, relay: RelayDep) -> Invite:
    return Invite(code=await service.create_invite(relay, device, group_id))


@router.delete(
    "/v1/groups/{group_id:hex32}/invites/{code:hex32}",
    status_code=204,
    response_class=Response,
    responses=error_responses(400, 401, 403, 404),
    summary="Revoke an invite code (admins only)",
    description="404 `unknown_invite` when the group has no such code.",
)
async def revoke_invite(group_id: GroupId, code: InviteCode, device: Device, relay: RelayDep) -> Response:
    await service.revoke_invite(relay, device, group_id, code)
    return Response(status_code=204)


@router.post(
    "/v1/groups/join",
    response_model=GroupView,
    responses=error_responses(400, 401, 403, 404, 409),
    summary="Join a group with an invite code",
    description="404 `unknown_invite` for a revoked or wrong code, 409 `group_full`, 403 `business_not_allowed`. "
    "Joining a group one is in already changes nothing. " + _CHANGE,
)
async def join_group(body: JoinGroup, device: Device, relay: RelayDep) -> GroupView:
    return await service.join(relay, device, body.code)


@router.put(
    "/v1/groups/{group_id:hex32}/messages",
    response_model=SendResult,
    responses=error_responses(400, 401, 403, 404, 413, 429),
    summary="Send one Megolm ciphertext to the group",
    description="Members only (404 `unknown_group`); 403 `business_not_allowed` for a business. The relay stores "
    "the ciphertext once and queues it for every current device of every member but the sending one (kind 2, with "
    "`group`); a repeated client_message_id is accepted once. Delivery comes back as GROUP_RECEIPT envelopes "
    "(kind 6). A forwarded message beyond the forward limits is 429 `forward_limit` (with `limit`).",
)
async def send_group_message(group_id: GroupId, body: GroupMessage, device: Device, relay: RelayDep) -> SendResult:
    return await service.send(relay, device, group_id, body)
