"""What safety keeps in one relay process's memory, built once at start-up (cove.safety.hooks.register) and
reached from a route or a check through :func:`of`.

Each field is one concern's state (forward batches, the detector's counters, the actions in force, the
acceptance cache); the database stays the truth wherever a fleet of processes must agree.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from cove.context import Relay
from cove.safety.pairs import Pairs
from cove.safety.standing import Standing

if TYPE_CHECKING:  # the detector's counters read cove.safety.signals, which publishes through these parts
    from cove.safety.detector import Detector


@dataclass
class Parts:
    # Who hears cove.safety.signals (the detector); a plain callable each, run inline, so it must be cheap.
    observers: list[Callable[[Any], None]] = field(default_factory=list)
    # The actions in force per account (cove.safety.actions); sized from the settings at start-up.
    standing: Standing = field(default_factory=lambda: Standing(1))
    # Defences: blocks and acceptances between pairs of accounts (cove.safety.contacts), sized from the settings
    # by cove.safety.hooks.register.
    contacts: Pairs | None = None
    # Registration gate: a number's hashes as each sender of signed signals knows it, ``[(recipient, hash)]``,
    # to look the parent's signals up by (set by the sharing gateway, which holds the keys; None: no signals).
    parent_number_hashes: Callable[[AsyncConnection, str], Awaitable[list[tuple[str, str]]]] | None = None
    # The detector's counters and scoring (None when COVE_SAFETY_DETECTOR is false).
    detector: Detector | None = None


def of(relay: Relay) -> Parts:
    parts = relay.safety
    assert parts is not None, "cove.safety.hooks.register builds the parts at start-up"
    return parts
