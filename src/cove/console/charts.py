"""The chart specs the web kit's ``chart`` macro draws (Chart.js) and tabulates, from the read models' data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cove.console.figures.timeline import Series, Timeline


def spec(
    kind: str, labels: list[str], series: list[Series], x_label: str, y_label: str, stacked: bool = False
) -> dict[str, Any]:
    return {
        "type": kind,
        "labels": labels,
        "series": [{"label": s.label, "data": s.data} | ({"colour": s.colour} if s.colour else {}) for s in series],
        "x_label": x_label,
        "y_label": y_label,
        "stacked": stacked,
        "integer": all(isinstance(v, int) for s in series for v in s.data),  # counts: whole-number ticks
    }


def over_time(
    axis: Timeline, series: list[Series], y_label: str, kind: str = "line", stacked: bool = False
) -> dict[str, Any]:
    return spec(kind, axis.labels(), series, f"{axis.unit} (UTC)", y_label, stacked)


def counted(
    axis: Timeline, counts: Mapping[str, Mapping[int, int]], colours: Mapping[str, str] | None = None
) -> list[Series]:
    """A series per name, from its counts per bucket index, laid on the axis; ``colours`` by name, where a colour
    means something."""
    colours = colours or {}
    return [Series(name, axis.align(per_bucket), colours.get(name)) for name, per_bucket in counts.items()]


def stacked_counts(
    axis: Timeline, counts: Mapping[str, Mapping[int, int]], y_label: str, colours: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Counts per bucket as stacked bars, a series per name (a recipient, a step, a rating)."""
    return over_time(axis, counted(axis, counts, colours), y_label, "bar", stacked=True)
