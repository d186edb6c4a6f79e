"""The ladder's pure rules (order of steps, what each forbids, escalation, expiry, review), the memory of the
steps in force, and what the SDK makes of a step's refusal."""

from __future__ import annotations

import pytest

from cove.activity import Action as Act
from cove.client import safety_status
from cove.client.errors import RelayError
from cove.safety.ladder import (
    Durations,
    Review,
    Rule,
    Source,
    Step,
    Taken,
    expiry,
    highest,
    raises,
    review_of,
    rule,
)
from cove.safety.standing import Standing
from cove.safety.verdicts import ReasonCode

D = Durations(throttle_ms=3_600_000, restrict_ms=86_400_000)


def action(step: Step, created: int = 0, expires: int | None = None, lifted: int | None = None, id_: int = 1) -> Taken:
    return Taken(id_, "acc", step, ReasonCode.SPAM, Source.RULE, 0.9, created, expires, lifted)


def test_steps_are_ordered_mildest_first() -> None:
    assert Step.THROTTLE < Step.CHALLENGE < Step.RESTRICT < Step.BAN
    assert [Step.named(s.label) for s in Step] == list(Step)


def test_expiry_per_step() -> None:
    assert expiry(Step.THROTTLE, 1000, D) == 1000 + D.throttle_ms
    assert expiry(Step.RESTRICT, 1000, D) == 1000 + D.restrict_ms
    assert expiry(Step.CHALLENGE, 1000, D) is None  # until solved
    assert expiry(Step.BAN, 1000, D) is None  # until lifted


def test_in_force_ends_at_expiry_or_lift() -> None:
    a = action(Step.THROTTLE, 0, expires=100)
    assert a.in_force(99) and not a.in_force(100)
    assert not action(Step.BAN, 0, lifted=50).in_force(60)
    assert action(Step.BAN, 0).in_force(10**15)


def test_highest_ignores_expired_and_lifted() -> None:
    throttle = action(Step.THROTTLE, 0, expires=1000, id_=1)
    restrict = action(Step.RESTRICT, 0, expires=100, id_=2)
    ban = action(Step.BAN, 0, lifted=10, id_=3)
    assert highest([throttle, restrict, ban], 50) == restrict
    assert highest([throttle, restrict, ban], 500) == throttle
    assert highest([throttle, restrict, ban], 5000) is None
    assert highest([], 0) is None


@pytest.mark.parametrize("current", [None, *Step])
@pytest.mark.parametrize("new", list(Step))
def test_a_new_action_never_lowers_or_repeats_a_step_in_force(current: Step | None, new: Step) -> None:
    taken = None if current is None else action(current)
    assert raises(taken, new) == (current is None or new > current)


def test_automatic_restricts_and_bans_wait_for_review() -> None:
    for source in (Source.RULE, Source.MODEL):
        assert review_of(Step.RESTRICT, source) is Review.PENDING
        assert review_of(Step.BAN, source) is Review.PENDING
        assert review_of(Step.THROTTLE, source) is Review.NONE
        assert review_of(Step.CHALLENGE, source) is Review.NONE
    assert all(review_of(s, Source.OPERATOR) is Review.NONE for s in Step)


def test_what_each_step_forbids() -> None:
    assert rule(Step.THROTTLE, Act.MESSAGE, False) is Rule.METER
    assert rule(Step.THROTTLE, Act.GROUP_CREATE, False) is Rule.METER
    assert rule(Step.CHALLENGE, Act.GROUP_MESSAGE, False) is Rule.PROVE
    assert rule(Step.RESTRICT, Act.MESSAGE, False) is Rule.ACCEPTED_ONLY
    assert rule(Step.RESTRICT, Act.GROUP_CREATE, False) is Rule.REFUSE
    assert rule(Step.RESTRICT, Act.GROUP_ADD, False) is Rule.REFUSE
    assert rule(Step.RESTRICT, Act.GROUP_MESSAGE, False) is Rule.ALLOW
    assert all(rule(Step.BAN, a, r) is Rule.REFUSE for a in Act for r in (False, True))


def test_read_receipts_pass_every_step_below_ban() -> None:
    for step in (Step.THROTTLE, Step.CHALLENGE, Step.RESTRICT):
        assert rule(step, Act.MESSAGE, True) is Rule.ALLOW


def test_the_steps_in_force_are_remembered_within_a_bound_and_a_raced_load_is_not_kept() -> None:
    standing = Standing(limit=2)
    for account in ("a", "b"):
        standing.keep(account, (), standing.mark())
    assert standing.get("a") == ()  # now the most recent
    standing.keep("c", (action(Step.THROTTLE),), standing.mark())
    assert standing.get("b") is None and standing.get("a") == () and standing.get("c") is not None

    mark = standing.mark()
    standing.forget("c")  # a change arrived while "c" was being read
    standing.keep("c", (action(Step.THROTTLE),), mark)
    assert standing.get("c") is None


def test_the_sdk_answers_only_a_sending_challenge_and_says_each_refusal_in_one_line() -> None:
    sending = {"error": {"code": "challenge_required", "message": "m", "challenge": {"seed": "sending.8.1.a.b"}}}
    registering = {"error": {"code": "challenge_required", "message": "m", "challenge": {"seed": "registration.8"}}}
    assert safety_status.sending_challenge(RelayError(428, sending)) == {"seed": "sending.8.1.a.b"}
    assert safety_status.sending_challenge(RelayError(428, registering)) is None
    assert safety_status.sending_challenge(RelayError(403, sending)) is None

    throttled = RelayError(429, {"error": {"code": "throttled", "message": "m", "reason": "spam", "retry_after": 7}})
    assert safety_status.refusal(throttled) == "this account is slowed down (spam): wait 7 s and send again"
    restricted = {"error": {"code": "account_restricted", "message": "m", "reason": "many_groups", "until": None}}
    line = safety_status.refusal(RelayError(403, restricted))
    assert line is not None and line.startswith("this account is restricted (many groups): it may message only")
    assert safety_status.refusal(RelayError(404, {"error": {"code": "not_found", "message": "m"}})) is None
    assert safety_status.describe({"steps": [], "appeal": None}) == ["no safety step is in force on this account"]
