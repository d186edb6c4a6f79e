"""Time as the relay stores it: integer milliseconds since the Unix epoch (portable across databases)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime


def now_ms() -> int:
    # Test-only: COVE_CLOCK_OFFSET_MS shifts the relay's clock, so a test can restart a relay "a day later" (e.g. to
    # see a business's 24 h service window close). Never set it in production. Read at each call, not at import:
    # test relays are forked from a process that imported this module once (cove.testing.PreloadedCove).
    return time.time_ns() // 1_000_000 + int(os.environ.get("COVE_CLOCK_OFFSET_MS") or 0)


def to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
