"""Running the ``cove`` command line as a user would, against a test's relay (for the verify and sync tests)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

LINK_CODE = re.compile(r"cove-link:1:[0-9a-f]{32}:[A-Za-z0-9_-]{43}")


def cli_env(relay: Any, home: Path) -> dict[str, str]:  # noqa: ANN401 - a RelayProcess
    made = {**relay.env, "COVE_HOME": str(home), "COVE_SERVER": relay.url, "COLUMNS": "200"}
    made.pop("COVE_PICKLE_KEY", None)
    return made


def cove(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cove", *args], env=env, capture_output=True, text=True, timeout=90)


def said(result: subprocess.CompletedProcess) -> str:
    """What the user read, without the terminal's line wrapping."""
    return " ".join((result.stdout + result.stderr).split())


async def register(env: dict[str, str], code_inbox: Any, profile: str, number: str) -> None:  # noqa: ANN401
    assert cove(env, "register", number, "--profile", profile).returncode == 0
    verified = cove(env, "verify", await code_inbox.code_for(number), "--profile", profile)
    assert verified.returncode == 0, verified.stderr


async def link(env: dict[str, str], primary: str, companion: str, *options: str) -> subprocess.CompletedProcess:
    """``cove devices link`` on the new device, and with its code (and ``options``) on the primary."""
    waiting = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "cove", "devices", "link", "--profile", companion),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert waiting.stdout is not None
    try:
        while not (found := LINK_CODE.search((await asyncio.wait_for(waiting.stdout.readline(), 60)).decode())):
            pass
        linked = await asyncio.to_thread(cove, env, "devices", "link", found.group(0), "--profile", primary, *options)
        assert linked.returncode == 0, said(linked)
        await asyncio.wait_for(waiting.wait(), 60)
    finally:
        if waiting.returncode is None:
            waiting.kill()
    assert waiting.returncode == 0
    return linked
