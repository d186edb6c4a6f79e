"""The registration gate as pure rules: a reputation per key from its history, and whether to ask for work.

Four keys describe a code request: the number, its range (the number without its last digits), the source
address and the device (its vendor id, else its model and OS). Each key's history (code requests in the last
hour and day, accounts registered from it and banned since, and for the number the parent's spam signal) gives
a *pressure*: 1 means the key has used its budget. Pressure p becomes a score p / (1 + p), 0 good .. 1 bad, 0.5
at the budget. A request is challenged, never refused, when any key's pressure reaches 1 (Signal answers a
suspected spammer with 428 and a challenge, not a ban); each doubling of the pressure doubles the work (one more
zero bit), up to a cap, so a farm that keeps going pays more and more while one person pays once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

DAY_BUDGET_HOURS = 10  # a day's budget is ten hours' worth: bursts are held to the hour, steady farming to the day
MODEL_SHARED_BY = 100  # a model and OS name millions of phones, so they get 100 times a vendor id's budget


class Key(StrEnum):
    NUMBER = "number"
    RANGE = "range"
    SOURCE = "source"
    DEVICE = "device"


@dataclass(frozen=True, slots=True)
class History:
    requests_hour: int = 0
    requests_day: int = 0
    banned: int = 0  # accounts registered from this key and banned since (an active verdict)
    parent_flagged: bool = False  # the parent signed that it banned this number for spam (the number only)


@dataclass(frozen=True, slots=True)
class Thresholds:
    per_hour: dict[Key, int]
    banned: int
    parent_weight: float
    bits: int
    max_bits: int


@dataclass(frozen=True, slots=True)
class Judgement:
    scores: dict[Key, float]  # 0 good .. 1 bad
    bits: int  # 0: let it through; else the proof of work to ask for
    worst: Key  # the key with the highest pressure: what the person is told


def pressure(history: History, budget: int, thresholds: Thresholds) -> float:
    volume = max(history.requests_hour / budget, history.requests_day / (budget * DAY_BUDGET_HOURS))
    flagged = thresholds.parent_weight if history.parent_flagged else 0.0
    return volume + history.banned / thresholds.banned + flagged


def score(p: float) -> float:
    return p / (1.0 + p)


def judge(histories: dict[Key, History], thresholds: Thresholds, device_is_model: bool = False) -> Judgement:
    """``histories``: one per key known (a request without device signals has no DEVICE); ``device_is_model``:
    the device key is a model and OS, not a vendor id."""
    pressures = {}
    for key, history in histories.items():
        budget = thresholds.per_hour[key] * (MODEL_SHARED_BY if key is Key.DEVICE and device_is_model else 1)
        pressures[key] = pressure(history, budget, thresholds)
    worst = max(pressures, key=lambda k: pressures[k])
    top = pressures[worst]
    bits = 0 if top < 1 else min(thresholds.max_bits, thresholds.bits + int(math.log2(top)))
    return Judgement({key: round(score(p), 4) for key, p in pressures.items()}, bits, worst)


_WHY = {
    Key.NUMBER: "this number asked for many codes or was reported for spam",
    Key.RANGE: "numbers like this one asked for many codes",
    Key.SOURCE: "many codes were asked for from your network",
    Key.DEVICE: "this device asked for many codes",
}


def why(judgement: Judgement) -> str:
    """What the person is told with the challenge: which key, never the thresholds."""
    return f"{_WHY[judgement.worst]}: prove this is a person's phone by solving the challenge, then ask again"
