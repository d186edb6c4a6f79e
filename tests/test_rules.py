"""The relay's pure rules, without a server: verification codes, rate limits, device checks, phone numbers
and key signatures. Property-based where the rule must hold for every input, not just the examples."""

from __future__ import annotations

import base64
import itertools
import re
from datetime import UTC, datetime, timedelta

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cove.accounts.codes import CodePolicy, PendingCode, WrongCode, check, hash_code, issue, new_code
from cove.client.crypto import OlmDevice
from cove.errors import ApiError
from cove.limits.rules import Bucket, Limit, Quota, Window, count, take
from cove.messaging.rules import DeviceCheck, check_devices, raise_for_mismatch
from cove.protocol import signing
from cove.protocol.phone import normalise, try_normalise

SECRET = b"test secret for verification codes"
PHONE = "+14155550101"
T0 = datetime(2030, 1, 1, tzinfo=UTC)
POLICY = CodePolicy(ttl=timedelta(minutes=10), max_attempts=5)
RIGHT = "123456"


def refused(code: str, call, *args) -> ApiError:  # noqa: ANN001
    with pytest.raises(ApiError) as caught:
        call(*args)
    assert caught.value.code == code, caught.value.body()
    return caught.value


def digest(code: str) -> str:
    return hash_code(SECRET, PHONE, code)


def fresh_code(now: datetime = T0, policy: CodePolicy = POLICY) -> PendingCode:
    return issue(PHONE, digest(RIGHT), now, policy)


# verification codes -----------------------------------------------------------------------------------


def test_new_codes_are_six_digits():
    assert all(re.fullmatch(r"\d{6}", new_code()) for _ in range(200))


def test_a_code_is_stored_only_as_a_keyed_hash():
    assert RIGHT not in digest(RIGHT)
    assert digest(RIGHT) != hash_code(b"another secret", PHONE, RIGHT)
    assert digest(RIGHT) != hash_code(SECRET, "+14155550102", RIGHT)


def test_the_right_code_is_accepted_until_it_expires():
    pending = fresh_code()
    assert pending.expires_at == T0 + POLICY.ttl
    assert check(pending, digest(RIGHT), pending.expires_at - timedelta(milliseconds=1), POLICY).attempts == 1
    refused("code_expired", check, pending, digest(RIGHT), pending.expires_at, POLICY)
    refused("code_expired", check, pending, digest("654321"), pending.expires_at + timedelta(days=1), POLICY)


def test_checking_without_a_pending_code_is_no_code_requested():
    error = refused("no_code_requested", check, None, digest(RIGHT), T0, POLICY)
    assert error.status == 400


@given(
    max_attempts=st.integers(1, 10),
    guesses=st.lists(st.sampled_from([RIGHT, "000000", "123457", "999999"]), min_size=1, max_size=20),
)
def test_no_more_than_max_attempts_guesses_are_ever_judged(max_attempts, guesses):
    # Played the way the relay does: a wrong guess's counted record is stored, a right one ends the game.
    policy = CodePolicy(POLICY.ttl, max_attempts)
    stored = fresh_code(policy=policy)
    outcomes = []
    for guess in guesses:
        try:
            check(stored, digest(guess), T0, policy)
        except WrongCode as wrong:
            stored = wrong.counted
            outcomes.append(("wrong_code", wrong.details["attempts_left"]))
        except ApiError as error:
            outcomes.append((error.code, error.status))
        else:
            outcomes.append(("accepted", None))
            break

    expected = []
    for i, guess in enumerate(guesses):
        if i >= max_attempts:
            expected.append(("too_many_attempts", 429))
        elif guess == RIGHT:
            expected.append(("accepted", None))
            break
        else:
            expected.append(("wrong_code", max_attempts - i - 1))
    assert outcomes == expected
    assert stored.attempts <= max_attempts


def test_a_wrong_code_is_a_400_that_counts_the_attempt():
    wrong = refused("wrong_code", check, fresh_code(), digest("000000"), T0, POLICY)
    assert wrong.status == 400
    assert wrong.counted.attempts == 1
    assert wrong.body()["error"]["attempts_left"] == POLICY.max_attempts - 1


def _offsets_ms() -> st.SearchStrategy[list[int]]:
    """Increasing request times, in milliseconds after T0, spanning a few send windows."""
    gaps = st.lists(st.integers(0, 30 * 60 * 1000), min_size=1, max_size=30)
    return gaps.map(lambda g: list(itertools.accumulate(g)))


@given(offsets=_offsets_ms(), max_sends=st.integers(1, 6), window_minutes=st.integers(1, 120))
def test_a_fixed_window_counts_at_most_its_quota_and_its_wait_is_honest(offsets, max_sends, window_minutes):
    quota = Quota(max_sends, window_minutes * 60_000)  # in milliseconds, for exact arithmetic
    stored: Window | None = None
    counted: list[tuple[float, float]] = []  # (counted at, its window's start)
    for now in offsets:
        window, wait = count(stored, quota, now)
        if wait > 0:
            # Refused only when the quota really was reached within the last window...
            assert sum(1 for at, _ in counted if now - at < quota.window_seconds) >= max_sends
            # ...and the wait is enough.
            assert count(window, quota, now + wait)[1] == 0
        else:
            counted.append((now, window.started_at))
        stored = window

    for start, in_window in itertools.groupby(counted, key=lambda pair: pair[1]):
        at = [a for a, _ in in_window]
        assert len(at) <= max_sends
        assert at[0] == start and all(a - start < quota.window_seconds for a in at)


def test_a_window_counts_down_and_a_new_one_starts_afresh():
    quota, stored = Quota(5, 3600), None
    for used in range(1, 6):
        stored, wait = count(stored, quota, used * 60)
        assert (stored, wait) == (Window(used, 60), 0)
    assert count(stored, quota, 3600) == (stored, 60)
    assert count(stored, quota, 3660) == (Window(1, 3660), 0)


# rate limits ------------------------------------------------------------------------------------------

limits = st.builds(Limit, size=st.integers(1, 100).map(float), refill_per_second=st.floats(0.01, 100))
calls = st.lists(st.tuples(st.floats(0, 60), st.floats(0, 150)), min_size=1, max_size=40)


@given(limit=limits, calls=calls, start=st.floats(0, 1e6))
def test_a_bucket_never_grants_more_than_its_size_plus_what_it_refilled(limit, calls, start):
    bucket, now, grants = None, start, []
    for elapsed, cost in calls:
        now += elapsed
        bucket, wait = take(bucket, limit, cost, now)
        grants.append((now, cost if wait == 0 else 0.0))
    # In every stretch of the sequence, not only overall: an idle bucket must not save up beyond its size.
    for i, j in itertools.combinations_with_replacement(range(len(grants)), 2):
        granted = sum(cost for _, cost in grants[i : j + 1])
        allowance = limit.size + (grants[j][0] - grants[i][0]) * limit.refill_per_second
        assert granted <= allowance * (1 + 1e-9) + 1e-9


@given(limit=limits, calls=calls)
def test_a_refusal_gives_a_positive_wait_that_is_enough_and_spends_nothing(limit, calls):
    bucket, now = None, 0.0
    for elapsed, cost in calls:
        now += elapsed
        bucket, wait = take(bucket, limit, cost, now)
        if wait == 0:
            continue
        assert wait > 0
        if cost > limit.size:
            assert wait == float("inf")
            continue
        # Nothing was spent: asking again at once is refused the same way.
        assert take(bucket, limit, cost, now)[1] == pytest.approx(wait)
        assert take(bucket, limit, cost, now + wait * (1 + 1e-9) + 1e-9)[1] == 0


def test_a_full_bucket_grants_its_size_at_once_then_refills_at_the_rate():
    limit = Limit(size=3, refill_per_second=0.5)
    bucket = None
    for _ in range(3):
        bucket, wait = take(bucket, limit, 1, 100.0)
        assert wait == 0
    bucket, wait = take(bucket, limit, 1, 100.0)
    assert wait == pytest.approx(2.0)
    assert take(bucket, limit, 1, 101.0)[1] == pytest.approx(1.0)
    assert take(bucket, limit, 1, 102.0)[1] == 0
    assert take(Bucket(0, 0.0), limit, 1, 1e9)[0].tokens == 2  # a long idle bucket holds at most its size


# device checks for a send -----------------------------------------------------------------------------

device_maps = st.dictionaries(st.integers(1, 10), st.integers(1, 16380), max_size=8)


@given(registered=device_maps, addressed=device_maps, sender=st.one_of(st.none(), st.integers(1, 10)))
def test_missing_extra_and_stale_devices_are_exactly_the_differences(registered, addressed, sender):
    result = check_devices(registered, addressed, sender)
    expected = {d: r for d, r in registered.items() if d != sender}
    assert result.missing == sorted(expected.keys() - addressed.keys())
    assert result.extra == sorted(addressed.keys() - expected.keys())
    assert result.stale == sorted(d for d in expected.keys() & addressed.keys() if expected[d] != addressed[d])
    if sender is not None:
        assert sender not in result.missing and sender not in result.stale
        assert (sender in result.extra) == (sender in addressed)


@given(registered=device_maps, sender=st.one_of(st.none(), st.integers(1, 10)))
def test_addressing_every_current_device_but_the_sender_passes(registered, sender):
    addressed = {d: r for d, r in registered.items() if d != sender}
    result = check_devices(registered, addressed, sender)
    assert result == DeviceCheck([], [], [])
    raise_for_mismatch(result)


@given(registered=device_maps, addressed=device_maps)
def test_a_wrong_set_of_devices_is_409_and_only_then_a_reinstall_is_410(registered, addressed):
    result = check_devices(registered, addressed)
    if result.missing or result.extra:
        error = refused("device_mismatch", raise_for_mismatch, result)
        assert error.status == 409
        assert error.body()["error"]["missing_devices"] == result.missing
        assert error.body()["error"]["extra_devices"] == result.extra
    elif result.stale:
        error = refused("stale_devices", raise_for_mismatch, result)
        assert (error.status, error.details["stale_devices"]) == (410, result.stale)
    else:
        raise_for_mismatch(result)


def test_a_self_send_must_address_the_other_devices_and_not_the_sending_one():
    mine = {1: 111, 2: 222, 3: 333}
    assert check_devices(mine, {2: 222, 3: 333}, sending_device=1) == DeviceCheck([], [], [])
    assert check_devices(mine, {1: 111, 2: 222, 3: 333}, sending_device=1) == DeviceCheck([], [1], [])
    assert check_devices(mine, {2: 999}, sending_device=1) == DeviceCheck([3], [], [2])
    # Sending to someone else's account, the same device id is just one of theirs.
    assert check_devices(mine, {2: 222, 3: 333}) == DeviceCheck([1], [], [])


# phone numbers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+14155550101", None, "+14155550101"),
        ("+1 (415) 555-0101", None, "+14155550101"),
        ("tel:+1-415-555-0101", None, "+14155550101"),
        ("(415) 555-0101", "US", "+14155550101"),
        ("+44 20 7946 0958", None, "+442079460958"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("+49 30 901820", None, "+4930901820"),
    ],
)
def test_a_number_is_normalised_to_e164(raw, region, e164):
    assert normalise(raw, region) == e164


@pytest.mark.parametrize(
    "raw", ["", "   ", "hello", "12345", "(415) 555-0101", "+1 415 555", "+1 415 555 01012", "+999 1234567", "+"]
)
def test_what_is_not_a_valid_number_is_refused_with_invalid_phone_number(raw):
    error = refused("invalid_phone_number", normalise, raw)
    assert error.status == 400
    assert try_normalise(raw) is None


phone_like = st.text(alphabet="+0123456789 -().", max_size=20) | st.text(max_size=40)


@given(raw=phone_like, region=st.sampled_from([None, "US", "GB", "DE", "IN"]))
def test_normalising_any_text_yields_e164_that_normalises_to_itself_or_refuses(raw, region):
    try:
        e164 = normalise(raw, region)
    except ApiError as error:
        assert (error.status, error.code) == (400, "invalid_phone_number")
        return
    assert re.fullmatch(r"\+[1-9]\d{1,14}", e164)
    assert normalise(e164) == e164


@given(region=st.sampled_from(sorted(phonenumbers.SUPPORTED_REGIONS)))
def test_every_region_example_number_is_the_same_account_however_it_is_written(region):
    example = phonenumbers.example_number(region)
    if example is None:
        return
    e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    international = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
    assert normalise(e164) == normalise(international) == normalise(national, region) == e164


# key signatures ---------------------------------------------------------------------------------------

SIGNER = OlmDevice.create()
KEY = OlmDevice.create().curve25519
KINDS = [signing.IDENTITY, signing.ONE_TIME, signing.FALLBACK]


def flip(value: str, index: int, mask: int) -> str:
    """``value`` (unpadded base64) with one byte changed, still unpadded base64 of the same length."""
    raw = bytearray(base64.b64decode(value + "=" * (-len(value) % 4)))
    raw[index % len(raw)] ^= mask
    return base64.b64encode(bytes(raw)).decode().rstrip("=")


@pytest.mark.parametrize("kind", KINDS)
def test_a_valid_signature_verifies(kind):
    signing.verify(SIGNER.ed25519, kind, KEY, SIGNER.sign(kind, KEY), "key")


@pytest.mark.parametrize(("signed_as", "presented_as"), list(itertools.permutations(KINDS, 2)))
def test_a_signature_for_one_kind_of_key_is_refused_for_another(signed_as, presented_as):
    signature = SIGNER.sign(signed_as, KEY)
    error = refused("bad_signature", signing.verify, SIGNER.ed25519, presented_as, KEY, signature, "key")
    assert error.status == 400


@given(
    kind=st.sampled_from(KINDS),
    part=st.sampled_from(["signer", "key", "signature"]),
    index=st.integers(0, 63),
    mask=st.integers(1, 255),
)
def test_any_tampered_byte_fails_verification(kind, part, index, mask):
    args = {"signer": SIGNER.ed25519, "key": KEY, "signature": SIGNER.sign(kind, KEY)}
    args[part] = flip(args[part], index, mask)
    refused("bad_signature", signing.verify, args["signer"], kind, args["key"], args["signature"], "key")


@pytest.mark.parametrize("signer", [base64.b64encode(bytes(n)).decode() for n in (0, 31, 33, 64)] + ["not*base64"])
def test_a_signer_key_that_is_not_32_bytes_is_refused_not_a_crash(signer):
    signature = SIGNER.sign(signing.ONE_TIME, KEY)
    refused("bad_signature", signing.verify, signer, signing.ONE_TIME, KEY, signature, "k")


def test_a_key_or_signature_that_is_not_base64_is_malformed_and_a_short_key_is_invalid():
    signature = SIGNER.sign(signing.ONE_TIME, KEY)
    refused("malformed_base64", signing.verify, SIGNER.ed25519, signing.ONE_TIME, "*" + KEY[1:], signature, "k")
    refused("malformed_base64", signing.verify, SIGNER.ed25519, signing.ONE_TIME, KEY, "*" + signature[1:], "k")
    short = base64.b64encode(bytes(31)).decode()
    refused("invalid_key", signing.verify, SIGNER.ed25519, signing.ONE_TIME, short, signature, "k")


def test_padded_and_unpadded_base64_are_both_accepted():
    assert signing.decode_base64(KEY, "k") == signing.decode_base64(KEY + "=", "k")
    assert len(signing.decode_base64(KEY, "k")) == 32
