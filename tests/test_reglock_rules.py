"""The registration lock's and the code limits' pure rules (cove.accounts.reglock, cove.accounts.code_limits)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cove.accounts import reglock
from cove.accounts.code_limits import range_key, source_key
from cove.accounts.reglock import Lock, PinHash, RegLockPolicy

DAY_MS = 86_400_000
POLICY = RegLockPolicy(inactivity_ms=7 * DAY_MS)
LOCK = Lock(PinHash(b"salt", b"digest"), set_at_ms=0)


def test_a_pin_round_trips_through_its_salted_hash_and_two_hashes_differ():
    hashed = reglock.hash_pin("480731")
    assert reglock.pin_matches(hashed, "480731")
    assert not reglock.pin_matches(hashed, "480732")
    assert reglock.hash_pin("480731").salt != hashed.salt
    assert b"480731" not in hashed.digest + hashed.salt


@pytest.mark.parametrize("pin", ["12345", "111111", "aaaaaaa", "123456", "987654", "901234", "x" * 65])
def test_weak_pins_are_refused(pin):
    with pytest.raises(reglock.WeakPin):
        reglock.check_new_pin(pin)


@pytest.mark.parametrize("pin", ["480731", "112233", "correct horse", "1234567a"])
def test_other_pins_are_taken(pin):
    reglock.check_new_pin(pin)


@given(failures=st.integers(0, 200))
def test_delays_never_shrink_and_never_pass_the_cap(failures):
    assert 0 <= reglock.delay_ms(failures, POLICY) <= reglock.delay_ms(failures + 1, POLICY) <= POLICY.max_delay_ms


def test_no_lock_or_a_lapsed_one_lets_the_code_alone_register():
    assert reglock.guard(None, 0, False, 0, POLICY) is False
    assert reglock.guard(LOCK, 0, False, 7 * DAY_MS, POLICY) is False
    with pytest.raises(reglock.RegistrationLocked) as locked:
        reglock.guard(LOCK, 0, False, 7 * DAY_MS - 1, POLICY)
    assert locked.value.details == {"time_remaining_ms": 1}


@settings(max_examples=200)
@given(
    max_guesses=st.integers(1, 12),
    tries=st.lists(st.tuples(st.integers(0, 3 * 3_600_000), st.booleans()), min_size=1, max_size=40),
)
def test_guesses_are_judged_no_faster_than_the_backoff_and_never_past_the_cap(max_guesses, tries):
    # Played the way the relay does: a judged guess's lock is stored; the PIN is right when the flag says so.
    policy = RegLockPolicy(inactivity_ms=7 * DAY_MS, max_guesses=max_guesses)
    lock, now, wrong_judged, last_judged = LOCK, 1, 0, None
    for gap, right in tries:
        now += gap
        try:
            if not reglock.guard(lock, 0, True, now, policy):
                break
        except reglock.PinGuessesExhausted:
            assert lock.failures == max_guesses
            continue
        except reglock.PinGuessesPaused as paused:
            assert (
                paused.details["retry_after"] * 1000
                >= lock.last_failure_at_ms + reglock.delay_ms(lock.failures, policy) - now
                > 0
            )
            continue
        if last_judged is not None:
            assert now - last_judged >= reglock.delay_ms(lock.failures, policy)
        last_judged = now
        try:
            lock = reglock.judge(lock, right, 0, now, policy)
        except reglock.WrongPin as wrong:
            lock, wrong_judged = wrong.counted, wrong_judged + 1
            assert wrong.details["attempts_left"] == max_guesses - lock.failures
        else:
            assert lock.failures == 0
    assert lock.failures <= max_guesses


def test_sources_are_addresses_and_ipv6_subscribers_their_64():
    assert source_key("203.0.113.7") == "203.0.113.7"
    assert source_key("2001:db8:1:2::5") == source_key("2001:db8:1:2:ffff::1") == "2001:db8:1:2::/64"
    assert source_key(None) == source_key("testclient") == "unknown"
    assert range_key("+14155550171", 2) == "+141555501"
