"""`cove console` as the operator runs it, on a test's relay database: an operator added through the command,
the console started as a process, and a signed-in HTTP client."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
from playwright.sync_api import Page

from browser.world import PageProcess
from cove.testing import run_cove

PASSWORD = "a long operator password"
T = TypeVar("T")
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


def console_over(database_url: str, data_dir: Path, log: Path, operator: str = "olivia") -> PageProcess:
    """`cove console serve` over a relay's database and data directory, with an operator (PASSWORD) added by
    `cove console operator add`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = console_env(database_url, data_dir)
    add_operator(env, operator)
    return start_console(env, log)


def csrf_of(page: str) -> str:
    found = CSRF.search(page)
    assert found, page
    return found.group(1)


def login_form(login_page: str, name: str = "olivia", password: str = PASSWORD) -> dict[str, str]:
    """What the login page's form posts: the name, the password and the token the page carries."""
    return {"csrf": csrf_of(login_page), "name": name, "password": password}


def sign_in(client: httpx.Client, name: str = "olivia", password: str = PASSWORD) -> httpx.Response:
    return client.post("/login", data=login_form(client.get("/login").text, name, password))


@dataclass
class SignedIn:
    """An operator's HTTP client, signed in through the login page. ``post`` sends a form as the page's own forms
    do, with the session's token in the ``csrf`` field; ``base`` is the console's address, for a stranger's
    client."""

    client: httpx.AsyncClient
    token: str
    base: str

    async def get(self, path: str) -> httpx.Response:
        return await self.client.get(path)

    async def post(self, path: str, **form: str) -> httpx.Response:
        return await self.client.post(path, data={**form, "csrf": self.token})


@asynccontextmanager
async def signed_in(database_url: str, data_dir: Path) -> AsyncIterator[SignedIn]:
    """The console over this database and data directory (its log in there), and a client signed in as its
    operator."""
    process = console_over(database_url, data_dir, data_dir / "console.log")
    try:
        async with httpx.AsyncClient(base_url=process.base, timeout=30) as client:
            entered = await client.post("/login", data=login_form((await client.get("/login")).text))
            assert (entered.status_code, entered.headers.get("location")) == (303, "/"), entered.text
            yield SignedIn(client, csrf_of((await client.get("/")).text), process.base)
    finally:
        process.stop()


# What a test relay needs for the console's tests: a published policy reaches it within 0.3 s, and it writes its
# health figures 5 times a second.
RELAY_ENV = {"COVE_FLEET_POLL_SECONDS": "0.3", "COVE_HEALTH_INTERVAL_SECONDS": "0.2"}


# In the browser tests


def sign_in_on(page: Page, name: str = "olivia", password: str = PASSWORD) -> None:
    """The login page's form, filled in and sent as a person does."""
    page.get_by_label("Operator name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
