"""`cove console` as the operator runs it, on a test's relay database: an operator added through the command,
the console started as a process, and a signed-in HTTP client."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx

from browser.world import PageProcess
from cove.testing import run_cove

PASSWORD = "a long operator password"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def console_env(database_url: str, data_dir: Path) -> dict[str, str]:
    return {
        "COVE_DATABASE_URL": database_url,
        "COVE_DATA_DIR": str(data_dir),
        "COVE_CONFIG": str(data_dir / "none.toml"),
    }


def add_operator(env: dict[str, str], name: str = "olivia", password: str = PASSWORD) -> None:
    added = run_cove(["console", "operator", "add", name, "--password-stdin"], env, input=password + "\n")
    assert added.returncode == 0, added.stderr


def start_console(env: dict[str, str], log: Path) -> PageProcess:
    return PageProcess(["console", "serve", "--port", "0"], env, log)


def csrf_of(page: str) -> str:
    found = CSRF.search(page)
    assert found, page
    return found.group(1)


def sign_in(client: httpx.Client, name: str = "olivia", password: str = PASSWORD) -> httpx.Response:
    token = csrf_of(client.get("/login").text)
    return client.post("/login", data={"csrf": token, "name": name, "password": password})


# What a test relay needs for the console's tests: a published policy reaches it within 0.3 s, and it writes its
# health figures 5 times a second.
RELAY_ENV = {"COVE_FLEET_POLL_SECONDS": "0.3", "COVE_HEALTH_INTERVAL_SECONDS": "0.2"}


async def notice_for(client) -> dict[str, Any]:  # noqa: ANN001 - a cove.client.transport.CoveClient
    """The notice due to ``client``, once the relay has picked up the published policy (a poll, not a guess)."""
    async with asyncio.timeout(15):
        while (notice := await client.pending_notice()) is None:  # noqa: ASYNC110 - the relay has no event for it
            await asyncio.sleep(0.1)
    return notice
