"""A small hand-rolled event stream for the detector's tests, shaped like the simulator's (accounts with labels,
then Outbounds and signals in time order): people who mostly write to friends who answer, and spammers who
write to strangers who rarely answer and sometimes report them. The two overlap: some people are chatty with
strangers, some spammers are slow, so a model can rank them but not separate them perfectly."""

from __future__ import annotations

import random
from dataclasses import dataclass

from cove.activity import Action, Outbound
from cove.safety.signals import Registered, Reported, Signal

START_MS = 1_700_000_000_000


@dataclass(frozen=True)
class StreamAccount:
    account_id: str
    population: str
    abusive: bool
    abuse_type: str | None
    business: bool
    registered_at_ms: int
    abusive_from_ms: int | None = None


def message(sender: str, recipient: str, at_ms: int, *, forward_count: int = 0, business: bool = False) -> Outbound:
    return Outbound(Action.MESSAGE, sender, 1, business, recipient, (recipient,), 1, at_ms, forward_count=forward_count)


def stream(
    people: int, spammers: int, seed: int, hours: int = 3
) -> tuple[list[StreamAccount], list[Outbound | Signal]]:
    rng = random.Random(seed)

    def registered(new_share: float) -> int:
        if rng.random() < new_share:
            return START_MS + rng.randrange(0, 3_600_000)
        return START_MS - rng.randrange(3_600_000, 3_600_000 * 24 * 365)

    accounts = [StreamAccount(f"p{i}", "ordinary", False, None, False, registered(0.2)) for i in range(people)] + [
        StreamAccount(f"s{i}", "spammer", True, "bulk", False, registered(0.7)) for i in range(spammers)
    ]
    events: list[tuple[int, int, Outbound | Signal]] = []
    order = 0

    def add(event: Outbound | Signal) -> None:
        nonlocal order
        events.append((event.at_ms, order, event))
        order += 1

    for a in accounts:
        bad = a.abusive
        add(Registered(a.account_id, False, "cove/1.4.0", rng.betavariate(2, 5 if not bad else 3), 0.1, 0.1, 0.1,
                       False, a.registered_at_ms))  # fmt: skip
        friends = [f"p{rng.randrange(people)}" for _ in range(rng.randint(2, 8))]
        sends = rng.randint(3, 30) if not bad else rng.randint(10, 120)
        cold = rng.random() * (0.3 if not bad else 1.0)
        gap_ms = rng.uniform(20_000, 120_000) if not bad else rng.uniform(10_000, 60_000)
        t = max(a.registered_at_ms, START_MS) + rng.randrange(0, 3_600_000)
        for _ in range(sends):
            t += int(rng.expovariate(1 / gap_ms))
            if t > START_MS + hours * 3_600_000:
                break
            if rng.random() < cold:
                peer = f"x{rng.randrange(10_000_000)}"  # a stranger
                if rng.random() < (0.02 if not bad else 0.05):
                    add(Reported(peer, a.account_id, False, 0, t + 60_000))
            else:
                peer = rng.choice(friends)
                add(message(peer, a.account_id, t + 30_000))  # friends answer
            add(message(a.account_id, peer, t))
    events.sort(key=lambda e: (e[0], e[1]))
    return accounts, [e for _, _, e in events]
