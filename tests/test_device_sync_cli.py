"""Own-device sync from the command line: history for a new device when asked, and what another device sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_helpers import cli_env, cove, link, register, said

ALICE, BOB = "+14155550141", "+14155550142"


@pytest.fixture
def env(relay, tmp_path: Path) -> dict[str, str]:
    return cli_env(relay, tmp_path / "home")


async def test_a_laptop_linked_with_history_shows_the_conversation_and_what_the_phone_sends_next(env, code_inbox):
    await register(env, code_inbox, "alice", ALICE)
    await register(env, code_inbox, "bob", BOB)
    assert cove(env, "send", BOB, "before the laptop", "--profile", "alice").returncode == 0
    assert cove(env, "send", ALICE, "noted", "--profile", "bob").returncode == 0
    assert cove(env, "inbox", "--profile", "alice").returncode == 0

    linked = await link(env, "alice", "laptop", "--history-days", "7")
    assert "Sent it 2 message(s) of the last 7 day(s)" in said(linked)
    imported = cove(env, "inbox", "--profile", "laptop")
    assert imported.returncode == 0 and "history from your phone: 2 message(s) (part 1 of 1)" in said(imported)
    history = said(cove(env, "history", "--profile", "laptop"))
    assert history.index("before the laptop") < history.index("noted")

    assert cove(env, "send", BOB, "sent from the phone", "--profile", "alice").returncode == 0
    shown = said(cove(env, "inbox", "--profile", "laptop"))
    assert "sent from the phone (from your device 1)" in shown
    assert "sent from the phone" in said(cove(env, "history", "--profile", "laptop"))


async def test_a_laptop_linked_without_history_starts_empty(env, code_inbox):
    await register(env, code_inbox, "alice", ALICE)
    await register(env, code_inbox, "bob", BOB)
    assert cove(env, "send", BOB, "before the laptop", "--profile", "alice").returncode == 0
    linked = await link(env, "alice", "laptop")
    assert "Sent it" not in said(linked)
    assert "history from your phone" not in said(cove(env, "inbox", "--profile", "laptop"))
    assert "before the laptop" not in said(cove(env, "history", "--profile", "laptop"))
