"""The linking threshold, chosen from a target precision instead of fixed.

With calibrated probabilities, the expected share of true links in a set of links is their mean probability. So
the links written at threshold t have an estimated precision of mean(p | p >= t), and the operating point is the
lowest t whose set still meets the target. That is a property of the set, not of each link: a set can reach 0.98
while holding links at 0.94, as long as enough near-certain ones come with them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_TARGET = 0.98


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float  # links with a probability at or above it are written
    estimated_precision: float  # mean probability of those links (0.0 when there are none)
    links: int


def choose_threshold(probabilities: np.ndarray, target: float = DEFAULT_TARGET) -> OperatingPoint:
    """The lowest threshold among ``probabilities`` whose links have a mean probability of at least ``target``.

    Links tied at the threshold are all in or all out. When not even the most probable links reach the target,
    the threshold is 1.0 and only certain links (if any) are kept.
    """
    if not 0 < target <= 1:
        raise ValueError(f"target precision {target} is not in (0, 1]")
    p = np.sort(np.asarray(probabilities, dtype=np.float64))[::-1]
    if len(p) == 0:
        return OperatingPoint(1.0, 0.0, 0)
    mean = np.cumsum(p) / np.arange(1, len(p) + 1)
    last_of_value = np.append(p[1:] != p[:-1], True)  # a set ends where the next link is less probable
    # Rounding: a mean of many 0.98s must count as 0.98.
    ok = np.flatnonzero(last_of_value & (mean >= target - 1e-12))
    if len(ok) == 0:
        certain = int(np.sum(p >= 1.0))
        return OperatingPoint(1.0, 1.0 if certain else 0.0, certain)
    end = ok[-1]
    return OperatingPoint(float(p[end]), float(mean[end]), int(end + 1))
