"""The registration lock as pure rules: the PIN, its hash, when the lock holds, and how guesses slow down.

As Signal's registration lock and WhatsApp's two-step verification: a user sets a PIN from a registered
device; registering the number on another phone then needs the PIN as well as the SMS code, so whoever
receives the code (a swapped SIM, a recycled number, an intercepted SMS) cannot take the account, its
contacts' trust and its waiting messages. The lock lapses once every device of the account has been
inactive for ``RegLockPolicy.inactivity`` (Signal: 7 days), so a user who lost both the phone and the PIN
gets the number back a week later, with a new identity.

The PIN travels to the relay in the body of an HTTPS request and is stored only as a salted scrypt hash
(parameters per OWASP's password storage cheat sheet). It is not stretched on the client first: a PIN has
so little entropy that anyone holding a deterministic client-side derivation could search every PIN
through it, so what protects it is this module's guess limit, which only the relay can enforce.

Wrong guesses: the first ``free_guesses`` are immediate, each further one waits twice as long as the one
before (from ``first_delay``, at most ``max_delay``), and after ``max_guesses`` no guess is taken until the
lock lapses. The owner setting or removing the PIN, or registering with it, starts the count afresh.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace

MIN_PIN_LENGTH = 6
MAX_PIN_LENGTH = 64
SALT_BYTES = 16
# OWASP: scrypt with N=2^17, r=8, p=1 (128 MiB, a few hundred ms); stored per lock so it can be raised later.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1
_DIGEST_BYTES = 32


@dataclass(frozen=True)
class RegLockPolicy:
    inactivity_ms: int
    max_guesses: int = 10
    free_guesses: int = 3
    first_delay_ms: int = 60_000
    max_delay_ms: int = 86_400_000


@dataclass(frozen=True)
class PinHash:
    salt: bytes
    digest: bytes
    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P


@dataclass(frozen=True)
class Lock:
    """An account's lock as stored: its PIN hash and the wrong guesses since the owner last proved the PIN."""

    pin: PinHash
    set_at_ms: int
    failures: int = 0
    last_failure_at_ms: int = 0


class RegLockError(Exception):
    """A refusal of the lock's rules; ``code`` is machine-readable, ``details`` go in the error body."""

    code = "registration_lock"

    def __init__(self, message: str, **details: int) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class WeakPin(RegLockError):
    code = "weak_pin"


class RegistrationLocked(RegLockError):
    """The number is locked and no PIN was given. ``time_remaining_ms``: until the lock lapses."""

    code = "registration_lock"


class WrongPin(RegLockError):
    code = "wrong_pin"

    def __init__(self, counted: Lock, message: str, **details: int) -> None:
        super().__init__(message, **details)
        self.counted = counted


class PinGuessesPaused(RegLockError):
    """Too many wrong guesses: the next is allowed after ``retry_after`` seconds."""

    code = "pin_backoff"


class PinGuessesExhausted(PinGuessesPaused):
    code = "pin_attempts_exhausted"


def check_new_pin(pin: str) -> None:
    """A PIN a user may set: 6 to 64 characters, not one repeated character nor a run of digits like 123456."""
    if not MIN_PIN_LENGTH <= len(pin) <= MAX_PIN_LENGTH:
        raise WeakPin(f"a PIN has {MIN_PIN_LENGTH} to {MAX_PIN_LENGTH} characters")
    if len(set(pin)) == 1:
        raise WeakPin("a PIN must not repeat one character")
    if pin.isdigit() and pin.isascii():
        steps = {(int(b) - int(a)) % 10 for a, b in zip(pin, pin[1:], strict=False)}
        if steps in ({1}, {9}):
            raise WeakPin("a PIN must not be a run of digits such as 123456 or 987654")


def hash_pin(pin: str, salt: bytes | None = None) -> PinHash:
    """Slow on purpose (hundreds of milliseconds): run it off the event loop."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    return PinHash(salt, _scrypt(pin, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P))


def pin_matches(stored: PinHash, pin: str) -> bool:
    return hmac.compare_digest(stored.digest, _scrypt(pin, stored.salt, stored.n, stored.r, stored.p))


def _scrypt(pin: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(pin.encode(), salt=salt, n=n, r=r, p=p, maxmem=2 * 128 * r * n * p, dklen=_DIGEST_BYTES)


def lapses_at(last_active_ms: int, policy: RegLockPolicy) -> int:
    return last_active_ms + policy.inactivity_ms


def delay_ms(failures: int, policy: RegLockPolicy) -> int:
    """How long after the last wrong guess the next one is taken, given the wrong guesses so far."""
    if failures < policy.free_guesses:
        return 0
    return min(policy.max_delay_ms, policy.first_delay_ms << min(failures - policy.free_guesses, 40))


def guard(lock: Lock | None, last_active_ms: int, pin_given: bool, now_ms: int, policy: RegLockPolicy) -> bool:
    """May a registration with a verified code go on? ``False``: no lock holds, the code is enough.

    ``True``: a lock holds and a guess may be judged now (hash the PIN, then :func:`judge`). Raises
    :class:`RegistrationLocked` without a PIN, :class:`PinGuessesPaused` while guesses wait.
    """
    if lock is None or now_ms >= lapses_at(last_active_ms, policy):
        return False
    remaining = lapses_at(last_active_ms, policy) - now_ms
    if lock.failures >= policy.max_guesses:
        raise PinGuessesExhausted(
            "too many wrong PINs: this number can be registered again once the lock lapses",
            retry_after=_seconds(remaining),
            time_remaining_ms=remaining,
        )
    if not pin_given:
        raise RegistrationLocked(
            "this number has a registration lock: give its PIN as well as the code", time_remaining_ms=remaining
        )
    wait = lock.last_failure_at_ms + delay_ms(lock.failures, policy) - now_ms
    if wait > 0:
        raise PinGuessesPaused(f"too many wrong PINs: retry in {_seconds(wait)} s", retry_after=_seconds(wait))
    return True


def judge(lock: Lock, matched: bool, last_active_ms: int, now_ms: int, policy: RegLockPolicy) -> Lock:
    """After :func:`guard` allowed a guess: the lock with its count reset, or :class:`WrongPin` with it counted."""
    if matched:
        return replace(lock, failures=0, last_failure_at_ms=0)
    counted = replace(lock, failures=lock.failures + 1, last_failure_at_ms=now_ms)
    left = max(0, policy.max_guesses - counted.failures)
    raise WrongPin(
        counted,
        f"the PIN is wrong; {left} guess(es) left",
        attempts_left=left,
        retry_after=_seconds(delay_ms(counted.failures, policy)),
        time_remaining_ms=lapses_at(last_active_ms, policy) - now_ms,
    )


def _seconds(ms: int) -> int:
    return -(-ms // 1000)
