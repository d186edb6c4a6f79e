"""What a user does towards others, as the relay sees it: the metadata of a send or a group change, never content.

Messaging and groups describe each such act as an :class:`Outbound` and hand it to the checks other
capabilities registered on ``Relay.outbound_checks`` (safety's blocks, requests, forward limits, counters and
actions) before anything is stored. A check refuses by raising the API error, or raises :class:`Withheld` to
accept the send without delivering it. Neither side imports the other: both import this module.

Likewise accounts describes each verification-code request as a :class:`RegistrationAttempt` for the checks on
``Relay.registration_checks`` (safety's registration gate), before any code limit is spent, and hands the same
description, with the new account's id, to ``Relay.registered_hooks`` once the account is created.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Action(StrEnum):
    MESSAGE = "message"  # a one-to-one send (a read receipt too: ``receipt``)
    GROUP_MESSAGE = "group_message"
    GROUP_CREATE = "group_create"
    GROUP_ADD = "group_add"  # members added by an admin, or oneself through an invite link (``recipients`` empty)


@dataclass(frozen=True, slots=True)
class Outbound:
    action: Action
    sender: str  # account id
    device: int
    business: bool
    chat: str  # the recipient's account id, or the group's id
    recipients: tuple[str, ...]  # MESSAGE: the recipient; GROUP_CREATE / GROUP_ADD: the accounts added
    members: int  # how many accounts it reaches besides the sender
    at_ms: int
    receipt: bool = False
    forward_count: int = 0  # from the visible forward header: how many times the message was forwarded
    forward_batch: str | None = None  # the sender's id for one forward to several chats


class Withheld(Exception):
    """Accept the send, deliver nothing, and answer as if it was queued (the recipient blocked the sender, who
    must not learn it)."""


@dataclass(frozen=True, slots=True)
class DeviceSignals:
    """What a phone says about itself when it asks for a code or registers (cove.accounts.models.DeviceInfo)."""

    model: str
    os_name: str
    os_version: str
    app_version: str
    vendor_device_id: str | None = None


@dataclass(frozen=True, slots=True)
class RegistrationAttempt:
    phone_number: str  # E.164, normalised
    source: str  # cove.accounts.code_limits.source_key: an IPv4 address or an IPv6 /64
    device: DeviceSignals | None  # None: the client did not say (an old client, a script)
    at_ms: int
    challenge_seed: str | None = None  # the answer to a proof-of-work challenge, when the client sent one
    challenge_nonce: str | None = None
