"""The safety simulator: a stream in time order that only its seed decides, config errors that name the key,
and, above all, populations that overlap: a simulator whose abusers separate perfectly from everyone else would
make any detector look perfect (reference v1 of the design gave AUC 1.000), so each abuse type must have a
legitimate population that looks like it on the strongest features."""

from __future__ import annotations

import re
from collections import defaultdict, deque
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import rankdata

from cove.activity import Action, Outbound
from cove.safety.signals import Blocked, ParentFlagged, Registered, Reported
from cove.safety.simulation.config import ConfigError, default_path, load, parse
from cove.safety.simulation.generator import Simulation, simulate

ACCOUNTS = 30_000  # 300 abusers: enough for an AUC to two decimals per abuse type, a few seconds to draw
PROFILE = (
    "sends",
    "burst_15s",
    "recipients",
    "stranger_share",
    "unanswered_share",
    "groups_created",
    "members_added",
    "forward_share",
    "blocks_from_strangers",
    "reports_from_strangers",
    "complaints_per_stranger",
    "age_hours",
    "worst_score",
    "client",
    "parent_flagged",
)


@pytest.fixture(scope="module")
def config():
    return load()


@pytest.fixture(scope="module")
def simulation(config) -> Simulation:
    return simulate(config, seed=11, accounts=ACCOUNTS)


@pytest.fixture(scope="module")
def profiles(simulation) -> np.ndarray:
    return profile(simulation)


def profile(simulation: Simulation) -> np.ndarray:
    """One row per account of what a detector could know by the end of the run (the PROFILE columns): the
    whole-run version of the detector's features, computed here independently of it."""
    index = {a.account_id: i for i, a in enumerate(simulation.accounts)}
    n = len(index)
    rows = np.zeros((n, len(PROFILE)))
    col = {name: k for k, name in enumerate(PROFILE)}
    wrote_to: list[dict[int, bool]] = [{} for _ in range(n)]  # peer -> the peer had written first
    answered = [set() for _ in range(n)]
    forwards = np.zeros(n)
    recent: dict[int, deque[int]] = defaultdict(deque)
    versions = simulation.config.client_versions
    for event in simulation.events():
        if isinstance(event, Outbound):
            i = index[event.sender]
            rows[i, col["sends"]] += event.action in (Action.MESSAGE, Action.GROUP_MESSAGE)
            forwards[i] += event.forward_count > 0
            if event.action == Action.MESSAGE:
                j = index[event.chat]
                if j not in wrote_to[i]:
                    wrote_to[i][j] = i in wrote_to[j]
                if i in wrote_to[j]:
                    answered[j].add(i)
                times = recent[i]
                times.append(event.at_ms)
                while times[0] < event.at_ms - 15_000:
                    times.popleft()
                rows[i, col["burst_15s"]] = max(rows[i, col["burst_15s"]], len(times))
            elif event.action == Action.GROUP_CREATE:
                rows[i, col["groups_created"]] += 1
                rows[i, col["members_added"]] += len(event.recipients)
            elif event.action == Action.GROUP_ADD:
                rows[i, col["members_added"]] += len(event.recipients)
        elif isinstance(event, Registered):
            i = index[event.account_id]
            rows[i, col["worst_score"]] = max(
                event.number_score, event.range_score, event.source_score, event.device_score
            )
            rows[i, col["client"]] = versions.index(event.client_version)
        elif isinstance(event, Blocked | Reported):
            name = "blocks_from_strangers" if isinstance(event, Blocked) else "reports_from_strangers"
            blamed = index[event.blocked if isinstance(event, Blocked) else event.subject]
            rows[blamed, col[name]] += not event.contact
        elif isinstance(event, ParentFlagged):
            rows[index[event.account_id], col["parent_flagged"]] = 1
    for i, account in enumerate(simulation.accounts):
        peers = wrote_to[i]
        strangers = [p for p, first in peers.items() if not first]
        rows[i, col["recipients"]] = len(peers)
        rows[i, col["stranger_share"]] = len(strangers) / len(peers) if peers else 0.0
        rows[i, col["unanswered_share"]] = (
            sum(p not in answered[i] for p in strangers) / len(strangers) if strangers else 0.0
        )
        sends = rows[i, col["sends"]]
        rows[i, col["forward_share"]] = forwards[i] / sends if sends else 0.0
        complaints = rows[i, col["blocks_from_strangers"]] + rows[i, col["reports_from_strangers"]]
        rows[i, col["complaints_per_stranger"]] = complaints / max(1, len(strangers))
        rows[i, col["age_hours"]] = (simulation.end_ms - account.registered_at_ms) / 3_600_000
    return rows


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """The chance a random positive scores above a random negative (ties count half)."""
    ranks = rankdata(scores)
    p = positive.sum()
    q = len(positive) - p
    return float((ranks[positive].sum() - p * (p + 1) / 2) / (p * q))


def logistic(x: np.ndarray, y: np.ndarray, ridge: float = 1e-3, steps: int = 30) -> np.ndarray:
    """Weights of an L2-regularised logistic regression by Newton's method (x has a column of ones)."""
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-np.clip(x @ w, -30, 30)))
        gradient = x.T @ (p - y) + ridge * w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + ridge * np.eye(x.shape[1])
        w -= np.linalg.solve(hessian, gradient)
    return w


def shallow_auc(rows: np.ndarray, positive: np.ndarray, seed: int = 0) -> float:
    """AUC on held-out halves of a linear model of the log-scaled profile: trained on one half, scored on the
    other, both ways."""
    x = np.log1p(np.maximum(rows, 0))
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-9)
    x = np.hstack([x, np.ones((len(x), 1))])
    half = np.random.default_rng(seed).random(len(x)) < 0.5
    scores = np.empty(len(x))
    for train in (half, ~half):
        w = logistic(x[train], positive[train].astype(float))
        scores[~train] = x[~train] @ w
    return auc(scores, positive)


def test_every_abuse_type_has_a_legitimate_look_alike(simulation, profiles):
    populations = np.array([a.population for a in simulation.accounts])
    types = np.array([a.abuse_type or "" for a in simulation.accounts])
    legitimate = sorted({a.population for a in simulation.accounts if not a.abusive})
    report = {}
    for abuse in simulation.config.abuse_types:
        closest = {}
        for name in legitimate:
            pair = (types == abuse) | (populations == name)
            positive = types[pair] == abuse
            rows = profiles[pair]
            single = max(max(a, 1 - a) for a in (auc(rows[:, k], positive) for k in range(rows.shape[1])))
            closest[name] = (single, shallow_auc(rows, positive))
        report[abuse] = closest
        best = min(closest, key=lambda name: closest[name][1])
        single, shallow = closest[best]
        assert single < 0.99 and shallow < 0.9995, f"{abuse} separates from every legitimate population: {closest}"
    # And the run is not trivial either: each abuse type differs from ordinary users somewhere.
    for abuse, closest in report.items():
        assert closest["ordinary"][1] > 0.7, f"{abuse} looks exactly like ordinary users: {closest['ordinary']}"


def test_the_stream_is_in_time_order_and_only_names_simulated_accounts(simulation):
    ids = {a.account_id for a in simulation.accounts}
    last = None
    seen = defaultdict(int)
    for event in simulation.events():
        assert last is None or event.at_ms >= last
        last = event.at_ms
        seen[type(event).__name__ if not isinstance(event, Outbound) else event.action] += 1
        if isinstance(event, Outbound):
            assert event.sender in ids and set(event.recipients) <= ids and not event.receipt
            assert event.sender not in event.recipients
            if event.action == Action.MESSAGE:
                assert event.recipients == (event.chat,) and event.members == 1
            if event.action == Action.GROUP_CREATE:
                assert event.members == len(event.recipients) > 0
    assert seen["Registered"] == len(ids)
    for kind in (*Action, "Blocked", "Reported", "ParentFlagged"):
        assert seen[kind] > 0, f"no {kind} in the run"
    assert last < simulation.end_ms


def test_shares_and_labels_follow_the_config(simulation, config):
    accounts = simulation.accounts
    abusive = sum(a.abusive for a in accounts) / len(accounts)
    assert abusive == pytest.approx(sum(p.share for p in config.populations if p.abusive), abs=1e-3)
    for a in accounts:
        assert (a.abuse_type is not None) == a.abusive
    businesses = [a for a in accounts if a.population == "small_businesses"]
    assert businesses and all(a.business for a in businesses)
    new = [a for a in accounts if a.registered_at_ms >= simulation.start_ms]
    assert {a.population for a in new} >= {"new_users", "bulk_bots"}


def test_the_same_seed_gives_the_same_run_and_another_seed_another(config):
    def fingerprint(seed: int) -> list:
        run = simulate(config, seed=seed, accounts=300)
        return [a for a in run.accounts] + list(run.events())

    first = fingerprint(3)
    assert first == fingerprint(3)
    assert first != fingerprint(4)


def test_events_can_be_read_twice(config):
    run = simulate(config, seed=5, accounts=200)
    assert list(run.events()) == list(run.events())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("share = 0.900", "share = 0.950"), "shares must sum to 1"),
        (("share = 0.900", "share = 1.2"), "populations.ordinary.share: must be between 0 and 1"),
        (("gap_s = 40\n", "gap_s = -4\n"), "populations.ordinary.gap_s: cannot be negative"),
        (("gap_s = 40\n", 'gap_s = "fast"\n'), "populations.ordinary.gap_s: must be a finite number"),
        (("contacts = [80, 0.7]", "contacts = [80]"), "populations.ordinary.contacts: must be two numbers"),
        (("contacts = [80, 0.7]", "contacts = [0, 0.7]"), "populations.ordinary.contacts: a log-normal"),
        (('abuse_type = "bulk"', 'abuse_type = ""'), "populations.bulk_bots.abuse_type"),
        (("clients = [0.72, 0.2, 0.075, 0.005]", "clients = [1.0]"), "populations.ordinary.clients"),
        (("warmup_days = [1, 5]", "warmup_days = [5, 1]"), "populations.evasive_spammers.warmup_days"),
        (("age_days = [-1, 14]", "age_days = [-3, 14]"), "populations.new_users.age_days"),
        (("days = 1 ", "days = 0 "), "days and accounts must be at least 1"),
        (("reaction_sigma = 0.8\n", "reaction_sigma = 0.8\nreacton = 1\n"), "reacton: unknown key"),
        (("parent_flag = 0.0002\n", "\n"), "populations.community_admins.parent_flag: missing"),
        (("[replies]", "[answers]"), "[replies] is missing"),
        (("registration = { blatant = 0.002,", "registration = { blatant = true,"), "blatant: must be a finite"),
        (("burst_once = false", "burst_once = 0"), "burst_once: must be true or false"),
        (('contacts_from = "legitimate"', 'contacts_from = "all"'), "contacts_from: must be"),
        (("[simulation]", "[simulation"), "not TOML"),
    ],
)
def test_a_bad_file_names_the_key_and_the_rule(change, message):
    text = default_path().read_text()
    old, new = change
    assert old in text, f"the test's anchor {old!r} is no longer in populations.toml"
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse(text.replace(old, new, 1))


def test_a_missing_file_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "nowhere.toml")


def test_the_shipped_file_has_every_population_of_the_issue_and_signals_carry_no_content():
    config = load()
    assert {p.abuse_type for p in config.populations if p.abusive} == {"bulk", "evasive", "hijacked"}
    assert {"ordinary", "new_users", "community_admins", "small_businesses"} <= {p.name for p in config.populations}
    # The signals carry only identifiers, numbers and instants: the simulator can put nothing else in them.
    for record in (Registered, Blocked, Reported, ParentFlagged):
        assert {f.type for f in fields(record)} <= {"str", "bool", "float", "int"}


def test_a_two_day_run_stays_in_time_order_and_acts_on_both_days():
    text = default_path().read_text().replace("days = 1 ", "days = 2 ", 1)
    run = simulate(parse(text), seed=2, accounts=400)
    midnight = run.start_ms + 86_400_000
    times = [event.at_ms for event in run.events()]
    assert times == sorted(times)
    assert run.end_ms == run.start_ms + 2 * 86_400_000 and times[-1] < run.end_ms
    assert sum(t >= midnight for t in times) > 0.3 * sum(run.start_ms <= t < midnight for t in times)
