"""What safety keeps in one relay process's memory, built once at start-up (cove.safety.hooks.register) and
reached from a route or a check through :func:`of`.

Each field is one concern's state (forward batches, the detector's counters, the actions in force, the
acceptance cache); the database stays the truth wherever a fleet of processes must agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cove.context import Relay

if TYPE_CHECKING:  # the detector's counters read cove.safety.signals, which publishes through these parts
    from cove.safety.detector import Detector


@dataclass
class Parts:
    # Who hears cove.safety.signals (the detector); a plain callable each, run inline, so it must be cheap.
    observers: list[Callable[[Any], None]] = field(default_factory=list)
    # The detector's counters and scoring (None when COVE_SAFETY_DETECTOR is false).
    detector: Detector | None = None


def of(relay: Relay) -> Parts:
    parts = relay.safety
    assert parts is not None, "cove.safety.hooks.register builds the parts at start-up"
    return parts
