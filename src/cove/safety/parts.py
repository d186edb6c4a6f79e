"""What safety keeps in one relay process's memory, built once at start-up (cove.safety.hooks.register) and
reached from a route or a check through :func:`of`.

Each field is one concern's state (forward batches, the detector's counters, the actions in force, the
acceptance cache); the database stays the truth wherever a fleet of processes must agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cove.context import Relay
from cove.safety.pairs import Pairs


@dataclass
class Parts:
    # Who hears cove.safety.signals (the detector); a plain callable each, run inline, so it must be cheap.
    observers: list[Callable[[Any], None]] = field(default_factory=list)
    # Defences: blocks and acceptances between pairs of accounts (cove.safety.contacts), sized from the settings
    # by cove.safety.hooks.register.
    contacts: Pairs | None = None


def of(relay: Relay) -> Parts:
    parts = relay.safety
    assert parts is not None, "cove.safety.hooks.register builds the parts at start-up"
    return parts
