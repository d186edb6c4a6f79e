"""An account's counters as the fixed vector of numbers the rules and the model read, named by FEATURES.

The features are those public work found to separate abusers without content (reference: WhatsApp's 2019 white
paper "Stopping Abuse", Jones at USENIX Enigma 2017, Breuer et al.'s SybilEdge 2020, Cao et al.'s Rejecto):
rates and bursts, fan-out to people who are not contacts and whether they answer, group creation and adds,
forwards, complaints from strangers weighted by the complainer's record, account age and registration
reputation. Unknown values (an account registered before this process started) are NaN, which the model treats
as missing.
"""

from __future__ import annotations

import math
import re

from cove.safety.counters import Account, Column, Peak

NAN = math.nan

FEATURES: tuple[str, ...] = (
    "age_hours",
    "business",
    "client_version",
    "number_score",
    "range_score",
    "source_score",
    "device_score",
    "challenged",
    "parent_flagged",
    "sends_15s",
    "sends_1h",
    "sends_1d",
    "burst_max_1h",
    "burst_max_1d",
    "five_minutes_max_1d",
    "deliveries_1h",
    "deliveries_1d",
    "new_recipients_1h",
    "new_recipients_1d",
    "strangers_1h",
    "strangers_1d",
    "recipients",
    "stranger_share",
    "unanswered_share",
    "groups_created_1h",
    "groups_created_1d",
    "members_added_1h",
    "members_added_1d",
    "forwards_1d",
    "forward_share",
    "blocks",
    "reports",
    "complaints_per_stranger",
    "sends",
    # Ratios of the counts above, which trees cannot form themselves (a split compares one column with a number):
    # the share of strangers per window and of new recipients per message (3.3's "share of recipients not in
    # contacts" per window), messages per recipient (a ring chatting with itself against a fan-out), and how much
    # of the day's sending fell in the last hour and in one five minutes (a take-over's run, against the
    # owner's own habit).
    "stranger_rate_1h",
    "stranger_rate_1d",
    "new_recipient_rate_1d",
    "sends_per_recipient",
    "hour_share_1d",
    "five_minutes_share_1d",
)
INDEX = {name: i for i, name in enumerate(FEATURES)}

_VERSION = re.compile(r"(\d{1,4})\.(\d{1,4})(?:\.(\d{1,4}))?")


def version_number(text: str | None) -> float:
    """``"1.12.3"`` (anywhere in the text, e.g. ``cove-cli/1.12.3``) as 1.012003; NaN when there is none."""
    match = _VERSION.search(text) if text else None
    if match is None:
        return NAN
    major, minor, patch = match.groups()
    return int(major) + int(minor) / 1e3 + int(patch or 0) / 1e6


def _known(value: float | None) -> float:
    return NAN if value is None else float(value)


def vector(account: Account, now_ms: int) -> list[float]:
    """The account's features at ``now_ms``, in the order of FEATURES."""
    hour, day = account.hour, account.day
    day.roll(now_ms)
    hour.roll(now_ms)
    account.second.roll(now_ms)
    registered = account.registered_at_ms
    recipients = len(account.peers) + account.peers_full
    strangers = account.strangers
    complaints = account.blocks_weighted + account.reports_weighted
    return [
        NAN if registered is None else max(0.0, (now_ms - registered) / 3_600_000),
        float(account.business),
        version_number(account.client_version),
        _known(account.number_score),
        _known(account.range_score),
        _known(account.source_score),
        _known(account.device_score),
        float(account.challenged),
        float(account.parent_flagged),
        account.second.totals[Column.SENDS],
        hour.totals[Column.SENDS],
        day.totals[Column.SENDS],
        hour.highest(Peak.SECONDS),
        day.highest(Peak.SECONDS),
        day.highest(Peak.MINUTES),
        hour.totals[Column.DELIVERIES],
        day.totals[Column.DELIVERIES],
        hour.totals[Column.NEW_PEERS],
        day.totals[Column.NEW_PEERS],
        hour.totals[Column.STRANGERS],
        day.totals[Column.STRANGERS],
        recipients,
        strangers / recipients if recipients else 0.0,
        (strangers - account.answered) / strangers if strangers else 0.0,
        hour.totals[Column.GROUPS],
        day.totals[Column.GROUPS],
        hour.totals[Column.ADDS],
        day.totals[Column.ADDS],
        day.totals[Column.FORWARDS],
        account.forwards / account.sends if account.sends else 0.0,
        account.blocks_weighted,
        account.reports_weighted,
        complaints / max(1, strangers),
        account.sends,
        hour.totals[Column.STRANGERS] / max(1, hour.totals[Column.SENDS]),
        day.totals[Column.STRANGERS] / max(1, day.totals[Column.SENDS]),
        day.totals[Column.NEW_PEERS] / max(1, day.totals[Column.SENDS]),
        account.sends / max(1, recipients),
        hour.totals[Column.SENDS] / max(1, day.totals[Column.SENDS]),
        day.highest(Peak.MINUTES) / max(1, day.totals[Column.SENDS]),
    ]
