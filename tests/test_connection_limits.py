"""A real relay refuses what would exhaust it: half-sent requests, too many connections, sockets that do not read,
floods of bad frames, oversized frames; and a bad ack never fails other clients' commits.

Each test sets the relay's limits low through ``relay_env`` (parametrized) and asserts that the relay closes or
refuses, never how fast: deadlines here are generous bounds on a wait, not measurements.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from contextlib import AsyncExitStack

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from helpers import texts

DEADLINE = 60.0  # seconds: only a relay that never closes reaches it


def open_raw(relay) -> socket.socket:  # noqa: ANN001
    return socket.create_connection(("127.0.0.1", relay.port), timeout=DEADLINE)


def closed_by_relay(sock: socket.socket) -> bool:
    """Read until the relay closes the connection (True) or the deadline passes (False)."""
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


async def socket_of(client, **options) -> ClientConnection:  # noqa: ANN001, ANN003
    url = client.base_url.replace("http", "ws", 1) + "/v1/websocket"
    return await connect(url, additional_headers={"Authorization": f"Bearer {client.core.token}"}, **options)


async def frames_until_closed(ws: ClientConnection) -> tuple[list[dict], ConnectionClosed]:
    """Every frame the relay sends (batches unpacked) until it closes the socket."""
    frames: list[dict] = []
    try:
        async with asyncio.timeout(DEADLINE):
            while True:
                frame = json.loads(await ws.recv())
                frames += frame["frames"] if frame.get("type") == "batch" else [frame]
    except ConnectionClosed as closed:
        return frames, closed


@pytest.mark.parametrize("relay_env", [{"COVE_HEADER_TIMEOUT_SECONDS": "1"}])
def test_a_request_whose_headers_never_finish_is_closed(relay) -> None:  # noqa: ANN001
    half_sent = open_raw(relay)
    half_sent.sendall(b"GET /health HTTP/1.1\r\nHost: relay\r\nX-Slow: ")
    silent = open_raw(relay)
    kept_alive = open_raw(relay)
    kept_alive.sendall(b"GET /health HTTP/1.1\r\nHost: relay\r\n\r\n")
    assert b"200 OK" in kept_alive.recv(65536)
    kept_alive.sendall(b"GET /health HTTP/1.1\r\n")  # a second request on the same connection, half sent
    assert closed_by_relay(half_sent) and closed_by_relay(silent) and closed_by_relay(kept_alive)
    assert httpx.get(f"{relay.url}/health").status_code == 200  # a whole request is still served


@pytest.mark.parametrize("relay_env", [{"COVE_HEADER_TIMEOUT_SECONDS": "300"}])
def test_headers_larger_than_the_limit_are_refused(relay) -> None:  # noqa: ANN001
    endless = open_raw(relay)
    answer = b""
    with contextlib.suppress(ConnectionResetError, BrokenPipeError):  # the relay may cut before reading it all
        endless.sendall(b"GET /health HTTP/1.1\r\nHost: relay\r\nX-Long: " + b"a" * 200_000)
        answer = endless.recv(65536)
    assert closed_by_relay(endless)
    assert not answer or (answer.startswith(b"HTTP/1.1 431") and b"headers_too_large" in answer)


@pytest.mark.parametrize(
    ("relay_env", "status"),
    [
        ({"COVE_MAX_CONNECTIONS_PER_ADDRESS": "3", "COVE_HEADER_TIMEOUT_SECONDS": "300"}, 429),
        ({"COVE_MAX_CONNECTIONS": "3", "COVE_HEADER_TIMEOUT_SECONDS": "300"}, 503),
    ],
)
async def test_connections_over_the_limit_are_refused_with_a_code(relay, users, status: int) -> None:  # noqa: ANN001
    alice = await users.register("alice")
    held = [open_raw(relay) for _ in range(3)]  # idle connections, held open

    async with httpx.AsyncClient() as http:
        refused = await http.get(f"{relay.url}/health")
    assert refused.status_code == status and refused.json()["error"]["code"] == "too_many_connections"
    assert refused.headers["retry-after"]
    with pytest.raises(InvalidStatus) as upgrade:
        await socket_of(alice)
    assert upgrade.value.response.status_code == status
    assert json.loads(upgrade.value.response.body)["error"]["code"] == "too_many_connections"

    for sock in held:
        sock.close()
    async with asyncio.timeout(DEADLINE), httpx.AsyncClient() as http:
        # The slots are given back as the connections close: the relay's state, not an event of ours.
        while (await http.get(f"{relay.url}/health")).status_code != 200:  # noqa: ASYNC110
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("relay_env", [{"COVE_MAX_SOCKETS_PER_ACCOUNT": "1"}])
async def test_an_account_over_its_socket_limit_is_refused(users) -> None:  # noqa: ANN001
    alice = await users.register("alice")
    first = await socket_of(alice)
    assert json.loads(await first.recv())["type"] == "queue_empty"

    second = await socket_of(alice)
    frames, closed = await frames_until_closed(second)
    assert [f["error"]["code"] for f in frames] == ["too_many_connections"]
    assert closed.rcvd.code == 4429 and closed.rcvd.reason.startswith("too_many_connections")
    await asyncio.wait_for(await first.ping(), DEADLINE)  # the first socket is untouched
    await first.close()

    async with asyncio.timeout(DEADLINE):
        while True:  # the slot is given back once the first socket's handler ends
            third = await socket_of(alice)
            if json.loads(await third.recv())["type"] == "queue_empty":
                break
            await third.close()
    await third.close()


async def silent_socket(users, relay):  # noqa: ANN001, ANN201
    """Alice, Bob, and a socket of Bob's that has read ``queue_empty`` and reads no more, with small buffers."""
    alice = await users.register("alice")
    bob = await users.register("bob")
    tiny = socket.socket()
    tiny.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    tiny.connect(("127.0.0.1", relay.port))
    silent = await socket_of(bob, sock=tiny, max_queue=1, max_size=None)
    assert json.loads(await silent.recv())["type"] == "queue_empty"
    return alice, bob, silent


async def send_large(alice, bob, count: int) -> list[str]:  # noqa: ANN001
    """``count`` messages of 60 kB from Alice to Bob; their texts."""
    sent = [f"{i:04d} " + "x" * 60_000 for i in range(count)]
    for message in sent:
        await alice.send(alice.core.compose_text(bob.core.account_id, message))
    return sent


@pytest.mark.parametrize("relay_env", [{"COVE_WS_OUTBOX_FRAMES": "8", "COVE_WS_CLOSE_TIMEOUT_SECONDS": "1"}])
async def test_a_socket_that_does_not_read_is_closed_and_loses_nothing(users, relay) -> None:  # noqa: ANN001
    # Bob's socket reads one frame, then stops: the kernel's buffers fill up, then the relay's outbox.
    alice, bob, silent = await silent_socket(users, relay)
    sent = await send_large(alice, bob, 200)  # about 16 MB of base64 ciphertext

    frames, closed = await frames_until_closed(silent)
    assert closed.rcvd is None or closed.rcvd.code == 4408  # aborted, or told why if it read that far
    assert "not_reading" in relay.log()
    assert len(frames) < len(sent)
    assert sorted(texts(await bob.inbox())) == sent  # stored, so delivered on the next connection


@pytest.mark.parametrize("relay_env", [{"COVE_WS_OUTBOX_FRAMES": "10000", "COVE_WS_CLOSE_TIMEOUT_SECONDS": "1"}])
async def test_a_socket_that_does_not_read_is_replaced_by_the_device_connecting_again(users, relay) -> None:  # noqa: ANN001
    alice, bob, silent = await silent_socket(users, relay)
    sent = await send_large(alice, bob, 100)  # more than the kernel buffers, less than the outbox

    # The relay's writer for the silent socket is stuck on a full buffer: the new connection still replaces it
    # (a graceful close, given ws_close_timeout_seconds to flush) and gets everything from the queue.
    assert sorted(texts(await bob.inbox())) == sent
    async with asyncio.timeout(DEADLINE):
        while "did not read what was queued in time" not in relay.log():  # noqa: ASYNC110 - another process
            await asyncio.sleep(0.1)
    frames, closed = await frames_until_closed(silent)
    assert len(frames) < len(sent)  # the old socket was cut after its close timeout, not flushed to the end
    assert closed.rcvd is None or closed.rcvd.code == 4409
    assert "not_reading" not in relay.log()


async def test_a_flood_of_bad_frames_is_answered_then_closed(users) -> None:  # noqa: ANN001
    alice = await users.register("alice")
    ws = await socket_of(alice, max_queue=None)
    assert json.loads(await ws.recv())["type"] == "queue_empty"
    with contextlib.suppress(ConnectionClosed):  # the relay may close while we are still sending
        for i in range(100):
            await ws.send(f"not json {i}")
    frames, closed = await frames_until_closed(ws)
    assert frames and {f["error"]["code"] for f in frames} == {"bad_frame"}
    assert closed.rcvd.code == 4400 and closed.rcvd.reason.startswith("bad_frames")


@pytest.mark.parametrize("relay_env", [{"COVE_WS_MAX_FRAME_BYTES": "65536"}])
async def test_a_frame_over_the_size_limit_closes_the_socket(users) -> None:  # noqa: ANN001
    alice = await users.register("alice")
    ws = await socket_of(alice)
    assert json.loads(await ws.recv())["type"] == "queue_empty"
    await ws.send(json.dumps({"type": "ack", "ids": [1] * 40_000}))
    _, closed = await frames_until_closed(ws)
    assert closed.rcvd.code == 1009  # "message too big" (RFC 6455)


async def test_a_bad_ack_fails_only_its_sender(users, relay) -> None:  # noqa: ANN001
    alice = await users.register("alice")
    bob = await users.register("bob")
    carol = await users.register("carol")
    await alice.send(alice.core.compose_text(bob.core.account_id, "warm-up"))  # sessions, before the window
    async with AsyncExitStack() as sockets:
        bobs = await sockets.enter_async_context(await socket_of(bob))
        carols = await sockets.enter_async_context(await socket_of(carol))
        queued = [f for f in [json.loads(await bobs.recv())] for f in (f["frames"] if f["type"] == "batch" else [f])]
        ids = [f["id"] for f in queued if f["type"] == "envelope"]
        assert json.loads(await carols.recv())["type"] == "queue_empty"

        # In one commit window: Bob's good ack, Carol's ack of an id beyond 64 bits, Alice's sends.
        async def alice_sends() -> None:
            for i in range(5):
                await alice.send(alice.core.compose_text(bob.core.account_id, f"during {i}"))

        await asyncio.gather(
            bobs.send(json.dumps({"type": "ack", "ids": ids})),
            carols.send(json.dumps({"type": "ack", "ids": [2**64, *ids]})),
            alice_sends(),
        )
        error = json.loads(await asyncio.wait_for(carols.recv(), DEADLINE))
        assert error["type"] == "error" and error["error"]["code"] == "bad_frame"
        assert "ids.0" in error["error"]["message"]

    assert sorted(texts(await bob.inbox())) == [f"during {i}" for i in range(5)]  # "warm-up" was acked
    assert "queue write failed" not in relay.log()
