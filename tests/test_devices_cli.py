"""``cove devices`` as a user meets it: link a computer to the phone's account, list, unlink; one-line errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from cove.client.cli import _show
from cove.client.core import ClientCore
from cove.client.events import DeviceListRefused, DevicesChanged
from cove.client.store import ClientStore
from cove.client.transport import CoveClient
from test_client_cli import env, home, register_with_the_cli, run_cove, said  # noqa: F401 - fixtures

PHONE = "+14155550181"


def _one_error(result: subprocess.CompletedProcess) -> bool:
    """One message (the terminal may wrap it), no traceback."""
    return result.stderr.count("error:") == 1 and "Traceback" not in result.stderr


def _start_companion(cove_env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cove", "devices", "link", "--profile", "laptop"],
        env=cove_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def _link_laptop(cove_env: dict[str, str], code_inbox) -> None:  # noqa: ANN001
    await register_with_the_cli(cove_env, code_inbox, "alice", PHONE)
    companion = _start_companion(cove_env)
    try:
        code = None
        assert companion.stdout is not None
        for line in companion.stdout:
            found = re.search(r"cove-link:1:[0-9a-f]{32}:[A-Za-z0-9_-]{43}", line)
            if found:
                code = found.group(0)
                break
        assert code, companion.stderr.read() if companion.stderr else ""
        primary = run_cove(cove_env, "devices", "link", code, "--profile", "alice")
        assert primary.returncode == 0, said(primary)
        assert "Linked device 2" in said(primary)
        out, errors = companion.communicate(timeout=60)
    finally:
        if companion.poll() is None:
            companion.kill()
    assert companion.returncode == 0, errors
    assert f"Linked as device 2 of {PHONE}" in " ".join(out.split())


async def test_a_laptop_is_linked_listed_and_unlinked_from_the_command_line(env, code_inbox):  # noqa: F811
    await _link_laptop(env, code_inbox)
    listed = run_cove(env, "devices", "list", "--profile", "laptop")
    assert listed.returncode == 0, said(listed)
    rows = [line for line in listed.stdout.splitlines() if re.match(r"^│ [12] ", line)]
    assert len(rows) == 2 and "this device" in rows[1] and "this device" not in rows[0]

    sent = run_cove(env, "send", PHONE, "note to self from the laptop", "--profile", "laptop")
    assert sent.returncode == 0, said(sent)
    assert "note to self from the laptop" in said(run_cove(env, "inbox", "--profile", "alice"))

    unlinked = run_cove(env, "devices", "unlink", "2", "--profile", "alice")
    assert unlinked.returncode == 0, said(unlinked)
    gone = run_cove(env, "devices", "list", "--profile", "laptop")
    assert gone.returncode == 1 and _one_error(gone) and "unlinked" in said(gone)


async def test_a_companion_unlinks_itself_and_its_profile_goes(env, code_inbox, home):  # noqa: F811
    await _link_laptop(env, code_inbox)
    left = run_cove(env, "devices", "unlink", "--profile", "laptop")
    assert left.returncode == 0, said(left)
    assert not (home / "profiles" / "laptop").exists()
    listed = run_cove(env, "devices", "list", "--profile", "alice")
    assert listed.returncode == 0 and len([line for line in listed.stdout.splitlines() if "│ 2 " in line]) == 0


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("devices", "link", "cove-link:1:nothex:AAAA"), "32 hex digits"),
        (("devices", "link", "hello"), "starts with"),
        (("devices", "unlink"), "primary cannot unlink itself"),
        (("devices", "link"), "already registered"),
    ],
)
async def test_linking_mistakes_are_one_line_and_exit_1(env, code_inbox, args, says):  # noqa: F811
    await register_with_the_cli(env, code_inbox, "alice", PHONE)
    refused = run_cove(env, *args, "--profile", "alice")
    assert refused.returncode == 1, said(refused)
    assert _one_error(refused) and says in said(refused)


async def test_device_changes_and_refused_lists_are_shown_as_security_notices(tmp_path, capsys):
    core = ClientCore(ClientStore(tmp_path / "state.db"), os.urandom(32), {})
    async with CoveClient("http://127.0.0.1:1", core) as client:
        await _show(client, DevicesChanged("bob-account", [2], []))
        await _show(client, DeviceListRefused("bob-account", "the device list's signature does not verify"))
    shown = " ".join(capsys.readouterr().out.split())
    assert "security: bob-account linked device(s) [2]" in shown
    assert "security: the relay served a device list for bob-account that does not verify" in shown
