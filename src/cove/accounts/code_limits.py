"""Who may ask for how many verification codes: the four limits a code request counts against, and their keys.

Counted per number alone, anyone could spend a victim's codes (five an hour) and lock them out of
registering. So a number's budget is kept per source address: another source cannot spend the victim's.
What that leaves, one source asking for codes to many numbers and SMS pumping (toll fraud through a block
of premium numbers, from many addresses), is stopped by the limits per source, per number range (the
number without its last ``code_range_digits`` digits) and overall. Those shared budgets can still be spent
by an attacker with many addresses, so they sit far above what one source may use, and reaching one is
logged for the operator.

A source is the client's address as uvicorn reports it (``X-Forwarded-For`` is believed only from the
addresses in the ``FORWARDED_ALLOW_IPS`` environment variable, by default the loopback), an IPv6 client's /64
network, which is what one subscriber is given. The counters are :class:`cove.limits.limiters.Limits`
windows: in Redis for a fleet of relays (so the fleet together sends no more than each limit), else in this
process. Their sizes are rows of :mod:`cove.limits.table`' table, where all four fail closed.
"""

from __future__ import annotations

import ipaddress
import logging

from cove.limits.limiters import Limits
from cove.limits.rules import Quota
from cove.limits.store import Use
from cove.limits.table import Limiter

log = logging.getLogger("cove.codes")

_SHARED = ("range", "overall")
_LIMITERS = (Limiter.CODE_NUMBER, Limiter.CODE_SOURCE, Limiter.CODE_RANGE, Limiter.CODE_OVERALL)


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
    def __init__(self, limits: Limits, range_digits: int) -> None:
        self._limits = limits
        self._range_digits = range_digits

    async def spend(self, phone_number: str, source: str) -> int:
        """Count one code to ``phone_number`` asked from ``source`` against every limit, or none if one refuses
        (raises :class:`CodeRequestsLimited` naming the one to wait longest for). Returns the codes this source
        may still ask for this number in the window."""
        keys = (f"{phone_number}|{source}", source, range_key(phone_number, self._range_digits), "")
        quotas = [self._quota(limiter) for limiter in _LIMITERS]
        uses = [Use((limiter, key), quota) for limiter, key, quota in zip(_LIMITERS, keys, quotas, strict=True)]
        counted = await self._limits.count(uses)
        refusals = [(c.wait, i) for i, c in enumerate(counted) if c.wait > 0]
        if refusals:
            wait, i = max(refusals)
            limit = _LIMITERS[i].value.removeprefix("code ")
            if limit in _SHARED:
                log.warning("code requests reached the %s limit (%s)", limit, keys[i] or "all numbers")
            raise CodeRequestsLimited(limit, quotas[i], int(wait) + 1)
        return quotas[0].count - counted[0].used

    def _quota(self, limiter: Limiter) -> Quota:
        quota = self._limits.rules[limiter].size
        assert isinstance(quota, Quota)
        return quota
