"""The one profile a running `cove app` serves: its keys (ClientCore), its connection to the relay (CoveClient)
once registered, and the live hub of its open pages."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path

from cove.client.core import ClientCore
from cove.client.profile import open_profile, profile_folder, remove_profile
from cove.client.transport import CoveClient
from cove.desktop.live import LiveHub

DEFAULT_SERVER = "http://127.0.0.1:8080"


@dataclass
class Desktop:
    profile: str
    server: str
    home: Path | None = None
    live: LiveHub = field(default_factory=LiveHub)
    core: ClientCore | None = None
    client: CoveClient | None = None
    # Set once the profile has an account (at start, or when the welcome page registers or links it): the event
    # pump waits for it.
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    connection: str = "connecting"  # the event pump's: connecting, connected, reconnecting, logged out

    @classmethod
    def open(cls, profile: str, server: str | None, home: Path | None = None) -> Desktop:
        """An existing profile keeps the relay it registered with; a new one takes ``server``."""
        core = open_profile(profile, home) if profile_folder(profile, home).is_dir() else None
        known = core.store.get("server") if core is not None else None
        url = server or known or os.environ.get("COVE_SERVER", DEFAULT_SERVER)
        desktop = cls(profile, url, home, core=core)
        if core is not None:
            desktop.client = CoveClient(url, core)
        if desktop.registered:
            desktop.ready.set()
        return desktop

    @property
    def folder(self) -> Path:
        return profile_folder(self.profile, self.home)

    @property
    def files(self) -> Path:
        """Where received files are saved, as `cove inbox` saves them."""
        return self.folder / "files"

    @property
    def registered(self) -> bool:
        return self.core is not None and bool(self.core.token)

    async def forget(self) -> None:
        """The profile is gone (its account deleted, or a first registration step failed): its connection and
        store are closed and its folder deleted, every page leads to the welcome page again, and the event pump
        waits for the next account."""
        self.ready.clear()
        if self.client is not None:
            await self.client.aclose()
        if self.core is not None:
            remove_profile(self.core, self.profile, self.home)
        self.core = self.client = None
        self.connection = "connecting"

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()
