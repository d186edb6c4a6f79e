"""Who may do what in a group, and its limits. Pure: no I/O; refusals are :class:`Refusal`s the service maps.

The relay knows a group's membership and roles only: enough to route its messages and to enforce admin rights.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Role = Literal["admin", "member"]
ADMIN: Role = "admin"
MEMBER: Role = "member"

GROUP_ID = re.compile(r"[0-9a-f]{32}")
INVITE_CODE = re.compile(r"[0-9a-f]{32}")
GROUP_ID_PATTERN = f"^{GROUP_ID.pattern}$"
INVITE_CODE_PATTERN = f"^{INVITE_CODE.pattern}$"


class Refusal(Exception):
    """A rule says no: ``status`` and ``code`` are the API error the service answers with."""

    status = 400
    code = "bad_request"


class NotMember(Refusal):
    status, code = 404, "unknown_group"


class UnknownMember(Refusal):
    status, code = 404, "unknown_member"


class NotAdmin(Refusal):
    status, code = 403, "not_admin"


class GroupFull(Refusal):
    status, code = 409, "group_full"


class AlreadyMember(Refusal):
    status, code = 409, "already_member"


class LastAdmin(Refusal):
    status, code = 409, "last_admin"


class DuplicateAccount(Refusal):
    status, code = 400, "duplicate_account"


@dataclass(frozen=True, slots=True)
class Member:
    account_id: str
    role: Role
    joined_revision: int  # the revision that added it: the lower, the longer-standing


def role_of(members: list[Member], account_id: str) -> Role:
    for member in members:
        if member.account_id == account_id:
            return member.role
    # A stranger learns nothing, not even that the group exists.
    raise NotMember("no group has this id, or you are not in it")


def require_admin(members: list[Member], account_id: str) -> None:
    if role_of(members, account_id) != ADMIN:
        raise NotAdmin("only an admin of the group may do this")


def new_accounts(members: list[Member], accounts: list[str], limit: int) -> list[str]:
    """The accounts to add, checked: none twice, none a member already, and the group stays within ``limit``."""
    if len(set(accounts)) != len(accounts):
        raise DuplicateAccount("an account is listed twice")
    present = {m.account_id for m in members}
    already = [a for a in accounts if a in present]
    if already:
        raise AlreadyMember(f"already a member: {already[0]}")
    check_size(len(members) + len(accounts), limit)
    return accounts


def check_size(size: int, limit: int) -> None:
    if size > limit:
        raise GroupFull(f"a group has at most {limit} members")


def removal(members: list[Member], actor: str, target: str) -> Literal["leave", "remove"]:
    """Anyone may leave; only an admin removes someone else."""
    role_of(members, actor)
    if target == actor:
        return "leave"
    require_admin(members, actor)
    if target not in {m.account_id for m in members}:
        raise UnknownMember("that account is not a member of this group")
    return "remove"


def role_change(members: list[Member], actor: str, target: str, role: Role) -> Literal["promote", "demote"] | None:
    """An admin promotes or demotes; the group never loses its last admin this way. None: nothing changes."""
    require_admin(members, actor)
    current = next((m.role for m in members if m.account_id == target), None)
    if current is None:
        raise UnknownMember("that account is not a member of this group")
    if current == role:
        return None
    if role == MEMBER and sum(m.role == ADMIN for m in members) == 1:
        raise LastAdmin("the group's last admin cannot be demoted: promote another member first")
    return "promote" if role == ADMIN else "demote"


def successor(remaining: list[Member]) -> str | None:
    """Who becomes admin when no admin is left: the longest-standing member (ties: by account id)."""
    if not remaining or any(m.role == ADMIN for m in remaining):
        return None
    return min(remaining, key=lambda m: (m.joined_revision, m.account_id)).account_id
