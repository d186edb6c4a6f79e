"""The ``cove`` client commands as a user meets them: who wrote, what failed and why, nothing left behind."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cove.client.cli import _show
from cove.client.core import ClientCore
from cove.client.events import QueueEmpty
from cove.client.store import ClientStore
from cove.client.transport import CoveClient, RelayError
from cove.testing import free_port

NUMBER = "+14155550171"


def run_cove(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cove", *args], env=env, capture_output=True, text=True, timeout=60)


def said(result: subprocess.CompletedProcess) -> str:
    """What the user read, without the terminal's line wrapping."""
    return " ".join((result.stdout + result.stderr).split())


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def env(relay, home: Path) -> dict[str, str]:
    made = {**relay.env, "COVE_HOME": str(home), "COVE_SERVER": relay.url}
    made.pop("COVE_PICKLE_KEY", None)
    return made


async def register_with_the_cli(env: dict[str, str], code_inbox, profile: str, number: str) -> None:  # noqa: ANN001
    asked = run_cove(env, "register", number, "--profile", profile)
    assert asked.returncode == 0, asked.stderr
    verified = run_cove(env, "verify", await code_inbox.code_for(number), "--profile", profile)
    assert verified.returncode == 0, verified.stderr


async def test_listen_shows_no_line_when_the_queue_is_empty(tmp_path, capsys):
    core = ClientCore(ClientStore(tmp_path / "state.db"), os.urandom(32), {})
    async with CoveClient("http://127.0.0.1:1", core) as client:
        await _show(client, QueueEmpty())
    assert capsys.readouterr().out == ""


async def test_senders_are_named_by_the_number_the_directory_confirms_not_by_an_account_id(users, env, code_inbox):
    alice = await users.register("alice")
    mallory = await users.register("mallory")
    await register_with_the_cli(env, code_inbox, "bob", NUMBER)
    bob = await alice.resolve(NUMBER)
    await alice.send_text(bob, "it is alice")
    mallory.core.registered_phone(alice.core.phone_number)  # claims to be alice
    await mallory.send_text(bob, "it is alice, honestly")

    inbox = run_cove(env, "inbox", "--profile", "bob")
    assert inbox.returncode == 0, inbox.stderr
    # Neither is Bob's contact: each first message is a request, named as the directory confirms
    lines = [line for line in inbox.stdout.splitlines() if "message request from" in line]
    assert f"message request from {alice.core.phone_number}" in lines[0]
    assert mallory.core.account_id in lines[1] and alice.core.phone_number not in lines[1]
    requests = said(run_cove(env, "requests", "--profile", "bob"))
    assert f"message request from {alice.core.phone_number}: 1 message(s)" in requests
    assert f"message request from {mallory.core.account_id}: 1 message(s)" in requests
    assert requests.count(f"from {alice.core.phone_number}") == 1
    history = run_cove(env, "history", "--profile", "bob")
    assert f"← {alice.core.phone_number}: it is alice" in history.stdout


def test_an_unreachable_relay_is_named_and_the_failed_registration_leaves_no_profile(tmp_path):
    home = tmp_path / "home"
    url = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "COVE_HOME": str(home), "COVE_SERVER": url}
    failed = run_cove(env, "register", NUMBER, "--profile", "carol")
    assert failed.returncode == 1
    assert f"cannot reach the relay at {url}" in said(failed)
    assert not (home / "profiles" / "carol").exists()
    assert run_cove(env, "whoami", "--profile", "carol").returncode == 1
    assert not (home / "profiles" / "carol").exists()  # reading a profile does not create it


def test_a_number_without_its_country_gets_a_hint_and_leaves_no_profile(tmp_path):
    env = {**os.environ, "COVE_HOME": str(tmp_path / "home")}
    refused = run_cove(env, "register", "4155550171", "--profile", "carol")
    assert refused.returncode == 2
    assert "international format, with + and the country code" in said(refused)
    assert not (tmp_path / "home" / "profiles" / "carol").exists()


def test_a_code_that_is_not_six_digits_is_refused_before_it_is_sent(tmp_path):
    env = {**os.environ, "COVE_HOME": str(tmp_path / "home"), "COVE_SERVER": f"http://127.0.0.1:{free_port()}"}
    refused = run_cove(env, "verify", "abc", "--profile", "carol")
    assert refused.returncode == 2 and "6 digits" in said(refused)


async def test_the_relay_refuses_a_bad_number_with_a_hint_and_leaves_no_profile(env, home):
    refused = run_cove(env, "register", "+1 555", "--profile", "carol")
    assert refused.returncode == 1 and "invalid_phone_number" in said(refused)
    assert not (home / "profiles" / "carol").exists()

    async with httpx.AsyncClient(base_url=env["COVE_SERVER"]) as http:
        answer = await http.post("/v1/verification/code", json={"phone_number": "4155550171"})
    assert answer.status_code == 400
    assert "international format, with + and the country code" in answer.json()["error"]["message"]


async def test_a_malformed_code_is_refused_by_the_relay_without_using_up_an_attempt(users, code_inbox):
    carol = users.client("carol")
    await carol.request_code(NUMBER)
    for _ in range(6):  # more than the 5 attempts a code allows
        with pytest.raises(RelayError) as refused:
            await carol.register(NUMBER, "abc")
        assert (refused.value.status, refused.value.code) == (400, "invalid_request")
    registered = await carol.register(NUMBER, code_inbox.latest(NUMBER))
    assert registered["account_id"]


async def test_whoami_between_register_and_verify_names_the_next_step(env, code_inbox):
    asked = run_cove(env, "register", NUMBER, "--profile", "carol")
    assert asked.returncode == 0, asked.stderr
    waiting = run_cove(env, "whoami", "--profile", "carol")
    assert waiting.returncode == 1
    assert f"a code was requested for {NUMBER}" in said(waiting) and "cove verify CODE" in said(waiting)


async def test_a_banned_user_gets_the_same_answer_from_send_and_inbox(env, code_inbox, relay):
    await register_with_the_cli(env, code_inbox, "carol", NUMBER)
    banned = run_cove(env, "safety", "ban", NUMBER, "--reason", "spam")
    assert banned.returncode == 0, banned.stderr
    token = ClientStore(Path(env["COVE_HOME"]) / "profiles" / "carol" / "state.db").get("token")
    async with httpx.AsyncClient(base_url=relay.url) as http:
        deadline = time.monotonic() + 10  # the relay caches a token for at most 5 s
        while (await http.get("/v1/keys/count", headers={"Authorization": f"Bearer {token}"})).status_code != 401:
            assert time.monotonic() < deadline, "the token still works"
            await asyncio.sleep(0.2)

    sent = run_cove(env, "send", NUMBER, "hello?", "--profile", "carol")
    fetched = run_cove(env, "inbox", "--profile", "carol")
    assert sent.returncode == fetched.returncode == 1
    assert said(sent) == said(fetched)
    assert "logged out" in said(fetched) and "Traceback" not in said(fetched)


async def test_the_privacy_commands_ask_the_relay_as_the_registered_profile(env, code_inbox):
    unregistered = run_cove(env, "privacy", "show", "--profile", "nobody")
    assert unregistered.returncode == 1 and "is not registered" in said(unregistered)
    await register_with_the_cli(env, code_inbox, "carol", NUMBER)
    shown = run_cove(env, "privacy", "show", "--profile", "carol")
    assert shown.returncode == 0, shown.stderr
    assert "You have not accepted any privacy policy" in said(shown)
    notice = run_cove(env, "privacy", "notice", "--profile", "carol")
    assert notice.returncode == 0 and "No privacy notice is waiting for you." in said(notice)
