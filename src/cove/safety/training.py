"""Examples for the model from a stream of events: the simulator's (cove.safety.simulation) or any other.

The stream is replayed through the same counters and features the relay runs (cove.safety.counters,
cove.safety.features), so the model learns from exactly what it will see. An account yields a row after each
of its first few acts (CHECKPOINTS: the detector must judge early, before a bulk sender has sent much) and at
the end of every hour in which it acted; each row carries the account's label. Accounts, not rows, are split
between training and evaluation, so no account is judged by a model that saw it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from cove.activity import Outbound
from cove.safety.counters import Account, Counters
from cove.safety.features import FEATURES, vector
from cove.safety.model import Model, train
from cove.safety.signals import Signal

CHECKPOINTS = frozenset({1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000})
HOUR_MS = 3_600_000


class Labelled(Protocol):
    """One simulated account (cove.safety.simulation.generator's accounts have these fields)."""

    account_id: str
    abusive: bool


class Described(Labelled, Protocol):
    population: str
    abuse_type: str | None


@dataclass(frozen=True)
class Dataset:
    rows: np.ndarray  # float32, one row of FEATURES per checkpoint
    labels: np.ndarray  # 1 abusive, 0 legitimate, per row
    owners: np.ndarray  # the index in ``account_ids`` of each row's account
    at_ms: np.ndarray  # when each row was taken
    account_ids: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, mask: np.ndarray) -> Dataset:
        return Dataset(self.rows[mask], self.labels[mask], self.owners[mask], self.at_ms[mask], self.account_ids)


def replay(
    accounts: Sequence[Labelled],
    events: Iterable[Outbound | Signal],
    *,
    max_peers: int = 128,
    progress: Callable[[int, int], None] | None = None,
) -> Dataset:
    """Run ``events`` (in time order) through fresh counters and take a row of features at each checkpoint of
    each labelled account. ``progress`` hears the number of events replayed and the instant reached, every
    10,000 events."""
    index = {a.account_id: i for i, a in enumerate(accounts)}
    label = [int(a.abusive) for a in accounts]
    counters = Counters(max_accounts=len(accounts) + 1, max_peers=max_peers)
    acts = [0] * len(accounts)
    rows: list[list[float]] = []
    owners: list[int] = []
    taken: list[int] = []
    active: dict[int, Account] = {}  # accounts that acted in the current hour
    hour_end = None
    replayed = 0

    def take(i: int, account: Account, at_ms: int) -> None:
        rows.append(vector(account, at_ms))
        owners.append(i)
        taken.append(at_ms)

    for event in events:
        at_ms = event.at_ms
        if hour_end is None:
            hour_end = (at_ms // HOUR_MS + 1) * HOUR_MS
        while at_ms >= hour_end:
            for i, account in active.items():
                take(i, account, hour_end)
            active.clear()
            hour_end += HOUR_MS
        account = counters.observe(event) if isinstance(event, Outbound) else counters.signal(event)
        replayed += 1
        if progress is not None and replayed % 10_000 == 0:
            progress(replayed, at_ms)
        if account is None:
            continue
        i = index.get(account.account_id)
        if i is None:
            continue  # someone outside the labelled population (a recipient the stream did not describe)
        acts[i] += 1
        active[i] = account
        if acts[i] in CHECKPOINTS:
            take(i, account, at_ms)
    if hour_end is not None:
        for i, account in active.items():
            take(i, account, hour_end)
    owner_array = np.array(owners, dtype=np.int32)
    return Dataset(
        rows=np.array(rows, dtype=np.float32).reshape(len(rows), len(FEATURES)),
        labels=np.array(label, dtype=np.int8)[owner_array] if owners else np.zeros(0, dtype=np.int8),
        owners=owner_array,
        at_ms=np.array(taken, dtype=np.int64),
        account_ids=tuple(a.account_id for a in accounts),
    )


def split(dataset: Dataset, evaluation: float, seed: int) -> tuple[Dataset, Dataset]:
    """(training, evaluation): each account's rows all on one side, ``evaluation`` of the accounts on the second."""
    held = np.random.default_rng(seed).random(len(dataset.account_ids)) < evaluation
    mask = held[dataset.owners]
    return dataset.subset(~mask), dataset.subset(mask)


def fit(dataset: Dataset, seed: int = 0) -> Model:
    return train(dataset.rows, dataset.labels, seed=seed)


def account_scores(model: Model, dataset: Dataset) -> dict[int, float]:
    """Each account's highest score over its rows: the detector acts the first time an account crosses a line."""
    scores = model.score(dataset.rows)
    best = np.full(len(dataset.account_ids), -1.0)
    np.maximum.at(best, dataset.owners, scores)
    return {int(i): float(best[i]) for i in np.flatnonzero(best >= 0)}


def threshold_at(legitimate: Sequence[float], false_positive_rate: float) -> float:
    """The lowest score that flags at most ``false_positive_rate`` of the legitimate accounts."""
    if not legitimate:
        raise ValueError("no legitimate account to measure false positives on")
    ordered = np.sort(np.asarray(legitimate))[::-1]
    allowed = int(false_positive_rate * len(ordered))
    return float(np.nextafter(ordered[allowed], np.inf)) if allowed < len(ordered) else 0.0


@dataclass(frozen=True)
class Evaluation:
    """How a model does on accounts it did not learn from, at each false-positive rate asked for."""

    accounts: int
    thresholds: dict[float, float]  # false-positive rate -> the score that keeps to it
    recall: dict[float, dict[str, float]]  # ... -> {"all" or abuse type: share of those abusers flagged}
    flagged: dict[float, dict[str, float]]  # ... -> {legitimate population: share of its accounts flagged}


def evaluate(model: Model, held: Dataset, accounts: Sequence[Described], rates: Sequence[float]) -> Evaluation:
    scores = account_scores(model, held)
    legitimate = [s for i, s in scores.items() if not accounts[i].abusive]
    thresholds, recall, flagged = {}, {}, {}
    for rate in rates:
        line = thresholds[rate] = threshold_at(legitimate, rate)
        hits: dict[str, list[bool]] = {}
        misses: dict[str, list[bool]] = {}
        for i, score in scores.items():
            a = accounts[i]
            groups = ("all", a.abuse_type or a.population) if a.abusive else (a.population,)
            for group in groups:
                (hits if a.abusive else misses).setdefault(group, []).append(score >= line)
        recall[rate] = {k: sum(v) / len(v) for k, v in sorted(hits.items())}
        flagged[rate] = {k: sum(v) / len(v) for k, v in sorted(misses.items())}
    return Evaluation(len(scores), thresholds, recall, flagged)
