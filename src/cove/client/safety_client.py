"""A user's own defences over a :class:`~cove.client.transport.CoveClient`: contacts, message requests, blocks, reports.

The relay's side is ``/v1/safety/...`` (blocks, acceptances, reports); the address book and the requests waiting
are this device's (:mod:`cove.client.contacts_store`). Accepting a request, adding a contact and replying all tell
the relay that this user accepts the peer, which is what lets this user's read receipts reach them. A report may
carry the last few messages of the chat, decrypted here from the local history: only with the user's consent, and
the relay's answer says how many it took.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from cove.client import paths
from cove.client.contacts_store import ACCEPTED, ADDED
from cove.client.core import ClientCore, Request
from cove.client.group_client import Groups
from cove.client.transport import CoveClient
from cove.protocol import groups as proto

# As the relay bounds a report (POST /v1/safety/reports)
MAX_ATTACHED = 5
MAX_REPORTED_IDS = 10
MAX_ATTACHED_TEXT = 4096
RECEIPTS_AFTER_ACCEPT = 1000  # the newest unread messages of an accepted request that get their read receipt
PERSON, MESSAGE, GROUP = "person", "message", "group"


@dataclass(frozen=True)
class Attached:
    """A message of the reported chat, as the user read it here."""

    sender: str
    client_message_id: str
    sent_at: int
    text: str

    @classmethod
    def of(cls, sender: str, client_message_id: str, sent_at: int, text: str) -> Attached:
        """As the report carries it: a longer text in part (the user sees that part before agreeing)."""
        return cls(sender, client_message_id, sent_at, text[:MAX_ATTACHED_TEXT])

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def chat_messages(core: ClientCore, peer: str, last: int) -> list[Attached]:
    """The last ``last`` messages of the one-to-one chat with ``peer`` kept here, oldest first."""
    me = core.account_id
    assert me is not None
    return [
        Attached.of(peer if m.direction == "in" else me, m.client_message_id, m.sent_at, m.text)
        for m in core.store.messages(peer, last)
    ]


def group_messages(core: ClientCore, group_id: str, last: int) -> list[Attached]:
    """The last ``last`` messages of the group kept here, oldest first."""
    return [
        Attached.of(m.sender, m.client_message_id, m.sent_at, m.text) for m in core.groups.db.messages(group_id, last)
    ]


class Safety:
    def __init__(self, client: CoveClient) -> None:
        self.client = client
        self.core = client.core

    # blocks ------------------------------------------------------------------------------------------
    async def block(self, account_id: str) -> None:
        """The relay delivers nothing more from them (they are not told) and this user no longer accepts them."""
        await self.client.call(Request("PUT", paths.build(paths.SAFETY_BLOCK, account_id=account_id)))
        self.core.contacts.forget(account_id)

    async def unblock(self, account_id: str) -> None:
        """Their messages are delivered again, as requests: a block withdrew the acceptance for good."""
        await self.client.call(Request("DELETE", paths.build(paths.SAFETY_BLOCK, account_id=account_id)))

    async def blocked(self) -> list[dict[str, Any]]:
        """``[{"account_id", "since"}]``: whom this user blocks."""
        return list((await self.client.call(Request("GET", "/v1/safety/blocks")))["blocked"])

    # contacts and requests ---------------------------------------------------------------------------
    async def accept(self, account_id: str, name: str | None = None, how: str = ACCEPTED) -> list[str]:
        """Accept ``account_id``'s message requests (now or before they write): they become a contact, and the
        messages of a request that waited get their read receipt. Returns those messages' ids."""
        await self.client.call(Request("PUT", paths.build(paths.SAFETY_REQUEST, account_id=account_id)))
        if not self.core.contacts.add(account_id, how, name):
            return []
        return await self.read_accepted(account_id)

    async def add_contact(self, account_id: str, name: str | None = None) -> list[str]:
        """Add a contact: accepted in advance, so that their first message is no request."""
        return await self.accept(account_id, name, ADDED)

    async def read_accepted(self, account_id: str) -> list[str]:
        """The read receipt of the messages a request held, once it is accepted (or the user replied)."""
        unread = [
            m.client_message_id
            for m in self.core.store.messages(account_id, RECEIPTS_AFTER_ACCEPT)
            if m.direction == "in" and m.status != "read"
        ]
        if unread:
            await self.client.mark_read(account_id, unread)
        return unread

    async def accepted(self) -> list[str]:
        """Every account this user accepts, as the relay knows it (a page at a time); each becomes a contact here
        unless the user removed them on this device."""
        everyone: list[str] = []
        after: str | None = None
        while True:
            body = await self.client.call(self.core.contacts.accepted_page(after))
            everyone += body["accepted"]
            if (after := self.core.contacts.accepted_received(body)) is None:
                return everyone

    # reports -----------------------------------------------------------------------------------------
    async def report(
        self,
        kind: str,
        account_id: str | None = None,
        group_id: str | None = None,
        message_ids: Sequence[str] = (),
        attached: Sequence[Attached] = (),
        block: bool = False,
        leave: bool = False,
    ) -> dict[str, Any]:
        """Report a person, messages of theirs, or a group to the relay's operator, optionally blocking the person
        or leaving the group in the same step. ``attached``: messages the user agreed to show (at most
        :data:`MAX_ATTACHED`). Returns ``{"report_id", "attached", "blocked", "left_group"}``."""
        if len(attached) > MAX_ATTACHED or len(message_ids) > MAX_REPORTED_IDS:
            raise ValueError(f"a report carries at most {MAX_ATTACHED} messages and names at most {MAX_REPORTED_IDS}")
        if group_id is not None:
            proto.valid_group_id(group_id)
        body = {
            "kind": kind,
            "account_id": account_id,
            "group_id": group_id,
            "client_message_ids": list(message_ids),
            "messages": [m.to_json() for m in attached],
            "block": block,
            "leave": leave,
        }
        answer = await self.client.call(Request("POST", "/v1/safety/reports", body))
        if answer["blocked"] and account_id is not None:
            self.core.contacts.forget(account_id)
        if answer["left_group"] and group_id is not None:
            Groups(self.client).after_removal(group_id)
        return answer
