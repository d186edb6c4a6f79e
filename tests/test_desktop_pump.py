"""The app's event pump (cove.desktop.pump) over a fake client: it waits for an account, reconnects after a lost
stream, announces each event's conversation to the open pages, and waits for a new account when the relay logs
the profile out."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from cove.client.errors import RelayError
from cove.client.events import Delivered, Event, QueueEmpty, Read
from cove.client.store import ClientStore
from cove.desktop import pump
from cove.desktop.state import Desktop

PEER = str(uuid.uuid4())


class FakeClient:
    """Each connection plays one script: its events, then the error that ends it."""

    def __init__(self, store: ClientStore, scripts: list[tuple[list[Event], Exception]]) -> None:
        self.core = SimpleNamespace(store=store, account_id="me", groups=None)
        self.scripts = scripts
        self.connections = 0

    async def events(self) -> AsyncIterator[Event]:
        events, ending = self.scripts[self.connections]
        self.connections += 1
        for event in events:
            yield event
        raise ending

    async def report_usage(self) -> int:
        return 0


async def test_the_pump_reconnects_announces_and_waits_again_when_logged_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pump, "FIRST_PAUSE", 0.0)
    client = FakeClient(
        ClientStore(tmp_path / "state.db"),
        [
            ([Delivered(PEER, "m1")], httpx.ConnectError("refused")),
            ([QueueEmpty(), Read(PEER, ["m1"])], RelayError(401, {"error": {"code": "unauthenticated"}})),
        ],
    )
    desktop = Desktop("alice", "http://127.0.0.1:1")
    desktop.client = client  # type: ignore[assignment]
    async with aclosing(desktop.live.listen()) as page:
        assert await anext(page) == "connected"
        running = asyncio.create_task(pump.Pump(desktop).run())
        await asyncio.sleep(0)
        assert client.connections == 0  # no account yet: it waits
        desktop.ready.set()
        heard = [await asyncio.wait_for(anext(page), 10) for _ in range(5)]
        assert not running.done()  # waiting for the welcome page to register or link the profile anew
        running.cancel()
    assert heard == [f"chat-{PEER}", "chats", f"chat-{PEER}", "chats", "chats"]
    assert client.connections == 2 and desktop.connection == "logged out" and not desktop.ready.is_set()
