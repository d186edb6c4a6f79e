"""Examples for the model from a stream of events: the simulator's (cove.safety.simulation) or any other.

The stream is replayed through the same counters and features the relay runs (cove.safety.counters,
cove.safety.features), so the model learns from exactly what it will see. An account yields a row after each
of its first few acts (CHECKPOINTS: the detector must judge early, before a bulk sender has sent much) and at
the end of every hour in which it acted. A row is an example of abuse only from when the account is the abuser's
(``abusive_from_ms``): a hijacked account's rows before its take-over are its honest owner's, and an evasive
spammer's warm-up looks like anyone's; labelled abusive, they taught the trees old accounts' ages by heart
(ordinary accounts scored above 0.99). Accounts, not rows, are split between training and evaluation, so no
account is judged by a model that saw it.

:func:`evaluate` measures the way the relay acts: an account is acted on the first time one of its rows
crosses the threshold or meets a rule (cove.safety.rules), and the threshold is the lowest score that keeps the
share of legitimate accounts ever acted on at the false-positive rate asked for. ``cove safety train`` and
bench/safety.py both report it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from cove.activity import Outbound
from cove.safety import rules
from cove.safety.counters import Account, Counters
from cove.safety.features import FEATURES, vector
from cove.safety.model import Model, train
from cove.safety.signals import Signal

# Days each simulated run lasts when training and measuring. On the first day the counters, like a relay's
# just started, know no one's contacts (every first message looks cold) and the last accounts to register have
# only hours left; a second day shows how accounts behave once known (on 20,000 accounts, recall at a
# false-positive rate of 1e-3 rose from 0.70 to 0.83: bulk 0.85 -> 1.00, evasive 0.54 -> 0.61, hijacked
# 0.57 -> 0.73). The parameter file's ``days`` stays the detector's deadline to act within.
DAYS = 2
CHECKPOINTS = frozenset({1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000})
HOUR_MS = 3_600_000


class Labelled(Protocol):
    """One simulated account (cove.safety.simulation.generator's accounts have these fields)."""

    account_id: str
    abusive: bool
    abusive_from_ms: int | None  # from when an abusive account is the abuser's (None: always)


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
    at_array = np.array(taken, dtype=np.int64)
    return Dataset(
        rows=np.array(rows, dtype=np.float32).reshape(len(rows), len(FEATURES)),
        labels=(at_array >= abusive_since(accounts)[owner_array]).astype(np.int8),
        owners=owner_array,
        at_ms=at_array,
        account_ids=tuple(a.account_id for a in accounts),
    )


def abusive_since(accounts: Sequence[Labelled]) -> np.ndarray:
    """Per account, the instant from which its acts are abuse: never for a legitimate account."""
    never, always = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    return np.array(
        [(always if a.abusive_from_ms is None else a.abusive_from_ms) if a.abusive else never for a in accounts],
        dtype=np.int64,
    )


def split(dataset: Dataset, evaluation: float, seed: int) -> tuple[Dataset, Dataset]:
    """(training, evaluation): each account's rows all on one side, ``evaluation`` of the accounts on the second."""
    held = np.random.default_rng(seed).random(len(dataset.account_ids)) < evaluation
    mask = held[dataset.owners]
    return dataset.subset(~mask), dataset.subset(mask)


def fit(dataset: Dataset, accounts: Sequence[Described], seed: int = 0) -> Model:
    return train(dataset.rows, dataset.labels, seed=seed, weights=balanced(dataset, accounts))


def balanced(dataset: Dataset, accounts: Sequence[Described]) -> np.ndarray:
    """Row weights that bring each population (each abuse type, among abusive rows) towards the same total
    within its class, by the square root of its shortfall, each class keeping its total. Ordinary users write
    nine rows in ten: unweighted, the trees spent their splits on them, and the few admins and new users who
    look like spammers took all the false positives (on two pairs of 20,000-account runs the worst legitimate
    population flagged at 1e-3 fell from 1.5 % and 1.7 % to 1.3 % with these weights, recall at 1e-4 rose from
    0.70 and 0.78 to 0.74 and 0.82; full weights, not their square root, lost recall at 1e-4)."""
    group = np.array([a.abuse_type or a.population for a in accounts])[dataset.owners]
    weights = np.ones(len(dataset))
    for cls in (0, 1):
        mine = dataset.labels == cls
        names, counts = np.unique(group[mine], return_counts=True)
        for name, count in zip(names.tolist(), counts.tolist(), strict=True):
            weights[mine & (group == name)] = (mine.sum() / (len(names) * count)) ** 0.5
        if mine.any():
            weights[mine] *= mine.sum() / weights[mine].sum()
    return weights


def account_scores(model: Model, dataset: Dataset) -> dict[int, float]:
    """Each account's highest score over its rows: the detector acts the first time an account crosses a line."""
    scores = model.score(dataset.rows)
    best = np.full(len(dataset.account_ids), -1.0)
    np.maximum.at(best, dataset.owners, scores)
    return {int(i): float(best[i]) for i in np.flatnonzero(best >= 0)}


def threshold_at(legitimate: Sequence[float], false_positive_rate: float, already: int = 0) -> float:
    """The lowest score that flags at most ``false_positive_rate`` of the legitimate accounts, ``already`` of
    which something else (a rule) flags whatever their score: inf when those alone are too many."""
    if not legitimate and not already:
        raise ValueError("no legitimate account to measure false positives on")
    room = int(false_positive_rate * (len(legitimate) + already)) - already
    if room < 0:
        return math.inf
    ordered = np.sort(np.asarray(legitimate, dtype=np.float64))[::-1]
    return float(np.nextafter(ordered[room], np.inf)) if room < len(ordered) else -math.inf


@dataclass(frozen=True)
class Evaluation:
    """How a model does on accounts it did not learn from, at each false-positive rate asked for. Only accounts
    with a row (that acted at least once) are counted."""

    accounts: int
    thresholds: dict[float, float]  # false-positive rate -> the score that keeps to it
    recall: dict[float, dict[str, float]]  # ... -> {"all" or abuse type: share of those abusers acted on}
    flagged: dict[float, dict[str, float]]  # ... -> {legitimate population: share of its accounts acted on}
    first_action: dict[float, dict[int, int]]  # ... -> {account index: the row at which it was first acted on}
    legitimate_ruled: int  # legitimate accounts a rule fires on, whatever the threshold


def evaluate(model: Model, held: Dataset, accounts: Sequence[Described], rates: Sequence[float]) -> Evaluation:
    """Act on each account the first time a row of it meets a rule or reaches the threshold, as the relay does.
    An action on an abusive account before it is the abuser's (a hijacked account before its take-over) falls
    on its honest owner: it catches no one, and the account counts as missed unless acted on again later."""
    scores = model.score(held.rows)
    ruled = np.fromiter((rules.matched(row.tolist()) is not None for row in held.rows), bool, len(held))
    n = len(held.account_ids)
    abusive = np.array([a.abusive for a in accounts], dtype=bool)
    present = np.zeros(n, dtype=bool)
    present[held.owners] = True
    legitimate = present & ~abusive
    best = np.full(n, -np.inf)
    np.maximum.at(best, held.owners, scores)
    ever_ruled = np.zeros(n, dtype=bool)
    ever_ruled[held.owners[ruled]] = True
    counted = held.labels.astype(bool) | ~abusive[held.owners]
    order = np.argsort(held.at_ms, kind="stable")
    groups: dict[str, list[int]] = {}
    for i in np.flatnonzero(present).tolist():
        a = accounts[i]
        groups.setdefault(a.abuse_type or a.population, []).append(i)
    arrays = {k: np.array(v) for k, v in sorted(groups.items())}
    every_abuser = np.flatnonzero(present & abusive)
    thresholds, recall, flagged, first_action = {}, {}, {}, {}
    for rate in rates:
        line = thresholds[rate] = threshold_at(
            best[legitimate & ~ever_ruled].tolist(), rate, int((legitimate & ever_ruled).sum())
        )
        acted = (ruled | (scores >= line)) & counted
        rows = order[acted[order]]
        owners, first = np.unique(held.owners[rows], return_index=True)
        first_action[rate] = dict(zip(owners.tolist(), rows[first].tolist(), strict=True))
        hit = np.zeros(n, dtype=bool)
        hit[owners] = True
        recall[rate] = {"all": _share(hit, every_abuser)} | {
            k: _share(hit, v) for k, v in arrays.items() if abusive[v[0]]
        }
        flagged[rate] = {k: _share(hit, v) for k, v in arrays.items() if not abusive[v[0]]}
    return Evaluation(
        int(present.sum()), thresholds, recall, flagged, first_action, int((legitimate & ever_ruled).sum())
    )


def _share(hit: np.ndarray, members: np.ndarray) -> float:
    return float(hit[members].mean()) if len(members) else math.nan
