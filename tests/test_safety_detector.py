"""The detector without a relay: rules, thresholds, micro-batches, the model, and training by replay."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from cove.activity import Action, Outbound
from cove.app import build_relay
from cove.config import Settings
from cove.db import create_engine
from cove.safety import rules, training
from cove.safety.counters import Counters
from cove.safety.detector import REASONS, Decision, Detector, decide, model_step, observe_cost_ms
from cove.safety.features import FEATURES, INDEX, vector
from cove.safety.model import Model, ModelError, from_text, load
from cove.safety.parts import of
from cove.safety.signals import Registered
from cove.safety.verdicts import ReasonCode
from safety_stream import START_MS, message, stream

T = START_MS
PERSON_THRESHOLDS = {"throttle": 0.5, "challenge": 0.8, "restrict": 0.95}
BUSINESS_THRESHOLDS = {"throttle": 0.9}


def row(**values: float) -> list[float]:
    r = [0.0] * len(FEATURES)
    r[INDEX["age_hours"]] = math.nan
    for name, value in values.items():
        r[INDEX[name]] = value
    return r


def burst(detector: Detector, sender: str, count: int, *, business: bool = False, at_ms: int = T) -> None:
    for i in range(count):
        detector.observe(message(sender, f"{sender}-to-{i}", at_ms + i * 100, business=business))


def detector_without_model(**kwargs: object) -> Detector:
    return Detector(Counters(1000, 64), None, PERSON_THRESHOLDS, BUSINESS_THRESHOLDS, **kwargs)  # type: ignore[arg-type]


def test_a_minutes_old_account_sending_100_messages_in_15_seconds_is_banned_by_rule() -> None:
    detector = detector_without_model()
    detector.hear(Registered("new", False, "3.2.0", 0.1, 0.1, 0.1, 0.1, False, T - 5 * 60_000))
    burst(detector, "new", 100)
    detector.hear(Registered("old-business", True, "3.2.0", 0.1, 0.1, 0.1, 0.1, False, T - 5 * 60_000))
    burst(detector, "old-business", 100, business=True)
    burst(detector, "unknown-age", 100)  # registered before this process started: not "new"
    decisions = {d.account_id: d for d in detector.score_dirty(T + 20_000)}
    assert decisions["new"] == Decision("new", "ban", ReasonCode.BURST_FROM_NEW_ACCOUNT, "rule", decisions["new"].score)
    assert math.isnan(decisions["new"].score)
    assert "old-business" not in decisions  # a business's own limits: 100 in 15 s is a campaign, not abuse
    assert (decisions["unknown-age"].step, decisions["unknown-age"].reason) == ("throttle", ReasonCode.BULK_MESSAGING)
    # Scored once: nothing is dirty any more, and a repeat of the same step is never asked for.
    assert detector.score_dirty(T + 21_000) == []
    burst(detector, "unknown-age", 5, at_ms=T + 30_000)
    assert detector.score_dirty(T + 40_000) == []


def test_rules_for_groups_and_complaints_and_their_business_limits() -> None:
    assert rules.matched(row(groups_created_1h=20)).name == "many_groups"  # type: ignore[union-attr]
    assert rules.matched(row(members_added_1h=999)) is None
    assert rules.matched(row(members_added_1h=1000)).step == "restrict"  # type: ignore[union-attr]
    assert rules.matched(row(reports=5.0)).reason is ReasonCode.REPORTED_BY_USERS  # type: ignore[union-attr]
    assert rules.matched(row(reports=5.0, business=1.0)) is None
    assert rules.matched(row(blocks=8.0)).step == "challenge"  # type: ignore[union-attr]
    assert rules.matched(row(burst_max_1h=60)).step == "throttle"  # type: ignore[union-attr]
    assert rules.matched(row(burst_max_1h=60, business=1.0)) is None
    assert rules.matched(row(burst_max_1h=300, business=1.0)).step == "throttle"  # type: ignore[union-attr]
    # The highest step of those that fire wins.
    assert rules.matched(row(burst_max_1h=100, age_hours=0.5, groups_created_1h=30)).step == "ban"  # type: ignore[union-attr]


def test_the_model_step_follows_the_thresholds_and_businesses_have_their_own() -> None:
    assert model_step(0.49, PERSON_THRESHOLDS) is None
    assert model_step(0.5, PERSON_THRESHOLDS) == "throttle"
    assert model_step(0.96, PERSON_THRESHOLDS) == "restrict"
    assert model_step(0.96, BUSINESS_THRESHOLDS) == "throttle"
    quiet = row()
    assert decide("a", quiet, 0.85, PERSON_THRESHOLDS) == Decision("a", "challenge", ReasonCode.SPAM, "model", 0.85)
    assert decide("a", quiet, 0.85, BUSINESS_THRESHOLDS) is None
    # A rule and the model: the higher step decides; on a tie the rule names the reason.
    bursty = row(burst_max_1h=60)
    assert decide("a", bursty, 0.85, PERSON_THRESHOLDS).source == "model"  # type: ignore[union-attr]
    assert decide("a", bursty, 0.6, PERSON_THRESHOLDS).source == "rule"  # type: ignore[union-attr]
    assert decide("a", bursty, math.nan, PERSON_THRESHOLDS).source == "rule"  # type: ignore[union-attr]


async def test_accounts_are_scored_off_the_send_path_and_acted_on() -> None:
    acted: list[Decision] = []
    scored = asyncio.Event()

    async def act(decision: Decision) -> None:
        acted.append(decision)
        scored.set()

    detector = detector_without_model(interval_ms=50, act=act, clock=lambda: T + 20_000)
    burst(detector, "sender", 70)
    assert acted == []  # observe only counts
    await asyncio.wait_for(scored.wait(), 5)
    assert [(d.account_id, d.step) for d in acted] == [("sender", "throttle")]
    detector.close()


async def test_a_failing_action_does_not_stop_the_others() -> None:
    acted: list[str] = []

    async def act(decision: Decision) -> None:
        if decision.account_id == "first":
            raise RuntimeError("the database is gone")
        acted.append(decision.account_id)

    detector = detector_without_model(interval_ms=10, act=act, clock=lambda: T + 20_000)
    burst(detector, "first", 60)
    burst(detector, "second", 60)
    for _ in range(200):
        if acted:
            break
        await asyncio.sleep(0.01)
    assert acted == ["second"]


def test_a_batch_takes_at_most_its_size_and_the_rest_waits() -> None:
    detector = detector_without_model(batch=2)
    for sender in ("a", "b", "c"):
        burst(detector, sender, 60)
    assert [d.account_id for d in detector.score_dirty(T + 10_000)] == ["a", "b"]
    assert [d.account_id for d in detector.score_dirty(T + 10_000)] == ["c"]


def test_replay_takes_rows_at_the_first_acts_and_at_the_end_of_each_hour() -> None:
    hour0 = T - T % training.HOUR_MS + training.HOUR_MS
    events = [message("a", f"p{i}", hour0 + i * 1000) for i in range(4)] + [
        message("a", "p0", hour0 + training.HOUR_MS + 5),
        Outbound(Action.GROUP_CREATE, "b", 1, False, "g", ("a",), 1, hour0 + training.HOUR_MS + 6),
    ]
    accounts = [_Labelled("a", False), _Labelled("b", True)]
    data = training.replay(accounts, events)
    taken = [
        (accounts[o].account_id, t - hour0, r[INDEX["sends"]])
        for o, t, r in zip(data.owners, data.at_ms, data.rows, strict=True)
    ]
    H = training.HOUR_MS
    assert taken == [
        ("a", 0, 1),  # after acts 1, 2, 3
        ("a", 1000, 2),
        ("a", 2000, 3),
        ("a", H, 4),  # the end of the first hour
        ("a", H + 5, 5),  # the fifth act
        ("b", H + 6, 0),
        ("a", 2 * H, 5),
        ("b", 2 * H, 0),
    ]
    assert data.labels.tolist() == [0, 0, 0, 0, 0, 1, 0, 1]


class _Labelled:
    def __init__(
        self, account_id: str, abusive: bool, abusive_from_ms: int | None = None, population: str = "people"
    ) -> None:
        self.account_id = account_id
        self.abusive = abusive
        self.abusive_from_ms = abusive_from_ms
        self.population = population
        self.abuse_type = "hijacked" if abusive else None


def test_rows_are_abusive_only_from_when_the_account_is_the_abusers() -> None:
    taken_over = T + 2_500
    events = [message("h", f"p{i}", T + i * 1000) for i in range(5)]
    data = training.replay([_Labelled("h", True, abusive_from_ms=taken_over)], events)
    assert data.at_ms.tolist()[:4] == [T, T + 1000, T + 2000, T + 4000]  # after acts 1, 2, 3 and 5
    assert data.labels.tolist()[:4] == [0, 0, 0, 1]  # the owner's acts, then the hijacker's


class _Fixed:
    """A "model" whose score is the row's count of sends: the first-crossing rule is then plain to see."""

    def score(self, rows: np.ndarray) -> np.ndarray:
        return rows[:, INDEX["sends"]].astype(np.float64)


def test_evaluation_acts_on_the_first_crossing_and_not_on_a_hijacked_account_before_its_take_over() -> None:
    # Ten legitimate accounts send 1..10 messages; a hijacked account sends 20, taken over before its 15th.
    events = [message(f"l{n}", "x", T + n * 100_000 + i) for n in range(1, 11) for i in range(n)]
    events += [message("h", "x", T + 2_000_000 + i * 1000) for i in range(20)]
    accounts = [_Labelled(f"l{n}", False) for n in range(1, 11)] + [_Labelled("h", True, T + 2_000_000 + 14_000)]
    data = training.replay(accounts, sorted(events, key=lambda e: e.at_ms))
    result = training.evaluate(_Fixed(), data, accounts, [0.1, 0.0])  # type: ignore[arg-type]
    # At 10 %, the one legitimate account allowed is the busiest (10 sends): the line is just above 9.
    assert 9 < result.thresholds[0.1] <= 10 and result.flagged[0.1] == {"people": 0.1}
    # The hijacker crossed 9 sends before its take-over (its owner's acts): the action counts from the 15th.
    first = result.first_action[0.1][10]
    assert data.rows[first][INDEX["sends"]] == 20 and data.at_ms[first] >= accounts[10].abusive_from_ms
    assert result.recall[0.1] == {"all": 1.0, "hijacked": 1.0}
    # At 0, nothing legitimate may be acted on: the line is above every legitimate account's highest score.
    assert result.thresholds[0.0] > 10 and result.flagged[0.0] == {"people": 0.0}
    assert result.recall[0.0]["all"] == 1.0  # 20 sends > 10


def auc(scores: dict[int, float], abusive: set[int]) -> float:
    bad = [s for i, s in scores.items() if i in abusive]
    good = [s for i, s in scores.items() if i not in abusive]
    wins = sum((b > g) + 0.5 * (b == g) for b in bad for g in good)
    return wins / (len(bad) * len(good))


@pytest.fixture(scope="module")
def trained() -> tuple[Model, training.Dataset, set[int]]:
    accounts, events = stream(people=1500, spammers=150, seed=3)
    data = training.replay(accounts, events)
    learn, held = training.split(data, 0.5, seed=1)
    return training.fit(learn, accounts), held, {i for i, a in enumerate(accounts) if a.abusive}


def test_a_model_trained_on_a_small_stream_ranks_abusers_first(
    trained: tuple[Model, training.Dataset, set[int]],
) -> None:
    model, held, abusive = trained
    scores = training.account_scores(model, held)
    assert len(abusive & scores.keys()) >= 50
    model_auc = auc(scores, abusive)
    assert model_auc > 0.95
    # The stream is no give-away (no single feature separates the two), and the trees beat the best one alone.
    alone = max(
        auc(training.account_scores(_Column(c, sign), held), abusive) for c in range(len(FEATURES)) for sign in (1, -1)
    )
    assert alone < min(0.97, model_auc)


class _Column:
    """A "model" that scores by one feature, to compare the trees with."""

    def __init__(self, column: int, sign: int) -> None:
        self.column = column
        self.sign = sign

    def score(self, rows: np.ndarray) -> np.ndarray:
        # Shifted to stay positive: account_scores reads a negative best as "no row".
        return 1e6 + self.sign * np.nan_to_num(rows[:, self.column].astype(np.float64), nan=0.0)


def test_a_model_survives_its_text_file_and_a_wrong_one_is_refused(
    trained: tuple[Model, training.Dataset, set[int]], tmp_path: Path
) -> None:
    model, held, _ = trained
    path = tmp_path / "model.txt"
    model.save(path)
    assert not path.read_bytes().startswith(b"\x80")  # text, not a pickle
    again = load(path)
    assert again is not None
    assert np.array_equal(again.score(held.rows[:50]), model.score(held.rows[:50]))
    assert model.score(np.zeros((0, len(FEATURES)))).shape == (0,)
    with pytest.raises(ModelError, match="other features"):
        from_text(model.text.replace("feature_names=age_hours", "feature_names=age_days"))
    with pytest.raises(ModelError, match="not a LightGBM"):
        from_text("tree\nnonsense")
    with pytest.raises(ModelError, match="cannot read"):
        load(tmp_path / "missing.txt")


def test_the_shipped_model_reads_the_features_the_counters_make() -> None:
    # Fails when FEATURES changes without `cove safety train` writing a new model.
    shipped = load()
    assert shipped is not None
    counters = Counters(10, 128)
    # Registered twelve minutes ago, 60 messages in two minutes to 60 people who never wrote to it, a third of
    # them forwards. (Without a single forward the trees score it low: the simulator's bots forward a third of
    # their messages, and the rules, not the model, stop a forward-free burst; docs/safety.md.)
    counters.signal(Registered("blatant", False, "3.2.0", 0.2, 0.2, 0.2, 0.2, False, T - 720_000))
    for i in range(60):
        counters.observe(message("blatant", f"stranger-{i}", T + i * 2_000, forward_count=int(i % 3 == 0)))
    # Two years old; answers five friends who wrote first, twenty messages over the last hours.
    counters.signal(Registered("ordinary", False, "3.2.0", 0.2, 0.2, 0.2, 0.2, False, T - 20_000 * 3_600_000))
    for i in range(20):
        counters.observe(message(f"friend-{i % 5}", "ordinary", T - 6 * 3_600_000 + i * 900_000))
        counters.observe(message("ordinary", f"friend-{i % 5}", T - 6 * 3_600_000 + i * 900_000 + 60_000))
    rows = [vector(counters.accounts[name], T + 20_000) for name in ("ordinary", "blatant")]
    low, high = shipped.score(np.array(rows))
    assert low < 0.1 < 0.5 < high


def test_threshold_at_a_false_positive_rate() -> None:
    legitimate = [i / 1000 for i in range(1000)]
    th = training.threshold_at(legitimate, 0.01)
    assert sum(s >= th for s in legitimate) == 10
    assert training.threshold_at(legitimate, 0.0) > 0.999


def test_observe_costs_a_few_microseconds() -> None:
    # The budget is 0.02 CPU-ms for the whole detector on a send (issue 14); this machine is shared, so the test
    # only guards against an order of magnitude (bench/safety.py measures it properly).
    assert observe_cost_ms(sends=20_000) < 0.2


def test_a_model_decision_names_the_reason_its_strongest_feature_gives(
    trained: tuple[Model, training.Dataset, set[int]],
) -> None:
    model, _, _ = trained
    detector = Detector(Counters(100, 64), model, {"throttle": 0.0}, {}, batch=10)  # every account gets a step
    for i in range(30):
        detector.observe(message("cold", f"stranger-{i}", T + i * 20_000))
        detector.observe(message("groupie", f"friend-{i % 3}", T + i * 20_000))
    detector.observe(Outbound(Action.GROUP_CREATE, "groupie", 1, False, "g", ("friend-0",), 1, T + 700_000))
    decisions = detector.score_dirty(T + 720_000)
    assert {d.account_id for d in decisions} == {"cold", "groupie"}
    for d in decisions:
        account = detector.counters.get(d.account_id)
        assert account is not None
        strongest = model.strongest(np.array([vector(account, T + 720_000)]))[0]
        assert (d.source, d.reason) == ("model", REASONS.get(strongest, ReasonCode.SPAM))


def test_the_relay_counts_every_send_only_with_the_detector_on(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'cove.db'}")
    on = build_relay(Settings(data_dir=tmp_path, secret_key="test", safety_score_interval_ms=250), engine)
    detector = of(on).detector
    assert detector is not None and detector.interval_ms == 250
    assert detector.check in on.outbound_checks and detector.hear in of(on).observers
    off = build_relay(Settings(data_dir=tmp_path, secret_key="test", safety_detector=False), engine)
    assert of(off).detector is None and of(off).observers == []
    with pytest.raises(ModelError, match="cannot read"):
        build_relay(Settings(data_dir=tmp_path, secret_key="test", safety_model_path=tmp_path / "none.txt"), engine)
    with pytest.raises(ValidationError):
        Settings(safety_thresholds={"nap": 0.5})
    with pytest.raises(ValidationError):
        Settings(safety_business_thresholds={"ban": 1.5})


def test_rows_of_small_populations_weigh_more_and_each_class_keeps_its_total() -> None:
    accounts = [_Labelled("big", False), _Labelled("small", False, population="admins"), _Labelled("bad", True)]
    owners = np.array([0] * 90 + [1] * 10 + [2] * 5, dtype=np.int32)
    labels = np.array([0] * 100 + [1] * 5, dtype=np.int8)
    data = training.Dataset(np.zeros((105, len(FEATURES)), np.float32), labels, owners, np.zeros(105, np.int64), ())
    weights = training.balanced(data, accounts)
    assert weights[:100].sum() == pytest.approx(100) and weights[100:].sum() == pytest.approx(5)
    assert weights[90] / weights[0] == pytest.approx(3.0)  # the square root of 90 rows against 10
