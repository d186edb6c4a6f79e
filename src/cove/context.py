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
from cove.business.sending import SendBuckets
from cove.config import Settings
from cove.consent.service import PolicyBook
from cove.consent.writer import ConsentWriter
from cove.events import Hooks
from cove.messaging.hub import Hub
from cove.messaging.writer import QueueWriter
from cove.safety.connections import Occupancy
from cove.safety.ratelimit import Limit, RateLimiter


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
    discovery_limiter: RateLimiter = field(init=False)
    policies: PolicyBook = field(init=False)
    consent_writer: ConsentWriter = field(init=False)
    # Frames a device gets once its queue is drained (a due privacy notice, say); filled by capabilities.
    connect_frames: list[Callable[[Relay, DeviceRecord], Awaitable[list[dict[str, Any]]]]] = field(default_factory=list)
    key_fetch_limiter: RateLimiter = field(default_factory=lambda: RateLimiter("key fetch", Limit(100, 0.5)))
    # Called with (connection, account_id, at_ms) inside the transaction that deletes an account, before it
    # commits: a capability records what the deletion means for it (the sharing gateway, an erasure event)
    # atomically with it. A hook that raises aborts the deletion.
    account_deleted_hooks: list[Callable[[AsyncConnection, str, int], Awaitable[None]]] = field(default_factory=list)
    presence: Presence = field(init=False)
    open_sockets: Occupancy = field(init=False)  # WebSockets per account
    send_buckets: SendBuckets = field(default_factory=SendBuckets)  # business throughput and pair rate
    code_limits: CodeLimits = field(init=False)
    # Setting a PIN costs a 128 MiB hash: a few an hour per account is plenty.
    pin_change_limiter: RateLimiter = field(default_factory=lambda: RateLimiter("PIN change", Limit(5, 5 / 3600)))

    def __post_init__(self) -> None:
        self.presence = Presence(self.engine)
        self.policies = PolicyBook(self.engine, self.settings.notice_interval_seconds)
        self.consent_writer = ConsentWriter(self.engine, self.policies)
        s = self.settings
        self.code_limits = CodeLimits.from_settings(s)
        self.open_sockets = Occupancy(s.max_sockets_per_account)
        self.discovery_limiter = RateLimiter(
            "contact discovery", Limit(s.discovery_bucket_size, s.discovery_refill_per_second)
        )

    @property
    def retention_ms(self) -> int:
        return int(self.settings.message_retention_days * 86_400_000)


async def get_relay(request: Request) -> Relay:
    # async: FastAPI would run a plain function in its thread pool on every request.
    return request.app.state.relay
