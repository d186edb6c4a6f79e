"""Events between capabilities, and the one registry through which they travel.

A capability that changes something others care about (an account deleted, devices logged out, a ban, a
policy published) emits an event; the capabilities that care registered a handler for it at start-up. Neither
imports the other: both import this module, which imports no capability.

Two moments:

- ``in_transaction``: handlers run inside the transaction that makes the change, before it commits, and a
  handler that raises aborts it (an account's deletion removes every capability's rows, or none).
- ``emit``: after the change committed. Handlers run in this process, and, when the relay runs as a fleet,
  the event is forwarded to every other process (``cove.fleet``), whose handlers run as well. Handlers must
  therefore be idempotent: a process may see one event twice (from the bus and from the catch-up read).

Events are small frozen dataclasses of plain values, so they cross processes as JSON unchanged.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

log = logging.getLogger("cove.events")


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str]

    def payload(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class AccountDeleted(Event):
    """The account and everything about it are gone (``at_ms``: when); its sockets must close."""

    kind: ClassVar[str] = "account_deleted"
    account_id: str
    at_ms: int


@dataclass(frozen=True)
class DevicesLoggedOut(Event):
    """These devices' tokens no longer work (re-registration, unlink, ban); ``device_ids`` empty means all.
    ``at_ms``: when they stopped working; a socket a device opened later (a new phone given the same device id)
    is not closed by it, however late the event arrives."""

    kind: ClassVar[str] = "devices_logged_out"
    account_id: str
    device_ids: tuple[int, ...]
    reason: str
    at_ms: int


@dataclass(frozen=True)
class AccountChanged(Event):
    """What is cached about the account (its devices, tokens, whether it is a business) changed."""

    kind: ClassVar[str] = "account_changed"
    account_id: str


@dataclass(frozen=True)
class PolicyPublished(Event):
    kind: ClassVar[str] = "policy_published"
    version: str


@dataclass(frozen=True)
class IdentityChanged(Event):
    """The number was registered on a new phone (in its transaction only): a new identity, whose old devices
    and their keys are gone."""

    kind: ClassVar[str] = "identity_changed"
    account_id: str


@dataclass(frozen=True)
class DeviceRemoved(Event):
    """A companion device is being unlinked (in its transaction only): its keys and queue go with it. Its sockets
    close through the DevicesLoggedOut emitted after the commit."""

    kind: ClassVar[str] = "device_removed"
    account_id: str
    device_id: int


@dataclass(frozen=True)
class NumberClaimed(Event):
    """A number is about to get a verification code or an account (in its transaction only, never emitted): a
    handler that raises refuses it (a banned number)."""

    kind: ClassVar[str] = "number_claimed"
    phone_number: str
    purpose: str = "register"  # or "appeal": a banned number may get a code to appeal with, never to register


@dataclass(frozen=True)
class NumberChanged(Event):
    """The account moved to a new, verified number (in its transaction only, never emitted): capabilities that
    derive something from the number redo it there (a business's per-business user ids, cove.business.hooks)."""

    kind: ClassVar[str] = "number_changed"
    account_id: str
    previous_phone_number: str
    phone_number: str


@dataclass(frozen=True)
class SafetyActionChanged(Event):
    """A safety action on the account was taken, lifted or solved: every process reloads its steps in force."""

    kind: ClassVar[str] = "safety_action_changed"
    account_id: str


@dataclass(frozen=True)
class AccountJudged(Event):
    """An operator decided a review or an appeal: the account was ``abusive`` or not (the detector learns)."""

    kind: ClassVar[str] = "account_judged"
    account_id: str
    abusive: bool
    at_ms: int


@dataclass(frozen=True)
class ContactsChanged(Event):
    """What ``owner`` is to ``peer`` changed: a block, an unblock, or a message request accepted
    (cove.safety.defences); every process forgets what it cached about the pair."""

    kind: ClassVar[str] = "contacts_changed"
    owner: str
    peer: str


# The kinds that are emitted, and so may cross processes. IdentityChanged, DeviceRemoved and NumberClaimed are met
# inside their transaction only (the logout that follows a new identity is emitted as DevicesLoggedOut).
KINDS: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        AccountDeleted,
        DevicesLoggedOut,
        AccountChanged,
        PolicyPublished,
        ContactsChanged,
        SafetyActionChanged,
        AccountJudged,
    )
}


class UnknownEvent(ValueError):
    pass


def decode(kind: str, payload: dict[str, Any]) -> Event:
    """An event from its kind and payload as another process sent it; raises UnknownEvent or TypeError."""
    cls = KINDS.get(kind)
    if cls is None:
        raise UnknownEvent(f"unknown event kind {kind!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if set(payload) != set(fields):
        raise TypeError(f"{kind} carries {sorted(fields)}, not {sorted(payload)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in payload.items()}
    return cls(**values)


E = TypeVar("E", bound=Event)
Handler = Callable[[Any], Awaitable[None] | None]
TransactionHandler = Callable[[AsyncConnection, Any], Awaitable[None]]
Forwarder = Callable[[Event], Awaitable[None]]


class Hooks:
    def __init__(self) -> None:
        self._handlers: dict[type[Event], list[Handler]] = {}
        self._in_transaction: dict[type[Event], list[TransactionHandler]] = {}
        self._forward: Forwarder | None = None

    def on(self, kind: type[E], handler: Callable[[E], Awaitable[None] | None]) -> None:
        """Run ``handler`` after an event of this kind committed, in every process."""
        self._handlers.setdefault(kind, []).append(handler)

    def on_transaction(self, kind: type[E], handler: Callable[[AsyncConnection, E], Awaitable[None]]) -> None:
        """Run ``handler`` inside the transaction that makes the change; raising aborts it."""
        self._in_transaction.setdefault(kind, []).append(handler)

    def forward_to(self, forwarder: Forwarder | None) -> None:
        """Send every emitted event to the other processes as well (set by ``cove.fleet``)."""
        self._forward = forwarder

    async def in_transaction(self, conn: AsyncConnection, event: Event) -> None:
        for handler in self._in_transaction.get(type(event), []):
            await handler(conn, event)

    async def emit(self, event: Event) -> None:
        """After the change committed: this process's handlers, then the other processes'."""
        await self.handle(event)
        if self._forward is not None:
            await self._forward(event)

    async def handle(self, event: Event) -> None:
        """Run this process's handlers only (an event another process emitted). One failing handler does not
        keep the others from running: each is logged."""
        for handler in self._handlers.get(type(event), []):
            try:
                result = handler(event)
                if result is not None:
                    await result
            except Exception:
                log.exception("handling %s failed", event.kind)
