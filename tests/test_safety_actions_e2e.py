"""Graduated actions through a real relay: each step refuses what it should, and each is reversed (a lift, a
solved challenge, a review, a granted appeal). Operators act with `cove safety` in another process, as they would."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from cli_helpers import cli_env, register
from cli_helpers import cove as cli
from cli_helpers import said as cli_said
from cove.client.group_client import Groups
from cove.client.transport import RelayError
from cove.config import Settings
from cove.db import create_engine
from cove.protocol import challenge
from cove.safety import actions
from cove.safety.ladder import Source, Step
from cove.safety.verdicts import ReasonCode
from cove.testing import run_cove

POLL = 0.3  # COVE_FLEET_POLL_SECONDS below: how soon a relay reads a command's change


@pytest.fixture
def relay_env() -> dict[str, str]:
    return {"COVE_FLEET_POLL_SECONDS": str(POLL), "COVE_SAFETY_CHALLENGE_BITS": "8", "COVE_SAFETY_THROTTLE_BURST": "2"}


def cove(relay, *args: str) -> subprocess.CompletedProcess:  # noqa: ANN001
    return run_cove(list(args), {**relay.env, "COLUMNS": "250"})  # a table's cells unwrapped


def rows(done: subprocess.CompletedProcess) -> list[list[str]]:
    """The cells of a rich table's rows."""
    return [[c.strip() for c in line.strip("│").split("│")] for line in done.stdout.splitlines() if "│" in line]


def said(done: subprocess.CompletedProcess) -> str:
    return " ".join((done.stdout + done.stderr).split())


async def applied() -> None:
    """Wait for the relays to read the fleet event a command wrote."""
    await asyncio.sleep(POLL * 4)


async def api(relay, method: str, path: str, token: str | None = None, **body: object) -> httpx.Response:  # noqa: ANN001
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=relay.url) as http:
        return await http.request(method, path, json=body or None, headers=headers)


async def test_throttle_paces_sends_until_lifted(users, relay):
    alice = await users.register("alice", "+14155550141")
    bob = await users.register("bob")
    acted = cove(relay, "safety", "act", "+14155550141", "--step", "throttle", "--reason", "burst_from_new_account")
    assert acted.returncode == 0, said(acted)
    assert "throttle on +14155550141 (burst_from_new_account) until" in said(acted)
    await applied()

    for n in range(2):  # the bucket's burst
        await alice.send_text(bob.core.account_id, f"hello {n}")
    with pytest.raises(RelayError) as refused:
        await alice.send_text(bob.core.account_id, "one too many")
    assert refused.value.status == 429 and refused.value.code == "throttled"
    assert refused.value.details["reason"] == "burst_from_new_account" and refused.value.details["retry_after"] >= 1

    status = (await api(relay, "GET", "/v1/safety/status", alice.core.token)).json()
    assert [(s["step"], s["reason"], s["source"]) for s in status["steps"]] == [
        ("throttle", "burst_from_new_account", "operator")
    ]
    assert status["steps"][0]["until"] > status["steps"][0]["since"] and status["appeal"] is None

    again = cove(relay, "safety", "act", "+14155550141", "--step", "throttle", "--reason", "spam")
    assert again.returncode == 0 and "nothing changed" in said(again)  # never repeats or lowers a step in force

    lifted = cove(relay, "safety", "lift", "+14155550141")
    assert lifted.returncode == 0 and "lifted throttle" in said(lifted), said(lifted)
    await applied()
    for n in range(3):
        await alice.send_text(bob.core.account_id, f"paced no more {n}")
    assert (await api(relay, "GET", "/v1/safety/status", alice.core.token)).json()["steps"] == []
    assert cove(relay, "safety", "lift", "+14155550141").returncode == 1  # nothing in force any more


async def test_a_throttle_ends_by_itself(users, relay):
    alice = await users.register("alice", "+14155550151")
    bob = await users.register("bob")
    engine = create_engine(relay.database_url)
    try:
        async with engine.begin() as conn:
            short = Settings(safety_throttle_minutes=0.05)  # 3 s
            await actions.take_in(
                conn, short, alice.core.account_id, Step.THROTTLE, ReasonCode.SPAM, Source.RULE, 0.8, actions.now_ms()
            )
    finally:
        await engine.dispose()
    await applied()
    for n in range(2):
        await alice.send_text(bob.core.account_id, f"burst {n}")
    with pytest.raises(RelayError) as refused:
        await alice.send_text(bob.core.account_id, "too soon")
    assert refused.value.code == "throttled"
    await asyncio.sleep(3)
    for n in range(3):  # more than the bucket held: the throttle, not the bucket, ended
        await alice.send_text(bob.core.account_id, f"free again {n}")


async def test_a_challenged_account_sends_again_once_its_device_proves_work(users, relay):
    alice = await users.register("alice", "+14155550142")
    bob = await users.register("bob")
    assert cove(relay, "safety", "act", "+14155550142", "--step", "challenge", "--reason", "spam").returncode == 0
    await applied()

    refused = await api(relay, "POST", "/v1/groups", alice.core.token, members=[bob.core.account_id])
    assert refused.status_code == 428
    error = refused.json()["error"]
    assert error["code"] == "challenge_required" and error["challenge"]["bits"] == 8
    seed = error["challenge"]["seed"]

    wrong = await api(relay, "PUT", "/v1/safety/challenge", alice.core.token, seed=seed, nonce="1" * 20)
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "wrong_answer"
    nonce = challenge.solve(seed, 8)
    stolen = await api(relay, "PUT", "/v1/safety/challenge", bob.core.token, seed=seed, nonce=nonce)
    assert stolen.status_code == 400  # a seed is bound to the account it was set for
    solved = await api(relay, "PUT", "/v1/safety/challenge", alice.core.token, seed=seed, nonce=nonce)
    assert solved.status_code == 200 and solved.json()["steps"] == []

    await alice.send_text(bob.core.account_id, "I am a person")
    assert await Groups(alice).create([bob.core.account_id])


async def test_the_sdk_solves_a_sending_challenge_by_itself(users, relay):
    alice = await users.register("alice", "+14155550143")
    bob = await users.register("bob")
    assert cove(relay, "safety", "act", "+14155550143", "--step", "challenge", "--reason", "spam").returncode == 0
    await applied()
    shown: list[str] = []

    @contextlib.contextmanager
    def spinner() -> Iterator[None]:
        shown.append("working")
        yield

    alice.on_challenge = spinner
    await alice.send_text(bob.core.account_id, "solved on the way")
    assert shown == ["working"]  # solved once, then the send went through
    assert (await api(relay, "GET", "/v1/safety/status", alice.core.token)).json()["steps"] == []
    await alice.send_text(bob.core.account_id, "no more work")
    assert shown == ["working"]


async def test_a_restricted_account_may_not_fill_groups_and_appeals_with_its_token(users, relay):
    alice = await users.register("alice", "+14155550144")
    bob = await users.register("bob")
    nothing = await api(relay, "POST", "/v1/safety/appeals/me", alice.core.token, message="why?")
    assert nothing.status_code == 409 and nothing.json()["error"]["code"] == "nothing_to_appeal"
    assert cove(relay, "safety", "act", "+14155550144", "--step", "restrict", "--reason", "many_groups").returncode == 0
    await applied()

    with pytest.raises(RelayError) as refused:
        await Groups(alice).create([bob.core.account_id])
    assert refused.value.status == 403 and refused.value.code == "account_restricted"
    assert refused.value.details["reason"] == "many_groups" and refused.value.details["until"] is not None
    with pytest.raises(RelayError) as stranger:
        await alice.send_text(bob.core.account_id, "hello stranger")  # bob never wrote to alice
    assert stranger.value.code == "account_restricted"
    await bob.send_text(alice.core.account_id, "hi alice, it's bob")  # now bob accepts alice
    await alice.send_text(bob.core.account_id, "hi bob")

    filed = await api(relay, "POST", "/v1/safety/appeals/me", alice.core.token, message="a school club, 40 parents")
    assert filed.status_code == 201 and filed.json()["state"] == "open"
    twice = await api(relay, "POST", "/v1/safety/appeals/me", alice.core.token, message="again")
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "appeal_open"
    too_long = await api(relay, "POST", "/v1/safety/appeals/me", alice.core.token, message="x" * 1001)
    assert too_long.status_code == 400
    status = (await api(relay, "GET", "/v1/safety/status", alice.core.token)).json()
    assert status["steps"][0]["step"] == "restrict" and status["appeal"]["state"] == "open"

    queue = cove(relay, "safety", "queue")
    assert queue.returncode == 0 and "appeal" in said(queue) and "a school club, 40 parents" in said(queue)
    case = str(filed.json()["id"])
    granted = cove(relay, "safety", "appeal", case, "--grant", "--note", "a real club")
    assert granted.returncode == 0, said(granted)
    await applied()
    assert await Groups(alice).create([bob.core.account_id])
    assert cove(relay, "safety", "appeal", case, "--deny").returncode == 1  # decided already
    stats = cove(relay, "safety", "queue", "--stats")
    assert "appeal overturn rate: 100.0%" in said(stats), said(stats)


async def test_an_automatic_restriction_waits_for_review_and_a_reviewer_lifts_it(users, relay):
    alice = await users.register("alice", "+14155550145")
    bob = await users.register("bob")
    engine = create_engine(relay.database_url)
    try:
        async with engine.begin() as conn:
            taken = await actions.take_in(
                conn,
                Settings(),
                alice.core.account_id,
                Step.RESTRICT,
                ReasonCode.UNSOLICITED_FAN_OUT,
                Source.MODEL,
                0.97,
                actions.now_ms(),
            )
    finally:
        await engine.dispose()
    assert taken is not None
    await applied()
    with pytest.raises(RelayError) as refused:
        await Groups(alice).create([bob.core.account_id])
    assert refused.value.code == "account_restricted"

    queue = rows(cove(relay, "safety", "queue"))
    assert [r[:6] for r in queue] == [
        [str(taken.id), "review", alice.core.account_id, "restrict", "unsolicited_fan_out", "model"]
    ]
    assert cove(relay, "safety", "review", str(taken.id)).returncode == 1  # neither --confirm nor --lift
    lifted = cove(relay, "safety", "review", str(taken.id), "--lift", "--note", "a teacher, not a spammer")
    assert lifted.returncode == 0 and "lifted the restrict" in said(lifted), said(lifted)
    await applied()
    assert await Groups(alice).create([bob.core.account_id])
    assert "the queue is empty" in said(cove(relay, "safety", "queue"))
    assert "review overturn rate: 100.0%" in said(cove(relay, "safety", "queue", "--stats"))


async def test_a_ban_is_appealed_with_an_appeal_code_and_granting_it_restores_the_account(users, relay, code_inbox):
    number = "+14155550146"
    alice = await users.register("alice", number)
    account_id = alice.core.account_id
    banned = cove(relay, "safety", "act", number, "--step", "ban", "--reason", "bulk_messaging")
    assert banned.returncode == 0, said(banned)
    await applied()
    assert (await api(relay, "GET", "/v1/safety/status", alice.core.token)).status_code == 401  # logged out

    register_code = await api(relay, "POST", "/v1/verification/code", phone_number=number)
    assert register_code.status_code == 403 and register_code.json()["error"]["code"] == "account_banned"
    not_banned = await api(relay, "POST", "/v1/verification/code", phone_number="+14155550147", purpose="appeal")
    assert not_banned.status_code == 409 and not_banned.json()["error"]["code"] == "not_banned"
    sent = await api(relay, "POST", "/v1/verification/code", phone_number=number, purpose="appeal")
    assert sent.status_code == 202, sent.text
    code = await code_inbox.code_for(number)

    wrong = await api(
        relay,
        "POST",
        "/v1/safety/appeals",
        phone_number=number,
        code=f"{(int(code) + 1) % 10**6:06d}",
        message="I run a bakery",
    )
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "wrong_code"
    filed = await api(relay, "POST", "/v1/safety/appeals", phone_number=number, code=code, message="I run a bakery")
    assert filed.status_code == 201, filed.text
    reused = await api(relay, "POST", "/v1/safety/appeals", phone_number=number, code=code, message="again")
    assert reused.status_code == 400  # the code was used up

    queue = cove(relay, "safety", "queue")
    # An operator's ban needs no review: the appeal is the only case.
    assert [(r[0], r[1], r[2], r[-1]) for r in rows(queue)] == [
        (str(filed.json()["id"]), "appeal", account_id, "I run a bakery")
    ], queue.stdout
    granted = cove(relay, "safety", "appeal", str(filed.json()["id"]), "--grant")
    assert granted.returncode == 0 and "restored" in said(granted), said(granted)

    again = users.client("alice-again")
    await again.request_code(number)
    await again.register(number, code_inbox.latest(number))
    assert again.core.account_id == account_id  # the same account, back


async def test_an_appeal_code_can_never_register(users, relay, code_inbox):
    number = "+14155550148"
    await users.register("mallory", number)
    assert cove(relay, "safety", "ban", number, "--reason", "spam").returncode == 0
    sent = await api(relay, "POST", "/v1/verification/code", phone_number=number, purpose="appeal")
    assert sent.status_code == 202
    code = await code_inbox.code_for(number)
    assert cove(relay, "safety", "unban", number).returncode == 0  # the operator lifts the ban meanwhile

    other = users.client("mallory-again")
    with pytest.raises(RelayError) as refused:
        await other.register(number, code)
    assert refused.value.code == "wrong_code"


async def test_the_cli_explains_a_throttle_shows_the_status_and_appeals_a_ban(relay, code_inbox, tmp_path):
    env = cli_env(relay, tmp_path / "home")
    number = "+14155550149"
    await register(env, code_inbox, "ann", number)
    await register(env, code_inbox, "ben", "+14155550150")
    ben = "+14155550150"
    assert cove(relay, "safety", "act", number, "--step", "throttle", "--reason", "forward_flood").returncode == 0
    await applied()
    for n in range(2):
        assert cli(env, "send", ben, f"hi {n}", "--profile", "ann").returncode == 0
    slowed = cli(env, "send", ben, "and again", "--profile", "ann")
    assert slowed.returncode == 1 and "slowed down (forward flood): wait" in cli_said(slowed), cli_said(slowed)
    assert "Traceback" not in slowed.stderr
    shown = cli(env, "status", "--profile", "ann")
    assert shown.returncode == 0 and "throttle: forward flood (since" in cli_said(shown), cli_said(shown)

    assert cove(relay, "safety", "act", number, "--step", "ban", "--reason", "spam").returncode == 0
    await applied()
    appealing = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cove",
        "appeal",
        "a family chat, not spam",
        "--profile",
        "ann",
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    code_inbox.codes.pop(number, None)
    code = await code_inbox.code_for(number)
    out, errors = await asyncio.wait_for(appealing.communicate(f"{code}\n".encode()), 60)
    assert appealing.returncode == 0, errors.decode()
    assert "filed for +14155550149" in " ".join(out.decode().split())
    queue = rows(cove(relay, "safety", "queue"))
    assert [(r[1], r[-1]) for r in queue] == [("appeal", "a family chat, not spam")]
