"""Helpers of the groups tests: HTTP as a registered user, and a device's queue read over a real WebSocket."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Callable
from typing import Any

import httpx
import websockets


def api(relay, client) -> httpx.AsyncClient:  # noqa: ANN001
    return httpx.AsyncClient(base_url=relay.url, headers={"Authorization": f"Bearer {client.core.token}"})


async def frames(relay, client, ack: bool = True) -> list[dict[str, Any]]:  # noqa: ANN001
    """The envelopes queued for the client's device, read until ``queue_empty``; acked (and so deleted) unless
    ``ack`` is False. Receipts caused by the acks are left in their senders' queues."""
    url = relay.url.replace("http://", "ws://") + "/v1/websocket"
    headers = {"Authorization": f"Bearer {client.core.token}"}
    got: list[dict[str, Any]] = []
    async with websockets.connect(url, additional_headers=headers) as ws:
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 20))
            batch = frame["frames"] if frame["type"] == "batch" else [frame]
            got += [f for f in batch if f["type"] == "envelope"]
            if any(f["type"] == "queue_empty" for f in batch):
                break
        if ack and got:
            await ws.send(json.dumps({"type": "ack", "ids": [f["id"] for f in got]}))
            # The ack commits within the writer's linger; a ping round trip does not wait for it, so read until
            # the device's queue is seen empty in the database by the caller (see wait_for).
    return got


def changes(received: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    return [(f["change"]["action"], f["change"]["accounts"]) for f in received if f["kind"] == 7]


def ciphertext(size: int = 200) -> str:
    return base64.b64encode(os.urandom(size)).decode()


async def wait_for(condition: Callable[[], Any], what: str, limit: float = 20.0) -> Any:  # noqa: ASYNC109
    """Poll an async condition until it holds (never a timing assertion: the limit only ends a hung test)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        result = await condition()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.05)
