"""HTTP routes of users' defences: blocks, message requests accepted, reports (see cove.safety.defences)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Response
from pydantic import BaseModel, Field

from cove.accounts.auth import current_device
from cove.accounts.storage import DeviceRecord
from cove.context import Relay, get_relay
from cove.errors import error_responses
from cove.groups.rules import GROUP_ID_PATTERN
from cove.limits.table import DEFENCE_CHANGES_PER_HOUR, REPORT_COST
from cove.safety import defences
from cove.safety.reports import MAX_ATTACHED, MAX_REPORTED_MESSAGES, MAX_TEXT, Attached, Kind

router = APIRouter(tags=["safety"])

# As the relay issues them (uuid4): checked before an id reaches a query.
ACCOUNT_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
# PostgreSQL's text cannot hold NUL; any other character is the sender's or the reporter's to choose.
NO_NUL = r"^[^\x00]*$"

AccountPath = Annotated[str, Path(pattern=ACCOUNT_ID_PATTERN, description="An account id")]
AccountId = Annotated[str, Field(pattern=ACCOUNT_ID_PATTERN, description="An account id")]
MessageId = Annotated[str, Field(min_length=1, max_length=64, pattern=NO_NUL, description="A client message id")]
Device = Annotated[DeviceRecord, Depends(current_device)]
RelayDep = Annotated[Relay, Depends(get_relay)]


class BlockedAccount(BaseModel):
    account_id: str
    since: int = Field(description="When it was blocked (ms since the epoch)")


class BlockedList(BaseModel):
    blocked: list[BlockedAccount]


class AcceptedPage(BaseModel):
    accepted: list[str] = Field(description="Accounts this one accepts, in order of id")
    next: str | None = Field(description="Ask again with ?after= this for the next page; null: this was the last")


class AttachedMessage(BaseModel):
    """A message of the reported chat, decrypted by the reporter's client and attached with the user's consent."""

    sender: AccountId
    client_message_id: MessageId
    sent_at: int = Field(ge=0, le=2**53, description="When it was sent (ms since the epoch), as the client saw")
    text: str = Field(max_length=MAX_TEXT, pattern=NO_NUL)


_ATTACHED = "Messages of this chat the reporter's client decrypted and the user chose to attach"


class PersonReport(BaseModel):
    kind: Literal["person"]
    account_id: AccountId
    group_id: None = None
    client_message_ids: list[MessageId] = Field(default_factory=list, max_length=0)
    messages: list[AttachedMessage] = Field(default_factory=list, max_length=MAX_ATTACHED, description=_ATTACHED)
    block: bool = Field(False, description="Block the account in the same step")
    leave: Literal[False] = False


class MessageReport(PersonReport):
    """One or more messages of a one-to-one chat with the account reported."""

    kind: Literal["message"]  # type: ignore[assignment]
    client_message_ids: list[MessageId] = Field(min_length=1, max_length=MAX_REPORTED_MESSAGES)


class GroupReport(BaseModel):
    """A group, and in it the member reported (``account_id``) and their messages, if any."""

    kind: Literal["group"]
    group_id: str = Field(pattern=GROUP_ID_PATTERN)
    account_id: AccountId | None = None
    client_message_ids: list[MessageId] = Field(default_factory=list, max_length=MAX_REPORTED_MESSAGES)
    messages: list[AttachedMessage] = Field(default_factory=list, max_length=MAX_ATTACHED, description=_ATTACHED)
    block: bool = Field(False, description="Block the member reported (``account_id``) in the same step")
    leave: bool = Field(False, description="Leave the group in the same step")


ReportBody = Annotated[PersonReport | MessageReport | GroupReport, Body(discriminator="kind")]


class ReportResult(BaseModel):
    report_id: str
    attached: int = Field(description="How many messages the report carries")
    blocked: bool = Field(description="The account reported is blocked now")
    left_group: bool = Field(description="The reporter left the group")


def _draft(body: PersonReport | MessageReport | GroupReport) -> defences.Draft:
    return defences.Draft(
        kind=Kind(body.kind),
        subject=body.account_id,
        group_id=body.group_id,
        message_ids=tuple(body.client_message_ids),
        attached=tuple(Attached(m.sender, m.client_message_id, m.sent_at, m.text) for m in body.messages),
        block=body.block,
        leave=body.leave,
    )


@router.put(
    "/v1/safety/blocks/{account_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(400, 401, 404, 409, 429),
    summary="Block an account",
    description="Its messages to you are accepted from it and never delivered; it is not told (a business is "
    "told what the Cloud API tells one a user blocked: 131026, which does not say why). It cannot add "
    "you to a group (403 `cannot_add`, which does not say why). Blocking drops your acceptance of it (a new "
    "message from it is a request again). Idempotent. 400 `cannot_block_self`, 404 `unknown_account`, 409 "
    "`too_many_blocks` (COVE_SAFETY_MAX_BLOCKS).",
)
async def block(account_id: AccountPath, device: Device, relay: RelayDep) -> Response:
    await defences.block(relay, device, account_id)
    return Response(status_code=204)


@router.delete(
    "/v1/safety/blocks/{account_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(400, 401, 404, 429),
    summary="Unblock an account",
    description="Its next messages are delivered (as requests, until you accept it). 404 `not_blocked`.",
)
async def unblock(account_id: AccountPath, device: Device, relay: RelayDep) -> Response:
    await defences.unblock(relay, device, account_id)
    return Response(status_code=204)


@router.get(
    "/v1/safety/blocks",
    response_model=BlockedList,
    responses=error_responses(401),
    summary="The accounts you block, oldest block first",
)
async def blocks(device: Device, relay: RelayDep) -> BlockedList:
    found = await defences.blocked(relay, device)
    return BlockedList(blocked=[BlockedAccount(account_id=b.account_id, since=b.since_ms) for b in found])


@router.put(
    "/v1/safety/requests/{account_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(400, 401, 404, 429),
    summary="Accept an account's message requests",
    description="Your read receipts reach it from now on, as they do once you write to it. Idempotent. 400 "
    "`cannot_accept_self`, 404 `unknown_account`.",
)
async def accept(account_id: AccountPath, device: Device, relay: RelayDep) -> Response:
    await defences.accept(relay, device, account_id)
    return Response(status_code=204)


@router.get(
    "/v1/safety/accepted",
    response_model=AcceptedPage,
    responses=error_responses(400, 401),
    summary="The accounts you accept (wrote to, or accepted the requests of), a page at a time",
    description=f"At most {defences.ACCEPTED_PAGE} a page, in order of id, after `after`: a new device of yours "
    "learns which chats are not requests.",
)
async def accepted(
    device: Device,
    relay: RelayDep,
    after: str | None = Query(None, pattern=ACCOUNT_ID_PATTERN, description="The `next` of the previous page"),
) -> AcceptedPage:
    page, following = await defences.accepted(relay, device, after)
    return AcceptedPage(accepted=page, next=following)


@router.post(
    "/v1/safety/reports",
    status_code=201,
    response_model=ReportResult,
    responses=error_responses(400, 401, 404, 409, 429),
    summary="Report a person, a message or a group; block or leave in the same step",
    description="Attached messages must come from the chat reported (400 `foreign_message`): the person reported "
    "or you, or the group's members. 400 `cannot_report_self`, 404 `unknown_account`, 404 `unknown_group` (not "
    f"a member), 429 after {DEFENCE_CHANGES_PER_HOUR // REPORT_COST} reports in an hour (fewer when blocks and "
    f"acceptances spent the same budget: {DEFENCE_CHANGES_PER_HOUR} changes an hour, a report counting {REPORT_COST}).",
)
async def report(body: ReportBody, device: Device, relay: RelayDep) -> ReportResult:
    made = await defences.report(relay, device, _draft(body))
    return ReportResult(
        report_id=made.report_id, attached=len(made.attached), blocked=made.blocked, left_group=made.left_group
    )
