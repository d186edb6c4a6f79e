"""The simulator's parameters: populations.toml read into frozen dataclasses, every value checked.

A bad file fails with :class:`ConfigError` naming the key and what is wrong with it, never a KeyError or a
simulation that quietly draws from nonsense (a share of 1.3, a negative gap).
"""

from __future__ import annotations

import math
import tomllib
import typing
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

Pair = tuple[float, float]

# A probability or a share: must lie in [0, 1].
_PROBABILITIES = frozenset(
    {
        "share",
        "business",
        "to_stranger",
        "group_share",
        "add_stranger",
        "forward_share",
        "burst_to_stranger",
        "reply_contact",
        "reply_stranger",
        "block_contact",
        "block_stranger",
        "report_contact",
        "report_stranger",
        "parent_flag",
        "blatant",
        "challenge_above",
    }
)
# [median, sigma] of a log-normal: median > 0, sigma >= 0.
_LOG_NORMALS = frozenset({"contacts", "sessions_per_day", "group_size", "adds", "burst_size"})
# [lo, hi] ranges; age_days alone may be negative (an account registering during the run).
_RANGES = frozenset({"age_days", "warmup_days"})
# Shapes of a Beta: both > 0.
_BETAS = frozenset({"usual", "blatant_beta"})
# Means of messages per session or hops: at least 1.
_AT_LEAST_ONE = frozenset({"session_messages", "forward_hops", "messages"})


class ConfigError(ValueError):
    """The file breaks a rule; the message names the key (``populations.bulk_bots.share``) and the rule."""


@dataclass(frozen=True)
class Registration:
    """Reputation scores (0 good .. 1 bad) for number, range, source and device: a share of ``blatant``
    registrations draws all four from ``blatant_beta``, the rest from ``usual``."""

    blatant: float
    usual: Pair
    blatant_beta: Pair


@dataclass(frozen=True)
class Population:
    name: str
    share: float
    abusive: bool
    abuse_type: str
    business: float
    age_days: Pair
    warmup_days: Pair
    contacts: Pair
    sessions_per_day: Pair
    session_messages: float
    gap_s: float
    to_stranger: float
    group_share: float
    groups: float
    group_size: Pair
    creates_per_day: float
    adds: Pair
    add_acts_per_day: float
    add_stranger: float
    forward_share: float
    forward_hops: float
    bursts_per_day: float
    burst_once: bool
    burst_size: Pair
    burst_gap_s: float
    burst_to_stranger: float
    reply_contact: float
    reply_stranger: float
    block_contact: float
    block_stranger: float
    report_contact: float
    report_stranger: float
    reaction_sigma: float
    parent_flag: float
    contacts_from: str  # "legitimate": drawn from legitimate accounts; "own": the other accounts of the population
    clients: tuple[float, ...]
    registration: Registration


@dataclass(frozen=True)
class Replies:
    messages: float
    delay_s: float
    gap_s: float


@dataclass(frozen=True)
class Config:
    days: int
    start_ms: int
    accounts: int
    challenge_above: float
    reaction_delay_s: float
    client_versions: tuple[str, ...]
    replies: Replies
    populations: tuple[Population, ...]

    @property
    def abuse_types(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.abuse_type for p in self.populations if p.abusive))


def default_path() -> Path:
    return Path(str(resources.files("cove.safety.simulation") / "populations.toml"))


def load(path: Path | None = None) -> Config:
    path = path or default_path()
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None
    return parse(text, str(path))


def parse(text: str, where: str = "populations.toml") -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not TOML ({exc})") from None
    simulation = _table(data, "simulation", where)
    replies = _build(Replies, _table(data, "replies", where), "replies")
    populations_table = _table(data, "populations", where)
    if not populations_table:
        raise ConfigError("populations: at least one population is needed")
    populations = tuple(
        _population(name, _table(populations_table, name, "populations"), where) for name in populations_table
    )
    config = _build(Config, {**simulation, "replies": replies, "populations": populations}, "simulation")
    _check(config)
    return config


def _population(name: str, table: dict[str, Any], where: str) -> Population:
    key = f"populations.{name}"
    registration = _build(Registration, _table(table, "registration", key), f"{key}.registration")
    return _build(Population, {**table, "name": name, "registration": registration}, key)


def _table(data: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    value = data.get(name)
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{name}] is missing or not a table")
    return value


def _build(cls: type, table: dict[str, Any], where: str) -> Any:
    """``cls`` from ``table``: every field present with its type, no unknown key (values already built, a
    Population's Registration, pass as they are)."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(table) - names)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(sorted(names))})")
    values = {}
    for name in names:
        if name not in table:
            raise ConfigError(f"{where}.{name}: missing")
        value = table[name]
        values[name] = _typed(value, hints[name], where, name) if _is_plain(hints[name]) else value
    return cls(**values)


def _is_plain(hint: Any) -> bool:
    return hint in (int, float, bool, str, Pair, tuple[float, ...], tuple[str, ...])


def _typed(value: Any, hint: Any, where: str, name: str) -> Any:
    key = f"{where}.{name}"
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: must be true or false, not {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: must be a whole number, not {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: must be a string, not {value!r}")
        return value
    if hint is float:
        return _number(value, key)
    if hint == tuple[str, ...]:
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{key}: must be a list of non-empty strings")
        return tuple(value)
    if not isinstance(value, list):
        raise ConfigError(f"{key}: must be a list of numbers, not {value!r}")
    numbers = tuple(_number(v, key) for v in value)
    if hint == Pair and len(numbers) != 2:
        raise ConfigError(f"{key}: must be two numbers, not {len(numbers)}")
    return numbers


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{key}: must be a finite number, not {value!r}")
    return float(value)


def _check(config: Config) -> None:
    """The rules between values: ranges, shares summing to 1, one weight per client version."""
    if config.days < 1 or config.accounts < 1 or config.start_ms < 0:
        raise ConfigError("simulation: days and accounts must be at least 1, start_ms not negative")
    _check_values("simulation", config)
    _check_values("replies", config.replies)
    for p in config.populations:
        key = f"populations.{p.name}"
        _check_values(key, p)
        _check_values(f"{key}.registration", p.registration)
        if p.abusive != bool(p.abuse_type):
            raise ConfigError(f"{key}.abuse_type: an abusive population names its abuse type, a legitimate one none")
        if len(p.clients) != len(config.client_versions) or abs(sum(p.clients) - 1.0) > 1e-6:
            raise ConfigError(f"{key}.clients: one weight per client version, summing to 1")
        if any(w < 0 for w in p.clients):
            raise ConfigError(f"{key}.clients: weights cannot be negative")
        if p.contacts_from not in ("legitimate", "own"):
            raise ConfigError(f"{key}.contacts_from: must be 'legitimate' or 'own', not {p.contacts_from!r}")
        if p.age_days[0] < -config.days:
            raise ConfigError(f"{key}.age_days: an account cannot register after the run ends ({config.days} days)")
    total = sum(p.share for p in config.populations)
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"populations: shares must sum to 1, not {total:.6f}")


def _check_values(where: str, obj: Any) -> None:
    for f in fields(obj):
        value = getattr(obj, f.name)
        key = f"{where}.{f.name}"
        if f.name in _PROBABILITIES and not 0.0 <= value <= 1.0:
            raise ConfigError(f"{key}: must be between 0 and 1, not {value}")
        elif f.name in _LOG_NORMALS and (value[0] <= 0 or value[1] < 0):
            raise ConfigError(f"{key}: a log-normal [median, sigma] needs median > 0 and sigma >= 0")
        elif f.name in _RANGES and (value[0] > value[1] or (f.name != "age_days" and value[0] < 0)):
            raise ConfigError(f"{key}: a range [lo, hi] needs lo <= hi (and lo >= 0 unless it is age_days)")
        elif f.name in _BETAS and min(value) <= 0:
            raise ConfigError(f"{key}: Beta shapes must be above 0")
        elif f.name in _AT_LEAST_ONE and value < 1:
            raise ConfigError(f"{key}: must be at least 1")
        elif isinstance(value, float) and f.name not in _PROBABILITIES and value < 0:
            raise ConfigError(f"{key}: cannot be negative")
