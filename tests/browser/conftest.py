"""Browser tests: Debian's Chromium (/usr/bin/chromium, or COVE_CHROMIUM) driven by Playwright, against real
relays, apps and consoles started as processes. Chromium is started with no network of its own beyond
localhost (no background requests), as a machine without internet access needs."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from browser.world import SIZES, PageProcess

CHROMIUM = os.environ.get("COVE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(params=["sqlite"])
def database_url(_migrated_sqlite: Path, tmp_path: Path) -> Iterator[str]:
    """Browser tests test pages, not storage: SQLite only (the storage under them is tested on both). The template
    is a fixture argument, not fetched with getfixturevalue: it is made with asyncio.run, which must happen before
    the session's Playwright starts its event loop on this thread."""
    shutil.copyfile(_migrated_sqlite, tmp_path / "relay.db")
    yield f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per test module. Not per session: while Playwright's sync API is open, an event loop runs on
    the worker's thread, and the asyncio tests a worker runs after the browser tests could not start theirs."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium is not at {CHROMIUM}: .ci/run installs Debian's chromium package")
        pytest.skip(f"Chromium is not at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=SIZES["desktop"], accept_downloads=True)
    context.set_default_timeout(15_000)
    opened = context.new_page()
    yield opened
    context.close()


@pytest.fixture
def open_app(relay, tmp_path: Path) -> Iterator:  # noqa: ANN001
    """``open_app("alice")`` starts `cove app` for a new profile on the test's relay; the profile's folder is
    under the test's own COVE_HOME."""
    started: list[PageProcess] = []

    def start(profile: str, home: Path | None = None) -> PageProcess:
        home = home or tmp_path / "home"
        home.mkdir(exist_ok=True)
        env = {"COVE_HOME": str(home), "COVE_PICKLE_KEY": "11" * 32}
        argv = ["app", "--profile", profile, "--server", relay.url, "--port", "0"]
        process = PageProcess(argv, env, tmp_path / f"app-{profile}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def open_console(tmp_path: Path) -> Iterator:
    """``open_console(database_url, data_dir)``: console_world.console_over, stopped at the test's end; ``.url``
    is the login page."""
    from console_world import console_over

    started: list[PageProcess] = []

    def start(database_url: str, data_dir: Path, operator: str = "olivia") -> PageProcess:
        process = console_over(database_url, data_dir, tmp_path / f"console-{len(started)}.log", operator)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
