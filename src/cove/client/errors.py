"""What the SDK raises when the relay refuses a request."""

from __future__ import annotations

from typing import Any


class RelayError(Exception):
    """The relay refused a request; ``code`` is its machine-readable error code."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        self.status = status
        self.code = error.get("code", "http_error")
        self.details = error
        super().__init__(f"{error.get('message', 'request failed')} ({self.code}, HTTP {status})")
