"""What the detector learns from besides sends: plain records of identifiers, counts, scores and instants.

Sends reach the detector as the :class:`cove.activity.Outbound` the outbound check sees; everything else a
safety concern knows arrives as one of these, published with :func:`publish` to whoever subscribed on
``Parts.observers`` (the detector). None carries content, ciphertext or a phone number: the privacy test
(tests/test_safety_privacy.py) checks every field's type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cove.context import Relay
from cove.safety.parts import of


@dataclass(frozen=True, slots=True)
class Registered:
    """An account was created; the registration gate's reputation scores (0 good .. 1 bad) at that moment."""

    account_id: str
    business: bool
    client_version: str
    number_score: float
    range_score: float
    source_score: float
    device_score: float
    challenged: bool  # the registration had to prove work
    at_ms: int


@dataclass(frozen=True, slots=True)
class Blocked:
    blocker: str
    blocked: str
    contact: bool  # the blocker had accepted the blocked account (a contact), or not (a stranger)
    at_ms: int


@dataclass(frozen=True, slots=True)
class Reported:
    reporter: str
    subject: str  # the account reported (a group report names the sender reported, if any)
    contact: bool
    attached: int  # how many decrypted messages the reporter chose to attach (never their text)
    at_ms: int


@dataclass(frozen=True, slots=True)
class ParentFlagged:
    """The parent said it banned this account's number for spam (a signed signal): one input, never a verdict."""

    account_id: str
    reason: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class Judged:
    """A person decided (a review or an appeal): ``abusive`` or not. Reporters of the account learn from it."""

    account_id: str
    abusive: bool
    at_ms: int


Signal = Registered | Blocked | Reported | ParentFlagged | Judged
Observer = Callable[[Signal], None]


def publish(relay: Relay, signal: Signal) -> None:
    for observer in of(relay).observers:
        observer(signal)
