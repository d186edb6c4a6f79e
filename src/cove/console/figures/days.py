"""The console's time axis: UTC days since the epoch (the unit ``business_daily`` already uses), over a window
that ends today, with every day present so that a quiet day shows as 0 rather than vanishing from the chart."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.sql.elements import ColumnElement

DAY_MS = 86_400_000
WINDOW_DAYS = 30  # the business tables keep 30 days (cove.business.upkeep): one window for every section


def day_of(ms: int) -> int:
    return ms // DAY_MS


def day_column(ms: ColumnElement[int]) -> ColumnElement[int]:
    """The UTC day of a millisecond column, in SQL: integer division on both SQLite and PostgreSQL."""
    return ms // DAY_MS


def day_label(day: int) -> str:
    return datetime.fromtimestamp(day * DAY_MS / 1000, UTC).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class Window:
    first: int  # day
    last: int  # day, inclusive

    @classmethod
    def ending(cls, now_ms: int, days: int = WINDOW_DAYS) -> Window:
        last = day_of(now_ms)
        return cls(last - days + 1, last)

    @property
    def start_ms(self) -> int:
        return self.first * DAY_MS

    @property
    def days(self) -> range:
        return range(self.first, self.last + 1)

    def labels(self) -> list[str]:
        return [day_label(d) for d in self.days]

    def spread(self, per_day: Mapping[int, float]) -> list[float]:
        """One value per day of the window, 0 where ``per_day`` has none."""
        return [per_day.get(d, 0) for d in self.days]


def chart_spec(
    kind: str,
    labels: list[str],
    series: Mapping[str, list[float]],
    x_label: str,
    y_label: str,
    stacked: bool = False,
) -> dict[str, Any]:
    """The spec of the web kit's ``chart`` macro (a canvas and a table of the same figures)."""
    return {
        "type": kind,
        "labels": labels,
        "series": [{"label": name, "data": data} for name, data in series.items()],
        "x_label": x_label,
        "y_label": y_label,
        "stacked": stacked,
    }


def daily_spec(
    window: Window, series: Mapping[str, Mapping[int, float]], y_label: str, kind: str = "bar", stacked: bool = True
) -> dict[str, Any]:
    """A chart over the window's days from ``{series name: {day: value}}``."""
    spread = {name: window.spread(values) for name, values in series.items()}
    return chart_spec(kind, window.labels(), spread, "Day (UTC)", y_label, stacked)


def when_label(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def age_label(ms: int) -> str:
    """A duration as a person reads it at a glance: the two largest units."""
    minutes = max(0, ms) // 60_000
    days, hours, minutes = minutes // 1440, minutes // 60 % 24, minutes % 60
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"
