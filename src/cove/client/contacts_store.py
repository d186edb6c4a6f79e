"""The address book and the message requests waiting, in the profile's store (tables ``contacts`` and
``message_requests`` of :data:`cove.client.store.SCHEMA`).

Composed into :class:`cove.client.core.ClientCore` as ``core.contacts``. :meth:`AddressBook.received` runs in every
envelope's transaction, so a request is recorded with the message that opened it and its
:class:`~cove.client.events.RequestReceived` waits in the outbox beside the message's own event. What makes a
message a request is :mod:`cove.client.message_requests`'; here is only what is stored.

A contact removed by the user stays as a ``removed`` row: the relay still counts them as accepted (only a block
withdraws that), and the row keeps :meth:`AddressBook.learned` from bringing them back from the relay's list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cove.client import message_requests
from cove.client.clock import now_ms
from cove.client.events import Event
from cove.client.request import Request

if TYPE_CHECKING:
    from cove.client.core import ClientCore

WROTE, ACCEPTED, ADDED, RELAY, REMOVED = "wrote", "accepted", "added", "relay", "removed"
ACCEPTED_PATH = "/v1/safety/accepted"


@dataclass(frozen=True)
class Contact:
    account_id: str
    phone_number: str | None  # once contact discovery confirmed it
    name: str | None
    how: str  # wrote, accepted, added, or relay (learnt from the relay on a newly linked device)
    since: int


@dataclass(frozen=True)
class MessageRequest:
    account_id: str
    phone_number: str | None
    first_at: int
    last_at: int
    messages: int


class AddressBook:
    def __init__(self, core: ClientCore) -> None:
        self.core = core
        self.store = core.store
        self._db = core.store.connection

    # reading --------------------------------------------------------------------------------------------
    def is_contact(self, account_id: str) -> bool:
        row = self._db.execute("SELECT how FROM contacts WHERE account_id = ?", (account_id,)).fetchone()
        return row is not None and row[0] != REMOVED

    def requested(self, account_id: str) -> bool:
        """Whether ``account_id``'s messages wait as a request (shown as one, no read receipt)."""
        row = self._db.execute("SELECT 1 FROM message_requests WHERE account_id = ?", (account_id,)).fetchone()
        return row is not None

    def waiting(self, event: Event) -> bool:
        """Whether ``event`` is a message of a request still waiting: show the request, not the message, and send
        no read receipt for it."""
        request = message_requests.request_of(event, self.core.account_id)
        return request is not None and self.requested(request.sender)

    def contacts(self) -> list[Contact]:
        rows = self._db.execute(
            "SELECT c.account_id, p.phone_number, c.name, c.how, c.since FROM contacts c "
            "LEFT JOIN peers p ON p.account_id = c.account_id WHERE c.how != ? ORDER BY c.since, c.account_id",
            (REMOVED,),
        )
        return [Contact(*r) for r in rows]

    def requests(self) -> list[MessageRequest]:
        rows = self._db.execute(
            "SELECT r.account_id, p.phone_number, r.first_at, r.last_at, r.messages FROM message_requests r "
            "LEFT JOIN peers p ON p.account_id = r.account_id ORDER BY r.first_at, r.account_id"
        )
        return [MessageRequest(*r) for r in rows]

    # changing -------------------------------------------------------------------------------------------
    def add(self, account_id: str, how: str, name: str | None = None) -> bool:
        """Make ``account_id`` a contact (again, if removed); a name replaces the one given before. Returns whether
        a request of theirs was waiting: its messages are now accepted and due a read receipt."""
        with self.store.transaction() as db:
            # How and since they first became a contact stay, unless the user had removed them.
            db.execute(
                "INSERT INTO contacts VALUES (?, ?, ?, ?) ON CONFLICT(account_id) DO UPDATE SET "
                "name = COALESCE(excluded.name, contacts.name), "
                "how = CASE contacts.how WHEN ? THEN excluded.how ELSE contacts.how END, "
                "since = CASE contacts.how WHEN ? THEN excluded.since ELSE contacts.since END",
                (account_id, name, how, now_ms(), REMOVED, REMOVED),
            )
            return self._drop_request(account_id)

    def remove(self, account_id: str) -> bool:
        """No longer a contact: their next message is a request here. Returns whether they were one."""
        with self.store.transaction() as db:
            was = self.is_contact(account_id)
            db.execute("UPDATE contacts SET how = ?, name = NULL WHERE account_id = ?", (REMOVED, account_id))
            return was

    def forget(self, account_id: str) -> None:
        """Blocked: neither a contact nor a request (the relay withdraws the acceptance too, and delivers nothing
        more from them)."""
        with self.store.transaction() as db:
            db.execute("DELETE FROM contacts WHERE account_id = ?", (account_id,))
            self._drop_request(account_id)

    def learned(self, accepted: list[str]) -> None:
        """Accounts the relay says this user accepts (on another device, or before this one was linked) become
        contacts, unless the user removed them here; their requests here are accepted."""
        with self.store.transaction() as db:
            for account_id in accepted:
                added = db.execute(
                    "INSERT OR IGNORE INTO contacts VALUES (?, NULL, ?, ?)", (account_id, RELAY, now_ms())
                ).rowcount
                if added:
                    self._drop_request(account_id)

    def _drop_request(self, account_id: str) -> bool:
        return self._db.execute("DELETE FROM message_requests WHERE account_id = ?", (account_id,)).rowcount > 0

    # receiving ------------------------------------------------------------------------------------------
    def received(self, events: list[Event]) -> list[Event]:
        """An envelope's events, each message of a request preceded by its :class:`RequestReceived`; in the
        envelope's transaction."""
        me = self.core.account_id
        shown: list[Event] = []
        for event in events:
            if (peer := message_requests.wrote_to(event, me)) is not None:
                self.add(peer, WROTE)
            request = message_requests.request_of(event, me)
            if request is not None and not self.is_contact(request.sender):
                self._db.execute(
                    "INSERT INTO message_requests VALUES (?, ?, ?, 1) ON CONFLICT(account_id) DO UPDATE SET "
                    "last_at = MAX(last_at, excluded.last_at), messages = messages + 1",
                    (request.sender, request.sent_at, request.sent_at),
                )
                shown.append(request)
            shown.append(event)
        return shown

    # the relay's list of accepted accounts (sans-I/O) ---------------------------------------------------
    def accepted_page(self, after: str | None = None) -> Request:
        return Request("GET", ACCEPTED_PATH, params={"after": after} if after is not None else None)

    def accepted_received(self, body: dict[str, Any]) -> str | None:
        """Learn one page; returns where the next begins (``None``: that was the last)."""
        self.learned([str(a) for a in body["accepted"]])
        return body.get("next") or None
