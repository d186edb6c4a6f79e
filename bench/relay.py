"""Load test for the Cove relay: a real relay process, real accounts and Olm sessions, WebSocket traffic.

    .venv/bin/python bench/relay.py                        # closed loop: the most the relay delivers
    .venv/bin/python bench/relay.py --rate 2000            # fixed rate: latency at a chosen load
    .venv/bin/python bench/relay.py --mode sdk --pairs 10  # the whole SDK: encrypt, decrypt, local stores

How a run goes:

1. Start ``python -m cove serve`` on a random port over a fresh SQLite file in a temp dir (or
   ``--database-url``), with verification codes going to a webhook this script serves, as an SMS gateway would.
2. Register ``2 x --pairs`` users through the real HTTP API with the SDK (vodozemac identities, uploaded keys).
   In each pair the sender sends one message each way through the SDK, so both Olm sessions are established
   and every later message is a normal (kind 1) Olm message, as in a conversation already under way.
3. Load: each sender sends to its partner's device for ``--warmup`` + ``--seconds``; only the last
   ``--seconds`` are measured. Receivers ack what they get; delivery receipts flow back and are acked too.
4. Report delivered messages/s, end-to-end latency, relay CPU per message and relay memory.

Modes:

relay (default)
    Measures the relay, not the crypto. Before the clock starts each sender encrypts a pool of real Olm
    messages with its session; during the run it cycles through them in WebSocket ``send`` frames. The relay
    cannot tell: it never decrypts, and idempotency is keyed on client_message_id, which is unique per send.
    Receivers do not decrypt either; they ack each batch of envelopes with one ack frame.
sdk
    What an app would see: ``ClientCore.compose_text`` + ``CoveClient.send`` (encrypt, HTTP PUT, store the
    ratchet) and ``CoveClient.events`` (decrypt, store, ack one by one). Client crypto and SQLite dominate,
    so use fewer pairs.

Load shapes:

closed loop (default)
    Each sender keeps up to ``--window`` messages in flight, a message being in flight from its send until
    its envelope reaches the receiver. This finds the maximum throughput; latency then includes queueing.
fixed rate (``--rate N``)
    Messages are due at N per second in total, evenly spread; the window does not apply. Latency is measured
    from when a message was due, not when it went out, so a client or relay that falls behind shows up in
    the latency instead of silently lowering the load (no "coordinated omission"). Use about half of the
    closed-loop maximum to see the latency of a relay with headroom.

End-to-end latency is from the send (or due) time to the moment the receiver's socket hands over the
envelope; both ends live in this process, so one clock serves. The bench client shares the machine with the
relay: on a small machine it takes CPU from the relay and the figures understate what the relay can do.
"bench client CPU" in the report tells how busy the client side was. "relay CPU" is the relay process alone:
with PostgreSQL, the database server's own CPU is not in it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import vodozemac as vz
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from cove.client.core import ClientCore
from cove.client.events import Delivered, MessageReceived, QueueEmpty, Undecryptable
from cove.client.store import ClientStore
from cove.client.transport import CoveClient
from cove.messaging.envelope import EnvelopeKind
from cove.testing import CodeInbox, RelayProcess
from harness import (
    bounded,
    command,
    fleet_env,
    local_relay,
    machine,
    measure_cpu,
    ms,
    per_unit_ms,
    percentile,
    postgres_counters,
    postgres_per_unit,
    run_against,
    tree_rss,
)

# A typical short chat message: with the SDK's JSON around it ~200 bytes, which Olm turns into ~256 bytes.
TEXT = "Running a few minutes late, the train is stuck outside the station. Order for me if you get there first?"
POOL = 64  # pre-encrypted messages per sender in relay mode
DRAIN_SECONDS = 15.0  # after the load stops: wait this long at most for in-flight messages and receipts
READY_SECONDS = 30.0  # for every stream to have drained its backlog before the load starts
DEVICE_INFO = {"model": "Pixel 9", "os_name": "Android", "os_version": "15", "app_version": "0.1.0"}


# Users ------------------------------------------------------------------------------------------------
@dataclass
class User:
    client: CoveClient
    pickle_key: bytes  # kept to open the sender's Olm session in relay mode
    phone_number: str

    @property
    def account_id(self) -> str:
        account_id = self.client.core.account_id
        assert account_id is not None
        return account_id


@dataclass
class Pair:
    """A sender and its partner. Only the sender sends; the receiver's acks make the receipts flow back."""

    index: int
    sender: User
    receiver: User
    slots: asyncio.Semaphore  # closed loop: free places in the window of in-flight messages
    sent: int = 0
    frames: list[str] = field(default_factory=list)  # relay mode: pre-encrypted `messages` arrays, as JSON
    sender_ws: ClientConnection | None = None
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)  # sdk mode: sends awaiting their HTTP answer


def new_user(url: str, folder: Path, number: int) -> User:
    """An SDK client with its own local store and pickle key, not registered yet."""
    folder.mkdir(parents=True)
    key = os.urandom(32)
    core = ClientCore(ClientStore(folder / "state.db"), key, {**DEVICE_INFO, "vendor_device_id": f"bench-{number}"})
    client = CoveClient(url, core)
    return User(client, key, f"+1415555{number:04d}")


async def register(user: User, inbox: CodeInbox) -> None:
    """Through the real API, as an app would; the code arrives by webhook."""
    await user.client.request_code(user.phone_number)
    await user.client.register(user.phone_number, await inbox.code_for(user.phone_number))


async def handshake(pair: Pair) -> None:
    """One SDK message each way: the receiver opens its session from the pre-key message, the sender's session
    is confirmed by the reply, so from now on the sender's Olm messages are normal ones (kind 1)."""
    await pair.sender.client.send_text(pair.receiver.account_id, "hello")
    await pair.receiver.client.inbox()
    await pair.receiver.client.send_text(pair.sender.account_id, "hello back")
    await pair.sender.client.inbox()


# Bookkeeping ------------------------------------------------------------------------------------------
class Tally:
    """Every message from send to delivery: latencies, throughput inside the timed window, errors."""

    def __init__(self) -> None:
        self.t0 = self.t1 = math.inf  # the timed window, in time.perf_counter() seconds; set when the load starts
        self.in_flight: dict[str, tuple[float, Pair]] = {}  # client_message_id -> (sent or due time, pair)
        self.ours: set[str] = set()  # every client_message_id sent under load, to tell our receipts apart
        self.latencies: list[float] = []  # of messages sent inside the window
        self.delivered_in_window = 0
        self.delivered = 0
        self.receipts = 0
        self.errors: Counter[str] = Counter()
        self.closing = False  # set when we hang up ourselves: a closed socket is then no error

    def sent(self, cmid: str, at: float, pair: Pair) -> None:
        self.in_flight[cmid] = (at, pair)
        self.ours.add(cmid)

    def arrived(self, cmid: str) -> None:
        now = time.perf_counter()
        entry = self.in_flight.pop(cmid, None)
        if entry is None:
            self.errors["unexpected or repeated envelope"] += 1
            return
        at, pair = entry
        self.delivered += 1
        if self.t0 <= now <= self.t1:
            self.delivered_in_window += 1
        if at >= self.t0:
            self.latencies.append(now - at)
        pair.slots.release()  # harmless at a fixed rate, where nobody waits on the slots

    def failed(self, cmid: str, reason: str) -> None:
        entry = self.in_flight.pop(cmid, None)
        self.errors[reason] += 1
        if entry is not None:
            entry[1].slots.release()

    def receipt(self, cmid: str) -> None:
        # Receipts for the handshake messages also arrive; only count those of the load.
        if cmid in self.ours:
            self.receipts += 1


# Relay mode: raw WebSocket frames ---------------------------------------------------------------------
async def prepare_frames(pair: Pair) -> int:
    """Encrypt the sender's pool of Olm messages and return the mean ciphertext size in bytes.

    The recipient's device and registration id come from the key directory, as a client's would.
    """
    sender, receiver = pair.sender, pair.receiver
    identity = await sender.client.call(sender.client.core.identity_request(receiver.account_id))
    (device,) = identity["devices"]
    sessions = sender.client.core.store.sessions(receiver.account_id, device["device_id"])
    session = vz.Session.from_pickle(sessions[0][1], sender.pickle_key)
    sizes = []
    for _ in range(POOL):
        payload = {"v": 1, "type": "text", "id": uuid.uuid4().hex, "text": TEXT, "ts": int(time.time() * 1000)}
        kind, body = session.encrypt(json.dumps(payload).encode()).to_parts()
        assert kind == EnvelopeKind.OLM_MESSAGE, "the handshake should have confirmed the session"
        sizes.append(len(body))
        message = {
            "device_id": device["device_id"],
            "registration_id": device["registration_id"],
            "kind": kind,
            "body": base64.b64encode(body).decode(),
        }
        pair.frames.append(json.dumps([message]))
    return sum(sizes) // len(sizes)


async def send_frame(pair: Pair, tally: Tally, at: float) -> None:
    pair.sent += 1
    cmid = f"bench-{pair.index}-{pair.sent}"
    messages = pair.frames[pair.sent % len(pair.frames)]
    tally.sent(cmid, at, pair)
    # Built by hand around the pre-serialised messages: the client must spend as little CPU as it can, since it
    # shares the machine with the relay. The request_id is the client_message_id, to match the response.
    frame = (
        f'{{"type": "send", "request_id": "{cmid}", "to": "{pair.receiver.account_id}", '
        f'"client_message_id": "{cmid}", "messages": {messages}}}'
    )
    assert pair.sender_ws is not None
    await pair.sender_ws.send(frame)


async def open_stream(url: str, user: User) -> ClientConnection:
    headers = {"Authorization": f"Bearer {user.client.core.token}"}
    ws_url = url.replace("http", "ws", 1) + "/v1/websocket"
    return await connect(ws_url, additional_headers=headers, compression=None, max_size=2**20, close_timeout=2)


async def read_frames(ws: ClientConnection, tally: Tally, ready: asyncio.Event) -> None:
    """One device's stream: tally envelopes and receipts, ack them, and check the answers to our sends.

    Acks go out from a second task, each frame carrying every id read since the previous one: while the ack is
    being written more envelopes arrive, so under load one ack frame covers a whole batch.
    """
    unacked: list[int] = []
    wake = asyncio.Event()

    async def ack_forever() -> None:
        while True:
            await wake.wait()
            wake.clear()
            ids = unacked.copy()
            unacked.clear()
            await ws.send(json.dumps({"type": "ack", "ids": ids}))

    def handle(frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "envelope":
            unacked.append(frame["id"])
            wake.set()
            if frame["kind"] == EnvelopeKind.DELIVERY_RECEIPT:
                for client_message_id in frame["client_message_ids"]:
                    tally.receipt(client_message_id)
            else:
                tally.arrived(frame["client_message_id"])
        elif kind == "response":
            if frame["status"] != 200:
                code = frame["body"].get("error", {}).get("code", "?")
                tally.failed(frame["request_id"], f"send refused: {frame['status']} {code}")
            elif frame["body"]["duplicate"]:
                tally.failed(frame["request_id"], "send taken for a duplicate")
        elif kind == "queue_empty":
            ready.set()
        else:
            tally.errors[f"error frame: {frame.get('error', {}).get('code')}"] += 1

    acker = asyncio.create_task(ack_forever())
    try:
        async for raw in ws:
            frame = json.loads(raw)
            # The relay sends whatever is ready at once as one batch frame.
            for each in frame["frames"] if frame.get("type") == "batch" else [frame]:
                handle(each)
    except ConnectionClosed as exc:
        if not tally.closing:
            tally.errors[f"socket closed by the relay: {exc.rcvd.code if exc.rcvd else '?'}"] += 1
    finally:
        acker.cancel()


# SDK mode: the client as an app uses it ---------------------------------------------------------------
async def send_with_sdk(pair: Pair, tally: Tally, at: float) -> None:
    client = pair.sender.client
    outgoing = client.core.compose_text(pair.receiver.account_id, TEXT)
    tally.sent(outgoing.client_message_id, at, pair)

    async def deliver() -> None:
        try:
            await client.send(outgoing)
        except Exception as exc:  # the bench reports what went wrong and carries on
            tally.failed(outgoing.client_message_id, f"send failed: {type(exc).__name__}: {str(exc)[:80]}")

    # Not awaited here: like the window of frames on a socket, up to --window sends wait on HTTP at once.
    task = asyncio.create_task(deliver())
    pair.tasks.add(task)
    task.add_done_callback(pair.tasks.discard)


async def read_events(user: User, tally: Tally, ready: asyncio.Event) -> None:
    try:
        async for event in user.client.events():
            if isinstance(event, QueueEmpty):
                ready.set()
            elif isinstance(event, MessageReceived):
                tally.arrived(event.client_message_id)
            elif isinstance(event, Delivered):
                tally.receipt(event.client_message_id)
            elif isinstance(event, Undecryptable):
                tally.errors[f"undecryptable: {event.reason}"] += 1
    except ConnectionClosed as exc:
        if not tally.closing:
            tally.errors[f"socket closed by the relay: {exc.rcvd.code if exc.rcvd else '?'}"] += 1
    except Exception as exc:  # e.g. RelayError for an error frame: count it, the other streams go on
        tally.errors[f"stream failed: {type(exc).__name__}: {str(exc)[:80]}"] += 1


# The load ---------------------------------------------------------------------------------------------
Send = Callable[[Pair, Tally, float], Awaitable[None]]


async def drive(pair: Pair, send: Send, tally: Tally, start: float, rate: float | None, pairs: int) -> None:
    """One sender's load, from ``start`` until the end of the timed window."""
    if rate:
        interval = pairs / rate
        due = start + interval * pair.index / pairs  # senders take turns rather than all sending at once
        while due < tally.t1:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await send(pair, tally, due)
            due += interval
        return
    while (remaining := tally.t1 - time.perf_counter()) > 0:
        try:
            await asyncio.wait_for(pair.slots.acquire(), remaining)
        except TimeoutError:
            return
        await send(pair, tally, time.perf_counter())


async def wait_until(condition: Callable[[], bool], seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            # The condition depends on many tasks at once; polling it is simpler than signalling it.
            while not condition():  # noqa: ASYNC110
                await asyncio.sleep(0.05)


async def run(args: argparse.Namespace, relay: RelayProcess, inbox: CodeInbox, workdir: Path) -> dict[str, Any]:
    users: list[User] = []
    sockets: list[ClientConnection] = []
    readers: list[asyncio.Task[None]] = []
    pairs: list[Pair] = []
    tally = Tally()
    try:
        users = [new_user(relay.url, workdir / "clients" / f"u{n}", n) for n in range(1, 2 * args.pairs + 1)]
        await bounded([register(u, inbox) for u in users])
        pairs = [Pair(i, users[2 * i], users[2 * i + 1], asyncio.Semaphore(args.window)) for i in range(args.pairs)]
        await bounded([handshake(p) for p in pairs])

        # Every device's stream is open and past its backlog before the clock starts.
        ready = [asyncio.Event() for _ in users]
        body_bytes = None
        send: Send
        if args.mode == "relay":
            body_bytes = (await bounded([prepare_frames(p) for p in pairs]))[0]
            sockets = await bounded([open_stream(relay.url, u) for u in users])
            for p in pairs:
                p.sender_ws = sockets[2 * p.index]  # users alternate: sender, receiver, sender, ...
            readers = [asyncio.create_task(read_frames(ws, tally, r)) for ws, r in zip(sockets, ready, strict=True)]
            send = send_frame
        else:
            readers = [asyncio.create_task(read_events(u, tally, r)) for u, r in zip(users, ready, strict=True)]
            send = send_with_sdk
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), READY_SECONDS)

        start = time.perf_counter() + 0.05
        tally.t0 = start + args.warmup
        tally.t1 = tally.t0 + args.seconds
        relay_process = psutil.Process(relay.pid)
        cpu, written, *_ = await asyncio.gather(
            measure_cpu(relay_process, tally),
            database_writes(args.database_url, tally),
            *(drive(p, send, tally, start, args.rate, args.pairs) for p in pairs),
        )
        # Let what is still in flight arrive, and the receipts of everything delivered come back.
        await wait_until(lambda: not tally.in_flight and tally.receipts >= tally.delivered, DRAIN_SECONDS)
        rss = tree_rss(relay_process)
    finally:
        tally.closing = True
        for p in pairs:
            for task in list(p.tasks):
                task.cancel()
        for task in readers:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in sockets), *readers, return_exceptions=True)
        for u in users:
            await u.client.aclose()
            u.client.core.store.close()

    if tally.in_flight:
        tally.errors["not delivered"] += len(tally.in_flight)
    if tally.receipts < tally.delivered:
        tally.errors["receipt missing"] += tally.delivered - tally.receipts
    return report(args, tally, cpu, rss, body_bytes, written)


async def database_writes(url: str | None, window: Tally) -> tuple[dict[str, int], dict[str, int]] | None:
    """PostgreSQL's write counters at the start and end of the timed window (None on SQLite)."""
    if not url:
        return None
    await asyncio.sleep(max(0.0, window.t0 - time.perf_counter()))
    before = await postgres_counters(url)
    await asyncio.sleep(max(0.0, window.t1 - time.perf_counter()))
    return before, await postgres_counters(url)


# The report -------------------------------------------------------------------------------------------
def report(
    args: argparse.Namespace,
    tally: Tally,
    cpu: dict[str, float],
    rss: int,
    body_bytes: int | None,
    written: tuple[dict[str, int], dict[str, int]] | None,
) -> dict[str, Any]:
    delivered = tally.delivered_in_window
    return {
        "command": command(),
        "machine": machine(),
        "settings": {
            "mode": args.mode,
            "database": "postgresql" if args.database_url else "sqlite",
            "workers": args.workers,
            "pairs": args.pairs,
            "load": f"fixed rate {args.rate:g} msg/s" if args.rate else f"closed loop, window {args.window}/sender",
            "seconds": args.seconds,
            "warmup": args.warmup,
            "ciphertext_bytes": body_bytes,
        },
        "results": {
            "delivered_per_s": round(delivered / args.seconds, 1),
            "latency_p50_ms": ms(percentile(tally.latencies, 50)),
            "latency_p99_ms": ms(percentile(tally.latencies, 99)),
            "latency_max_ms": ms(max(tally.latencies, default=None)),
            "relay_cpu_ms_per_message": round(cpu["relay"] * 1000 / delivered, 3) if delivered else None,
            "relay_cpu_percent": round(cpu["relay"] / args.seconds * 100, 1),
            "relay_cpu_percent_per_process": [round(c / args.seconds * 100, 1) for c in cpu["relay_processes"]],
            "services_cpu_ms_per_message": per_unit_ms(cpu, delivered),
            "postgresql_per_message": postgres_per_unit(*written, delivered) if written else None,
            "bench_client_cpu_percent": round(cpu["bench"] / args.seconds * 100, 1),
            "relay_rss_mb": round(rss / 2**20, 1),
            "delivered_in_window": delivered,
            "delivered_total": tally.delivered,
            "receipts_total": tally.receipts,
            "errors": sum(tally.errors.values()),
            "error_kinds": dict(tally.errors),
        },
    }


def print_table(result: dict[str, Any]) -> None:
    console = Console()
    console.print(f"[bold]command[/bold]  {escape(result['command'])}", soft_wrap=True)
    m = result["machine"]
    console.print(f"[bold]machine[/bold]  {m['cpus']} CPUs, Python {m['python']}, {m['platform']}", soft_wrap=True)
    s = result["settings"]
    console.print(
        f"[bold]settings[/bold] mode {s['mode']}, {s['database']}, {s['workers']} relay process(es), "
        f"{s['pairs']} pairs, {s['load']}, "
        f"{s['seconds']:g} s measured after {s['warmup']:g} s warm-up"
        + (f", ciphertexts of ~{s['ciphertext_bytes']} bytes" if s["ciphertext_bytes"] else ""),
        soft_wrap=True,
    )
    r = result["results"]
    table = Table(show_header=True, header_style="bold")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("delivered messages/s", r["delivered_per_s"]),
        ("latency p50 (ms)", r["latency_p50_ms"]),
        ("latency p99 (ms)", r["latency_p99_ms"]),
        ("latency max (ms)", r["latency_max_ms"]),
        ("relay CPU ms per delivered message", r["relay_cpu_ms_per_message"]),
        ("relay CPU (% of one core)", r["relay_cpu_percent"]),
        ("  per relay process", " / ".join(str(c) for c in r["relay_cpu_percent_per_process"])),
        *((f"{name} server CPU ms per message", v) for name, v in r["services_cpu_ms_per_message"].items()),
        *((f"postgresql {name} per message", v) for name, v in (r["postgresql_per_message"] or {}).items()),
        ("bench client CPU (% of one core)", r["bench_client_cpu_percent"]),
        ("relay RSS at the end (MB)", r["relay_rss_mb"]),
        ("delivered in the timed window", r["delivered_in_window"]),
        ("delivered in the whole run", r["delivered_total"]),
        ("receipts received", r["receipts_total"]),
        ("errors", r["errors"]),
    ]
    rows += [(f"  {kind}", count) for kind, count in r["error_kinds"].items()]
    for name, value in rows:
        table.add_row(name, "-" if value is None else str(value))
    console.print(table)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["relay", "sdk"], default="relay", help="see above (default relay)")
    parser.add_argument("--pairs", type=int, default=50, help="sender/receiver pairs (default 50)")
    parser.add_argument("--rate", type=float, default=None, help="total messages/s (default: closed loop)")
    parser.add_argument(
        "--window", type=int, default=32, help="closed loop: messages per sender sent, not yet delivered (default 32)"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the timed window (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="load before the timed window (default 2)")
    parser.add_argument(
        "--database-url",
        default=None,
        help="an empty PostgreSQL database, e.g. postgresql+asyncpg://user@127.0.0.1/bench (default: fresh SQLite)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="relay processes (cove serve --workers; needs PostgreSQL and NATS)"
    )
    parser.add_argument("--nats", default="nats://127.0.0.1:4222", help="NATS for --workers > 1 (default local)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = parser.parse_args()
    if args.workers > 1 and not args.database_url:
        parser.error("--workers needs --database-url (PostgreSQL): SQLite takes one process")
    if not 1 <= args.pairs <= 4999:  # phone numbers are +1415555NNNN
        parser.error("--pairs must be between 1 and 4999")
    return args


def main() -> None:
    args = parse_args()
    # Setup costs a few HTTP calls and key generations per user; beyond this budget something is stuck.
    budget = 60 + 0.5 * args.pairs + args.warmup + args.seconds + DRAIN_SECONDS + READY_SECONDS

    with tempfile.TemporaryDirectory(prefix="cove-bench-") as tmp:
        workdir = Path(tmp)
        relay, inbox = local_relay(workdir, args.database_url, fleet_env(args.workers, args.nats), args.workers)
        relay.start()
        result = run_against(relay, inbox, lambda: run(args, relay, inbox, workdir), budget)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
