"""When to try a failed webhook again, and when to give up.

Meta retries a failed webhook with exponential backoff for up to 7 days (Meta's webhooks overview,
[3P] https://docs.360dialog.com/docs/messaging/webhook and
https://hookdeck.com/webhooks/platforms/guide-to-whatsapp-webhooks-features-and-best-practices). Cove does the
same, with these numbers:

- the first retry comes 5 s after the first failure, and each wait doubles: 5 s, 10 s, 20 s ... 42 min 40 s;
- no wait is longer than 1 h, so an endpoint that comes back is served within the hour (from about 1.4 h
  after the first failure on, it is one try an hour: about 177 tries in all);
- each wait is moved by up to ±20 %, so the events of one outage do not all come back in the same second;
  the jitter is a hash of the event id and attempt, not a random draw, so a schedule is reproducible;
- 7 days after the event was created the next failure dead-letters it (the last try is at the 7-day mark).
  A dead letter stays until the business replays it.

The receiver can say more than "failed" (RFC 9110 sections 10.2.3 and 15.5.11):

- a 429 or 503 with ``Retry-After`` (delay-seconds or an HTTP-date) waits at least that long, never more than
  the longest wait (1 h): a receiver cannot park its events for days with one header, and the 7-day horizon
  still holds. An unreadable value is ignored (the schedule's wait applies);
- a 410 Gone is final: the event is a dead letter at once, with nothing retried. The gateway has one webhook
  URL, so "gone" could be taken to mean the whole subscription; it dead-letters only the event because the
  next one may well be accepted (a receiver may answer 410 for one object it deleted), and one dead letter per
  refused event keeps every event visible and replayable (``cove business gateway replay``) once the business
  fixed its endpoint. Nothing is dropped and no hidden switch stops delivery.
"""

from __future__ import annotations

import email.utils
import hashlib
import math

FIRST_WAIT_MS = 5_000
MAX_WAIT_MS = 3_600_000
JITTER = 0.2  # a wait is base × [1 - JITTER, 1 + JITTER]
RETRY_FOR_MS = 7 * 24 * 3600 * 1000


def base_wait_ms(attempt: int) -> int:
    """The wait after the ``attempt``-th failure (from 1), before jitter."""
    # past the cap the doubling no longer matters; stopping there also keeps the power small
    doublings = min(attempt - 1, MAX_WAIT_MS.bit_length())
    return min(FIRST_WAIT_MS << doublings, MAX_WAIT_MS)


def jitter_factor(event_id: str, attempt: int) -> float:
    """A number in [1 - JITTER, 1 + JITTER], fixed by the event and attempt."""
    digest = hashlib.sha256(f"{event_id}:{attempt}".encode()).digest()
    unit = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    return 1 + JITTER * (2 * unit - 1)


def wait_ms(event_id: str, attempt: int) -> int:
    return round(base_wait_ms(attempt) * jitter_factor(event_id, attempt))


def next_attempt_ms(
    event_id: str, attempt: int, created_at_ms: int, now_ms: int, retry_after_ms: int | None = None
) -> int | None:
    """When to try again after the ``attempt``-th failure (from 1) at ``now_ms``; None: dead-letter it now.
    ``retry_after_ms``: the receiver asked to wait this long (honoured up to :data:`MAX_WAIT_MS`)."""
    give_up_at = created_at_ms + RETRY_FOR_MS
    if now_ms >= give_up_at:
        return None
    wait = wait_ms(event_id, attempt)
    if retry_after_ms is not None:
        wait = max(wait, min(retry_after_ms, MAX_WAIT_MS))
    return min(now_ms + wait, give_up_at)


RETRY_AFTER_STATUSES = frozenset({429, 503})  # the answers whose Retry-After says when to come back
GONE = 410  # final: the event is a dead letter at once
MAX_RETRY_AFTER_CHARS = 64  # an HTTP-date is 29; anything longer is not read


def retry_after_ms(value: str | None, now_ms: int) -> int | None:
    """A ``Retry-After`` header as a wait from ``now_ms``: delay-seconds or an HTTP-date (a date in the past is
    no wait). None when absent or unreadable."""
    if value is None or len(value) > MAX_RETRY_AFTER_CHARS:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(int(value), RETRY_FOR_MS // 1000) * 1000  # bounded before the multiplication
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a date without a zone is not one
        return None
    return max(0, math.ceil(when.timestamp() * 1000) - now_ms)
