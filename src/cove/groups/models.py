"""Request and response bodies of the groups API."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from cove.groups.rules import GROUP_ID_PATTERN, INVITE_CODE_PATTERN
from cove.messaging.models import ForwardHeader

# Above any group size a relay may be configured for (COVE_GROUP_MAX_MEMBERS is at most this): the body's bound.
MAX_LISTED_ACCOUNTS = 10_000

AccountId = Annotated[str, Field(min_length=1, max_length=36)]
GroupId = Annotated[str, Field(pattern=GROUP_ID_PATTERN, description="32 lowercase hex characters")]


class CreateGroup(BaseModel):
    members: list[AccountId] = Field(
        max_length=MAX_LISTED_ACCOUNTS, description="The members besides the creator (listing the creator is allowed)"
    )


class AddMembers(BaseModel):
    accounts: list[AccountId] = Field(min_length=1, max_length=MAX_LISTED_ACCOUNTS)


class SetRole(BaseModel):
    role: Literal["admin", "member"]


class JoinGroup(BaseModel):
    code: str = Field(pattern=INVITE_CODE_PATTERN, description="The invite code an admin shared")


class Invite(BaseModel):
    code: str = Field(description="Give it to whoever should join; the relay keeps only its hash")


class MemberView(BaseModel):
    account_id: str
    role: Literal["admin", "member"]
    devices: list[int] = Field(description="The member's current devices: those the relay fans group messages out to")


class GroupView(BaseModel):
    group_id: str
    revision: int = Field(description="Bumped by every membership change")
    members: list[MemberView]


class GroupSummary(BaseModel):
    group_id: str
    revision: int
    role: Literal["admin", "member"]
    size: int


class GroupList(BaseModel):
    groups: list[GroupSummary]


class GroupRevision(BaseModel):
    group_id: str
    revision: int = Field(description="The group's revision after the change (0: the group is gone, nobody is left)")


class GroupMessage(BaseModel):
    client_message_id: str = Field(
        min_length=1, max_length=64, description="Chosen by the sender; a repeat is accepted once"
    )
    body: str = Field(
        description="Base64 Megolm ciphertext, padded; stored once and fanned out to every member device",
        json_schema_extra={"pattern": r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"},
    )
    forward: ForwardHeader | None = Field(
        None, description="A forwarded message: the group is one chat of the forward action (as for 1:1 sends)"
    )
