"""What the privacy center's and the account page's browser tests share: people registered with the `cove` CLI
under the app's COVE_HOME, the operator's commands on the relay, and the relay's view read back through the SDK."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from playwright.sync_api import Page, expect
from sqlalchemy import Select

from browser.world import PageProcess, off_the_loop
from cove.client.core import ClientCore
from cove.client.profile import device_info, profile_folder
from cove.client.store import ClientStore
from cove.client.transport import CoveClient
from cove.db import create_engine
from cove.testing import CodeInbox, RelayProcess, run_cove

REPO = Path(__file__).resolve().parents[2]
DEFAULT_POLICY = REPO / "policies" / "cove-default.toml"
PICKLE_KEY = "11" * 32  # the open_app fixture's
T = TypeVar("T")


def cove(env: dict[str, str], *args: str) -> str:
    done = run_cove(list(args), env, timeout=120)
    assert done.returncode == 0, f"cove {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def register(relay: RelayProcess, inbox: CodeInbox, home: Path, profile: str, phone: str) -> None:
    """A person registered from the command line, in the home the app will open (until the app's welcome page)."""
    home.mkdir(exist_ok=True)
    env = {**os.environ, "COVE_HOME": str(home), "COVE_PICKLE_KEY": PICKLE_KEY}
    cove(env, "register", phone, "--profile", profile, "--server", relay.url)
    cove(env, "verify", inbox.latest(phone), "--profile", profile)


@dataclass(frozen=True)
class Person:
    app: PageProcess
    account_id: str


def person_under_policy(
    relay: RelayProcess,
    inbox: CodeInbox,
    open_app: Callable[[str, Path], PageProcess],
    home: Path,
    profile: str,
    phone: str,
    policy: Path = DEFAULT_POLICY,
) -> Person:
    """Someone registered, a policy published by the operator, and the person's app started."""
    register(relay, inbox, home, profile, phone)
    account_id = account_of(home, profile)
    cove(relay.env, "policy", "publish", str(policy))
    return Person(open_app(profile, home), account_id)


def profile_core(home: Path, profile: str) -> ClientCore:
    """The profile the app serves, opened beside it (close its store after)."""
    folder = profile_folder(profile, home)
    return ClientCore(ClientStore(folder / "state.db"), bytes.fromhex(PICKLE_KEY), device_info(home))


def account_of(home: Path, profile: str) -> str:
    core = profile_core(home, profile)
    try:
        assert core.account_id is not None
        return core.account_id
    finally:
        core.store.close()


def relay_view(relay: RelayProcess, home: Path, profile: str) -> dict[str, Any]:
    """``GET /v1/me/privacy`` through the SDK, as another program on the person's machine would read it."""

    async def read() -> dict[str, Any]:
        core = profile_core(home, profile)
        try:
            async with CoveClient(relay.url, core) as client:
                return await client.privacy()
        finally:
            core.store.close()

    return off_the_loop(read())


def relay_scalar(database_url: str, query: Select[Any]) -> Any:
    """One value straight from the relay's database: what the relay itself keeps, beyond what it answers."""

    async def read() -> Any:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as conn:
                return await conn.scalar(query)
        finally:
            await engine.dispose()

    return off_the_loop(read())


def purpose(view: dict[str, Any], purpose_id: str) -> dict[str, Any]:
    return next(p for p in view["purposes"] if p["id"] == purpose_id)


def open_privacy_with_notice(page: Page, url: str, base: str, attempts: int = 40) -> None:
    """Open the app, then its privacy page until the published policy's notice is due (the relay picks a publish
    up within COVE_FLEET_POLL_SECONDS)."""
    page.goto(url)
    for _ in range(attempts):
        page.goto(f"{base}/privacy")
        if page.locator("#notice-title").count():
            return
        page.wait_for_timeout(250)
    expect(page.locator("#notice-title")).to_be_visible()


def accept_terms(page: Page, age: str = "18 or older") -> None:
    page.get_by_label(age).check()
    page.get_by_role("button", name="Accept the terms").click()
    expect(page.locator("#flash")).to_contain_text("Terms accepted")
