"""Two relay processes on one PostgreSQL database and a NATS server: any process serves any device.

Each test runs its own NATS server, so stopping it touches no other test. The clients of one user talk to
one process, or, after it dies, to the other, as a TCP load balancer would send them.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from conftest import Users, _database
from cove.accounts.service import LOGGED_OUT
from cove.client.events import MessageReceived
from cove.client.transport import CoveClient, RelayError
from cove.testing import CodeInbox, LocalServer, RelayProcess, run_cove
from cove.testing import nats_server as private_nats_server


@pytest.fixture(params=["postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from _database(request, tmp_path, migrated=True)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[LocalServer]:
    server = private_nats_server(tmp_path)
    server.start()
    yield server
    server.stop()


def fleet_env(nats_url: str, **extra: str) -> dict[str, str]:
    return {
        "COVE_NATS_URL": nats_url,
        "COVE_BUS_PREFIX": f"t{uuid.uuid4().hex[:12]}",
        "COVE_FLEET_POLL_SECONDS": "0.5",
        # Only wake-ups deliver live, unless a test says otherwise: a lost one would show as a timeout.
        "COVE_QUEUE_RESCAN_SECONDS": "3600",
        **extra,
    }


class Fleet:
    def __init__(self, database_url: str, folder: Path, inbox: CodeInbox, env: dict[str, str]) -> None:
        self.relays = []
        for name in ("a", "b"):
            (folder / name).mkdir()
            self.relays.append(RelayProcess(database_url, folder / name, inbox.url, env, preloaded=True))
        self.a, self.b = self.relays
        self.inbox = inbox
        self.folder = folder
        self._users: list[Users] = []

    def start(self) -> None:
        for relay in self.relays:
            relay.start()

    def stop(self) -> None:
        for relay in self.relays:
            if relay.started:
                relay.stop()

    def users(self, relay: RelayProcess) -> Users:
        made = Users(relay, self.inbox, self.folder / "clients")
        self._users.append(made)
        return made

    async def register(self, relay: RelayProcess, name: str, phone: str) -> CoveClient:
        return await self.users(relay).register(name, phone)

    def moved(self, client: CoveClient, relay: RelayProcess) -> CoveClient:
        """The same device (same local state) now talking to another process."""
        return self.users(relay).client(client.core.store.path.parent.name)

    async def aclose(self) -> None:
        for made in self._users:
            await made.aclose()


@pytest.fixture
def fleet_extra_env() -> dict[str, str]:
    return {}


@pytest.fixture
async def fleet(  # noqa: ANN201
    database_url: str, tmp_path: Path, code_inbox: CodeInbox, nats_server: LocalServer, fleet_extra_env: dict[str, str]
):
    made = Fleet(database_url, tmp_path, code_inbox, fleet_env(nats_server.url, **fleet_extra_env))
    made.start()
    yield made
    await made.aclose()
    made.stop()


async def collect(client: CoveClient, count: int, into: list[str], seconds: float = 20.0) -> None:
    """Listen until ``count`` texts arrived (in ``into``, in arrival order)."""

    async def listen() -> None:
        async for event in client.events():
            if isinstance(event, MessageReceived):
                into.append(event.text)
                if len(into) >= count:
                    return

    await asyncio.wait_for(listen(), seconds)


async def connected(client: CoveClient) -> None:
    """Wait until the client's stream is open and its backlog drained, so what follows arrives live."""
    await client.inbox()


async def test_users_on_different_processes_exchange_messages_live_both_ways(fleet):
    alice = await fleet.register(fleet.a, "alice", "+14155550101")
    bob = await fleet.register(fleet.b, "bob", "+14155550102")
    await alice.send_text(bob.core.account_id, "hello from a")  # sessions are set up through the queue
    assert [e.text for e in await bob.inbox() if isinstance(e, MessageReceived)] == ["hello from a"]

    got_bob: list[str] = []
    got_alice: list[str] = []
    listening = [
        asyncio.create_task(collect(bob, 10, got_bob)),
        asyncio.create_task(collect(alice, 10, got_alice)),
    ]
    await asyncio.sleep(0.5)  # both sockets open: everything below can only arrive as a wake-up
    for i in range(10):
        await alice.send_text(bob.core.account_id, f"a->b {i}")
        await bob.send_text(alice.core.account_id, f"b->a {i}")
    await asyncio.gather(*listening)
    assert got_bob == [f"a->b {i}" for i in range(10)]
    assert got_alice == [f"b->a {i}" for i in range(10)]
    assert "Traceback" not in fleet.a.log() + fleet.b.log()


async def test_a_device_connecting_to_another_process_closes_its_old_socket(fleet):
    bob = await fleet.register(fleet.a, "bob", "+14155550103")
    headers = {"Authorization": f"Bearer {bob.core.token}"}
    ws_a = await connect(fleet.a.url.replace("http", "ws") + "/v1/websocket", additional_headers=headers)
    assert "queue_empty" in await ws_a.recv()
    async with connect(fleet.b.url.replace("http", "ws") + "/v1/websocket", additional_headers=headers) as ws_b:
        assert "queue_empty" in await ws_b.recv()
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws_a.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4409
        # The newer socket stays and is the one that gets the device's messages.
        alice = await fleet.register(fleet.a, "alice", "+14155550104")
        await alice.send_text(bob.core.account_id, "to the newer socket")
        assert '"envelope"' in await asyncio.wait_for(ws_b.recv(), 10)


async def test_delivery_goes_on_through_the_database_while_nats_is_down_and_after(fleet, nats_server):
    alice = await fleet.register(fleet.a, "alice", "+14155550105")
    bob = await fleet.register(fleet.b, "bob", "+14155550106")
    await alice.send_text(bob.core.account_id, "before")
    await connected(bob)

    got: list[str] = []
    listening = asyncio.create_task(collect(bob, 20, got, seconds=60))
    await asyncio.sleep(0.5)
    for i in range(5):
        await alice.send_text(bob.core.account_id, f"up {i}")
    nats_server.stop()
    for i in range(10):
        await alice.send_text(bob.core.account_id, f"down {i}")
    nats_server.start()
    for i in range(5):
        await alice.send_text(bob.core.account_id, f"back {i}")
    await listening
    expected = [f"up {i}" for i in range(5)] + [f"down {i}" for i in range(10)] + [f"back {i}" for i in range(5)]
    assert got == expected  # none lost, none twice, in order
    assert "lost NATS" in fleet.a.log() + fleet.b.log()


async def listen_across(fleet: Fleet, client: CoveClient, count: int, into: list[str]) -> None:
    """Collect ``count`` texts; when the client's process dies, carry on through the other one."""
    while len(into) < count:
        try:
            async for event in client.events():
                if isinstance(event, MessageReceived):
                    into.append(event.text)
                    if len(into) >= count:
                        return
        except (OSError, ConnectionClosed, RelayError):
            await asyncio.sleep(0.2)
            client = fleet.moved(client, fleet.b)


async def send_across(
    fleet: Fleet, client: CoveClient, recipient: str, texts: list[str], sent: list[str], halfway: asyncio.Event
) -> None:
    """Send each text until acknowledged; when the client's process dies, through the other one. A retry
    resends the same message (same client message id), so one the dead process had stored is not doubled."""
    for text in texts:
        outgoing = client.core.compose_text(recipient, text)
        while True:
            try:
                await client.send(outgoing)
                break
            except (OSError, RelayError, httpx.TransportError):
                await asyncio.sleep(0.1)
                client = fleet.moved(client, fleet.b)
        sent.append(text)
        if len(sent) == len(texts) // 2:
            halfway.set()
        await asyncio.sleep(0.01)


async def test_a_device_that_connected_while_nats_was_down_gets_wake_ups_once_it_is_back(fleet, nats_server):
    alice = await fleet.register(fleet.a, "alice", "+14155550115")
    bob = await fleet.register(fleet.b, "bob", "+14155550116")
    await alice.send_text(bob.core.account_id, "before")
    await connected(bob)
    nats_server.stop()
    got: list[str] = []
    listening = asyncio.create_task(collect(bob, 5, got, seconds=60))  # connects to B with no bus to subscribe on
    await asyncio.sleep(1)
    nats_server.start()
    await asyncio.sleep(3)  # both processes reconnect (nats-py retries every second)
    for i in range(5):
        await alice.send_text(bob.core.account_id, f"after {i}")
    await listening
    assert got == [f"after {i}" for i in range(5)]


# A process killed between a commit and its publish loses that wake-up: the queue re-read delivers it.
@pytest.mark.parametrize("fleet_extra_env", [{"COVE_QUEUE_RESCAN_SECONDS": "2"}])
async def test_a_process_killed_under_load_loses_no_acknowledged_message_and_doubles_none(fleet):
    """Alice on A writes to Bob on B, Carol on B to Dave on A; A is killed while both write."""
    alice = await fleet.register(fleet.a, "alice", "+14155550107")
    bob = await fleet.register(fleet.b, "bob", "+14155550108")
    carol = await fleet.register(fleet.b, "carol", "+14155550109")
    dave = await fleet.register(fleet.a, "dave", "+14155550110")
    for sender, receiver in ((alice, bob), (carol, dave)):
        await sender.send_text(receiver.core.account_id, "hello")
        await connected(receiver)

    n = 40
    got_bob: list[str] = []
    got_dave: list[str] = []
    sent_alice: list[str] = []
    sent_carol: list[str] = []
    listening = [
        asyncio.create_task(listen_across(fleet, bob, n, got_bob)),
        asyncio.create_task(listen_across(fleet, dave, n, got_dave)),
    ]
    await asyncio.sleep(0.5)
    halfway = asyncio.Event()
    sending = [
        asyncio.create_task(
            send_across(fleet, alice, bob.core.account_id, [f"a{i}" for i in range(n)], sent_alice, halfway)
        ),
        asyncio.create_task(
            send_across(fleet, carol, dave.core.account_id, [f"c{i}" for i in range(n)], sent_carol, asyncio.Event())
        ),
    ]
    await asyncio.wait_for(halfway.wait(), 30)
    fleet.a.kill()  # mid-run, while both pairs are sending and A holds Alice's and Dave's connections
    await asyncio.wait_for(asyncio.gather(*sending), 60)
    await asyncio.wait_for(asyncio.gather(*listening), 60)
    assert got_bob == sent_alice == [f"a{i}" for i in range(n)]  # none lost, none twice, in order
    assert got_dave == sent_carol == [f"c{i}" for i in range(n)]


async def open_socket(relay: RelayProcess, client: CoveClient):  # noqa: ANN201 - a websockets connection
    headers = {"Authorization": f"Bearer {client.core.token}"}
    ws = await connect(relay.url.replace("http", "ws") + "/v1/websocket", additional_headers=headers)
    assert "queue_empty" in await ws.recv()
    return ws


async def closed_with(ws) -> tuple[int, str]:  # noqa: ANN001
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def test_a_deletion_on_one_process_closes_the_accounts_socket_on_the_other(fleet):
    bob = await fleet.register(fleet.a, "bob", "+14155550111")
    ws = await open_socket(fleet.b, bob)
    await bob.delete_account()  # through A
    code, reason = await closed_with(ws)
    assert code == 4401 and "deleted" in reason


async def test_a_new_registration_on_one_process_logs_out_the_old_phone_on_the_other(fleet):
    old = await fleet.register(fleet.a, "old-phone", "+14155550112")
    ws = await open_socket(fleet.b, old)
    await fleet.register(fleet.a, "new-phone", "+14155550112")
    code, reason = await closed_with(ws)
    assert code == 4401 and "another phone" in reason


async def test_a_logout_on_one_process_closes_the_devices_socket_on_the_other(fleet):
    bob = await fleet.register(fleet.a, "bob", "+14155550114")
    ws = await open_socket(fleet.b, bob)
    async with httpx.AsyncClient(base_url=fleet.a.url) as http:
        answer = await http.delete("/v1/devices/current", headers={"Authorization": f"Bearer {bob.core.token}"})
    assert answer.status_code == 204
    assert await closed_with(ws) == (4401, LOGGED_OUT)
    assert "Traceback" not in fleet.a.log() + fleet.b.log()


async def test_a_ban_from_the_command_line_closes_the_sockets_on_every_process(fleet):
    bob = await fleet.register(fleet.a, "bob", "+14155550113")
    sockets = [await open_socket(relay, bob) for relay in (fleet.a, fleet.b)]
    # Two sockets of one device: the later (on B) closed the one on A as connected elsewhere.
    assert (await closed_with(sockets[0]))[0] == 4409
    banned = run_cove(["safety", "ban", "+14155550113", "--reason", "spam"], fleet.a.env)
    assert banned.returncode == 0, banned.stderr
    code, reason = await closed_with(sockets[1])
    assert code == 4401 and "banned" in reason


async def test_cove_serve_with_two_workers_on_one_port_serves_live_messages(
    database_url, tmp_path, code_inbox, nats_server
):
    """`cove serve --workers 2`: uvicorn's workers share the port and each builds the app from the environment."""
    (tmp_path / "served").mkdir()
    relay = RelayProcess(database_url, tmp_path / "served", code_inbox.url, fleet_env(nats_server.url), workers=2)
    relay.start()
    users = Users(relay, code_inbox, tmp_path / "clients")
    try:
        alice = await users.register("alice", "+14155550121")
        bob = await users.register("bob", "+14155550122")
        await alice.send_text(bob.core.account_id, "hello")
        await connected(bob)
        got: list[str] = []
        listening = asyncio.create_task(collect(bob, 5, got))
        await asyncio.sleep(0.5)
        for i in range(5):
            await alice.send_text(bob.core.account_id, f"live {i}")
        await listening
        assert got == [f"live {i}" for i in range(5)]
        assert "Traceback" not in relay.log()
    finally:
        await users.aclose()
        relay.stop()


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({}, "needs PostgreSQL"),  # the SQLite default
        ({"COVE_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:5432/test"}, "needs NATS"),
        (  # nothing listens on port 1: one line naming the database, before any worker starts
            {"COVE_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:1/test", "COVE_NATS_URL": "nats://x:4222"},
            "cannot open the relay database postgresql+asyncpg://postgres@127.0.0.1:1/test",
        ),
    ],
)
def test_cove_serve_refuses_what_it_cannot_run_with_one_line_and_exit_1(tmp_path, env, says):
    base = {k: v for k, v in os.environ.items() if not k.startswith("COVE_")}
    result = run_cove(
        ["serve", "--workers", "2"], {**base, "COVE_DATA_DIR": str(tmp_path), "COVE_CONFIG": "none.toml", **env}
    )
    assert result.returncode == 1
    assert says in result.stderr and "Traceback" not in result.stderr


def test_the_workers_end_with_their_supervisor_even_when_it_is_killed(database_url, tmp_path, code_inbox, nats_server):
    """A supervisor killed by SIGKILL tells nobody: its workers must not go on holding the port."""
    (tmp_path / "served").mkdir()
    relay = RelayProcess(database_url, tmp_path / "served", code_inbox.url, fleet_env(nats_server.url), workers=2)
    relay.start()
    workers = psutil.Process(relay.pid).children()
    assert len([w for w in workers if "resource_tracker" not in " ".join(w.cmdline())]) >= 2
    relay.kill()
    _, alive = psutil.wait_procs(workers, timeout=20)
    assert not alive, [w.cmdline() for w in alive]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{relay.url}/health", timeout=2)
