"""``cove verify`` as people use it: the number both see, marking it, scanning it, emoji, and the warning."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import cli_env, cove, register, said
from cove.client.cli import _show
from cove.client.core import ClientCore, PayloadReceived
from cove.client.events import VerifiedKeyChanged
from cove.client.store import ClientStore
from cove.client.transport import CoveClient

ALICE, BOB = "+14155550131", "+14155550132"


def number_in(result: subprocess.CompletedProcess) -> list[str]:
    """The three lines of four 5-digit groups."""
    return [line.strip() for line in result.stdout.splitlines() if line.startswith("  ") and line.strip()[:5].isdigit()]


@pytest.fixture
def env(relay, tmp_path: Path) -> dict[str, str]:
    return cli_env(relay, tmp_path / "home")


async def test_both_see_one_number_mark_it_and_are_warned_when_it_changes_until_verified_again(env, code_inbox):
    await register(env, code_inbox, "alice", ALICE)
    await register(env, code_inbox, "bob", BOB)

    too_early = cove(env, "verify", "mark", BOB, "--profile", "alice")
    assert too_early.returncode == 1 and f"cove verify show {BOB}" in said(too_early)

    alice_sees = cove(env, "verify", "show", BOB, "--profile", "alice")
    bob_sees = cove(env, "verify", "show", ALICE, "--profile", "bob")
    assert alice_sees.returncode == bob_sees.returncode == 0, alice_sees.stderr + bob_sees.stderr
    assert len(number_in(alice_sees)) == 3 and number_in(alice_sees) == number_in(bob_sees)
    assert "not verified" in said(alice_sees)

    marked = cove(env, "verify", "mark", BOB, "--profile", "alice")
    assert marked.returncode == 0, marked.stderr
    assert "Status: verified (safety number" in said(cove(env, "verify", "show", BOB, "--profile", "alice"))

    await register(env, code_inbox, "bob-new-phone", BOB)  # Bob's number on another phone: another key
    assert cove(env, "send", BOB, "still you?", "--profile", "alice").returncode == 0
    warning = "whom you verified, has changed"
    for _ in range(2):  # every time, until verified again
        inbox = cove(env, "inbox", "--profile", "alice")
        assert inbox.returncode == 0 and said(inbox).count(warning) == 1, said(inbox)
    changed = cove(env, "verify", "show", BOB, "--profile", "alice")
    assert warning in said(changed) and "their key CHANGED since you verified it" in said(changed)
    assert number_in(changed) != number_in(alice_sees)

    assert cove(env, "verify", "mark", BOB, "--profile", "alice").returncode == 0
    assert warning not in said(cove(env, "inbox", "--profile", "alice"))


async def test_a_scanned_qr_payload_verifies_only_when_it_matches(env, code_inbox):
    await register(env, code_inbox, "alice", ALICE)
    await register(env, code_inbox, "bob", BOB)
    not_a_contact = cove(env, "verify", "show", "../keys/count", "--profile", "alice")
    assert not_a_contact.returncode == 2 and "neither a phone number" in said(not_a_contact)
    shown = cove(env, "verify", "show", BOB, "--profile", "alice")
    [payload] = [line.split(": ", 1)[1] for line in shown.stdout.splitlines() if line.startswith("QR payload:")]

    tampered = payload[:-2] + ("AA" if not payload.endswith("AA") else "BB")
    refused = cove(env, "verify", "qr", ALICE, tampered, "--profile", "bob")
    assert refused.returncode == 1 and "does NOT match" in said(refused)
    assert "not verified" in said(cove(env, "verify", "show", ALICE, "--profile", "bob"))

    scanned = cove(env, "verify", "qr", ALICE, payload, "--profile", "bob")
    assert scanned.returncode == 0 and "is verified" in said(scanned)
    assert "Status: verified (qr" in said(cove(env, "verify", "show", ALICE, "--profile", "bob"))


async def test_two_people_compare_the_same_emoji_in_the_cli_and_confirm(env, code_inbox):
    await register(env, code_inbox, "alice", ALICE)
    await register(env, code_inbox, "bob", BOB)
    sides = [
        await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "cove", "verify", "sas", other, "--profile", me, "--wait", "60"),
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for me, other in (("alice", BOB), ("bob", ALICE))
    ]
    answered = await asyncio.wait_for(asyncio.gather(*(side.communicate(b"y\n") for side in sides)), 90)
    outputs = [(out.decode(), errors.decode()) for out, errors in answered]
    assert [side.returncode for side in sides] == [0, 0], outputs
    emoji = [[line for line in out.splitlines() if "   " in line and line.startswith("  ")] for out, _ in outputs]
    assert emoji[0] == emoji[1] and len(emoji[0]) == 1 and len(emoji[0][0].split("   ")) == 7
    assert all("is verified" in out for out, _ in outputs)


async def test_listen_invites_to_a_comparison_and_keeps_the_rest_of_it_quiet(tmp_path, capsys):
    peer = "0b0b0000-0000-4000-8000-000000000002"
    core = ClientCore(ClientStore(tmp_path / "state.db"), os.urandom(32), {})
    async with CoveClient("http://127.0.0.1:1", core) as client:
        for kind in ("sas_start", "sas_key", "sas_mac", "sas_cancel"):
            await _show(client, PayloadReceived(peer, 1, "c", {"type": kind, "txn": "t"}, 0))
        shown = capsys.readouterr().out
        assert " ".join(shown.split()) == f"{peer} wants to compare security emoji: run `cove verify sas {peer}`"
        await _show(client, VerifiedKeyChanged(peer))
        assert "whom you verified, has changed" in " ".join(capsys.readouterr().out.split())
