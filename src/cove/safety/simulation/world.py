"""The accounts of a simulation and what stays fixed about them for the whole run: population, registration,
address book, groups, activity level, how recipients take their messages. Drawn once, as numpy columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cove.safety.simulation.config import Config, Population

DAY_MS = 86_400_000


@dataclass(frozen=True)
class World:
    """Column i of every array is account i; ``pop`` indexes ``config.populations``."""

    config: Config
    pop: np.ndarray  # int16
    business: np.ndarray  # bool
    registered_ms: np.ndarray  # int64
    abuse_from_ms: np.ndarray  # int64: end of warm-up; no stranger sessions or bursts before it
    once_ms: np.ndarray  # int64: the one burst of a burst_once population (a take-over), else -1
    sessions_per_day: np.ndarray  # float64: the account's own activity level
    reaction: np.ndarray  # float64: multiplier of recipients' block and report probabilities
    contact_offsets: np.ndarray  # int64, N + 1: account i's contacts are contacts[off[i]:off[i + 1]]
    contacts: np.ndarray  # int32
    group_offsets: np.ndarray  # int64, N + 1: account i's groups are group ids off[i] .. off[i + 1] - 1
    group_sizes: np.ndarray  # int32: members of each group, the account included
    scores: np.ndarray  # float64, N x 4: number, range, source, device reputation (0 good .. 1 bad)
    client: np.ndarray  # int16: index into config.client_versions
    challenged: np.ndarray  # bool
    parent_flag_ms: np.ndarray  # int64, -1 when never flagged

    @property
    def size(self) -> int:
        return len(self.pop)

    @property
    def start_ms(self) -> int:
        return self.config.start_ms

    @property
    def end_ms(self) -> int:
        return self.config.start_ms + self.config.days * DAY_MS

    def column(self, name: str, index: int | None = None) -> np.ndarray:
        """A population parameter as a per-account column (``column("to_stranger")[i]`` for account i);
        ``index`` picks one number of a pair (``column("burst_size", 1)`` is each account's sigma)."""
        values = [getattr(p, name) if index is None else getattr(p, name)[index] for p in self.config.populations]
        return np.array(values, dtype=np.float64)[self.pop]


def build(config: Config, rng: np.random.Generator, n: int) -> World:
    populations = config.populations
    pop = _assign(rng, [p.share for p in populations], n)
    per = [np.flatnonzero(pop == k) for k in range(len(populations))]

    def draw(fn) -> np.ndarray:
        """One value per account, each population's accounts drawn with its own parameters."""
        out = np.empty(n)
        for p, idx in zip(populations, per, strict=True):
            out[idx] = fn(p, len(idx))
        return out

    start, end = config.start_ms, config.start_ms + config.days * DAY_MS
    business = draw(lambda p, k: rng.random(k) < p.business).astype(bool)
    age = draw(lambda p, k: rng.uniform(p.age_days[0], p.age_days[1], k))
    registered = (start - age * DAY_MS).astype(np.int64)
    warmup = draw(lambda p, k: rng.uniform(p.warmup_days[0], p.warmup_days[1], k))
    abuse_from = registered + (warmup * DAY_MS).astype(np.int64)
    once = draw(lambda p, k: rng.uniform(start, end, k) if p.burst_once else np.full(k, -1.0)).astype(np.int64)
    once = np.where(once >= 0, np.maximum(once, abuse_from), -1)
    activity = draw(lambda p, k: _lognormal(rng, p.sessions_per_day, k))
    reaction = draw(lambda p, k: rng.lognormal(0.0, p.reaction_sigma, k) if p.reaction_sigma else np.ones(k))

    degree = draw(lambda p, k: _lognormal(rng, p.contacts, k)).round().astype(np.int64)
    legitimate = np.flatnonzero(~np.array([p.abusive for p in populations])[pop])
    pools = [per[k] if p.contacts_from == "own" else legitimate for k, p in enumerate(populations)]
    contact_offsets, contacts = _address_books(rng, pop, degree, pools)

    can_group = ~business
    n_groups = np.where(can_group, draw(lambda p, k: rng.poisson(p.groups, k)), 0).astype(np.int64)
    group_offsets = np.concatenate([[0], np.cumsum(n_groups)])
    owner = np.repeat(np.arange(n), n_groups)
    group_sizes = _sizes(rng, [populations[k].group_size for k in pop[owner]], 2)

    scores = np.empty((n, 4))
    client = np.empty(n, dtype=np.int16)
    for p, idx in zip(populations, per, strict=True):
        scores[idx] = _registration(rng, p, len(idx))
        client[idx] = rng.choice(len(config.client_versions), size=len(idx), p=np.array(p.clients))
    challenged = scores.max(axis=1) > config.challenge_above

    flagged = draw(lambda p, k: rng.random(k) < p.parent_flag).astype(bool)
    flag_at = rng.uniform(np.maximum(registered, start), end).astype(np.int64)
    parent_flag_ms = np.where(flagged, flag_at, -1)
    return World(
        config,
        pop,
        business,
        registered,
        abuse_from,
        once,
        activity,
        reaction,
        contact_offsets,
        contacts,
        group_offsets,
        group_sizes,
        scores,
        client,
        challenged,
        parent_flag_ms,
    )


def _assign(rng: np.random.Generator, shares: list[float], n: int) -> np.ndarray:
    """Exactly round(share * n) accounts per population (the largest takes the rounding), in random order so
    that an account's id says nothing of its population."""
    counts = np.floor(np.array(shares) * n).astype(np.int64)
    counts[int(np.argmax(shares))] += n - counts.sum()
    return rng.permutation(np.repeat(np.arange(len(shares), dtype=np.int16), counts))


def _lognormal(rng: np.random.Generator, median_sigma: tuple[float, float], k: int) -> np.ndarray:
    median, sigma = median_sigma
    return rng.lognormal(np.log(median), sigma, k) if sigma else np.full(k, median)


def _sizes(rng: np.random.Generator, params: list[tuple[float, float]], lowest: int) -> np.ndarray:
    """One log-normal size per entry, at least ``lowest`` and at most a large group (1024 members)."""
    if not params:
        return np.zeros(0, dtype=np.int32)
    medians, sigmas = np.array(params).T
    values = np.exp(np.log(medians) + sigmas * rng.standard_normal(len(params)))
    return np.clip(values.round(), lowest, 1024).astype(np.int32)


def _address_books(
    rng: np.random.Generator, pop: np.ndarray, degree: np.ndarray, pools: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Contacts drawn uniformly from each population's pool: no community structure, which is how Sybils
    look to a graph defence (Yang et al. 2014) and the simplest assumption for everyone else."""
    n = len(pop)
    degree = np.clip(degree, 0, np.array([max(len(p) - 1, 0) for p in pools])[pop])
    offsets = np.concatenate([[0], np.cumsum(degree)])
    contacts = np.empty(offsets[-1], dtype=np.int32)
    owners = np.repeat(np.arange(n), degree)
    for k, pool in enumerate(pools):
        rows = np.flatnonzero(pop[owners] == k)
        if len(rows):
            picked = pool[rng.integers(0, len(pool), len(rows))]
            # Oneself is never one's own contact: take the next account of the pool instead.
            own = picked == owners[rows]
            picked[own] = pool[(np.searchsorted(pool, picked[own]) + 1) % len(pool)]
            contacts[rows] = picked
    return offsets, contacts


def _registration(rng: np.random.Generator, p: Population, k: int) -> np.ndarray:
    """The four scores, correlated through one draw: a blatant registration is bad on every signal."""
    r = p.registration
    blatant = rng.random(k) < r.blatant
    usual = rng.beta(r.usual[0], r.usual[1], (k, 4))
    bad = rng.beta(r.blatant_beta[0], r.blatant_beta[1], (k, 4))
    return np.where(blatant[:, None], bad, usual)
