"""Every refusal of a real relay process, as a client sees it: the HTTP status, the error code and the details
a client acts on, always in the one shape ``{"error": {"code": ..., "message": ...}}``."""

from __future__ import annotations

import asyncio
import base64
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from cove.client.crypto import OlmDevice
from cove.protocol import signing
from helpers import server_rows

ALICE = "+14155550101"
BOB = "+14155550102"
NOBODY = "+14155550199"
DEVICE_INFO = {"model": "Pixel 9", "os_name": "Android", "os_version": "15", "app_version": "0.1.0"}
MAX_MESSAGE_BYTES = 96 * 1024


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    """The response is a JSON error with this status and code; returns the error object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["error"], body
    error = body["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    return error


@dataclass
class Account:
    account_id: str
    token: str
    registration_id: int
    olm: OlmDevice

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def http(relay) -> Iterator[httpx.Client]:  # noqa: ANN001
    with httpx.Client(base_url=relay.url, timeout=30) as client:
        yield client


def registration(phone: str, code: str, olm: OlmDevice, registration_id: int = 1) -> dict:
    return {
        "phone_number": phone,
        "code": code,
        "registration_id": registration_id,
        "identity_key": olm.identity_keys(),
        "device": dict(DEVICE_INFO),
    }


def request_code(http: httpx.Client, phone: str) -> httpx.Response:
    response = http.post("/v1/verification/code", json={"phone_number": phone})
    assert response.status_code == 202, response.text
    return response


def register(http: httpx.Client, inbox, phone: str) -> Account:  # noqa: ANN001
    olm = OlmDevice.create()
    registration_id = secrets.randbelow(16380) + 1
    request_code(http, phone)
    response = http.post("/v1/registration", json=registration(phone, inbox.latest(phone), olm, registration_id))
    assert response.status_code == 201, response.text
    return Account(response.json()["account_id"], response.json()["token"], registration_id, olm)


def wrong(code: str, offset: int = 1) -> str:
    """A six-digit code that is certainly not ``code``."""
    return f"{(int(code) + offset) % 1_000_000:06d}"


def ciphertext(device_id: int, registration_id: int, body: bytes = b"opaque olm ciphertext") -> dict:
    return {
        "device_id": device_id,
        "registration_id": registration_id,
        "kind": 1,
        "body": base64.b64encode(body).decode(),
    }


def send(http: httpx.Client, sender: Account, recipient_id: str, messages: list[dict]) -> httpx.Response:
    body = {"client_message_id": uuid.uuid4().hex, "messages": messages}
    return http.put(f"/v1/messages/{recipient_id}", json=body, headers=sender.auth)


def key_count(http: httpx.Client, account: Account) -> dict:
    response = http.get("/v1/keys/count", headers=account.auth)
    assert response.status_code == 200, response.text
    return response.json()


# verification codes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["12345", "call me maybe", "+1 415 555", "+1 415 555 01012", "+999 1234567", ""])
def test_an_invalid_phone_number_is_refused_and_gets_no_code(http, code_inbox, raw):
    assert_error(http.post("/v1/verification/code", json={"phone_number": raw}), 400, "invalid_phone_number")
    response = http.post("/v1/registration", json=registration(raw, "123456", OlmDevice.create()))
    assert_error(response, 400, "invalid_phone_number")
    assert code_inbox.codes == {}


def test_a_wrong_code_is_refused_with_the_attempts_left_and_the_right_code_still_works(http, code_inbox):
    request_code(http, ALICE)
    code = code_inbox.latest(ALICE)
    olm = OlmDevice.create()

    first = assert_error(http.post("/v1/registration", json=registration(ALICE, wrong(code), olm)), 400, "wrong_code")
    second = assert_error(
        http.post("/v1/registration", json=registration(ALICE, wrong(code, 2), olm)), 400, "wrong_code"
    )
    assert (first["attempts_left"], second["attempts_left"]) == (4, 3)

    assert http.post("/v1/registration", json=registration(ALICE, code, olm)).status_code == 201


def test_after_the_last_wrong_attempt_even_the_right_code_is_refused_until_a_new_one_is_sent(http, code_inbox):
    request_code(http, ALICE)
    code = code_inbox.latest(ALICE)
    olm = OlmDevice.create()
    attempts_left = []
    for i in range(5):
        response = http.post("/v1/registration", json=registration(ALICE, wrong(code, i + 1), olm))
        attempts_left.append(assert_error(response, 400, "wrong_code")["attempts_left"])
    assert attempts_left == [4, 3, 2, 1, 0]

    assert_error(http.post("/v1/registration", json=registration(ALICE, code, olm)), 429, "too_many_attempts")

    request_code(http, ALICE)
    fresh = code_inbox.latest(ALICE)
    assert http.post("/v1/registration", json=registration(ALICE, fresh, olm)).status_code == 201


async def test_concurrent_wrong_guesses_cannot_exceed_the_attempt_limit(relay, code_inbox):
    # Guessing in parallel is the cheap way to brute-force a six-digit code: every guess must be counted.
    async with httpx.AsyncClient(base_url=relay.url, timeout=60) as client:
        assert (await client.post("/v1/verification/code", json={"phone_number": ALICE})).status_code == 202
        code = code_inbox.latest(ALICE)
        olm = OlmDevice.create()
        guesses = [
            client.post("/v1/registration", json=registration(ALICE, wrong(code, i + 1), olm)) for i in range(30)
        ]
        responses = await asyncio.gather(*guesses)
        outcomes = sorted((r.status_code, r.json()["error"]["code"]) for r in responses)
        assert outcomes == [(400, "wrong_code")] * 5 + [(429, "too_many_attempts")] * 25

        right = await client.post("/v1/registration", json=registration(ALICE, code, olm))
        assert_error(right, 429, "too_many_attempts")


def test_requesting_more_codes_than_allowed_is_refused_with_retry_after(http, code_inbox):
    sends_left = [request_code(http, ALICE).json()["sends_left"] for _ in range(5)]
    assert sends_left == [4, 3, 2, 1, 0]

    refused = http.post("/v1/verification/code", json={"phone_number": ALICE})
    error = assert_error(refused, 429, "too_many_codes")
    assert 0 < error["retry_after"] <= 3601
    assert refused.headers["Retry-After"] == str(error["retry_after"])
    assert len(code_inbox.codes[ALICE]) == 5

    # The limit is per number: another number is unaffected.
    request_code(http, BOB)


async def test_concurrent_code_requests_cannot_exceed_the_send_limit(relay, code_inbox):
    # Each code is a paid SMS and resets the guess counter, so a burst must not slip past the limit.
    async with httpx.AsyncClient(base_url=relay.url, timeout=60) as client:
        requests = [client.post("/v1/verification/code", json={"phone_number": ALICE}) for _ in range(20)]
        responses = await asyncio.gather(*requests)
    outcomes = sorted((r.status_code, r.json().get("error", {}).get("code")) for r in responses)
    assert outcomes == [(202, None)] * 5 + [(429, "too_many_codes")] * 15
    assert len(code_inbox.codes[ALICE]) == 5


async def test_one_code_sent_twice_at_once_registers_one_device(relay, code_inbox):
    async with httpx.AsyncClient(base_url=relay.url, timeout=60) as client:
        assert (await client.post("/v1/verification/code", json={"phone_number": ALICE})).status_code == 202
        code = code_inbox.latest(ALICE)
        body = registration(ALICE, code, OlmDevice.create())
        responses = await asyncio.gather(*[client.post("/v1/registration", json=body) for _ in range(5)])
    assert sorted(r.status_code for r in responses) == [201, 400, 400, 400, 400], [r.text for r in responses]
    for response in responses:
        if response.status_code == 400:
            assert_error(response, 400, "no_code_requested")


def test_registering_without_requesting_a_code_is_refused(http):
    response = http.post("/v1/registration", json=registration(ALICE, "123456", OlmDevice.create()))
    assert_error(response, 400, "no_code_requested")


def test_a_code_works_once(http, code_inbox):
    request_code(http, ALICE)
    code = code_inbox.latest(ALICE)
    assert http.post("/v1/registration", json=registration(ALICE, code, OlmDevice.create())).status_code == 201
    response = http.post("/v1/registration", json=registration(ALICE, code, OlmDevice.create()))
    assert_error(response, 400, "no_code_requested")


# identity keys at registration ------------------------------------------------------------------------


def _signed_for_another_kind(olm: OlmDevice) -> dict:
    return {**olm.identity_keys(), "signature": olm.sign(signing.ONE_TIME, olm.curve25519)}


def _signed_by_another_device(olm: OlmDevice) -> dict:
    return {**olm.identity_keys(), "signature": OlmDevice.create().sign(signing.IDENTITY, olm.curve25519)}


def _signed_over_another_key(olm: OlmDevice) -> dict:
    return {**olm.identity_keys(), "curve25519": OlmDevice.create().curve25519}


@pytest.mark.parametrize("forge", [_signed_for_another_kind, _signed_by_another_device, _signed_over_another_key])
def test_an_identity_key_with_a_bad_signature_is_refused_without_using_up_the_code(http, code_inbox, forge):
    request_code(http, ALICE)
    code = code_inbox.latest(ALICE)
    olm = OlmDevice.create()
    forged = {**registration(ALICE, code, olm), "identity_key": forge(olm)}
    assert_error(http.post("/v1/registration", json=forged), 400, "bad_signature")

    for _ in range(5):  # more refusals than the attempt limit: a bad key is not a guess
        assert_error(http.post("/v1/registration", json=forged), 400, "bad_signature")
    assert http.post("/v1/registration", json=registration(ALICE, code, olm)).status_code == 201


@pytest.mark.parametrize("field", ["curve25519", "ed25519", "signature"])
def test_malformed_base64_in_the_identity_key_is_refused(http, code_inbox, field):
    request_code(http, ALICE)
    olm = OlmDevice.create()
    body = registration(ALICE, code_inbox.latest(ALICE), olm)
    body["identity_key"][field] = "not*base64!" + body["identity_key"][field][11:]
    assert_error(http.post("/v1/registration", json=body), 400, "malformed_base64")


# one-time and fallback keys ---------------------------------------------------------------------------


def test_a_batch_with_one_badly_signed_one_time_key_is_refused_whole(http, code_inbox):
    alice = register(http, code_inbox, ALICE)
    keys = alice.olm.new_one_time_keys(3)
    keys[1] = {**keys[1], "signature": alice.olm.sign(signing.FALLBACK, keys[1]["public_key"])}
    assert_error(http.put("/v1/keys", json={"one_time_keys": keys}, headers=alice.auth), 400, "bad_signature")
    assert key_count(http, alice)["one_time_keys"] == 0


def test_keys_signed_by_another_device_are_refused(http, code_inbox):
    alice = register(http, code_inbox, ALICE)
    mallory = OlmDevice.create()
    forged = mallory.new_one_time_keys(1)
    assert_error(http.put("/v1/keys", json={"one_time_keys": forged}, headers=alice.auth), 400, "bad_signature")
    fallback = mallory.new_fallback_key()
    assert_error(http.put("/v1/keys", json={"fallback_key": fallback}, headers=alice.auth), 400, "bad_signature")
    assert key_count(http, alice) == {"one_time_keys": 0, "max_one_time_keys": 50, "has_fallback_key": False}


def test_a_one_time_key_cannot_be_passed_off_as_the_fallback_key(http, code_inbox):
    alice = register(http, code_inbox, ALICE)
    one_time = alice.olm.new_one_time_keys(1)[0]
    assert_error(http.put("/v1/keys", json={"fallback_key": one_time}, headers=alice.auth), 400, "bad_signature")
    assert key_count(http, alice)["has_fallback_key"] is False


@pytest.mark.parametrize("field", ["public_key", "signature"])
def test_malformed_base64_in_an_uploaded_key_is_refused(http, code_inbox, field):
    alice = register(http, code_inbox, ALICE)
    key = alice.olm.new_one_time_keys(1)[0]
    key[field] = "%%%%" + key[field][4:]
    assert_error(http.put("/v1/keys", json={"one_time_keys": [key]}, headers=alice.auth), 400, "malformed_base64")


def test_a_device_cannot_hold_more_than_the_maximum_of_one_time_keys(http, code_inbox):
    alice = register(http, code_inbox, ALICE)
    assert http.put("/v1/keys", json={"one_time_keys": alice.olm.new_one_time_keys(50)}, headers=alice.auth).is_success
    alice.olm.mark_published()

    one_more = alice.olm.new_one_time_keys(1)
    error = assert_error(
        http.put("/v1/keys", json={"one_time_keys": one_more}, headers=alice.auth), 400, "too_many_keys"
    )
    assert "50" in error["message"]
    assert key_count(http, alice)["one_time_keys"] == 50


# key directory and sending ----------------------------------------------------------------------------


def test_an_unknown_account_has_no_keys_and_cannot_be_sent_to(http, code_inbox):
    alice = register(http, code_inbox, ALICE)
    nobody = str(uuid.uuid4())
    assert_error(http.get(f"/v1/keys/{nobody}", headers=alice.auth), 404, "unknown_account")
    assert_error(http.get(f"/v1/keys/{nobody}/identity", headers=alice.auth), 404, "unknown_account")
    assert_error(send(http, alice, nobody, [ciphertext(1, 1)]), 404, "unknown_account")


async def test_a_send_that_misses_or_invents_devices_is_refused_and_nothing_is_queued(relay, http, code_inbox):
    alice = register(http, code_inbox, ALICE)
    bob = register(http, code_inbox, BOB)

    wrong_device = assert_error(send(http, alice, bob.account_id, [ciphertext(2, 77)]), 409, "device_mismatch")
    assert (wrong_device["missing_devices"], wrong_device["extra_devices"]) == ([1], [2])

    both = [ciphertext(1, bob.registration_id), ciphertext(3, 77)]
    one_extra = assert_error(send(http, alice, bob.account_id, both), 409, "device_mismatch")
    assert (one_extra["missing_devices"], one_extra["extra_devices"]) == ([], [3])

    # Alice has one device, so a note to herself addresses no device of hers but the one sending it.
    to_self = assert_error(
        send(http, alice, alice.account_id, [ciphertext(1, alice.registration_id)]), 409, "device_mismatch"
    )
    assert (to_self["missing_devices"], to_self["extra_devices"]) == ([], [1])

    assert [t for t, _ in await server_rows(relay.database_url) if t == "envelopes"] == []


async def test_a_send_to_a_reinstalled_device_is_refused_as_stale_and_nothing_is_queued(relay, http, code_inbox):
    alice = register(http, code_inbox, ALICE)
    bob = register(http, code_inbox, BOB)
    old_registration = bob.registration_id % 16380 + 1
    error = assert_error(send(http, alice, bob.account_id, [ciphertext(1, old_registration)]), 410, "stale_devices")
    assert error["stale_devices"] == [1]
    assert [t for t, _ in await server_rows(relay.database_url) if t == "envelopes"] == []

    assert send(http, alice, bob.account_id, [ciphertext(1, bob.registration_id)]).status_code == 200


@pytest.mark.parametrize("body", ["not base64!", "QUJD\nRA==", "QUJDRA", "QUJD RA=="])
def test_a_message_body_that_is_not_base64_is_refused(http, code_inbox, body):
    alice = register(http, code_inbox, ALICE)
    bob = register(http, code_inbox, BOB)
    message = {**ciphertext(1, bob.registration_id), "body": body}
    assert_error(send(http, alice, bob.account_id, [message]), 400, "malformed_base64")


def test_a_ciphertext_over_the_size_limit_is_refused_and_one_at_the_limit_is_accepted(http, code_inbox):
    alice = register(http, code_inbox, ALICE)
    bob = register(http, code_inbox, BOB)
    over = ciphertext(1, bob.registration_id, secrets.token_bytes(MAX_MESSAGE_BYTES + 1))
    error = assert_error(send(http, alice, bob.account_id, [over]), 413, "message_too_large")
    assert str(MAX_MESSAGE_BYTES) in error["message"]

    at_limit = ciphertext(1, bob.registration_id, secrets.token_bytes(MAX_MESSAGE_BYTES))
    accepted = send(http, alice, bob.account_id, [at_limit])
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["queued"] == 1


# authentication ---------------------------------------------------------------------------------------

AUTHENTICATED_CALLS = [
    ("GET", "/v1/accounts/me", None),
    ("PUT", "/v1/devices/current", DEVICE_INFO),
    ("GET", "/v1/keys/count", None),
    ("PUT", "/v1/keys", {"one_time_keys": []}),
    ("GET", f"/v1/keys/{uuid.uuid4()}", None),
    ("POST", "/v1/directory/lookup", {"phone_numbers": [ALICE]}),
    ("PUT", f"/v1/messages/{uuid.uuid4()}", {"client_message_id": "m1", "messages": [ciphertext(1, 1)]}),
    ("DELETE", "/v1/devices/current", None),
]


def call_all(http: httpx.Client, headers: dict[str, str]) -> list[httpx.Response]:
    return [http.request(method, path, json=body, headers=headers) for method, path, body in AUTHENTICATED_CALLS]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic YWxpY2U6c2VjcmV0"}, {"Authorization": ""}],
    ids=["no header", "bogus token", "other scheme", "empty header"],
)
def test_calls_without_a_valid_token_are_unauthenticated(http, headers):
    for response in call_all(http, headers):
        assert_error(response, 401, "unauthenticated")


def test_a_token_stops_working_at_once_after_logout(http, code_inbox):
    alice = register(http, code_inbox, ALICE)
    assert http.get("/v1/accounts/me", headers=alice.auth).status_code == 200
    assert http.delete("/v1/devices/current", headers=alice.auth).status_code == 204
    for response in call_all(http, alice.auth):
        assert_error(response, 401, "unauthenticated")


# request shape ----------------------------------------------------------------------------------------


def test_an_invalid_registration_body_lists_every_bad_field(http):
    body = registration(ALICE, "", OlmDevice.create(), registration_id=0)
    del body["device"]["model"]
    error = assert_error(http.post("/v1/registration", json=body), 400, "invalid_request")
    assert {f["field"] for f in error["fields"]} == {"code", "registration_id", "device.model"}
    assert all(f["problem"] for f in error["fields"])


@pytest.mark.parametrize(
    ("path", "content", "field"),
    [
        ("/v1/verification/code", "{}", "phone_number"),
        ("/v1/verification/code", '{"phone_number": 14155550101}', "phone_number"),
        ("/v1/verification/code", "{not json", ""),
        ("/v1/registration", "[]", ""),
    ],
)
def test_a_malformed_request_body_is_an_invalid_request(http, path, content, field):
    response = http.post(path, content=content, headers={"Content-Type": "application/json"})
    error = assert_error(response, 400, "invalid_request")
    assert error["fields"] and error["fields"][0]["field"].startswith(field)


def test_uploading_more_one_time_keys_than_allowed_in_one_request_is_an_invalid_request(http, code_inbox):
    alice = register(http, code_inbox, ALICE)
    keys = alice.olm.new_one_time_keys(50)
    keys.append({**keys[0], "key_id": "one-too-many"})
    error = assert_error(http.put("/v1/keys", json={"one_time_keys": keys}, headers=alice.auth), 400, "invalid_request")
    assert [f["field"] for f in error["fields"]] == ["one_time_keys"]
    assert key_count(http, alice)["one_time_keys"] == 0


def test_unknown_routes_and_methods_answer_in_the_error_shape(http):
    assert_error(http.get("/v1/nothing-here"), 404, "not_found")
    assert_error(http.delete("/v1/verification/code"), 405, "method_not_allowed")


# contact discovery ------------------------------------------------------------------------------------


async def test_contact_discovery_finds_registered_numbers_only_and_stores_nothing(relay, http, code_inbox):
    alice = register(http, code_inbox, ALICE)
    bob = register(http, code_inbox, BOB)
    before = await server_rows(relay.database_url)

    asked = ["+1 (415) 555-0102", NOBODY, "+14155550198", "4155550197", "not a number", ALICE]
    response = http.post("/v1/directory/lookup", json={"phone_numbers": asked}, headers=alice.auth)
    assert response.status_code == 200, response.text
    assert response.json()["registered"] == [
        {"phone_number": ALICE, "account_id": alice.account_id},
        {"phone_number": BOB, "account_id": bob.account_id},
    ]

    after = await server_rows(relay.database_url)
    assert sorted(map(repr, after)) == sorted(map(repr, before))
    for digits in ["5550199", "5550198", "5550197", "not a number"]:
        assert digits not in repr(after)
        assert digits not in relay.log()


def test_contact_discovery_refuses_oversized_batches_and_then_rate_limits(http, code_inbox):
    alice = register(http, code_inbox, ALICE)
    too_many = [f"+1415555{i:04d}" for i in range(1001)]
    response = http.post("/v1/directory/lookup", json={"phone_numbers": too_many}, headers=alice.auth)
    assert_error(response, 400, "too_many_numbers")

    # The bucket holds 5,000 numbers: five full batches pass, the sixth waits for refill.
    batch = too_many[:1000]
    for _ in range(5):
        assert http.post("/v1/directory/lookup", json={"phone_numbers": batch}, headers=alice.auth).status_code == 200
    limited = http.post("/v1/directory/lookup", json={"phone_numbers": batch}, headers=alice.auth)
    assert assert_error(limited, 429, "rate_limited")["retry_after"] > 0
    assert int(limited.headers["Retry-After"]) > 0
