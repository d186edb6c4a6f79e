"""Code requests are limited per number and source address, per source, per number range and overall, so
one source cannot spend a victim's codes, and a bulk requester is stopped (cove.accounts.code_limits).

The relay runs with small limits; clients stand at other addresses through ``X-Forwarded-For``, which
uvicorn believes from 127.0.0.1 (as from a reverse proxy on the same host)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from cove.client.crypto import OlmDevice
from test_errors import assert_error, registration

VICTIM = "+14155550171"
ATTACKER, VICTIMS_PHONE, OTHER = "203.0.113.7", "198.51.100.9", "192.0.2.44"


@pytest.fixture
def relay_env() -> dict[str, str]:
    return {
        "COVE_CODE_MAX_SENDS": "2",
        "COVE_CODE_MAX_SENDS_PER_SOURCE": "4",
        "COVE_CODE_MAX_SENDS_PER_RANGE": "5",
        "COVE_CODE_MAX_SENDS_OVERALL": "7",
    }


@pytest.fixture
def http(relay) -> Iterator[httpx.Client]:  # noqa: ANN001
    with httpx.Client(base_url=relay.url, timeout=30) as client:
        yield client


def ask(http: httpx.Client, phone: str, source: str) -> httpx.Response:
    return http.post("/v1/verification/code", json={"phone_number": phone}, headers={"X-Forwarded-For": source})


def refused_by(response: httpx.Response, limit: str) -> None:
    error = assert_error(response, 429, "too_many_codes")
    assert error["limit"] == limit, error
    assert int(response.headers["Retry-After"]) == error["retry_after"] > 0


def test_an_attacker_cannot_use_up_a_victims_codes(http, code_inbox):
    spent = [ask(http, VICTIM, ATTACKER) for _ in range(3)]
    assert [r.status_code for r in spent] == [202, 202, 429]

    sent = ask(http, VICTIM, VICTIMS_PHONE)
    assert sent.status_code == 202, sent.text
    refused_by(spent[-1], "number")
    assert sent.json()["sends_left"] == 1
    code = code_inbox.latest(VICTIM)
    registered = http.post("/v1/registration", json=registration(VICTIM, code, OlmDevice.create()))
    assert registered.status_code == 201, registered.text


def test_one_source_asking_for_many_numbers_is_stopped_and_others_are_not(http):
    numbers = [f"+1415555{block}01" for block in range(10, 16)]  # six ranges
    assert [ask(http, n, ATTACKER).status_code for n in numbers[:4]] == [202] * 4
    refused_by(ask(http, numbers[4], ATTACKER), "source")
    assert ask(http, numbers[4], OTHER).status_code == 202


def test_codes_to_one_number_range_are_limited_whatever_the_sources(http):
    sources = [f"198.51.100.{i}" for i in range(1, 8)]
    in_range = [f"+141555510{i:02d}" for i in range(7)]  # +141555510xx: one range
    assert [ask(http, n, s).status_code for n, s in zip(in_range[:5], sources, strict=False)] == [202] * 5
    refused_by(ask(http, in_range[5], sources[5]), "range")
    assert ask(http, "+14155552201", sources[6]).status_code == 202  # another range


def test_the_relay_sends_no_more_than_its_overall_limit(http):
    sent = [ask(http, f"+1415555{30 + i}01", f"198.51.100.{i}").status_code for i in range(8)]
    assert sent == [202] * 7 + [429]
    refused_by(ask(http, "+14155554001", "198.51.100.77"), "overall")


def test_an_ipv6_subscriber_is_one_source_across_its_64(http):
    addresses = [f"2001:db8:1:2::{i:x}" for i in range(1, 6)]
    assert [ask(http, f"+1415555{50 + i}01", a).status_code for i, a in enumerate(addresses[:4])] == [202] * 4
    refused_by(ask(http, "+14155556001", addresses[4]), "source")
    assert ask(http, "+14155556001", "2001:db8:1:3::1").status_code == 202
