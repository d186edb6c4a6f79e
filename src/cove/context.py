"""The relay's long-lived parts, built once per process and reached from routes via ``request.app.state``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cove.accounts.code_limits import CodeLimits
from cove.accounts.directory import DeviceDirectory
from cove.accounts.presence import Presence
from cove.accounts.senders import CodeSender
from cove.accounts.storage import DeviceRecord
from cove.config import Settings
from cove.consent.service import PolicyBook
from cove.consent.writer import ConsentWriter
from cove.events import Hooks
from cove.messaging.hub import Hub
from cove.messaging.writer import QueueWriter
from cove.safety.connections import Occupancy
from cove.safety.limiters import Limits


@dataclass
class Relay:
    settings: Settings
    engine: AsyncEngine
    hub: Hub
    writer: QueueWriter
    directory: DeviceDirectory
    code_sender: CodeSender
    code_secret: bytes
    hooks: Hooks
    policies: PolicyBook = field(init=False)
    consent_writer: ConsentWriter = field(init=False)
    # Frames a device gets once its queue is drained (a due privacy notice, say); filled by capabilities.
    connect_frames: list[Callable[[Relay, DeviceRecord], Awaitable[list[dict[str, Any]]]]] = field(default_factory=list)
    # Called with (connection, account_id, at_ms) inside the transaction that deletes an account, before it
    # commits: a capability records what the deletion means for it (the sharing gateway, an erasure event)
    # atomically with it. A hook that raises aborts the deletion.
    account_deleted_hooks: list[Callable[[AsyncConnection, str, int], Awaitable[None]]] = field(default_factory=list)
    presence: Presence = field(init=False)
    open_sockets: Occupancy = field(init=False)  # WebSockets per account
    limits: Limits = field(init=False)  # every rate limit (cove.safety.limits), in Redis for a fleet
    code_limits: CodeLimits = field(init=False)

    def __post_init__(self) -> None:
        self.presence = Presence(self.engine)
        self.policies = PolicyBook(self.engine, self.settings.notice_interval_seconds)
        self.consent_writer = ConsentWriter(self.engine, self.policies)
        s = self.settings
        self.limits = Limits.from_settings(s)
        self.code_limits = CodeLimits(self.limits, s.code_range_digits)
        self.open_sockets = Occupancy(s.max_sockets_per_account)

    @property
    def retention_ms(self) -> int:
        return int(self.settings.message_retention_days * 86_400_000)


async def get_relay(request: Request) -> Relay:
    # async: FastAPI would run a plain function in its thread pool on every request.
    return request.app.state.relay
