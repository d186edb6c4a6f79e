"""The detector's counters: windows that roll, features exact on a hand-made stream, bounds that hold."""

from __future__ import annotations

import math

import pytest

from cove.activity import Action, Outbound
from cove.safety import reliability
from cove.safety.counters import Counters, Window
from cove.safety.features import FEATURES, vector, version_number
from cove.safety.signals import Blocked, Judged, ParentFlagged, Registered, Reported
from safety_stream import message

T = 1_700_000_000_000  # a whole second


def features(counters: Counters, account_id: str, at_ms: int) -> dict[str, float]:
    account = counters.get(account_id)
    assert account is not None
    return dict(zip(FEATURES, vector(account, at_ms), strict=True))


def test_a_window_forgets_what_fell_out_and_survives_long_silences() -> None:
    window = Window(buckets=4, width_ms=1000, columns=2)
    for at_ms, amount in ((0, 1), (500, 2), (1000, 4), (3999, 8)):
        window.add(window.roll(at_ms), 1, amount)
    assert window.totals == [0, 15]
    window.roll(4000)  # the bucket of 0..999 falls out
    assert window.totals[1] == 12
    window.roll(5000)
    assert window.totals[1] == 8
    window.roll(10**9)  # far later: every bucket cleared once, not once per second elapsed
    assert window.totals == [0, 0]
    assert list(window.counts) == [0] * 8
    # A late act (another process's clock) counts in the newest bucket rather than rewriting the past.
    window.add(window.roll(10**9 - 5000), 0, 1)
    assert window.totals[0] == 1


def test_features_are_exact_on_a_hand_made_stream() -> None:
    c = Counters(max_accounts=100, max_peers=100)
    c.signal(Registered("a", False, "cove-cli/1.12.3", 0.5, 0.25, 0.0, 1.0, True, T))
    # a writes to b, c, d cold; b answers; e wrote to a first, a answers e (a reply, not a cold contact).
    c.observe(message("e", "a", T + 1_000))
    for i, peer in enumerate(("b", "c", "d", "e")):
        c.observe(message("a", peer, T + 2_000 + i))
    c.observe(message("b", "a", T + 10_000))
    c.observe(message("a", "b", T + 11_000, forward_count=2))  # a second message to b: no new peer
    c.observe(Outbound(Action.GROUP_CREATE, "a", 1, False, "g1", ("b", "c", "d"), 3, T + 12_000))
    c.observe(Outbound(Action.GROUP_ADD, "a", 1, False, "g1", ("f",), 4, T + 13_000))
    c.observe(Outbound(Action.GROUP_MESSAGE, "a", 1, False, "g1", (), 4, T + 14_000))
    c.observe(Outbound(Action.MESSAGE, "a", 1, False, "z", ("z",), 1, T + 14_500, receipt=True))  # not counted
    c.signal(Blocked("c", "a", False, T + 15_000))
    c.signal(Blocked("b", "a", True, T + 15_000))  # a contact's block says nothing about spam
    c.signal(Reported("d", "a", False, 0, T + 16_000))
    c.signal(ParentFlagged("a", "spam", T + 17_000))

    f = features(c, "a", T + 20_000)
    prior = reliability.weight(0, 0)
    assert f == pytest.approx(
        {
            "age_hours": 20_000 / 3_600_000,
            "business": 0.0,
            "client_version": 1.012003,
            "number_score": 0.5,
            "range_score": 0.25,
            "source_score": 0.0,
            "device_score": 1.0,
            "challenged": 1.0,
            "parent_flagged": 1.0,
            "sends_15s": 2.0,  # the buckets of T+6 s .. T+20 s: the forward and the group message
            "sends_1h": 6.0,
            "sends_1d": 6.0,
            "burst_max_1h": 6.0,
            "burst_max_1d": 6.0,
            "five_minutes_max_1d": 6.0,
            "deliveries_1h": 9.0,  # five one-to-one messages and one to a group of four
            "deliveries_1d": 9.0,
            "new_recipients_1h": 4.0,
            "new_recipients_1d": 4.0,
            "strangers_1h": 3.0,
            "strangers_1d": 3.0,
            "recipients": 4.0,
            "stranger_share": 0.75,
            "unanswered_share": 2 / 3,
            "groups_created_1h": 1.0,
            "groups_created_1d": 1.0,
            "members_added_1h": 4.0,
            "members_added_1d": 4.0,
            "forwards_1d": 1.0,
            "forward_share": 1 / 6,
            "blocks": prior,
            "reports": prior,
            "complaints_per_stranger": 2 * prior / 3,
            "sends": 6.0,
            "stranger_rate_1h": 0.5,  # three strangers in six messages
            "stranger_rate_1d": 0.5,
            "new_recipient_rate_1d": 4 / 6,
            "sends_per_recipient": 6 / 4,
            "hour_share_1d": 1.0,
            "five_minutes_share_1d": 1.0,
        },
    )
    # A day later the windows are empty, what is counted since first seen stays.
    later = features(c, "a", T + 86_400_000 + 20_000)
    assert [later[n] for n in ("sends_15s", "sends_1h", "sends_1d", "burst_max_1d", "strangers_1d")] == [0] * 5
    assert (later["sends"], later["recipients"], later["unanswered_share"]) == (6, 4, 2 / 3)


def test_the_hour_window_rolls_by_five_minutes() -> None:
    c = Counters(max_accounts=10, max_peers=10)
    hour0 = T - T % 3_600_000
    for minute in range(0, 60, 10):
        c.observe(message("a", f"p{minute}", hour0 + minute * 60_000))
    assert features(c, "a", hour0 + 59 * 60_000)["sends_1h"] == 6
    assert features(c, "a", hour0 + 65 * 60_000)["sends_1h"] == 5  # 0:00 fell out
    assert features(c, "a", hour0 + 115 * 60_000)["sends_1h"] == 0
    assert features(c, "a", hour0 + 115 * 60_000)["sends_1d"] == 6
    assert features(c, "a", hour0 + 115 * 60_000)["five_minutes_max_1d"] == 1
    for second in range(0, 240, 20):  # a take-over's run: twelve messages in four minutes, none in the same 15 s
        c.observe(message("a", f"q{second}", hour0 + 120 * 60_000 + second * 1000))
    later = features(c, "a", hour0 + 130 * 60_000)
    assert (later["five_minutes_max_1d"], later["burst_max_1d"]) == (12, 1)


def test_an_account_registered_before_this_process_has_unknown_age_and_scores() -> None:
    c = Counters(max_accounts=10, max_peers=10)
    c.observe(message("old", "b", T))
    f = features(c, "old", T)
    assert all(math.isnan(f[n]) for n in ("age_hours", "client_version", "number_score", "device_score"))
    assert version_number("beta") != version_number("beta")  # NaN


def test_accounts_and_peers_are_bounded_and_the_idlest_account_goes_first() -> None:
    c = Counters(max_accounts=3, max_peers=2)
    for i, sender in enumerate(("a", "b", "c")):
        c.observe(message(sender, "x", T + i))
    c.observe(message("a", "y", T + 10))  # a is now the most recently active
    c.observe(message("d", "x", T + 20))
    assert list(c.accounts) == ["c", "a", "d"]
    for peer in ("p1", "p2", "p3"):
        c.observe(message("d", peer, T + 30))
    d = c.get("d")
    assert d is not None and len(d.peers) == 2 and d.peers_full == 2
    assert features(c, "d", T + 40)["recipients"] == 4  # still counted, only not remembered


def test_complaints_weigh_by_how_often_the_reporter_was_right() -> None:
    c = Counters(max_accounts=100, max_peers=10)
    for subject in ("s1", "s2", "s3"):
        c.observe(message("good", "x", T))  # the reporters must be known to be remembered
        c.observe(message("bad", "x", T))
        c.signal(Reported("good", subject, False, 0, T))
        c.signal(Reported("bad", subject, False, 0, T))
        c.signal(Judged(subject, subject != "s3", T))
    c.signal(Reported("bad", "s4", False, 0, T))  # only bad reported s4, who was not abusive
    c.signal(Judged("s4", False, T))
    good, bad = c.get("good"), c.get("bad")
    assert good is not None and bad is not None
    assert (good.upheld, good.judged) == (2, 3)
    assert (bad.upheld, bad.judged) == (2, 4)
    c.signal(Reported("good", "t", False, 0, T))
    c.signal(Reported("bad", "t", False, 0, T))
    c.signal(Reported("stranger", "t", False, 0, T))
    t = c.get("t")
    assert t is not None
    assert t.reports_weighted == pytest.approx(
        reliability.weight(2, 3) + reliability.weight(2, 4) + reliability.weight(0, 0)
    )
    # A report from a contact does not count; a judgement is learnt once.
    assert c.signal(Reported("good", "u", True, 0, T)) is None
    c.signal(Judged("s1", True, T))
    assert (good.upheld, good.judged) == (2, 3)


def test_reliability_starts_low_and_is_earned() -> None:
    assert reliability.weight(0, 0) == 0.25
    assert reliability.weight(10, 10) > 0.75
    assert reliability.weight(0, 10) < 0.1
    assert reliability.weight(5, 10) < reliability.weight(6, 10)
    with pytest.raises(ValueError):
        reliability.weight(3, 2)
