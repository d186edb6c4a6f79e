"""The registration gate: reputation per number, range, source and device, and the proof of work it asks for.

Pure rules first, then a real relay with budgets lowered so that a handful of code requests from one address is a
burst: it is challenged (428), the SDK solves and registers, a solution is worth nothing for another number or
after it expired, and each registration's signals are kept per account.
"""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from cli_helpers import cli_env, cove, said
from cove.client.transport import RelayError, solve_challenge
from cove.db import create_engine
from cove.protocol import challenge
from cove.safety import registration_rules as rules
from cove.safety.registration_rules import History, Key, Thresholds
from cove.safety.registration_storage import safety_code_requests, safety_registrations
from cove.testing import run_cove

THRESHOLDS = Thresholds(
    per_hour={Key.NUMBER: 10, Key.RANGE: 300, Key.SOURCE: 300, Key.DEVICE: 10},
    banned=3,
    parent_weight=1.0,
    bits=18,
    max_bits=24,
)


def quiet(**overrides: History) -> dict[Key, History]:
    return {key: History() for key in Key} | {Key(k): h for k, h in overrides.items()}


# pure rules -------------------------------------------------------------------------------------------
def test_quiet_keys_pass_and_score_low():
    judged = rules.judge(quiet(source=History(requests_hour=299, requests_day=299)), THRESHOLDS)
    assert judged.bits == 0
    assert judged.scores[Key.NUMBER] == 0 and 0.49 < judged.scores[Key.SOURCE] < 0.5


def test_the_budget_reached_asks_for_work_and_each_doubling_one_bit_more_up_to_the_cap():
    at = rules.judge(quiet(source=History(requests_hour=300, requests_day=300)), THRESHOLDS)
    assert (at.bits, at.worst, at.scores[Key.SOURCE]) == (18, Key.SOURCE, 0.5)
    double = rules.judge(quiet(source=History(requests_hour=600, requests_day=600)), THRESHOLDS)
    assert double.bits == 19 and double.scores[Key.SOURCE] > at.scores[Key.SOURCE]
    flood = rules.judge(quiet(source=History(requests_hour=300 * 1000, requests_day=300 * 1000)), THRESHOLDS)
    assert flood.bits == THRESHOLDS.max_bits


def test_a_day_budget_catches_slow_steady_farming():
    slow = rules.judge(quiet(number=History(requests_hour=2, requests_day=100)), THRESHOLDS)
    assert slow.bits == 18 and slow.worst is Key.NUMBER


def test_a_model_is_shared_by_many_phones_a_vendor_id_is_not():
    busy = quiet(device=History(requests_hour=50, requests_day=50))
    assert rules.judge(busy, THRESHOLDS).bits == 18 + 2
    assert rules.judge(busy, THRESHOLDS, device_is_model=True).bits == 0


def test_banned_accounts_and_the_parents_signal_add_pressure_but_are_weighed_not_obeyed():
    one_ban = rules.judge(quiet(source=History(banned=1)), THRESHOLDS)
    three = rules.judge(quiet(source=History(banned=3)), THRESHOLDS)
    assert one_ban.bits == 0 < one_ban.scores[Key.SOURCE] < three.scores[Key.SOURCE] and three.bits == 18
    flagged = rules.judge(quiet(number=History(parent_flagged=True)), THRESHOLDS)
    assert flagged.scores[Key.NUMBER] == 0.5 and flagged.bits == 18  # a challenge, which a person passes
    lighter = Thresholds(THRESHOLDS.per_hour, 3, 0.5, 18, 24)
    assert rules.judge(quiet(number=History(parent_flagged=True)), lighter).bits == 0
    assert "reported" in rules.why(flagged)


def test_no_device_is_judged_on_the_other_keys():
    judged = rules.judge({k: History() for k in (Key.NUMBER, Key.RANGE, Key.SOURCE)}, THRESHOLDS)
    assert Key.DEVICE not in judged.scores and judged.bits == 0


def test_the_sdk_refuses_a_challenge_it_does_not_know():
    with pytest.raises(RelayError) as unknown:
        solve_challenge({"algorithm": "scrypt", "seed": "s", "bits": 8})
    assert unknown.value.code == "unknown_challenge"
    with pytest.raises(RelayError):
        solve_challenge({"algorithm": challenge.ALGORITHM, "seed": "s", "bits": 40})
    answer = solve_challenge({"algorithm": challenge.ALGORITHM, "seed": "s", "bits": 8})
    assert challenge.check("s", 8, answer["nonce"])


# through a real relay ---------------------------------------------------------------------------------
BURST = 3


@pytest.fixture
def relay_env() -> dict[str, str]:
    return {
        "COVE_REGISTRATION_GATE_SOURCE_PER_HOUR": str(BURST),
        "COVE_REGISTRATION_GATE_BITS": "10",
        "COVE_REGISTRATION_GATE_MAX_BITS": "12",
    }


async def ask(relay, phone: str, answer: dict | None = None) -> httpx.Response:  # noqa: ANN001
    body = {"phone_number": phone} | ({"challenge": answer} if answer else {})
    async with httpx.AsyncClient(base_url=relay.url) as http:
        return await http.post("/v1/verification/code", json=body)


async def registrations(database_url: str) -> dict[str, bool]:
    engine = create_engine(database_url)
    async with engine.connect() as conn:
        rows = (await conn.execute(select(safety_registrations))).all()
    await engine.dispose()
    return {row.account_id: row.challenged for row in rows}


async def test_a_burst_from_one_source_is_challenged_and_the_sdk_proves_work_and_registers(
    relay, users, code_inbox, database_url
):
    quiet_ones = [await users.register(f"u{i}") for i in range(BURST)]
    burst = await ask(relay, "+14155559001")
    assert burst.status_code == 428, burst.text
    error = burst.json()["error"]
    assert error["code"] == "challenge_required" and "network" in error["message"]
    assert error["challenge"]["algorithm"] == challenge.ALGORITHM and error["challenge"]["bits"] >= 10
    assert not code_inbox.codes.get("+14155559001")  # no code was sent, none spent

    tried = []
    client = users.client("farmed")
    sent = await client.request_code("+14155559002", progress=lambda n, expected: tried.append(expected))
    assert sent["phone_number"] == "+14155559002"
    await client.register("+14155559002", code_inbox.latest("+14155559002"))

    kept = await registrations(database_url)
    assert kept[client.core.account_id] is True  # its code request had to prove work
    assert [kept[c.core.account_id] for c in quiet_ones] == [False] * BURST


async def test_a_solution_is_worth_nothing_for_another_number(relay, users):
    for i in range(BURST):
        await users.register(f"u{i}")
    first = (await ask(relay, "+14155559101")).json()["error"]["challenge"]
    answer = solve_challenge(first)
    reused = await ask(relay, "+14155559102", answer)
    assert reused.status_code == 400 and reused.json()["error"]["code"] == "challenge_failed"
    forged = await ask(relay, "+14155559101", {"seed": first["seed"], "nonce": "1"})
    assert forged.status_code in (400, 202)  # "1" solves 10 bits about once in a thousand seeds
    if forged.status_code == 400:
        assert forged.json()["error"]["code"] == "challenge_failed"
    assert (await ask(relay, "+14155559101", answer)).status_code == 202


async def test_an_expired_seed_is_refused(relay, users, database_url):
    for i in range(BURST):
        await users.register(f"u{i}")
    answer = solve_challenge((await ask(relay, "+14155559201")).json()["error"]["challenge"])
    relay.env["COVE_CLOCK_OFFSET_MS"] = str(11 * 60_000)  # seeds live 10 minutes
    relay.restart()
    late = await ask(relay, "+14155559201", answer)
    assert late.status_code == 400 and late.json()["error"]["code"] == "challenge_failed"
    assert "expired" in late.json()["error"]["message"]
    engine = create_engine(database_url)
    async with engine.connect() as conn:
        rows = (await conn.execute(select(safety_code_requests.c.challenged, safety_code_requests.c.answered))).all()
    await engine.dispose()
    assert rows.count((True, False)) == 2 and (True, True) not in rows  # counted, never let through


async def test_ordinary_traffic_from_one_address_is_not_challenged(relay, relay_env, users):
    for name in relay_env:  # back to the defaults, against what a test suite or a carrier's NAT sends
        relay.env.pop(name)
    relay.restart()
    for i in range(40):
        await users.register(f"n{i}")


async def test_cove_register_shows_the_work_it_proves(relay, code_inbox, tmp_path):
    env = cli_env(relay, tmp_path / "home")
    for i in range(BURST):
        assert cove(env, "register", f"+1415555700{i}", "--profile", f"p{i}").returncode == 0
    proved = cove(env, "register", "+14155557009", "--profile", "farmed")
    assert proved.returncode == 0, said(proved)
    assert "proving work (1,024 hashes on average)" in said(proved) and "Code sent to +14155557009" in said(proved)
    verified = cove(env, "verify", await code_inbox.code_for("+14155557009"), "--profile", "farmed")
    assert verified.returncode == 0, said(verified)


async def test_a_refused_answer_is_a_clear_error_and_the_sdk_asks_only_once(relay, users):
    for i in range(BURST):
        await users.register(f"u{i}")

    def too_slow(tried: int, expected: int) -> None:
        if tried == 0:  # the phone takes longer than the seed lives (10 minutes): its answer comes too late
            relay.env["COVE_CLOCK_OFFSET_MS"] = str(11 * 60_000)
            relay.restart()

    with pytest.raises(RelayError) as refused:
        await users.client("late").request_code("+14155559301", progress=too_slow)
    assert refused.value.status == 400 and refused.value.code == "challenge_failed"
    assert "ask again without an answer" in str(refused.value)


async def test_an_account_banned_later_counts_against_the_keys_it_registered_from(relay, users, database_url):
    relay.env["COVE_REGISTRATION_GATE_BANNED"] = "1"
    relay.env["COVE_REGISTRATION_GATE_SOURCE_PER_HOUR"] = "100"  # no burst here: only the ban may challenge
    relay.restart()
    spammer = await users.register("spammer", "+14155558001")
    leaver = await users.register("leaver", "+14155558101")
    assert (await ask(relay, "+14155558002")).status_code == 202

    banned = run_cove(["safety", "ban", "+14155558001", "--reason", "spam"], relay.env)
    assert banned.returncode == 0, banned.stderr
    after = await ask(relay, "+14155558003")  # same range and address as the banned account
    assert after.status_code == 428 and after.json()["error"]["code"] == "challenge_required"

    # deleting an account deletes its registration's signals, unless it is banned: a ban outlives the account
    await leaver.delete_account()
    assert set(await registrations(database_url)) == {spammer.core.account_id}
