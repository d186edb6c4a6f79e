"""The simulator: accounts of overlapping legitimate and abusive populations and, in time order, everything
the relay's detector would see of them: :class:`cove.activity.Outbound` for each send, group create and add,
and :mod:`cove.safety.signals` records for registrations, blocks, reports and the parent's flags.

    simulation = simulate(load(), seed=7, accounts=20_000)
    labels = {a.account_id: a.abusive for a in simulation.accounts}
    for event in simulation.events(): ...

The stream is drawn a day at a time with numpy and turned into objects a slice at a time, so memory stays at
one day's columns however long the run. ``events()`` may be called again and yields the same stream: a run is
a pure function of the config and the seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from cove.activity import Action, Outbound
from cove.safety.signals import Blocked, ParentFlagged, Registered, Reported
from cove.safety.simulation import day
from cove.safety.simulation.config import Config
from cove.safety.simulation.world import DAY_MS, World, build

Event = Outbound | Registered | Blocked | Reported | ParentFlagged

_SLICE = 65_536  # events turned into objects at a time: bounds the Python objects alive at once
PARENT_REASON = "spam"
_GROUP_CHANGES = {day.GROUP_CREATE: Action.GROUP_CREATE, day.GROUP_ADD: Action.GROUP_ADD}


@dataclass(frozen=True, slots=True)
class Account:
    account_id: str
    population: str
    abusive: bool
    abuse_type: str | None  # e.g. "bulk", "evasive", "hijacked"; None for a legitimate account
    business: bool
    registered_at_ms: int  # before start_ms for an account older than the run


class Simulation:
    def __init__(self, world: World, seed: int) -> None:
        self.world = world
        self.seed = seed
        self.config: Config = world.config
        self.start_ms = world.start_ms
        self.end_ms = world.end_ms
        self.ids = [f"sim{i:07d}" for i in range(world.size)]
        populations = world.config.populations
        self.accounts = [
            Account(
                self.ids[i],
                populations[k].name,
                populations[k].abusive,
                populations[k].abuse_type or None,
                bool(world.business[i]),
                int(world.registered_ms[i]),
            )
            for i, k in enumerate(world.pop.tolist())
        ]

    def events(self) -> Iterator[Event]:
        """Every event of the run in time order (ties in a fixed order); registrations of accounts older than
        the run come first, at their own instants."""
        rng = np.random.default_rng([self.seed, 1])
        w = self.world
        old = np.flatnonzero(w.registered_ms < w.start_ms)
        yield from self._objects(self._world_events(old[np.argsort(w.registered_ms[old], kind="stable")]), [])
        next_group = len(w.group_sizes)
        pending: day.Columns | None = None
        for d in range(self.config.days):
            d0, d1 = w.start_ms + d * DAY_MS, w.start_ms + (d + 1) * DAY_MS
            cols, recipients, next_group = day.draw(w, rng, d0, d1, next_group)
            new = np.flatnonzero((w.registered_ms >= d0) & (w.registered_ms < d1))
            flagged = np.flatnonzero((w.parent_flag_ms >= d0) & (w.parent_flag_ms < d1))
            parts = [cols, self._world_events(new), self._world_events(flagged, day.PARENT_FLAGGED)]
            cols = day.concat(parts + ([pending] if pending is not None else []))
            # Answers and reactions may fall after the day: they wait for the next one (or past the end, never).
            later = cols["t"] >= d1
            pending = day.take(cols, np.flatnonzero(later))
            cols = day.take(cols, np.flatnonzero(~later))
            yield from self._objects(day.take(cols, np.argsort(cols["t"], kind="stable")), recipients)

    def _world_events(self, accounts: np.ndarray, kind: int = day.REGISTERED) -> day.Columns:
        w = self.world
        at = w.registered_ms if kind == day.REGISTERED else w.parent_flag_ms
        return day.columns(len(accounts), t=at[accounts], kind=kind, a=accounts)

    def _objects(self, cols: day.Columns, recipients: np.ndarray | list) -> Iterator[Event]:
        ids, w = self.ids, self.world
        business = w.business.tolist()
        for lo in range(0, len(cols["t"]), _SLICE):
            part = {name: cols[name][lo : lo + _SLICE].tolist() for name in day.COLUMNS}
            rows = zip(*(part[name] for name in day.COLUMNS), strict=True)
            for t, kind, a, b, members, forward, contact, attached, first, count in rows:
                if kind == day.MESSAGE:
                    peer = ids[b]
                    yield Outbound(Action.MESSAGE, ids[a], 1, business[a], peer, (peer,), 1, t, False, forward)
                elif kind == day.GROUP_MESSAGE:
                    yield Outbound(
                        Action.GROUP_MESSAGE, ids[a], 1, business[a], f"g{b}", (), members, t, False, forward
                    )
                elif kind in _GROUP_CHANGES:
                    added = tuple(ids[r] for r in recipients[first : first + count].tolist())
                    yield Outbound(_GROUP_CHANGES[kind], ids[a], 1, business[a], f"g{b}", added, members, t)
                elif kind == day.BLOCKED:
                    yield Blocked(ids[a], ids[b], bool(contact), t)
                elif kind == day.REPORTED:
                    yield Reported(ids[a], ids[b], bool(contact), attached, t)
                elif kind == day.REGISTERED:
                    yield self._registered(a, t)
                else:
                    yield ParentFlagged(ids[a], PARENT_REASON, t)

    def _registered(self, i: int, t: int) -> Registered:
        w = self.world
        number, range_, source, device = w.scores[i].tolist()
        version = self.config.client_versions[int(w.client[i])]
        return Registered(
            self.ids[i], bool(w.business[i]), version, number, range_, source, device, bool(w.challenged[i]), t
        )


def simulate(config: Config, seed: int, accounts: int | None = None) -> Simulation:
    """A run of ``accounts`` accounts (the config's number by default) over ``config.days`` days."""
    n = config.accounts if accounts is None else accounts
    if n < 2:
        raise ValueError("a simulation needs at least 2 accounts (someone to write to)")
    return Simulation(build(config, np.random.default_rng([seed, 0]), n), seed)
