"""What the sans-I/O core asks the transport to send: built by :mod:`cove.client.core` and the modules it
composes, sent by :mod:`cove.client.transport`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    json: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] | None = None  # instead of the device's bearer token (a provisioning channel's secret)
