"""The relay's long-lived parts, built once per process by :func:`cove.app.build_relay` and reached from
routes via ``request.app.state``.

This module sits below every capability: they all take a ``Relay``, so it imports none of them at run time.
It names their parts' types for the type checker only; the composition root builds the parts and hands them
in, and each capability registers its reactions to the others' events on ``hooks`` (cove.events).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cove.activity import Outbound, RegistrationAttempt
from cove.config import Settings
from cove.events import Hooks

if TYPE_CHECKING:
    from cove.accounts.code_limits import CodeLimits
    from cove.accounts.directory import DeviceDirectory
    from cove.accounts.presence import Presence
    from cove.accounts.senders import CodeSender
    from cove.accounts.storage import DeviceRecord
    from cove.consent.service import PolicyBook
    from cove.consent.writer import ConsentWriter
    from cove.limits.limiters import Limits
    from cove.messaging.hub import Hub
    from cove.messaging.service import SendRule
    from cove.messaging.writer import QueueWriter
    from cove.safety.connections import Occupancy
    from cove.safety.parts import Parts as SafetyParts

log = logging.getLogger("cove.context")


@dataclass
class Relay:
    settings: Settings
    engine: AsyncEngine
    hub: Hub
    writer: QueueWriter
    directory: DeviceDirectory
    code_sender: CodeSender
    code_secret: bytes
    presence: Presence
    policies: PolicyBook
    consent_writer: ConsentWriter
    open_sockets: Occupancy  # WebSockets per account
    limits: Limits  # every rate limit (cove.limits.table), in Redis for a fleet
    code_limits: CodeLimits
    hooks: Hooks = field(default_factory=Hooks)
    # Frames a device gets once its queue is drained (a due privacy notice, say); filled by capabilities.
    connect_frames: list[Callable[[Relay, DeviceRecord], Awaitable[list[dict[str, Any]]]]] = field(default_factory=list)
    # Parts of a user's privacy view (``GET /v1/me/privacy``) that other capabilities keep, as {key: value} for
    # an account: what the sharing gateway disclosed. Filled by capabilities.
    privacy_sections: list[Callable[[AsyncConnection, str], Awaitable[dict[str, Any]]]] = field(default_factory=list)
    # Parts of "download my data" (``GET /v1/me/export``, cove.accounts.export): each capability's {section: value}
    # of what it holds about an account, read in the export's one read-only snapshot. Filled by capabilities.
    export_sections: list[Callable[[AsyncConnection, str], Awaitable[dict[str, Any]]]] = field(default_factory=list)
    # What an account's deletion leaves the person as proof, {key: value} read in the deletion's transaction after
    # every AccountDeleted handler ran: the sharing gateway's erasure events. Filled by capabilities.
    deletion_receipts: list[Callable[[AsyncConnection, str], Awaitable[dict[str, Any]]]] = field(default_factory=list)
    # The rules another capability applies to every send (the business rules), set by it at start-up.
    send_rule: SendRule | None = None
    # Checks of every act towards others (a send, a group created or joined), before anything is stored
    # (cove.activity): raise the refusal, or ``Withheld``. Filled by capabilities (safety).
    outbound_checks: list[Callable[[Relay, Outbound], Awaitable[None]]] = field(default_factory=list)
    # Checks of every verification-code request before its limits are spent (cove.activity): raise the refusal
    # (a 428 challenge). Filled by capabilities (safety's registration gate).
    registration_checks: list[Callable[[Relay, RegistrationAttempt], Awaitable[None]]] = field(default_factory=list)
    # Told once an account was registered (created, or its number registered on a new phone) from an attempt:
    # ``(relay, attempt, account_id)``, after the commit. Filled by capabilities (safety records the signals).
    registered_hooks: list[Callable[[Relay, RegistrationAttempt, str], Awaitable[None]]] = field(default_factory=list)
    # What safety keeps in memory (cove.safety.parts), built by it at start-up.
    safety: SafetyParts | None = None

    async def check_outbound(self, outbound: Outbound) -> None:
        for check in self.outbound_checks:
            await check(self, outbound)

    async def check_registration(self, attempt: RegistrationAttempt) -> None:
        for check in self.registration_checks:
            await check(self, attempt)

    async def registered(self, attempt: RegistrationAttempt, account_id: str) -> None:
        """After the account committed: a hook that fails is logged, and the registration stands."""
        for hook in self.registered_hooks:
            try:
                await hook(self, attempt, account_id)
            except Exception:
                log.exception("a registration hook failed for account %s", account_id)

    @property
    def retention_ms(self) -> int:
        return int(self.settings.message_retention_days * 86_400_000)


async def get_relay(request: Request) -> Relay:
    # async: FastAPI would run a plain function in its thread pool on every request.
    return request.app.state.relay
