"""Failed logins, limited per operator name and per source address, in this process's memory.

A guesser gets ``FAILURES`` wrong passwords per name in any ``PERIOD_S`` (so one operator's account cannot be
guessed through many addresses), and an address gets ``ADDRESS_FAILURES`` over every name (so one machine cannot
try a password against many names). A success clears the name's failures. The record is bounded: at most
``MAX_KEYS`` names and addresses each, the least recently failed dropped first, so a flood of made-up names
costs a fixed amount of memory (and, at worst, forgets the oldest failures early). It lives in the console's
process: a restart forgets it, and two console processes count apart.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from time import monotonic

from cove.limits.rules import cap_wait, recent

FAILURES = 5
ADDRESS_FAILURES = 20
PERIOD_S = 15 * 60
MAX_KEYS = 10_000


class _Failures:
    """Failure times per key, at most ``cap`` each (older ones cannot matter), at most ``max_keys`` keys."""

    def __init__(self, cap: int, max_keys: int) -> None:
        self.cap, self.max_keys = cap, max_keys
        self._times: OrderedDict[str, tuple[float, ...]] = OrderedDict()

    def wait(self, key: str, now: float) -> float | None:
        return cap_wait(self._times.get(key, ()), self.cap, PERIOD_S, now)

    def add(self, key: str, now: float) -> None:
        self._times[key] = (*recent(self._times.get(key, ()), PERIOD_S, now), now)[-self.cap :]
        self._times.move_to_end(key)
        while len(self._times) > self.max_keys:
            self._times.popitem(last=False)

    def clear(self, key: str) -> None:
        self._times.pop(key, None)


class LoginThrottle:
    def __init__(self, clock: Callable[[], float] = monotonic, max_keys: int = MAX_KEYS) -> None:
        self._clock = clock
        self._names = _Failures(FAILURES, max_keys)
        self._addresses = _Failures(ADDRESS_FAILURES, max_keys)

    def attempt(self, name: str, address: str) -> float | None:
        """None if a sign-in may be tried now, and it is counted as failed until :meth:`succeeded` says otherwise;
        or the seconds until one may. Counting before the password is checked (which takes a while, off the event
        loop) keeps a burst of parallel guesses to the same number as guesses one after the other."""
        now = self._clock()
        waits = [w for w in (self._names.wait(name, now), self._addresses.wait(address, now)) if w is not None]
        if waits:
            return max(waits)
        self._names.add(name, now)
        self._addresses.add(address, now)
        return None

    def succeeded(self, name: str) -> None:
        self._names.clear(name)
