"""The business send rules without a server: each rule alone, their order, and properties that must hold for
every state (a free-form message never leaves the window, stop promotions always wins, tiers never overflow,
and every refusal is a catalogue code in the Cloud API's shape)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cove.business import limits, optin, quality, tiers, window
from cove.business.decision import SUPPORTED_TYPES, Allowed, SendRequest, SendState, TemplateState, may_send
from cove.business.errors import CATALOGUE, ERROR_CODES_HREF, CloudApiError, Retry
from cove.business.optin import Actor, PairConsent, Refusal
from cove.business.quality import Feedback, FeedbackKind, Quality, TemplateHealth, TemplateStatus
from cove.business.tiers import DayRecord, Tier, TierState
from cove.business.window import DAY_MS, HOUR_MS, WINDOW_MS, ChatEvent
from cove.limits.rules import Bucket
from cove.protocol.business import BlockReason, Category, OptInSource

T0 = int(datetime(2030, 1, 1, tzinfo=UTC).timestamp() * 1000)
USER = "u1"
FREE_FORM_TYPES = sorted(SUPPORTED_TYPES - {"template"})


def opted_in(*categories: Category, at_ms: int = T0 - DAY_MS) -> PairConsent:
    consent = PairConsent()
    for category in categories or tuple(Category):
        consent = optin.grant(consent, category, OptInSource.WEB, at_ms)
    return consent


def template(category: Category = Category.UTILITY, **fields) -> TemplateState:
    return TemplateState(category=category, param_count=1, **fields)


def send(category: Category = Category.UTILITY) -> tuple[SendRequest, SendState]:
    """A template send outside any window that every rule lets through."""
    return SendRequest(USER, "template", template_params=1), SendState(consent=opted_in(), template=template(category))


def code(result: Allowed | CloudApiError) -> int | None:
    return result.code if isinstance(result, CloudApiError) else None


def empty(now_ms: int) -> Bucket:
    return Bucket(0.0, now_ms / 1000)


# errors ---------------------------------------------------------------------------------------------------------


def test_catalogue_holds_the_codes_the_rules_and_the_gateway_use():
    wanted = {131047, 131056, 130429, 131048, 131049, 131050, 131026, 132000, 132001, 132015, 132016, 131051}
    assert wanted | {100, 190, 131000, 130472} <= set(CATALOGUE)
    assert all(spec.code == key and spec.title and spec.details for key, spec in CATALOGUE.items())


def test_retry_classes_follow_the_reference():
    assert CATALOGUE[130429].retry is Retry.BACKOFF and CATALOGUE[131056].retry is Retry.BACKOFF
    assert CATALOGUE[131049].retryable and CATALOGUE[132015].retryable
    assert not CATALOGUE[131050].retryable and not CATALOGUE[131047].retryable
    assert not CATALOGUE[132016].retryable and not CATALOGUE[131026].retryable
    assert {CATALOGUE[c].http_status for c in (130429, 131048, 131056)} == {429}
    assert CATALOGUE[132001].http_status == 404 and CATALOGUE[190].http_status == 401


def test_graph_and_webhook_shapes():
    error = CloudApiError(131047)
    assert error.to_graph_error("trace-1") == {
        "error": {
            "message": "(#131047) Re-engagement message",
            "type": "OAuthException",
            "code": 131047,
            "error_data": {
                "messaging_product": "whatsapp",
                "details": "More than 24 hours have passed since the recipient last replied to the sender number.",
            },
            "fbtrace_id": "trace-1",
        }
    }
    assert error.to_webhook_error() == {
        "code": 131047,
        "title": "Re-engagement message",
        "message": "Re-engagement message",
        "error_data": {"details": CATALOGUE[131047].details},
        "href": ERROR_CODES_HREF,
    }
    specific = CloudApiError(132000, "The template takes 2 parameters; 1 were given.", retry_after_ms=5)
    assert specific.to_graph_error("t")["error"]["error_data"]["details"].startswith("The template takes 2")
    assert specific.retry_after_ms == 5 and "132000" in str(specific)
    with pytest.raises(KeyError):
        CloudApiError(999_999)


# the 24 h window ------------------------------------------------------------------------------------------------


def test_window_opens_on_the_users_message_and_lasts_24_hours():
    assert window.window_state(None, T0) == window.WindowState(False, None)
    last = window.record(None, ChatEvent.USER_MESSAGE, T0)
    assert window.window_state(last, T0 + WINDOW_MS - 1) == window.WindowState(True, T0 + WINDOW_MS)
    assert window.window_state(last, T0 + WINDOW_MS) == window.WindowState(False, T0 + WINDOW_MS)


def test_only_the_users_message_or_call_resets_the_window():
    last = window.record(None, ChatEvent.USER_MESSAGE, T0)
    for event in (ChatEvent.BUSINESS_MESSAGE, ChatEvent.TEMPLATE_DELIVERED):
        assert window.record(last, event, T0 + 20 * HOUR_MS) == T0
        assert window.record(None, event, T0) is None
    called = window.record(last, ChatEvent.USER_CALL, T0 + 20 * HOUR_MS)
    assert window.window_state(called, T0 + 30 * HOUR_MS).open
    assert window.record(called, ChatEvent.USER_MESSAGE, T0 + HOUR_MS) == called  # a late, older message


def test_free_form_only_inside_the_window_templates_either_way():
    request, state = send()
    text = SendRequest(USER, "text")
    assert code(may_send(text, state, T0)) == 131047
    inside = replace(state, last_user_message_ms=T0 - HOUR_MS)
    allowed = may_send(text, inside, T0)
    assert isinstance(allowed, Allowed) and allowed.category is None and allowed.reached_at_ms is None
    assert allowed.window.expires_at_ms == T0 - HOUR_MS + WINDOW_MS
    assert isinstance(may_send(request, state, T0), Allowed)
    after_template = replace(state, last_user_message_ms=window.record(None, ChatEvent.TEMPLATE_DELIVERED, T0))
    assert code(may_send(text, after_template, T0 + 1)) == 131047


# opt-in, stop promotions, blocks --------------------------------------------------------------------------------


def test_opt_in_is_per_category_with_source_and_time():
    consent = optin.grant(PairConsent(), Category.UTILITY, OptInSource.SMS, T0)
    assert consent.opt_ins[Category.UTILITY] == optin.OptIn(Category.UTILITY, OptInSource.SMS, T0)
    assert optin.sendable(consent, in_window=False) == {Category.UTILITY}
    assert optin.sendable(consent, in_window=True) == set(Category)
    withdrawn = optin.withdraw(consent, Category.UTILITY, T0 + 1)
    assert withdrawn.opt_ins[Category.UTILITY].withdrawn_at_ms == T0 + 1
    assert optin.sendable(withdrawn, in_window=False) == set()
    assert optin.withdraw(withdrawn, Category.UTILITY, T0 + 2) == withdrawn
    again = optin.grant(withdrawn, Category.UTILITY, OptInSource.QR, T0 + 3)
    assert optin.has_opt_in(again, Category.UTILITY)


def test_template_outside_the_window_needs_an_opt_in_for_its_own_category():
    request, state = send(Category.MARKETING)
    only_utility = replace(state, consent=opted_in(Category.UTILITY))
    refused = may_send(request, only_utility, T0)
    assert isinstance(refused, CloudApiError) and refused.code == 131026 and "marketing opt-in" in refused.details
    assert isinstance(may_send(request, replace(only_utility, last_user_message_ms=T0 - 1), T0), Allowed)


def test_stop_promotions_blocks_marketing_but_not_utility_or_replies():
    consent = optin.stop_promotions(opted_in(), Actor.USER, T0)
    assert optin.refusal(consent, Category.MARKETING, in_window=True) is Refusal.PROMOTIONS_STOPPED
    assert optin.sendable(consent, in_window=False) == {Category.UTILITY, Category.AUTHENTICATION}
    in_window = SendState(consent=consent, last_user_message_ms=T0 - HOUR_MS)
    for category in Category:
        result = may_send(SendRequest(USER, "template", 1), replace(in_window, template=template(category)), T0)
        assert code(result) == (131050 if category is Category.MARKETING else None)
    assert isinstance(may_send(SendRequest(USER, "text"), in_window, T0), Allowed)


def test_only_the_user_stops_resumes_blocks_or_unblocks():
    consent = opted_in()
    for act in (
        lambda: optin.stop_promotions(consent, Actor.BUSINESS, T0),
        lambda: optin.resume_promotions(consent, Actor.BUSINESS),
        lambda: optin.block(consent, Actor.BUSINESS, BlockReason.SPAM, T0),
        lambda: optin.unblock(consent, Actor.BUSINESS),
    ):
        with pytest.raises(optin.UserActRequired):
            act()
    stopped = optin.stop_promotions(consent, Actor.USER, T0)
    assert optin.stop_promotions(stopped, Actor.USER, T0 + 5).promotions_stopped_at_ms == T0
    assert optin.resume_promotions(stopped, Actor.USER).promotions_stopped_at_ms is None
    blocked = optin.block(consent, Actor.USER, BlockReason.DIDNT_SIGN_UP, T0)
    assert blocked.block == optin.Block(BlockReason.DIDNT_SIGN_UP, T0)
    assert optin.sendable(blocked, in_window=True) == set()
    assert optin.unblock(blocked, Actor.USER).block is None


def test_a_block_and_a_missing_account_give_the_same_answer():
    request, state = send()
    blocked = may_send(
        request, replace(state, consent=optin.block(state.consent, Actor.USER, BlockReason.SPAM, T0)), T0
    )
    missing = may_send(request, replace(state, recipient_is_user=False), T0)
    assert isinstance(blocked, CloudApiError) and isinstance(missing, CloudApiError)
    assert blocked.to_graph_error("t") == missing.to_graph_error("t")


# templates ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tmpl", "params", "expected"),
    [
        (None, 1, 132001),
        (template(approved=False), 1, 132001),
        (template(health=TemplateHealth(3, None, disabled=True)), 1, 132016),
        (template(health=TemplateHealth(1, T0 + HOUR_MS)), 1, 132015),
        (template(), 2, 132000),
        (template(health=TemplateHealth(1, T0)), 1, None),  # the pause has just ended
    ],
)
def test_template_checks(tmpl, params, expected):
    result = may_send(SendRequest(USER, "template", params), SendState(consent=opted_in(), template=tmpl), T0)
    assert code(result) == expected
    if expected == 132015:
        assert result.retry_after_ms == HOUR_MS


def test_unsupported_message_type():
    assert code(may_send(SendRequest(USER, "carrier_pigeon"), SendState(last_user_message_ms=T0), T0)) == 131051


# quality --------------------------------------------------------------------------------------------------------


def blocks(n: int, reason: BlockReason | None, at_ms: int = T0) -> list[Feedback]:
    return [Feedback(FeedbackKind.BLOCK, at_ms, reason)] * n


def test_reasons_weigh_differently_and_reports_most():
    weights = {reason: quality.weight(Feedback(FeedbackKind.BLOCK, T0, reason)) for reason in BlockReason}
    assert weights[BlockReason.SPAM] > weights[BlockReason.OTHER] > weights[BlockReason.NO_LONGER_NEEDED]
    assert quality.weight(Feedback(FeedbackKind.REPORT, T0)) > max(weights.values())
    assert quality.rate(blocks(10, BlockReason.SPAM), 1000, T0) is Quality.RED
    assert quality.rate(blocks(10, BlockReason.NO_LONGER_NEEDED), 1000, T0) is Quality.GREEN
    assert quality.rate(blocks(1, BlockReason.SPAM), 5, T0) is Quality.YELLOW  # one unhappy user of a small sender


def test_recent_feedback_weighs_more_and_old_feedback_not_at_all():
    fresh = quality.score(blocks(1, BlockReason.SPAM, T0), 1000, T0)
    assert quality.score(blocks(1, BlockReason.SPAM, T0 - 2 * DAY_MS), 1000, T0) == pytest.approx(fresh / 2)
    assert quality.score(blocks(1, BlockReason.SPAM, T0 - 4 * DAY_MS), 1000, T0) == pytest.approx(fresh / 4)
    assert quality.score(blocks(1, BlockReason.SPAM, T0 - 7 * DAY_MS), 1000, T0) == 0
    assert quality.score(blocks(1, BlockReason.SPAM, T0 + 1), 1000, T0) == 0
    assert quality.rate(blocks(10, BlockReason.SPAM, T0 - 5 * DAY_MS), 1000, T0) is Quality.GREEN
    assert quality.rate(blocks(10, BlockReason.SPAM), 10_000, T0) is Quality.GREEN  # normalised by users messaged


def test_pauses_three_hours_then_six_then_disabled():
    health = quality.on_rating(TemplateHealth(), Quality.RED, T0)
    assert health == TemplateHealth(1, T0 + 3 * HOUR_MS)
    assert quality.status(health, T0 + 3 * HOUR_MS - 1) is TemplateStatus.PAUSED
    assert quality.on_rating(health, Quality.RED, T0 + HOUR_MS) == health  # the same incident
    assert quality.status(health, T0 + 3 * HOUR_MS) is TemplateStatus.ACTIVE
    assert quality.on_rating(health, Quality.YELLOW, T0 + 4 * HOUR_MS) == health
    second = quality.on_rating(health, Quality.RED, T0 + 4 * HOUR_MS)
    assert second == TemplateHealth(2, T0 + 10 * HOUR_MS)
    third = quality.on_rating(second, Quality.RED, T0 + 11 * HOUR_MS)
    assert quality.status(third, T0 + 11 * HOUR_MS) is TemplateStatus.DISABLED
    assert quality.on_rating(third, Quality.RED, T0 + 99 * HOUR_MS) == third
    request, state = send()
    assert code(may_send(request, replace(state, template=template(health=health)), T0 + HOUR_MS)) == 132015
    assert code(may_send(request, replace(state, template=template(health=third)), T0 + 12 * HOUR_MS)) == 132016


def test_pacing_holds_marketing_and_utility_of_templates_not_green_or_just_unpaused():
    unpaused = TemplateHealth(1, T0)
    assert quality.paced(Category.MARKETING, Quality.YELLOW, TemplateHealth(), T0)
    assert quality.paced(Category.UTILITY, Quality.GREEN, unpaused, T0 + HOUR_MS)
    assert not quality.paced(Category.UTILITY, Quality.GREEN, unpaused, T0 + DAY_MS)
    assert not quality.paced(Category.AUTHENTICATION, Quality.RED, unpaused, T0)
    assert not quality.paced(Category.MARKETING, Quality.GREEN, TemplateHealth(), T0)
    request, state = send(Category.MARKETING)
    allowed = may_send(request, replace(state, template=template(Category.MARKETING, quality=Quality.YELLOW)), T0)
    assert isinstance(allowed, Allowed) and allowed.paced


def test_a_red_number_may_not_start_marketing_but_may_answer_and_send_utility():
    request, state = send(Category.MARKETING)
    red = replace(state, number_quality=Quality.RED)
    refused = may_send(request, red, T0)
    assert code(refused) == 131048 and "quality" in refused.details
    assert isinstance(may_send(request, replace(red, last_user_message_ms=T0 - 1), T0), Allowed)
    assert isinstance(may_send(request, replace(red, template=template(Category.UTILITY)), T0), Allowed)


# tiers ----------------------------------------------------------------------------------------------------------


def test_unique_users_outside_windows_in_a_moving_24_hours():
    reached = {"a": T0 - 23 * HOUR_MS, "b": T0 - 24 * HOUR_MS, "c": T0}
    assert tiers.counted(reached, T0) == {"a", "c"}
    assert tiers.room_for(reached, "d", 3, T0) is None
    assert tiers.room_for(reached, "d", 2, T0) == HOUR_MS  # "a" stops counting in an hour
    assert tiers.room_for(reached, "a", 2, T0) is None  # the same user twice counts once
    assert tiers.room_for(reached, "d", None, T0) is None


def test_tier_refusal_and_what_counts():
    request, state = send()
    full = replace(state, messaging_limit=2, reached=MappingProxyType({"x": T0 - HOUR_MS, "y": T0 - 2 * HOUR_MS}))
    refused = may_send(request, full, T0)
    assert code(refused) == 131048 and "Messaging limit" in refused.details
    assert refused.retry_after_ms == 22 * HOUR_MS
    assert isinstance(may_send(replace(request, user_id="x"), full, T0), Allowed)  # already counted
    in_window = may_send(request, replace(full, last_user_message_ms=T0 - HOUR_MS), T0)  # user-initiated
    assert isinstance(in_window, Allowed) and in_window.reached_at_ms is None
    outside = may_send(request, state, T0)
    assert isinstance(outside, Allowed) and outside.reached_at_ms == T0


def history(*days: tuple[int, int, Quality]) -> list[DayRecord]:
    return [DayRecord(day, users, q) for day, users, q in days]


def test_first_upgrade_takes_verification_and_a_quality_that_is_not_red():
    start = TierState(Tier.T250, 0)
    assert tiers.evaluate(start, [], 10, verified=False) == start
    assert tiers.evaluate(start, [], 10, verified=True) == TierState(Tier.T2K, 10)
    assert tiers.evaluate(start, history((10, 0, Quality.RED)), 10, verified=True) == start


def test_upgrade_after_using_half_the_limit_in_seven_days():
    state = TierState(Tier.T2K, 0)
    half = history(*((d, 200, Quality.GREEN) for d in range(1, 6)))  # 1,000 over days 1-5
    assert tiers.evaluate(state, half, 5, verified=True) == TierState(Tier.T10K, 5)
    assert tiers.evaluate(state, half[:-1], 5, verified=True) == state  # 800
    assert tiers.evaluate(state, half, 11, verified=True) == state  # days 1-4 have left the 7 days
    assert tiers.evaluate(TierState(Tier.T2K, 4), half, 5, verified=True) == TierState(Tier.T2K, 4)
    red_today = [*half[:-1], DayRecord(5, 200, Quality.RED)]
    assert tiers.evaluate(state, red_today, 5, verified=True) == state
    assert tiers.evaluate(TierState(Tier.UNLIMITED, 0), half, 5, verified=True).tier is Tier.UNLIMITED


def test_downgrade_one_tier_after_seven_days_at_red():
    state = TierState(Tier.T10K, 0)
    week = history(*((d, 0, Quality.RED) for d in range(1, 8)))
    assert tiers.evaluate(state, week[:-1], 7, verified=True) == state  # six RED days and a day without record
    assert tiers.evaluate(state, week, 7, verified=True) == TierState(Tier.T2K, 7)
    longer = [*week, DayRecord(8, 0, Quality.RED)]
    assert tiers.evaluate(TierState(Tier.T2K, 7), longer, 8, verified=True) == TierState(Tier.T2K, 7)
    assert tiers.evaluate(TierState(Tier.T250, 0), week, 7, verified=True) == TierState(Tier.T250, 0)
    assert [tiers.LIMITS[t] for t in Tier] == [250, 2_000, 10_000, 100_000, None]


# volume limits --------------------------------------------------------------------------------------------------


def test_throughput_bucket_per_number():
    bucket = None
    for _ in range(limits.DEFAULT_THROUGHPUT_MPS):
        spent = limits.spend(bucket, limits.throughput_limit(), T0)
        assert spent.wait_ms is None
        bucket = spent.bucket
    assert limits.spend(bucket, limits.throughput_limit(), T0).wait_ms == 13  # 1/80 s, rounded up
    assert limits.spend(bucket, limits.throughput_limit(), T0 + 1000).wait_ms is None
    with pytest.raises(ValueError):
        limits.throughput_limit(0)
    request, state = send()
    refused = may_send(request, replace(state, throughput=empty(T0)), T0)
    assert code(refused) == 130429 and refused.retry_after_ms == 13


def test_pair_rate_burst_of_45_then_one_per_six_seconds():
    bucket = None
    for _ in range(limits.PAIR_BURST):
        spent = limits.spend(bucket, limits.PAIR_LIMIT, T0)
        assert spent.wait_ms is None
        bucket = spent.bucket
    assert limits.spend(bucket, limits.PAIR_LIMIT, T0).wait_ms == 6000
    later = limits.spend(bucket, limits.PAIR_LIMIT, T0 + 6000)
    assert later.wait_ms is None
    assert limits.spend(later.bucket, limits.PAIR_LIMIT, T0 + 6000).wait_ms == 6000
    request, state = send()
    refused = may_send(request, replace(state, pair=empty(T0)), T0)
    assert code(refused) == 131056 and refused.retry_after_ms == 6000


def test_marketing_cap_across_all_businesses():
    log = (T0 - 20 * HOUR_MS, T0 - HOUR_MS)
    assert limits.marketing_wait(log, T0) == 4 * HOUR_MS
    assert limits.marketing_wait(log, T0 + 4 * HOUR_MS) is None
    assert limits.marketing_recent((*log, T0 - DAY_MS), T0) == log
    request, state = send(Category.MARKETING)
    refused = may_send(request, replace(state, user_marketing_ms=log), T0)
    assert code(refused) == 131049 and refused.retry_after_ms == 4 * HOUR_MS
    first = may_send(request, state, T0)
    assert isinstance(first, Allowed) and first.user_marketing_ms == (T0,)
    inside = may_send(request, replace(state, user_marketing_ms=log, last_user_message_ms=T0 - HOUR_MS), T0)
    assert isinstance(inside, Allowed) and inside.user_marketing_ms == log  # in-window marketing is not capped
    utility = may_send(request, replace(state, user_marketing_ms=log, template=template(Category.UTILITY)), T0)
    assert isinstance(utility, Allowed)


def test_marketing_holdout():
    request, state = send(Category.MARKETING)
    assert code(may_send(request, replace(state, marketing_holdout=True), T0)) == 130472
    inside = replace(state, marketing_holdout=True, last_user_message_ms=T0 - 1)
    assert isinstance(may_send(request, inside, T0), Allowed)


# precedence -----------------------------------------------------------------------------------------------------

FULL_PAIR = MappingProxyType({"x": T0 - HOUR_MS, "y": T0 - HOUR_MS})
VIOLATIONS = [  # in the documented order; each breaks one rule of a marketing template sent outside a window
    (131051, lambda r, s: (replace(r, type="fax"), s)),
    (131026, lambda r, s: (r, replace(s, consent=replace(s.consent, block=optin.Block(BlockReason.SPAM, T0))))),
    (132001, lambda r, s: (r, replace(s, template=replace(s.template, approved=False)))),
    (
        132016,
        lambda r, s: (r, replace(s, template=replace(s.template, health=replace(s.template.health, disabled=True)))),
    ),
    (132015, lambda r, s: (r, replace(s, template=replace(s.template, health=TemplateHealth(1, T0 + 1))))),
    (132000, lambda r, s: (replace(r, template_params=7), s)),
    (131050, lambda r, s: (r, replace(s, consent=replace(s.consent, promotions_stopped_at_ms=T0)))),
    (131026, lambda r, s: (r, replace(s, consent=replace(s.consent, opt_ins=MappingProxyType({}))))),
    (130472, lambda r, s: (r, replace(s, marketing_holdout=True))),
    (131048, lambda r, s: (r, replace(s, number_quality=Quality.RED))),
    (131048, lambda r, s: (r, replace(s, messaging_limit=2, reached=FULL_PAIR))),
    (131049, lambda r, s: (r, replace(s, user_marketing_ms=(T0 - 2, T0 - 1)))),
    (131056, lambda r, s: (r, replace(s, pair=empty(T0)))),
    (130429, lambda r, s: (r, replace(s, throughput=empty(T0)))),
]


def test_refusals_come_in_the_documented_order():
    """With rules i.. broken, rule i answers: every earlier check outranks every later one."""
    request, state = send(Category.MARKETING)
    assert isinstance(may_send(request, state, T0), Allowed)
    for i, (expected, _) in enumerate(VIOLATIONS):
        r, s = request, state
        for _, break_rule in reversed(VIOLATIONS[i:]):
            r, s = break_rule(r, s)
        assert code(may_send(r, s, T0)) == expected, i
    stopped = replace(state, consent=replace(state.consent, promotions_stopped_at_ms=T0), pair=empty(T0))
    assert code(may_send(SendRequest(USER, "text"), stopped, T0)) == 131047


# properties -----------------------------------------------------------------------------------------------------

NOW = T0 + 30 * DAY_MS
USERS = ["u0", "u1", "u2", "u3", "u4", "u5"]
times_before = st.integers(0, 2 * DAY_MS).map(lambda ago: NOW - ago)
health = st.builds(
    TemplateHealth,
    pauses=st.integers(0, 3),
    paused_until_ms=st.none() | st.integers(NOW - DAY_MS, NOW + DAY_MS),
    disabled=st.booleans(),
)
templates = st.builds(
    TemplateState,
    category=st.sampled_from(Category),
    param_count=st.integers(0, 2),
    approved=st.booleans(),
    quality=st.sampled_from(Quality),
    health=health,
)
opt_ins = st.dictionaries(
    st.sampled_from(Category),
    st.builds(
        optin.OptIn, st.sampled_from(Category), st.sampled_from(OptInSource), times_before, st.none() | times_before
    ),
).map(lambda d: MappingProxyType({c: replace(o, category=c) for c, o in d.items()}))
consents = st.builds(
    PairConsent,
    opt_ins=opt_ins,
    promotions_stopped_at_ms=st.none() | times_before,
    block=st.none() | st.builds(optin.Block, st.sampled_from(BlockReason), times_before),
)


def buckets(size: int):
    return st.none() | st.builds(Bucket, st.floats(0, size), st.integers(0, 5000).map(lambda ago: (NOW - ago) / 1000))


states = st.builds(
    SendState,
    recipient_is_user=st.booleans(),
    consent=consents,
    last_user_message_ms=st.none() | times_before,
    template=st.none() | templates,
    number_quality=st.sampled_from(Quality),
    messaging_limit=st.none() | st.integers(1, 4),
    reached=st.dictionaries(st.sampled_from(USERS), times_before).map(MappingProxyType),
    user_marketing_ms=st.lists(times_before, max_size=4).map(tuple),
    marketing_holdout=st.booleans(),
    throughput=buckets(limits.DEFAULT_THROUGHPUT_MPS),
    pair=buckets(limits.PAIR_BURST),
)
requests = st.builds(
    SendRequest,
    user_id=st.sampled_from(USERS),
    type=st.sampled_from([*sorted(SUPPORTED_TYPES), "fax"]),
    template_params=st.integers(0, 2),
)


def reachable(state: SendState) -> SendState:
    """The same state with the recipient present and not blocking, so the later rules get exercised too."""
    return replace(state, recipient_is_user=True, consent=replace(state.consent, block=None))


@given(request=requests, state=states, shaped=st.booleans())
def test_free_form_outside_the_window_is_never_allowed(request, state, shaped):
    if shaped:
        state = reachable(state)
    result = may_send(request, state, NOW)
    if request.type != "template" and not window.window_state(state.last_user_message_ms, NOW).open:
        assert not isinstance(result, Allowed)


@given(request=requests, state=states, stopped_at=times_before, shaped=st.booleans())
def test_marketing_after_stop_promotions_is_never_allowed(request, state, stopped_at, shaped):
    if shaped:  # a sendable marketing template, so that only the stop can refuse it
        request = SendRequest(request.user_id, "template", template_params=1)
        state = replace(reachable(state), template=TemplateState(Category.MARKETING, param_count=1))
    state = replace(state, consent=replace(state.consent, promotions_stopped_at_ms=stopped_at))
    result = may_send(request, state, NOW)
    if isinstance(result, Allowed):
        assert result.category is not Category.MARKETING


@given(request=requests, state=states)
def test_every_answer_is_allowed_or_a_catalogue_error_in_its_shape(request, state):
    result = may_send(request, state, NOW)
    if isinstance(result, Allowed):
        return
    spec = CATALOGUE[result.code]
    body = result.to_graph_error("trace")["error"]
    assert set(body) == {"message", "type", "code", "error_data", "fbtrace_id"}
    assert body["code"] == spec.code and body["type"] == "OAuthException"
    assert body["message"] == f"(#{spec.code}) {spec.title}"
    assert body["error_data"]["messaging_product"] == "whatsapp" and body["error_data"]["details"]
    hook = result.to_webhook_error()
    assert set(hook) == {"code", "title", "message", "error_data", "href"} and hook["code"] == spec.code
    assert result.retry_after_ms is None or result.retry_after_ms > 0


steps = st.lists(
    st.tuples(
        st.integers(0, 10 * HOUR_MS),  # time since the previous step
        st.sampled_from(USERS),
        st.sampled_from(["user_writes", "template", "text"]),
        st.sampled_from(Category),
    ),
    max_size=60,
)


@settings(max_examples=200)
@given(steps=steps, limit=st.integers(1, 4))
def test_distinct_users_reached_outside_windows_never_exceed_the_tier(steps, limit):
    """Sends against state kept only from what ``may_send`` returned: any 24 h holds at most ``limit`` users."""
    now = T0
    last_wrote: dict[str, int] = {}
    reached: dict[str, int] = {}
    pairs: dict[str, Bucket] = {}
    marketing: dict[str, tuple[int, ...]] = {}
    throughput: Bucket | None = None
    outside: list[tuple[int, str]] = []
    for gap, user, action, category in steps:
        now += gap
        if action == "user_writes":
            last_wrote[user] = window.record(last_wrote.get(user), ChatEvent.USER_MESSAGE, now)
            continue
        state = SendState(
            consent=opted_in(),
            last_user_message_ms=last_wrote.get(user),
            template=template(category),
            messaging_limit=limit,
            reached=MappingProxyType(dict(reached)),
            user_marketing_ms=marketing.get(user, ()),
            throughput=throughput,
            pair=pairs.get(user),
        )
        result = may_send(SendRequest(user, action, template_params=1), state, now)
        if not isinstance(result, Allowed):
            continue
        throughput, pairs[user], marketing[user] = result.throughput, result.pair, result.user_marketing_ms
        if result.reached_at_ms is not None:
            reached[user] = result.reached_at_ms
            outside.append((now, user))
    for t, _ in outside:
        assert len({u for at, u in outside if t - DAY_MS < at <= t}) <= limit
