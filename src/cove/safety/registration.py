"""The registration gate: every verification-code request is judged by the history of its number, number
range, source address and device (cove.safety.registration_rules), and a suspicious one must prove work.

It runs before the code limits are spent (``Relay.registration_checks``), so a challenged request costs the
number nothing. A request carrying a right answer to a challenge this relay set for this number goes through;
a wrong, expired or foreign answer is refused (400 ``challenge_failed``). The registration itself is not
challenged again: it needs the code, which only a request the gate let through got. Once an account is
created, the registration's keys and scores are kept per account (``safety_registrations``: a later ban then
counts against them) and published to the detector as :class:`cove.safety.signals.Registered`.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from cove.accounts.code_limits import range_key
from cove.activity import RegistrationAttempt
from cove.config import Settings
from cove.context import Relay
from cove.errors import ApiError
from cove.safety import challenges, signals
from cove.safety import registration_rules as rules
from cove.safety import registration_storage as storage
from cove.safety.parts import of
from cove.safety.registration_rules import Key

PURPOSE = "registration"


def thresholds(s: Settings) -> rules.Thresholds:
    return rules.Thresholds(
        per_hour={
            Key.NUMBER: s.registration_gate_number_per_hour,
            Key.RANGE: s.registration_gate_range_per_hour,
            Key.SOURCE: s.registration_gate_source_per_hour,
            Key.DEVICE: s.registration_gate_device_per_hour,
        },
        banned=s.registration_gate_banned,
        parent_weight=s.registration_gate_parent_weight,
        bits=s.registration_gate_bits,
        max_bits=max(s.registration_gate_bits, s.registration_gate_max_bits),
    )


def keys_of(relay: Relay, attempt: RegistrationAttempt) -> tuple[dict[Key, str], bool]:
    """The attempt's keys, hashed, and whether its device key is a model (no vendor id was given)."""
    values = {
        Key.NUMBER: attempt.phone_number,
        Key.RANGE: range_key(attempt.phone_number, relay.settings.code_range_digits),
        Key.SOURCE: attempt.source,
    }
    device = attempt.device
    if device is not None:
        values[Key.DEVICE] = (
            f"vendor|{device.vendor_device_id}" if device.vendor_device_id else f"model|{device.model}|{device.os_name}"
        )
    hashed = {key: storage.key_hash(relay.code_secret, key, value) for key, value in values.items()}
    return hashed, device is not None and not device.vendor_device_id


async def parent_flags(relay: Relay, conn: AsyncConnection, phone_number: str) -> list[storage.ParentSignal]:
    """The parent's signals for this number, one per sender at most."""
    hashes = of(relay).parent_number_hashes
    return await storage.parent_flagged(conn, await hashes(conn, phone_number)) if hashes else []


async def _judge(
    relay: Relay, conn: AsyncConnection, attempt: RegistrationAttempt, keys: dict[Key, str], by_model: bool
) -> rules.Judgement:
    flagged = bool(await parent_flags(relay, conn, attempt.phone_number))
    histories = {
        key: await storage.history(conn, key, hashed, attempt.at_ms, flagged and key is Key.NUMBER)
        for key, hashed in keys.items()
    }
    return rules.judge(histories, thresholds(relay.settings), by_model)


async def gate(relay: Relay, attempt: RegistrationAttempt) -> None:
    """The check on ``Relay.registration_checks``: let the request through, or raise 428 / 400."""
    keys, by_model = keys_of(relay, attempt)
    now = attempt.at_ms
    async with relay.engine.begin() as conn:
        judgement = await _judge(relay, conn, attempt, keys, by_model)
        answered = False
        if judgement.bits and attempt.challenge_seed is not None and attempt.challenge_nonce is not None:
            answer = challenges.Answer(attempt.challenge_seed, attempt.challenge_nonce)
            answered = challenges.verify(relay.code_secret, PURPOSE, attempt.phone_number, answer, now)
        # Counted before it is refused: a farm that ignores challenges raises its own pressure.
        await storage.record_request(conn, keys, bool(judgement.bits), answered, now)
        await storage.forget_before(conn, now - relay.settings.registration_gate_history_days * 86_400_000)
    if not judgement.bits or answered:
        return
    if attempt.challenge_seed is not None:
        raise ApiError(
            400,
            "challenge_failed",
            "the answer does not solve a challenge this relay set for this number, or it expired: "
            "ask again without an answer for a new challenge",
        )
    raise challenges.required(
        relay.code_secret, PURPOSE, attempt.phone_number, judgement.bits, now, rules.why(judgement)
    )


async def registered(relay: Relay, attempt: RegistrationAttempt, account_id: str) -> None:
    """The hook on ``Relay.registered_hooks``: keep the registration's signals and tell the detector."""
    keys, by_model = keys_of(relay, attempt)
    async with relay.engine.begin() as conn:
        judgement = await _judge(relay, conn, attempt, keys, by_model)
        since = attempt.at_ms - relay.settings.code_ttl_seconds * 1000
        proved = await storage.last_request_proved_work(conn, keys[Key.NUMBER], since)
        await storage.save_registration(conn, account_id, keys, judgement.scores, proved, attempt.at_ms)
    device = attempt.device
    scores = judgement.scores
    signals.publish(
        relay,
        signals.Registered(
            account_id=account_id,
            business=False,  # an account becomes a business after it registered
            client_version=device.app_version if device else "",
            number_score=scores[Key.NUMBER],
            range_score=scores[Key.RANGE],
            source_score=scores[Key.SOURCE],
            device_score=scores.get(Key.DEVICE, 0.0),
            challenged=proved,
            at_ms=attempt.at_ms,
        ),
    )
