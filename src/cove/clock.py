"""Time as the relay stores it: integer milliseconds since the Unix epoch (portable across databases)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

# Test-only: shifts the relay's clock by this many milliseconds, read once at start, so a test can restart a
# relay "a day later" (e.g. to see a business's 24 h service window close). Never set it in production.
CLOCK_OFFSET_MS = int(os.environ.get("COVE_CLOCK_OFFSET_MS") or 0)


def now_ms() -> int:
    return time.time_ns() // 1_000_000 + CLOCK_OFFSET_MS


def to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
