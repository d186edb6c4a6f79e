"""The client's clock: payload timestamps and the UTC day its usage counters count in."""

from __future__ import annotations

import time

from cove.protocol import usage


def now_ms() -> int:
    return int(time.time() * 1000)


def today() -> int:
    return usage.day_of(now_ms())
