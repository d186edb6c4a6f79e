"""Files in the ``cove`` CLI: ``send --file`` and ``inbox`` saving what arrived, and refusals in one line."""

from __future__ import annotations

import hashlib

from cli_helpers import link
from test_client_cli import env, home, register_with_the_cli, run_cove, said  # noqa: F401 - fixtures

ALICE, BOB, CAROL = "+14155550171", "+14155550172", "+14155550173"


async def test_a_file_sent_with_the_cli_is_saved_by_the_recipients_inbox(env, code_inbox, tmp_path):  # noqa: F811
    await register_with_the_cli(env, code_inbox, "alice", ALICE)
    await register_with_the_cli(env, code_inbox, "bob", BOB)
    # A stranger's file comes as a message request and is not fetched: Bob knows Alice
    assert run_cove(env, "contacts", "add", ALICE, "--profile", "bob").returncode == 0
    source = tmp_path / "minutes.txt"
    source.write_bytes(b"the board met at nine\n" * 10_000)
    # A contact's file is shown and saved by the inbox; a stranger's waits in `cove requests`.
    assert run_cove(env, "contacts", "add", ALICE, "--profile", "bob").returncode == 0

    sent = run_cove(env, "send", BOB, "from the board", "--file", str(source), "--profile", "alice")
    assert sent.returncode == 0, sent.stderr
    inbox = run_cove(env, "inbox", "--profile", "bob", "--save-to", str(tmp_path / "bob-files"))
    assert inbox.returncode == 0, inbox.stderr
    assert "[file minutes.txt, 220000 bytes] from the board" in said(inbox)
    saved = tmp_path / "bob-files" / "minutes.txt"
    assert "saved to" in said(inbox) and [p.name for p in saved.parent.iterdir()] == ["minutes.txt"]
    assert hashlib.sha256(saved.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()  # noqa: ASYNC240
    history = run_cove(env, "history", "--profile", "alice")
    assert "[file minutes.txt, 220000 bytes] from the board" in said(history)


async def test_a_file_that_cannot_be_read_or_nothing_to_send_is_refused_in_one_line(env, code_inbox, tmp_path):  # noqa: F811
    await register_with_the_cli(env, code_inbox, "alice", ALICE)
    missing = run_cove(env, "send", BOB, "--file", str(tmp_path / "nope.txt"), "--profile", "alice")
    assert missing.returncode == 2 and "nope.txt is not a file" in said(missing)
    assert "Traceback" not in missing.stderr
    nothing = run_cove(env, "send", BOB, "--profile", "alice")
    assert nothing.returncode == 2 and "a TEXT, or --file PATH" in said(nothing)


async def test_a_file_sent_to_a_group_is_saved_by_each_members_inbox(env, code_inbox, tmp_path):  # noqa: F811
    for profile, number in (("alice", ALICE), ("bob", BOB), ("carol", CAROL)):
        await register_with_the_cli(env, code_inbox, profile, number)
    created = run_cove(env, "group", "create", BOB, CAROL, "--name", "Board", "--profile", "alice")
    assert created.returncode == 0, created.stderr
    source = tmp_path / "agenda.txt"
    source.write_bytes(b"item one: the budget\n" * 5_000)

    sent = run_cove(env, "group", "send", "Board", "for thursday", "--file", str(source), "--profile", "alice")
    assert sent.returncode == 0, sent.stderr
    for profile in ("bob", "carol"):
        folder = tmp_path / f"{profile}-files"
        inbox = run_cove(env, "inbox", "--profile", profile, "--save-to", str(folder))
        assert inbox.returncode == 0, inbox.stderr
        assert f"[Board] {ALICE}: [file agenda.txt, 105000 bytes] for thursday" in said(inbox)
        assert (folder / "agenda.txt").read_bytes() == source.read_bytes()  # noqa: ASYNC240
    inbox = run_cove(env, "inbox", "--profile", "alice")
    assert f"[Board] read by {BOB}: 1 message(s)" in said(inbox)  # a group receipt, not a one-to-one one
    shown = run_cove(env, "group", "show", "Board", "--profile", "alice")
    assert "[file agenda.txt, 105000" in said(shown)  # the table wraps the rest

    unreadable = run_cove(env, "group", "send", "Board", "--file", str(tmp_path / "nope.txt"), "--profile", "alice")
    assert unreadable.returncode == 2 and "nope.txt is not a file" in said(unreadable)
    nothing = run_cove(env, "group", "send", "Board", "--profile", "alice")
    assert nothing.returncode == 2 and "a TEXT, or --file PATH" in said(nothing)
    assert "Traceback" not in unreadable.stderr + nothing.stderr


async def test_a_file_sent_from_the_phone_is_saved_by_the_laptops_inbox(env, code_inbox, tmp_path):  # noqa: F811
    await register_with_the_cli(env, code_inbox, "alice", ALICE)
    await register_with_the_cli(env, code_inbox, "bob", BOB)
    await link(env, "alice", "laptop")
    source = tmp_path / "slides.txt"
    source.write_bytes(b"slide one\n" * 3_000)

    sent = run_cove(env, "send", BOB, "for the talk", "--file", str(source), "--profile", "alice")
    assert sent.returncode == 0, sent.stderr
    inbox = run_cove(env, "inbox", "--profile", "laptop", "--save-to", str(tmp_path / "laptop-files"))
    assert inbox.returncode == 0, inbox.stderr
    assert "[file slides.txt, 30000 bytes] for the talk (from your device 1)" in said(inbox)
    assert (tmp_path / "laptop-files" / "slides.txt").read_bytes() == source.read_bytes()  # noqa: ASYNC240
    for device in ("alice", "laptop"):  # both devices show the same conversation, the file's line included
        history = run_cove(env, "history", BOB, "--profile", device)
        assert history.returncode == 0, history.stderr
        assert said(history).count("[file slides.txt, 30000 bytes] for the talk") == 1
