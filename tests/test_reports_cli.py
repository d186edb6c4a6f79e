"""Message requests, contacts, blocks and reports from the ``cove`` command line, as a user meets them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import cli_env, cove, register, said
from helpers import server_rows

ALICE, BOB, CAROL = "+14155550191", "+14155550192", "+14155550193"


@pytest.fixture
def env(relay, tmp_path: Path) -> dict[str, str]:
    return cli_env(relay, tmp_path / "home")


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, said(result)
    return said(result)


def answering(env: dict[str, str], answer: str, *args: str) -> subprocess.CompletedProcess:
    """A command that asks the user, answered with ``answer``."""
    return subprocess.run(
        [sys.executable, "-m", "cove", *args], env=env, input=answer, capture_output=True, text=True, timeout=90
    )


async def test_a_first_message_is_a_request_until_bob_accepts_it_then_alice_hears_he_read_it(env, code_inbox):
    await register(env, code_inbox, "alice", ALICE)
    await register(env, code_inbox, "bob", BOB)
    ok(cove(env, "send", BOB, "Lunch at noon?", "--profile", "alice"))
    ok(cove(env, "send", BOB, "The usual place", "--profile", "alice"))

    inbox = ok(cove(env, "inbox", "--profile", "bob"))
    assert inbox.count(f"message request from {ALICE}") == 2 and "Lunch" not in inbox
    assert "read by" not in ok(cove(env, "inbox", "--profile", "alice"))  # Bob's inbox sent no receipt

    listed = ok(cove(env, "requests", "--profile", "bob"))
    assert f"message request from {ALICE}: 2 message(s)" in listed
    assert "Lunch at noon?" in listed and "The usual place" in listed
    assert "Accepted" in ok(cove(env, "requests", "accept", ALICE, "--profile", "bob"))
    assert "no message requests" in ok(cove(env, "requests", "--profile", "bob"))
    assert f"read by {BOB}: 2 message(s)" in ok(cove(env, "inbox", "--profile", "alice"))

    ok(cove(env, "send", BOB, "See you", "--profile", "alice"))
    inbox = ok(cove(env, "inbox", "--profile", "bob"))
    assert f"{ALICE}: See you" in inbox and "request" not in inbox
    assert f"read by {BOB}: 1 message(s)" in ok(cove(env, "inbox", "--profile", "alice"))
    assert re.search(rf"{re.escape(ALICE)} accepted, \d{{4}}-", ok(cove(env, "contacts", "list", "--profile", "bob")))


async def test_a_reply_accepts_and_a_contact_added_first_sends_no_request(env, code_inbox):
    for profile, number in (("alice", ALICE), ("bob", BOB), ("carol", CAROL)):
        await register(env, code_inbox, profile, number)
    ok(cove(env, "send", BOB, "Hello from Alice", "--profile", "alice"))
    ok(cove(env, "inbox", "--profile", "bob"))
    ok(cove(env, "send", ALICE, "Hi Alice", "--profile", "bob"))  # the reply accepts: the receipt goes now
    inbox = ok(cove(env, "inbox", "--profile", "alice"))
    assert f"{BOB}: Hi Alice" in inbox and f"read by {BOB}: 1 message(s)" in inbox

    assert "Added" in ok(cove(env, "contacts", "add", CAROL, "--name", "Carol", "--profile", "bob"))
    ok(cove(env, "send", BOB, "Carol here", "--profile", "carol"))
    inbox = ok(cove(env, "inbox", "--profile", "bob"))
    assert f"{CAROL}: Carol here" in inbox and "request" not in inbox
    contacts = ok(cove(env, "contacts", "list", "--profile", "bob"))
    assert f"{ALICE}" in contacts and "wrote" in contacts and f"{CAROL} Carol added" in contacts

    ok(cove(env, "contacts", "remove", CAROL, "--profile", "bob"))
    assert CAROL not in ok(cove(env, "contacts", "list", "--profile", "bob"))
    ok(cove(env, "send", BOB, "Still there?", "--profile", "carol"))
    assert f"message request from {CAROL}" in ok(cove(env, "inbox", "--profile", "bob"))
    again = cove(env, "contacts", "remove", CAROL, "--profile", "bob")
    assert again.returncode == 2 and "not one of your contacts" in said(again)


async def test_block_unblock_and_blocked(env, code_inbox):
    await register(env, code_inbox, "alice", ALICE)
    await register(env, code_inbox, "bob", BOB)
    assert "you block nobody" in ok(cove(env, "blocked", "--profile", "bob"))
    ok(cove(env, "block", ALICE, "--profile", "bob"))
    assert re.search(rf"{re.escape(ALICE)} since \d{{4}}-\d\d-\d\d", ok(cove(env, "blocked", "--profile", "bob")))
    assert "sent" in ok(cove(env, "send", BOB, "you cannot block me", "--profile", "alice"))  # she is not told
    assert "nothing new" in ok(cove(env, "inbox", "--profile", "bob"))
    ok(cove(env, "unblock", ALICE, "--profile", "bob"))
    ok(cove(env, "send", BOB, "sorry", "--profile", "alice"))
    assert f"message request from {ALICE}" in ok(cove(env, "inbox", "--profile", "bob"))
    ok(cove(env, "requests", "block", ALICE, "--profile", "bob"))
    assert ALICE in ok(cove(env, "blocked", "--profile", "bob"))

    for refused, why in (
        (cove(env, "block", "nobody", "--profile", "bob"), "neither a phone number"),
        (cove(env, "block", BOB, "--profile", "bob"), "cannot_block_self"),
        (cove(env, "unblock", "+14155550199", "--profile", "bob"), "unknown_number"),
        (cove(env, "report", "../../v1/accounts/me", "--profile", "bob"), "neither a phone number"),
    ):
        assert refused.returncode != 0 and why in said(refused)
        assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1, refused.stderr


async def test_a_report_shows_what_it_attaches_and_sends_it_only_if_the_user_agrees(env, code_inbox, relay):
    await register(env, code_inbox, "alice", ALICE)
    await register(env, code_inbox, "bob", BOB)
    for n in range(7):
        ok(cove(env, "send", BOB, f"cheap watches {n}", "--profile", "alice"))
    ok(cove(env, "inbox", "--profile", "bob"))

    declined = answering(env, "n\n", "report", ALICE, "--last", "3", "--profile", "bob")
    assert declined.returncode == 1 and "nothing was reported" in said(declined)
    preview = said(declined)
    assert "These 3 message(s) will be sent to the operator of this relay" in preview
    assert [n for n in range(7) if f"cheap watches {n}" in preview] == [4, 5, 6]

    sent = answering(env, "y\n", "report", ALICE, "--profile", "bob")
    assert f"Reported {ALICE} (report" in ok(sent) and "5 message(s) attached" in said(sent)
    bare = ok(cove(env, "report", ALICE, "--no-attach", "--profile", "bob"))
    assert "The report carries no message" in bare and "0 message(s) attached" in bare
    stored = [r["text"] for t, r in await server_rows(relay.database_url) if t == "safety_report_messages"]
    assert sorted(stored) == [f"cheap watches {n}" for n in range(2, 7)]

    history = ok(cove(env, "requests", "--profile", "bob"))  # the ids the user can name
    cmid = re.search(r"([0-9a-f]{8}) cheap watches 3", history).group(1)
    one = ok(cove(env, "report", ALICE, "--message", cmid, "--block", "--yes", "--profile", "bob"))
    assert "and blocked them" in one and "1 message(s) attached" in one
    assert ALICE in ok(cove(env, "blocked", "--profile", "bob"))
    unknown = cove(env, "report", ALICE, "--message", "ffffffff", "--yes", "--profile", "bob")
    assert unknown.returncode == 2 and "names no message" in said(unknown)
    too_many = cove(env, "report", ALICE, "--last", "6", "--profile", "bob")
    assert too_many.returncode == 2 and "Traceback" not in too_many.stderr
    too_many = cove(env, "report", ALICE, *[a for _ in range(11) for a in ("--message", cmid)], "--profile", "bob")
    assert too_many.returncode == 2 and "at most 10 messages" in said(too_many)

    ok(cove(env, "unblock", ALICE, "--profile", "bob"))
    ok(cove(env, "send", BOB, "more watches", "--profile", "alice"))
    ok(cove(env, "inbox", "--profile", "bob"))
    reported = ok(cove(env, "requests", "report", ALICE, "--last", "1", "--yes", "--profile", "bob"))
    assert "and blocked them" in reported and "1 message(s) attached" in reported


async def test_a_group_report_can_leave_the_group(env, code_inbox):
    for profile, number in (("alice", ALICE), ("bob", BOB), ("carol", CAROL)):
        await register(env, code_inbox, profile, number)
    ok(cove(env, "group", "create", BOB, CAROL, "--name", "Deals", "--profile", "alice"))
    ok(cove(env, "group", "send", "Deals", "free crypto", "--profile", "alice"))
    ok(cove(env, "inbox", "--profile", "bob"))

    reported = ok(cove(env, "group", "report", "Deals", "--leave", "--yes", "--profile", "bob"))
    assert "free crypto" in reported and "Reported the group Deals and left it" in reported
    assert "1 message(s) attached" in reported
    assert f"{BOB} left" in ok(cove(env, "inbox", "--profile", "alice"))
    assert "no groups" in ok(cove(env, "group", "list", "--profile", "bob"))
