"""Every message reaches the app exactly once, through a real relay, when the connection dies between the
client's save and its ack: the socket closed at that instant, the relay killed there, the client restarted."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from cove.client.events import MessageReceived
from helpers import texts

SENT = [f"message {i}" for i in range(6)]


def cut_at_the_first_ack(monkeypatch: pytest.MonkeyPatch, cut: Callable[[ClientConnection], Awaitable[None]]) -> None:
    """The seam: ``cut`` runs when the client is about to send its first ack, after the envelopes are saved."""
    original = ClientConnection.send
    armed = [True]

    async def send(self: ClientConnection, message: Any, *args: Any, **kwargs: Any) -> None:
        if armed[0] and isinstance(message, str) and json.loads(message).get("type") == "ack":
            armed[0] = False
            await cut(self)
        await original(self, message, *args, **kwargs)

    monkeypatch.setattr(ClientConnection, "send", send)


async def test_a_socket_closed_between_the_save_and_the_ack_then_a_client_restart_loses_and_repeats_nothing(
    users, monkeypatch
):
    alice = await users.register("alice")
    bob = await users.register("bob")
    for text in SENT:
        await alice.send_text(bob.core.account_id, text)

    async def close(ws: ClientConnection) -> None:
        await ws.close()

    cut_at_the_first_ack(monkeypatch, close)
    with pytest.raises(ConnectionClosed):
        await bob.inbox()
    bob.core.store.close()  # and the app stops

    restarted = users.client("bob")
    assert texts(await restarted.inbox()) == SENT  # the redelivered ones are recognised and acked, once
    assert await restarted.inbox() == []
    assert [m.text for m in restarted.core.store.messages()] == SENT


async def test_a_relay_killed_between_the_save_and_the_ack_loses_and_repeats_nothing(users, relay, monkeypatch):
    alice = await users.register("alice")
    bob = await users.register("bob")
    for text in SENT:
        await alice.send_text(bob.core.account_id, text)

    async def kill(_: ClientConnection) -> None:
        os.kill(relay.pid, signal.SIGKILL)
        await relay.wait_for_exit()

    cut_at_the_first_ack(monkeypatch, kill)
    seen: list[MessageReceived] = []
    with contextlib.suppress(ConnectionClosed, OSError):
        async for event in bob.events():
            if isinstance(event, MessageReceived):
                seen.append(event)
    relay.start()
    async for event in bob.events(stop_when_empty=True):  # the app reconnects
        if isinstance(event, MessageReceived):
            seen.append(event)
    assert texts(seen) == SENT
    assert await bob.inbox() == []
