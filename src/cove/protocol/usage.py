"""Usage counters per UTC day as pure rules: which days a report may name, and how a report merges.

A device counts, per UTC day, the messages it sent and received (delivered and decrypted) and how often the
app was opened, and reports those totals (``PUT /v1/me/usage``). The relay keeps one row per account and
day. Counts only ever grow: each counter keeps the largest total ever reported for the day, so a lower report
(a reinstall that lost its local counts, a report that arrives late) is ignored rather than refused, and
resending a report changes nothing.

Known gap: with several devices per account (roadmap item 6) the row holds the busiest device's totals, not
the sum over the account's devices; summing needs a row per device. Until then an account has one device.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import date, timedelta

from cove.errors import ApiError

DAY_MS = 86_400_000
MAX_COUNT = 1_000_000
MAX_DAYS_PER_REPORT = 31
PAST_DAYS = 30  # the oldest day a report may name: today - 30
FUTURE_DAYS = 1  # a device's clock may run a little ahead of the relay's

_EPOCH = date(1970, 1, 1)
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class DayCounts:
    messages_sent: int = 0
    messages_received: int = 0
    app_opens: int = 0


def day_of(moment_ms: int) -> int:
    """The UTC day (days since the Unix epoch) an instant falls on."""
    return moment_ms // DAY_MS


def parse_day(text: str) -> int:
    """``YYYY-MM-DD`` as days since the Unix epoch; raises ``invalid_usage_day``."""
    try:
        if not _ISO_DAY.fullmatch(text):
            raise ValueError(text)
        return (date.fromisoformat(text) - _EPOCH).days
    except ValueError:
        raise ApiError(400, "invalid_usage_day", f"{text!r} is not a day (use YYYY-MM-DD, UTC)") from None


def day_text(day: int) -> str:
    return (_EPOCH + timedelta(days=day)).isoformat()


def check_day(day: int, today: int) -> None:
    """A report may name the last 30 days, today, and tomorrow (clock skew); raises ``usage_day_out_of_range``."""
    if not today - PAST_DAYS <= day <= today + FUTURE_DAYS:
        raise ApiError(
            400,
            "usage_day_out_of_range",
            f"{day_text(day)} is out of range: report days from {day_text(today - PAST_DAYS)} "
            f"to {day_text(today + FUTURE_DAYS)} (UTC)",
        )


def check_counts(counts: DayCounts) -> None:
    for f in fields(counts):
        value = getattr(counts, f.name)
        if not 0 <= value <= MAX_COUNT:
            raise ApiError(400, "invalid_request", f"{f.name} must be between 0 and {MAX_COUNT}")


def validate(report: list[tuple[str, DayCounts]], now_ms: int) -> dict[int, DayCounts]:
    """Check a whole report before anything is stored: the days it names, each once, and its counts."""
    if len(report) > MAX_DAYS_PER_REPORT:
        raise ApiError(400, "invalid_request", f"report at most {MAX_DAYS_PER_REPORT} days at once")
    today = day_of(now_ms)
    days: dict[int, DayCounts] = {}
    for text, counts in report:
        day = parse_day(text)
        check_day(day, today)
        check_counts(counts)
        if day in days:
            raise ApiError(400, "duplicate_usage_day", f"{text} is reported twice")
        days[day] = counts
    return days


def merge(stored: DayCounts | None, reported: DayCounts) -> DayCounts | None:
    """What the day's row becomes: each counter's larger value; ``None`` when the report grows nothing."""
    if stored is None:
        return reported
    merged = DayCounts(*(max(getattr(stored, f.name), getattr(reported, f.name)) for f in fields(DayCounts)))
    return None if merged == stored else merged
