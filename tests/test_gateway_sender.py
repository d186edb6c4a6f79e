"""The gateway's message sends over its WebSocket (cove.business.gateway.sender) and the relay's side of it: sends
on one socket are checked concurrently, yet reach the recipient in the order they were sent, each answered once."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from cove.business.gateway.relay import relay_client
from cove.business.gateway.sender import SocketSender
from cove.client.allowlist import RouteNotAllowed
from cove.client.core import ClientCore
from cove.client.errors import RelayError
from cove.client.request import Request
from cove.client.store import ClientStore

ACCOUNT = "0b6f8a5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b"
BODY = {"client_message_id": "m1", "messages": [{"device_id": 1, "registration_id": 7, "kind": 1, "body": "AA=="}]}


class FakeSocket:
    """What the sender writes; the test plays the relay's answers."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.sent = asyncio.Event()

    async def send(self, message: str) -> None:
        self.frames.append(json.loads(message))
        self.sent.set()

    async def next_frame(self, count: int) -> None:
        while len(self.frames) < count:
            self.sent.clear()
            await self.sent.wait()


def response(frame: dict[str, Any], status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"type": "response", "request_id": frame["request_id"], "status": status, "body": body}


async def test_answers_are_matched_by_request_id_whatever_their_order():
    sender, socket = SocketSender(), FakeSocket()
    sender.attach(socket)
    first = asyncio.create_task(sender.send(ACCOUNT, {**BODY, "client_message_id": "a"}))
    second = asyncio.create_task(sender.send(ACCOUNT, {**BODY, "client_message_id": "b"}))
    await socket.next_frame(2)
    a, b = socket.frames
    assert a["type"] == b["type"] == "send" and a["to"] == ACCOUNT and a["request_id"] != b["request_id"]
    assert (a["client_message_id"], b["client_message_id"]) == ("a", "b") and a["messages"] == BODY["messages"]
    assert sender.answer(response(b, 200, {"queued": 2}))
    assert sender.answer(response(a, 200, {"queued": 1}))
    assert await first == {"queued": 1} and await second == {"queued": 2}
    # Not a response: the receive loop handles it; an unknown or repeated answer is dropped.
    assert not sender.answer({"type": "envelope", "id": 4})
    assert sender.answer(response(a, 200, {"queued": 9}))


async def test_a_refusal_raises_as_over_http():
    sender, socket = SocketSender(), FakeSocket()
    sender.attach(socket)
    task = asyncio.create_task(sender.send(ACCOUNT, BODY))
    await socket.next_frame(1)
    error = {"error": {"code": "business_rule", "message": "no", "cloud_api": {"code": 131047}, "retry_after": 3}}
    sender.answer(response(socket.frames[0], 400, error))
    with pytest.raises(RelayError) as refused:
        await task
    assert refused.value.status == 400 and refused.value.details["cloud_api"] == {"code": 131047}


async def test_the_window_bounds_the_sends_in_flight():
    sender, socket = SocketSender(window=2), FakeSocket()
    sender.attach(socket)
    tasks = [asyncio.create_task(sender.send(ACCOUNT, {**BODY, "client_message_id": str(i)})) for i in range(3)]
    await socket.next_frame(2)
    await asyncio.sleep(0.05)
    assert len(socket.frames) == 2  # the third waits for a slot
    sender.answer(response(socket.frames[0], 200, {"queued": 1}))
    await socket.next_frame(3)
    assert socket.frames[2]["client_message_id"] == "2"
    for frame in socket.frames[1:]:
        sender.answer(response(frame, 200, {"queued": 1}))
    assert [await t for t in tasks] == [{"queued": 1}] * 3


async def test_a_send_in_flight_when_the_socket_drops_goes_over_http():
    sender, socket = SocketSender(), FakeSocket()
    assert await sender.send(ACCOUNT, BODY) is None  # no socket yet
    sender.attach(socket)
    task = asyncio.create_task(sender.send(ACCOUNT, BODY))
    await socket.next_frame(1)
    sender.detach()
    assert await task is None and not sender.connected
    late = SocketSender(answer_s=0.05)
    late.attach(FakeSocket())
    assert await late.send(ACCOUNT, BODY) is None  # no answer in time


@pytest.fixture
def core(tmp_path: Path) -> ClientCore:
    made = ClientCore(ClientStore(tmp_path / "gateway.db"), bytes(32), {})
    yield made
    made.store.close()


async def test_only_allowed_message_sends_take_the_socket(core, monkeypatch):
    client = relay_client("http://relay.test", core)
    socket = FakeSocket()
    client.sender.attach(socket)
    over_http: list[str] = []

    async def http(self: Any, request: Request) -> dict[str, Any]:  # noqa: ARG001 - the replaced method's
        over_http.append(f"{request.method} {request.path}")
        return {"over": "http"}

    monkeypatch.setattr("cove.client.transport.CoveClient._call", http)
    task = asyncio.create_task(client.call(Request("PUT", f"/v1/messages/{ACCOUNT}", BODY)))
    await socket.next_frame(1)
    client.sender.answer(response(socket.frames[0], 200, {"queued": 1}))
    assert await task == {"queued": 1}
    # Anything else is HTTP, and a path outside the allowlist is refused before it reaches the socket.
    assert await client.call(Request("GET", "/v1/business/templates")) == {"over": "http"}
    with pytest.raises(RouteNotAllowed):
        await client.call(Request("PUT", "/v1/messages/..%2Fdevices%2Fcurrent", BODY))
    with pytest.raises(RouteNotAllowed):
        await client.call(Request("PUT", "/v1/messages/not-an-account", BODY))
    assert len(socket.frames) == 1 and over_http == ["GET /v1/business/templates"]
    client.sender.detach()
    assert await client.call(Request("PUT", f"/v1/messages/{ACCOUNT}", BODY)) == {"over": "http"}
    await client.aclose()


def envelope_body(devices: list[dict[str, Any]], client_message_id: str) -> dict[str, Any]:
    messages = [
        {"device_id": d["device_id"], "registration_id": d["registration_id"], "kind": 1, "body": "AA=="}
        for d in devices
    ]
    return {"client_message_id": client_message_id, "messages": messages}


async def test_sends_on_one_socket_are_answered_once_each_and_queued_in_order(users, relay):
    ana = await users.register("ana", "+14155550161")
    ben = await users.register("ben", "+14155550162")
    async with httpx.AsyncClient(base_url=relay.url, headers={"Authorization": f"Bearer {ana.core.token}"}) as api:
        devices = (await api.get(f"/v1/keys/{ben.core.account_id}/identity")).json()["devices"]
    ids = [f"m{i:03d}" for i in range(120)]
    frames = []
    for i, cmid in enumerate(ids):
        frame = {"type": "send", "request_id": i, "to": ben.core.account_id, **envelope_body(devices, cmid)}
        if i % 10 == 5:  # refused by a check: answered, and the sends after it go on
            frame["to"] = str(uuid.uuid4())
        frames.append(frame)
    url = relay.url.replace("http", "ws") + "/v1/websocket"
    answers: dict[int, dict[str, Any]] = {}
    async with connect(url, additional_headers={"Authorization": f"Bearer {ana.core.token}"}) as ws:
        for frame in frames:
            await ws.send(json.dumps(frame))
        while len(answers) < len(frames):
            got = json.loads(await asyncio.wait_for(ws.recv(), 30))
            for one in got["frames"] if got["type"] == "batch" else [got]:
                if one["type"] == "response":
                    assert one["request_id"] not in answers
                    answers[one["request_id"]] = one
    refused = {i for i in answers if i % 10 == 5}
    assert all(answers[i]["status"] == 404 for i in refused)
    assert all(answers[i]["status"] == 200 and answers[i]["body"]["queued"] == 1 for i in answers if i not in refused)
    expected = [cmid for i, cmid in enumerate(ids) if i not in refused]
    received: list[str] = []
    async with connect(url, additional_headers={"Authorization": f"Bearer {ben.core.token}"}) as ws:
        while True:
            got = json.loads(await asyncio.wait_for(ws.recv(), 30))
            batch = got["frames"] if got["type"] == "batch" else [got]
            received += [one["client_message_id"] for one in batch if one["type"] == "envelope"]
            if any(one["type"] == "queue_empty" for one in batch):
                break
    assert received == expected
