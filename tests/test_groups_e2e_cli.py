"""``cove group`` as a user meets it, against a real relay: groups by name, receipts per member, refusals."""

from __future__ import annotations

import re

from test_client_cli import env, home, register_with_the_cli, run_cove, said  # noqa: F401 - fixtures

ALICE, BOB, CAROL = "+14155550181", "+14155550182", "+14155550183"


async def test_a_group_from_the_cli(env, code_inbox):  # noqa: F811
    for profile, number in (("alice", ALICE), ("bob", BOB), ("carol", CAROL)):
        await register_with_the_cli(env, code_inbox, profile, number)

    created = run_cove(env, "group", "create", BOB, CAROL, "--name", "Climbing", "--profile", "alice")
    assert created.returncode == 0, created.stderr
    group_id = re.search(r"\(([0-9a-f]{32})\)", created.stdout).group(1)
    sent = run_cove(env, "group", "send", "Climbing", "top rope at ten", "--profile", "alice")
    assert sent.returncode == 0, sent.stderr

    inbox = run_cove(env, "inbox", "--profile", "bob")
    assert inbox.returncode == 0, inbox.stderr
    assert f"[Climbing] {ALICE}: top rope at ten" in said(inbox)
    assert f"[Climbing] {ALICE} created the group with" in said(inbox) and "you" in said(inbox)
    replied = run_cove(env, "group", "send", group_id[:6], "on my way", "--profile", "bob")
    assert replied.returncode == 0, replied.stderr

    inbox = run_cove(env, "inbox", "--profile", "alice")
    assert f"[Climbing] {BOB}: on my way" in said(inbox)
    assert f"[Climbing] read by {BOB}: 1 message(s)" in said(inbox)
    shown = run_cove(env, "group", "show", "Climbing", "--profile", "alice")
    assert shown.returncode == 0, shown.stderr
    [header] = [line.split("┃") for line in shown.stdout.splitlines() if "message" in line]
    [row] = [line.split("│") for line in shown.stdout.splitlines() if "top rope" in line]
    states = {header[i].strip(): row[i].strip() for i in range(len(row))}
    assert (states[BOB], states[CAROL]) == ("read", "sent")  # carol has not fetched it yet
    assert f"{BOB} (member, 1 device(s))" in said(shown)

    listed = run_cove(env, "group", "list", "--profile", "bob")
    assert f"{group_id} Climbing 3 members you: member" in said(listed)
    invite = run_cove(env, "group", "invite", "Climbing", "--profile", "bob")
    assert invite.returncode == 1 and "not_admin" in said(invite)
    admins = run_cove(env, "group", "admins", "Climbing", "--add", BOB, "--profile", "alice")
    assert admins.returncode == 0 and sorted(said(admins).split()) == sorted(["you", BOB])
    left = run_cove(env, "group", "leave", "Climbing", "--profile", "carol")
    assert left.returncode == 2 and "no group this profile knows" in said(left)  # carol never fetched its name
    left = run_cove(env, "group", "leave", group_id, "--profile", "carol")
    assert left.returncode == 0, left.stderr

    for refused in (
        run_cove(env, "group", "send", "nosuch", "hi", "--profile", "alice"),
        run_cove(env, "group", "add", "Climbing", "not-a-member", "--profile", "alice"),
        run_cove(env, "group", "join", "../../v1/accounts/me", "--profile", "alice"),
    ):
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr


async def test_the_group_info_changes_after_create_and_every_member_sees_it(env, code_inbox, tmp_path):  # noqa: F811
    for profile, number in (("alice", ALICE), ("bob", BOB)):
        await register_with_the_cli(env, code_inbox, profile, number)
    created = run_cove(env, "group", "create", BOB, "--name", "Climbing", "--profile", "alice")
    assert created.returncode == 0, created.stderr
    assert "named the group 'Climbing'" in said(run_cove(env, "inbox", "--profile", "bob"))
    picture = tmp_path / "wall.png"
    picture.write_bytes(b"\x89PNG" + bytes(2000))

    changed = run_cove(
        env, "group", "info", "Climbing", "--name", "Bouldering", "--description", "Thursdays at the wall",
        "--avatar", str(picture), "--profile", "alice",
    )  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    assert "named the group 'Bouldering'" in said(run_cove(env, "inbox", "--profile", "bob"))
    shown = run_cove(env, "group", "show", "Bouldering", "--profile", "bob")
    assert shown.returncode == 0, shown.stderr
    assert all(part in said(shown) for part in ("Bouldering", "Thursdays at the wall", "picture: 2004 bytes"))

    # a member changes only the description: the name and the picture stay
    changed = run_cove(env, "group", "info", "Bouldering", "--description", "Fridays now", "--profile", "bob")
    assert changed.returncode == 0, changed.stderr
    run_cove(env, "inbox", "--profile", "alice")
    shown = said(run_cove(env, "group", "show", "Bouldering", "--profile", "alice"))
    assert "Fridays now" in shown and "Thursdays" not in shown and "picture: 2004 bytes" in shown
    removed = run_cove(env, "group", "info", "Bouldering", "--no-avatar", "--profile", "alice")
    assert removed.returncode == 0, removed.stderr
    assert "picture:" not in said(run_cove(env, "group", "show", "Bouldering", "--profile", "alice"))

    huge = tmp_path / "huge.png"
    huge.write_bytes(bytes(48 * 1024 + 1))
    for refused in (
        run_cove(env, "group", "info", "Bouldering", "--avatar", str(huge), "--profile", "alice"),
        run_cove(env, "group", "info", "Bouldering", "--avatar", str(tmp_path / "none.png"), "--profile", "alice"),
        run_cove(env, "group", "info", "Bouldering", "--name", "x" * 101, "--profile", "alice"),
        run_cove(env, "group", "info", "Bouldering", "--profile", "alice"),
        run_cove(env, "group", "info", "nosuch", "--name", "n", "--profile", "alice"),
    ):
        assert refused.returncode == 2 and "Traceback" not in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "Fridays now" in said(run_cove(env, "group", "show", "Bouldering", "--profile", "bob"))
