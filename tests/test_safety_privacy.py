"""The detector sees counters and identifiers, never content: what it consumes has no field that could hold a
message, and after random traffic (random plaintext in random ciphertext, through the relay's real send path)
nothing it keeps, counters or features, holds a byte of any body."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import math
import types
import typing
from array import array
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cove.accounts.storage import DeviceRecord
from cove.activity import Action, Outbound
from cove.app import build_relay
from cove.config import Settings
from cove.db import create_engine, migrate
from cove.messaging import service as messaging
from cove.messaging.models import OutgoingCiphertext, SendRequest
from cove.safety.counters import Account, Counters, Window
from cove.safety.detector import Detector
from cove.safety.features import vector
from cove.safety.parts import of
from cove.safety.signals import Blocked, Judged, ParentFlagged, Registered, Reported
from cove.safety.verdicts import ReasonCode
from helpers import insert_account
from safety_stream import START_MS

CONSUMED = (Outbound, Registered, Blocked, Reported, ParentFlagged, Judged)
SCALARS = {int, float, bool, str, Action}


def _allowed(hint: object) -> bool:
    if hint in SCALARS:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is types.UnionType or origin is typing.Union:
        return all(a is type(None) or _allowed(a) for a in args)
    return origin is tuple and args == (str, ...)  # account ids


@pytest.mark.parametrize("record", CONSUMED, ids=lambda r: r.__name__)
def test_what_the_detector_consumes_has_only_numbers_flags_and_identifiers(record: type) -> None:
    hints = typing.get_type_hints(record)
    for field in dataclasses.fields(record):
        assert _allowed(hints[field.name]), f"{record.__name__}.{field.name}: {hints[field.name]}"
        assert not {"body", "text", "content", "ciphertext", "plaintext"} & set(field.name.split("_"))


def leaves(value: object, path: str = "detector") -> typing.Iterator[tuple[str, object]]:
    """Every scalar reachable from the detector's state, with where it sits."""
    if isinstance(value, Detector):
        yield from leaves(value.counters, f"{path}.counters")
        yield from leaves(list(value.dirty), f"{path}.dirty")
    elif isinstance(value, Counters):
        yield from leaves(dict(value.accounts), f"{path}.accounts")
    elif isinstance(value, Account | Window):
        for slot in type(value).__slots__:
            yield from leaves(getattr(value, slot), f"{path}.{slot}")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(key, f"{path} key")
            yield from leaves(item, f"{path}[{key!r}]")
    elif isinstance(value, list | tuple | array):
        for i, item in enumerate(value):
            yield from leaves(item, f"{path}[{i}]")
    else:
        yield path, value


def assert_only_counters_and_identifiers(detector: Detector, identifiers: set[str], secrets: list[bytes]) -> None:
    for path, value in leaves(detector):
        if isinstance(value, str):
            # An id, a step, or a client version: never anything a user wrote.
            assert value in identifiers or value in {"throttle", "challenge", "restrict", "ban"}, (path, value)
            assert not any(s and s in value.encode() for s in secrets), path
        else:
            assert value is None or type(value) in (int, float, bool), (path, type(value))
    for account in detector.counters.accounts.values():
        assert all(isinstance(x, float | int) and not isinstance(x, str) for x in vector(account, START_MS))


ids = st.sampled_from([f"acc-{i}" for i in range(6)])
outbounds = st.builds(
    Outbound,
    action=st.sampled_from(list(Action)),
    sender=ids,
    device=st.integers(1, 4),
    business=st.booleans(),
    chat=ids,
    recipients=st.lists(ids, max_size=4).map(tuple),
    members=st.integers(0, 50),
    at_ms=st.integers(START_MS, START_MS + 3 * 86_400_000),
    receipt=st.booleans(),
    forward_count=st.integers(0, 10),
)
signals = st.one_of(
    st.builds(Registered, account_id=ids, client_version=st.just("3.2.0"), at_ms=st.integers(0, START_MS)),
    st.builds(Blocked, blocker=ids, blocked=ids, at_ms=st.integers(0, START_MS)),
    st.builds(Reported, reporter=ids, subject=ids, attached=st.integers(0, 5), at_ms=st.integers(0, START_MS)),
    st.builds(ParentFlagged, account_id=ids, reason=st.sampled_from(list(ReasonCode)), at_ms=st.integers(0, START_MS)),
    st.builds(Judged, account_id=ids, at_ms=st.integers(0, START_MS)),
)


@given(events=st.lists(st.one_of(outbounds, signals), max_size=60))
@settings(max_examples=80, deadline=None)
def test_random_traffic_leaves_only_counters_and_identifiers(events: list) -> None:
    detector = Detector(Counters(4, 3), None, {"throttle": 0.5}, {})
    for event in sorted(events, key=lambda e: e.at_ms):
        (detector.observe if isinstance(event, Outbound) else detector.hear)(event)
    detector.score_dirty(START_MS + 4 * 86_400_000)
    identifiers = {f"acc-{i}" for i in range(6)} | {"3.2.0"}
    assert_only_counters_and_identifiers(detector, identifiers, [])
    assert len(detector.counters.accounts) <= 4
    assert all(len(a.peers) <= 3 and not math.isnan(a.sends) for a in detector.counters.accounts.values())


async def send_through_the_relay(data_dir: Path, bodies: list[bytes]) -> None:
    database_url = f"sqlite+aiosqlite:///{data_dir / 'cove.db'}"
    engine = create_engine(database_url)
    await migrate(engine)
    relay = build_relay(Settings(data_dir=data_dir, database_url=database_url, secret_key="test"), engine)
    try:
        await insert_account(engine, "alice", "+14155550101")
        await insert_account(engine, "bob", "+14155550102")
        alice = DeviceRecord("alice", 1, 1, "c", "e")
        for i, body in enumerate(bodies):
            request = SendRequest(
                client_message_id=f"m{i}",
                messages=[
                    OutgoingCiphertext(device_id=1, registration_id=1, kind=1, body=base64.b64encode(body).decode())
                ],
            )
            await messaging.prepare(relay, alice, "bob", request)
        detector = of(relay).detector
        assert detector is not None
        counted = detector.counters.get("alice")
        assert counted is not None and counted.sends == len(bodies)  # the sends did reach the detector
        secrets = [s for b in bodies for s in (b, base64.b64encode(b)) if len(s) >= 4]
        assert_only_counters_and_identifiers(detector, {"alice", "bob"}, secrets)
    finally:
        await engine.dispose()


@given(
    plaintexts=st.lists(st.text(min_size=4, max_size=40), min_size=1, max_size=4),
    ciphertexts=st.lists(st.binary(min_size=16, max_size=64), min_size=4, max_size=4),
)
@settings(max_examples=5, deadline=None)
def test_sends_through_the_real_send_path_leave_no_body_in_the_detector(
    plaintexts: list[str], ciphertexts: list[bytes], tmp_path_factory: pytest.TempPathFactory
) -> None:
    # A client's ciphertext, with its plaintext inside (as if the encryption were broken): neither may stick.
    bodies = [c + p.encode() for p, c in zip(plaintexts, ciphertexts, strict=False)]
    asyncio.run(send_through_the_relay(tmp_path_factory.mktemp("relay"), bodies))
