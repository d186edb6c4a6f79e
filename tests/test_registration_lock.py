"""The registration lock against a real relay: whoever receives the SMS code cannot take a locked number,
wrong PINs back off, the lock lapses after 7 days of inactivity, and idle device tokens expire."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cove.client.events import MessageReceived
from cove.client.transport import CoveClient, RelayError

VICTIM = "+14155550181"
PIN = "480731"
DAY_MS = 86_400_000


@pytest.fixture
def relay_env() -> dict[str, str]:
    return {"COVE_REGISTRATION_LOCK_MAX_GUESSES": "5"}  # fewer than the default 10, to reach the end


def travel(relay, offset_ms: int) -> None:  # noqa: ANN001
    """Restart the relay with its clock ``offset_ms`` ahead of now."""
    relay.env["COVE_CLOCK_OFFSET_MS"] = str(offset_ms)
    relay.restart()


async def refused(status: int, code: str, attempt) -> dict:  # noqa: ANN001
    with pytest.raises(RelayError) as caught:
        await attempt
    assert (caught.value.status, caught.value.code) == (status, code), caught.value.details
    return caught.value.details


async def code_for(thief: CoveClient, code_inbox) -> str:  # noqa: ANN001
    code_inbox.codes.pop(VICTIM, None)
    await thief.request_code(VICTIM)
    return await code_inbox.code_for(VICTIM)


async def test_the_code_without_the_pin_does_not_take_a_locked_number_and_the_victim_keeps_everything(
    users, code_inbox
):
    victim = await users.register("victim", VICTIM)
    friend = await users.register("friend")
    await victim.set_pin(PIN)
    assert (await victim.registration_lock())["enabled"] is True
    await friend.send_text(victim.core.account_id, "waiting before the attempt")

    thief = users.client("thief")
    code = await code_for(thief, code_inbox)
    locked = await refused(423, "registration_lock", thief.register(VICTIM, code))
    assert 6 * DAY_MS < locked["time_remaining_ms"] <= 7 * DAY_MS
    wrong = await refused(423, "wrong_pin", thief.register(VICTIM, code, "913364"))
    assert wrong["attempts_left"] == 4

    # Nothing changed for the victim: same device, same keys, the waiting message and new ones arrive.
    assert (await victim.call(victim.core.key_count()))["one_time_keys"] > 0
    await friend.send_text(victim.core.account_id, "after the attempt")
    texts = [e.text for e in await victim.inbox() if isinstance(e, MessageReceived)]
    assert texts == ["waiting before the attempt", "after the attempt"]

    # The owner on a new phone, with the PIN: the same code still works, and the lock stays on.
    new_phone = users.client("victim-new-phone")
    assert (await new_phone.register(VICTIM, code, PIN))["reregistered"] is True
    assert (await new_phone.registration_lock())["enabled"] is True
    await refused(401, "unauthenticated", victim.registration_lock())


async def test_wrong_pins_wait_longer_and_longer_then_are_not_taken_until_the_lock_lapses(users, relay, code_inbox):
    victim = await users.register("victim", VICTIM)
    await victim.set_pin(PIN)
    thief = users.client("thief")
    code = await code_for(thief, code_inbox)

    left = [
        (await refused(423, "wrong_pin", thief.register(VICTIM, code, f"91336{i}")))["attempts_left"] for i in "123"
    ]
    assert left == [4, 3, 2]
    paused = await refused(429, "pin_backoff", thief.register(VICTIM, code, PIN))  # even the right PIN waits
    assert 55 <= paused["retry_after"] <= 60

    travel(relay, 61_000)
    assert (await refused(423, "wrong_pin", thief.register(VICTIM, code, "913364")))["retry_after"] == 120
    assert (await refused(429, "pin_backoff", thief.register(VICTIM, code, PIN)))["retry_after"] > 60

    travel(relay, 61_000 + 121_000)
    await refused(423, "wrong_pin", thief.register(VICTIM, code, "913365"))
    exhausted = await refused(429, "pin_attempts_exhausted", thief.register(VICTIM, code, PIN))
    assert 6 * DAY_MS // 1000 < exhausted["retry_after"] <= 7 * DAY_MS // 1000

    travel(relay, 7 * DAY_MS + 3_600_000)  # the victim's phone has been silent for 7 days: the lock lapsed
    assert (await thief.register(VICTIM, await code_for(thief, code_inbox)))["reregistered"] is True
    assert (await thief.registration_lock())["enabled"] is False  # the old owner's PIN went with the lock


async def test_the_lock_holds_while_a_device_is_active_and_lapses_7_days_after_it_was_last_seen(
    users, relay, code_inbox
):
    victim = await users.register("victim", VICTIM)
    await victim.set_pin(PIN)
    thief = users.client("thief")

    travel(relay, 6 * DAY_MS)
    locked = await refused(423, "registration_lock", thief.register(VICTIM, await code_for(thief, code_inbox)))
    assert 0 < locked["time_remaining_ms"] <= DAY_MS
    await victim.inbox()  # the victim opens the app on day 6: seen again, the lock holds 7 more days

    travel(relay, 12 * DAY_MS)
    await refused(423, "registration_lock", thief.register(VICTIM, await code_for(thief, code_inbox)))

    travel(relay, 13 * DAY_MS + 3_600_000)
    assert (await thief.register(VICTIM, await code_for(thief, code_inbox)))["reregistered"] is True


async def test_a_device_token_unused_for_180_days_expires_and_a_used_one_does_not(users, relay):
    alice = await users.register("alice", "+14155550182")
    bob = await users.register("bob", "+14155550183")

    travel(relay, 179 * DAY_MS)
    await bob.call(bob.core.key_count())  # Bob uses his phone on day 179; Alice does not

    travel(relay, 181 * DAY_MS)
    await refused(401, "token_expired", alice.call(alice.core.key_count()))
    with pytest.raises(RelayError) as on_the_socket:  # the WebSocket too (its status is the SDK's to fix)
        await alice.inbox()
    assert on_the_socket.value.code == "token_expired"
    assert (await bob.call(bob.core.key_count()))["one_time_keys"] > 0


async def test_a_weak_pin_is_refused_and_a_removed_lock_no_longer_holds(users, code_inbox):
    victim = await users.register("victim", VICTIM)
    await refused(400, "invalid_request", victim.set_pin("12345"))  # too short: the schema says so
    for weak in ("111111", "123456", "987654"):
        await refused(400, "weak_pin", victim.set_pin(weak))
    await victim.set_pin(PIN)
    await victim.remove_pin()
    assert (await victim.registration_lock())["enabled"] is False
    thief = users.client("thief")
    assert (await thief.register(VICTIM, await code_for(thief, code_inbox)))["reregistered"] is True


def cove(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cove", *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


async def test_the_cli_sets_a_pin_and_verify_asks_for_it_on_a_new_phone(relay, code_inbox, tmp_path):
    env = {**relay.env, "COVE_HOME": str(tmp_path / "home"), "COVE_SERVER": relay.url}
    assert cove(env, "register", VICTIM, "--profile", "old").returncode == 0
    assert cove(env, "verify", await code_inbox.code_for(VICTIM), "--profile", "old").returncode == 0
    locked = cove(env, "pin", "set", "--profile", "old", stdin=f"{PIN}\n{PIN}\n")
    assert locked.returncode == 0, locked.stderr
    assert "Registration lock on" in locked.stdout

    code_inbox.codes.pop(VICTIM)
    assert cove(env, "register", VICTIM, "--profile", "new").returncode == 0
    code = await code_inbox.code_for(VICTIM)
    wrong = cove(env, "verify", code, "--profile", "new", "--pin", "913364")
    assert wrong.returncode == 1 and "wrong_pin" in wrong.stderr and "Traceback" not in wrong.stderr
    asked = cove(env, "verify", code, "--profile", "new", stdin=f"{PIN}\n")
    assert asked.returncode == 0, asked.stderr
    assert "has a registration lock" in asked.stderr and "old devices were logged out" in asked.stdout
