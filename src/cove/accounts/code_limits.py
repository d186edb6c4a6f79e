"""Who may ask for how many verification codes: the one table of code-request limits, and its counters.

Counted per number alone, anyone could spend a victim's codes (five an hour) and lock them out of
registering. So a number's budget is kept per source address: another source cannot spend the victim's.
What that leaves, one source asking for codes to many numbers and SMS pumping (toll fraud through a block
of premium numbers, from many addresses), is stopped by the limits per source, per number range (the
number without its last ``code_range_digits`` digits) and overall. Those shared budgets can still be spent
by an attacker with many addresses, so they sit far above what one source may use, and reaching one is
logged for the operator.

A source is the client's address as uvicorn reports it (``X-Forwarded-For`` is believed only from the
addresses in the ``FORWARDED_ALLOW_IPS`` environment variable, by default the loopback), an IPv6 client's /64
network, which is what one subscriber is given. The counters live in this process's memory, like the relay's other
limiters: a restart starts them afresh.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable

from cove.config import Settings
from cove.safety.ratelimit import Quota, Window, count

log = logging.getLogger("cove.codes")

MAX_COUNTERS = 200_000
_SHARED = ("range", "overall")


def quotas(settings: Settings) -> dict[str, Quota]:
    """The table: each limit's name (also the ``limit`` of a refusal) and its quota per window."""
    window = settings.code_send_window_seconds
    return {
        "number": Quota(settings.code_max_sends, window),
        "source": Quota(settings.code_max_sends_per_source, window),
        "range": Quota(settings.code_max_sends_per_range, window),
        "overall": Quota(settings.code_max_sends_overall, window),
    }


class CodeRequestsLimited(Exception):
    code = "too_many_codes"

    def __init__(self, limit: str, quota: Quota, retry_after: int) -> None:
        whose = {
            "number": "to this number from your address",
            "source": "from your address",
            "range": "to numbers like this one",
            "overall": "by this relay",
        }[limit]
        super().__init__(f"{quota.count} codes were already sent {whose}; retry in {retry_after} s")
        self.message = str(self)
        self.limit = limit
        self.retry_after = retry_after


def source_key(host: str | None) -> str:
    """One key per IPv4 address and per IPv6 /64; anything else (a Unix socket, a test client) is one key."""
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return "unknown"
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def range_key(phone_number: str, drop_digits: int) -> str:
    return phone_number[: len(phone_number) - drop_digits] if drop_digits > 0 else phone_number


class CodeLimits:
    def __init__(
        self, quotas: dict[str, Quota], range_digits: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._quotas = quotas
        self._range_digits = range_digits
        self._clock = clock
        self._windows: dict[tuple[str, str], Window] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> CodeLimits:
        return cls(quotas(settings), settings.code_range_digits)

    def spend(self, phone_number: str, source: str) -> int:
        """Count one code to ``phone_number`` asked from ``source`` against every limit, or none if one refuses
        (raises :class:`CodeRequestsLimited` naming the one to wait longest for). Returns the codes this source
        may still ask for this number in the window."""
        now = self._clock()
        keys = {
            "number": f"{phone_number}|{source}",
            "source": source,
            "range": range_key(phone_number, self._range_digits),
            "overall": "",
        }
        counted: dict[tuple[str, str], Window] = {}
        refusals: list[tuple[float, str]] = []
        for limit, key in keys.items():
            window, wait = count(self._windows.get((limit, key)), self._quotas[limit], now)
            counted[(limit, key)] = window
            if wait > 0:
                refusals.append((wait, limit))
        if refusals:
            wait, limit = max(refusals)
            if limit in _SHARED:
                log.warning("code requests reached the %s limit (%s)", limit, keys[limit] or "all numbers")
            raise CodeRequestsLimited(limit, self._quotas[limit], int(wait) + 1)
        self._make_room(now, len(counted))
        self._windows.update(counted)
        return self._quotas["number"].count - counted[("number", keys["number"])].used

    def _make_room(self, now: float, needed: int) -> None:
        """Bound the counters: forget ended windows first, then the oldest."""
        if len(self._windows) + needed <= MAX_COUNTERS:
            return
        for (limit, key), window in list(self._windows.items()):
            if now - window.started_at >= self._quotas[limit].window_seconds:
                del self._windows[(limit, key)]
        for stale in list(self._windows)[: max(0, len(self._windows) + needed - MAX_COUNTERS)]:
            del self._windows[stale]
