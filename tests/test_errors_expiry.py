"""Verification-code refusals that depend on time, against a relay whose codes expire and whose send window
closes within seconds."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from cove.client.crypto import OlmDevice
from test_errors import ALICE, assert_error, registration, request_code, wrong


@pytest.fixture
def relay_env() -> dict[str, str]:
    return {"COVE_CODE_TTL_SECONDS": "1", "COVE_CODE_MAX_SENDS": "2", "COVE_CODE_SEND_WINDOW_SECONDS": "2"}


@pytest.fixture
def http(relay) -> Iterator[httpx.Client]:  # noqa: ANN001
    with httpx.Client(base_url=relay.url, timeout=30) as client:
        yield client


def test_an_expired_code_is_refused_even_when_right_and_a_new_one_works(http, code_inbox):
    request_code(http, ALICE)
    code = code_inbox.latest(ALICE)
    olm = OlmDevice.create()
    time.sleep(1.2)

    assert_error(http.post("/v1/registration", json=registration(ALICE, code, olm)), 400, "code_expired")
    # A guess at an expired code learns nothing about it.
    assert_error(http.post("/v1/registration", json=registration(ALICE, wrong(code), olm)), 400, "code_expired")

    request_code(http, ALICE)
    assert http.post("/v1/registration", json=registration(ALICE, code_inbox.latest(ALICE), olm)).status_code == 201


def test_after_too_many_codes_waiting_retry_after_allows_a_new_one(http, code_inbox):
    request_code(http, ALICE)
    request_code(http, ALICE)
    refused = http.post("/v1/verification/code", json={"phone_number": ALICE})
    error = assert_error(refused, 429, "too_many_codes")
    assert 0 < error["retry_after"] <= 3
    assert refused.headers["Retry-After"] == str(error["retry_after"])

    time.sleep(error["retry_after"])
    assert request_code(http, ALICE).json()["sends_left"] == 1
    assert len(code_inbox.codes[ALICE]) == 3
