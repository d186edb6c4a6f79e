"""Group fan-out on a real relay: one sender, every other member device on its own WebSocket, acking.

    .venv/bin/python bench/groups.py                                  # 1,024 x 1 device, then 256 x 2 devices
    .venv/bin/python bench/groups.py --shape 256x2 --seconds 20
    .venv/bin/python bench/groups.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench

How a run goes, for each shape (members x devices per member):

1. Into a fresh database (SQLite by default), before the relay starts: the accounts and their devices, each with
   a real random token (as bench/idle.py writes them: registering 1,024 numbers through the API would measure
   registration), and one group holding them all, the first account its admin and the sender. Inserting the
   group's rows is what ``POST /v1/groups`` writes; the send and delivery paths are unchanged.
2. The sender's client: a vodozemac Megolm ``GroupSession``. Sender CPU per message is the process CPU time of
   ``GroupSession.encrypt`` of a typical group text payload (~200 bytes of JSON), averaged over many.
3. Storage: with no receiver connected, send ``--stored`` messages and read the database: group_messages rows
   and bytes per message (the ciphertext must be stored once), queue rows per message, and the growth of the
   database per message. Then every receiver connects and drains them.
4. Steady rate: ``--rate`` group messages/s (10 by default) for ``--seconds``; for each message, the time from
   its send until the LAST member device's socket handed it over (p50/p99). Receivers ack every batch they get.
5. Throughput: the sender keeps ``--window`` messages in flight (a message is in flight until every device has
   it) for ``--seconds``: device deliveries/s, and relay CPU-ms per device delivery (the relay process's own CPU
   time over the window, read as bench/relay.py does). Receipts (kind 6) flow back to the sender, which acks them.

The receivers and the sender live in this process, on the same machine as the relay: on 2 cores they take CPU
from it ("bench CPU" in the report), so the relay's figures are for a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import vodozemac as vz
from sqlalchemy import func, insert, select, text
from websockets.asyncio.client import ClientConnection, connect

from cove.accounts.storage import accounts, devices
from cove.clock import now_ms
from cove.db import create_engine, migrate
from cove.groups.storage import group_members, groups
from cove.messaging.storage import envelopes, group_messages
from cove.testing import CodeInbox, RelayProcess
from harness import bounded, command, machine, measure_cpu, ms, percentile, report_console, run_against
from idle import PER_SOURCE, device_rows

GROUP_ID = "0123456789abcdef0123456789abcdef"
PAYLOAD = {
    "v": 1,
    "type": "text",
    "group": GROUP_ID,
    "id": "0" * 32,
    "text": "Running a few minutes late, the train is stuck outside the station. Order for me if you get there?",
    "ts": 0,
}
PLAINTEXT = json.dumps(PAYLOAD).encode()
OPENING = 64
DRAIN_SECONDS = 60.0


@dataclass
class Member:
    account_id: str
    device_id: int
    token: str


async def create_population(database_url: str, members: int, per_member: int) -> list[Member]:
    """Accounts with ``per_member`` devices each and one group of them all; the first member is its admin."""
    engine = create_engine(database_url)
    at = now_ms()
    account_rows, first_devices, tokens = device_rows(members, at)
    device_table, people = list(first_devices), []
    for row, token in zip(first_devices, tokens, strict=True):
        people.append(Member(row["account_id"], 1, token))
    for extra in range(2, per_member + 1):
        _, more, more_tokens = device_rows(members, at)
        for row, base, token in zip(more, first_devices, more_tokens, strict=True):
            device_table.append({**row, "account_id": base["account_id"], "device_id": extra})
            people.append(Member(base["account_id"], extra, token))
    try:
        await migrate(engine)
        async with engine.begin() as conn:
            await conn.execute(insert(accounts), account_rows)
            await conn.execute(insert(devices), device_table)
            await conn.execute(insert(groups).values(id=GROUP_ID, revision=1, created_at_ms=at))
            await conn.execute(
                insert(group_members),
                [
                    {
                        "group_id": GROUP_ID,
                        "account_id": a["id"],
                        "role": "admin" if i == 0 else "member",
                        "joined_revision": 1,
                    }
                    for i, a in enumerate(account_rows)
                ],
            )
    finally:
        await engine.dispose()
    return people


@dataclass
class Tally:
    """When each message was sent and how many devices have it; the moment the last one got it."""

    devices: int
    sent: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)
    done: dict[str, asyncio.Event] = field(default_factory=dict)
    deliveries: int = 0

    def arrived(self, client_message_id: str, at: float) -> None:
        self.deliveries += 1
        n = self.counts.get(client_message_id, 0) + 1
        self.counts[client_message_id] = n
        if n == self.devices:
            self.last[client_message_id] = at
            event = self.done.get(client_message_id)
            if event is not None:
                event.set()


async def receive(ws: ClientConnection, tally: Tally, ready: asyncio.Event) -> None:
    """One device: hand over every envelope, ack each batch with one frame."""
    try:
        async for raw in ws:
            at = time.perf_counter()
            frame = orjson.loads(raw)
            frames = frame["frames"] if frame["type"] == "batch" else [frame]
            ids = []
            for f in frames:
                if f["type"] == "envelope":
                    ids.append(f["id"])
                    if f["kind"] == 2:
                        tally.arrived(f["client_message_id"], at)
                elif f["type"] == "queue_empty":
                    ready.set()
            if ids:
                await ws.send(orjson.dumps({"type": "ack", "ids": ids}).decode())
    except Exception:  # noqa: BLE001 - a closed socket ends its reader; the report shows missing deliveries
        return


async def open_device(url: str, member: Member, source: str) -> ClientConnection:
    return await connect(
        url,
        additional_headers={"Authorization": f"Bearer {member.token}"},
        compression=None,
        max_size=2**22,
        close_timeout=2,
        ping_interval=None,
        local_addr=(source, 0),
    )


def ciphertext(session: vz.GroupSession) -> str:
    """A group text encrypted by the sender's Megolm session, in the padded base64 the relay takes."""
    return base64.b64encode(session.encrypt(PLAINTEXT).to_bytes()).decode()


def encrypt_cost(session: vz.GroupSession, count: int = 2000) -> tuple[float, int]:
    """CPU ms per Megolm encryption of a group text, and the ciphertext's size in bytes."""
    started = time.process_time()
    for _ in range(count):
        message = session.encrypt(PLAINTEXT)
    return (time.process_time() - started) * 1000 / count, len(message.to_bytes())


async def stored_per_message(
    database_url: str, sender: httpx.AsyncClient, session: vz.GroupSession, count: int
) -> dict[str, Any]:
    engine = create_engine(database_url)
    path = Path(database_url.split("///", 1)[-1]) if database_url.startswith("sqlite") else None

    async def size() -> int | None:
        if path is None:
            return None
        async with engine.connect() as conn:
            await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
            pages = (await conn.execute(text("PRAGMA page_count"))).scalar_one()
            free = (await conn.execute(text("PRAGMA freelist_count"))).scalar_one()
            page = (await conn.execute(text("PRAGMA page_size"))).scalar_one()
        return (pages - free) * page

    try:
        before = await size()
        for n in range(count):
            body = ciphertext(session)
            answer = await sender.put(
                f"/v1/groups/{GROUP_ID}/messages", json={"client_message_id": f"stored-{n}", "body": body}
            )
            answer.raise_for_status()
        after = await size()
        async with engine.connect() as conn:
            messages, message_bytes = (
                await conn.execute(select(func.count(), func.sum(func.length(group_messages.c.body))))
            ).one()
            rows = (
                await conn.execute(select(func.count()).where(envelopes.c.group_message_id.is_not(None)))
            ).scalar_one()
    finally:
        await engine.dispose()
    return {
        "messages": count,
        "group_messages_rows_per_message": messages / count,
        "ciphertext_bytes_stored_per_message": message_bytes / count,
        "queue_rows_per_message": rows / count,
        "database_bytes_per_message": None if before is None else round((after - before) / count),
    }


async def steady(
    sender: httpx.AsyncClient, session: vz.GroupSession, tally: Tally, rate: float, seconds: float
) -> dict[str, Any]:
    """Messages due at ``rate`` per second, each sent at its due time whether the previous one was answered or
    not (members send independently); latency runs from the due time, so a relay that falls behind shows."""
    total = int(rate * seconds)
    answered: list[float] = []

    async def send(n: int, due: float) -> None:
        cmid = f"steady-{n}"
        tally.done[cmid] = asyncio.Event()
        tally.sent[cmid] = due
        answer = await sender.put(
            f"/v1/groups/{GROUP_ID}/messages", json={"client_message_id": cmid, "body": ciphertext(session)}
        )
        answer.raise_for_status()
        answered.append(time.perf_counter() - due)
        await asyncio.wait_for(tally.done[cmid].wait(), DRAIN_SECONDS)

    start = time.perf_counter()
    sends = []
    for n in range(total):
        due = start + n / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        sends.append(asyncio.create_task(send(n, due)))
    await asyncio.gather(*sends)
    latencies = [tally.last[f"steady-{n}"] - tally.sent[f"steady-{n}"] for n in range(total)]
    return {
        "rate": rate,
        "messages": total,
        "p50_ms_to_last_device": ms(percentile(latencies, 50)),
        "p99_ms_to_last_device": ms(percentile(latencies, 99)),
        "max_ms_to_last_device": ms(max(latencies)),
        "p50_ms_until_the_send_is_answered": ms(percentile(answered, 50)),
        "p99_ms_until_the_send_is_answered": ms(percentile(answered, 99)),
    }


@dataclass
class Window:
    t0: float
    t1: float


async def throughput(
    relay: RelayProcess, sender: httpx.AsyncClient, session: vz.GroupSession, tally: Tally, window: int, seconds: float
) -> dict[str, Any]:
    timed = Window(time.perf_counter() + 2.0, time.perf_counter() + 2.0 + seconds)
    cpu = asyncio.create_task(measure_cpu(psutil.Process(relay.pid), timed))
    counter = iter(range(10**9))

    async def one_lane() -> None:
        while time.perf_counter() < timed.t1:
            cmid = f"load-{next(counter)}"
            tally.done[cmid] = asyncio.Event()
            body = ciphertext(session)
            answer = await sender.put(f"/v1/groups/{GROUP_ID}/messages", json={"client_message_id": cmid, "body": body})
            answer.raise_for_status()
            await asyncio.wait_for(tally.done[cmid].wait(), DRAIN_SECONDS)

    async def mark() -> tuple[int, int]:
        await asyncio.sleep(max(0.0, timed.t0 - time.perf_counter()))
        first = tally.deliveries
        await asyncio.sleep(max(0.0, timed.t1 - time.perf_counter()))
        return first, tally.deliveries

    marks = asyncio.create_task(mark())
    await asyncio.gather(*(one_lane() for _ in range(window)))
    first, last = await marks
    used = await cpu
    delivered = last - first
    return {
        "window": window,
        "device_deliveries_per_s": round(delivered / seconds),
        "relay_cpu_ms_per_delivery": round(used["relay"] * 1000 / delivered, 4) if delivered else None,
        "relay_cpu_s": round(used["relay"], 2),
        "bench_cpu_s": round(used["bench"], 2),
        "seconds": seconds,
    }


def run_shape(args: argparse.Namespace, members: int, per_member: int, workdir: Path) -> dict[str, Any]:
    database_url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'relay.db'}"
    people = asyncio.run(create_population(database_url, members, per_member))
    inbox = CodeInbox()
    env = {"COVE_MAX_CONNECTIONS": str(len(people) + 100)}
    (workdir / "data").mkdir(exist_ok=True)
    relay = RelayProcess(database_url, workdir / "data", inbox.url, env)

    async def bench() -> dict[str, Any]:
        relay.start()
        url = relay.url.replace("http", "ws", 1) + "/v1/websocket"
        me, receivers = people[0], people[1:]
        session = vz.GroupSession()
        encrypt_ms, ciphertext_bytes = encrypt_cost(session)
        tally = Tally(devices=len(receivers))
        headers = {"Authorization": f"Bearer {me.token}"}
        async with httpx.AsyncClient(base_url=relay.url, headers=headers, timeout=60) as sender:
            stored = await stored_per_message(database_url, sender, session, args.stored)
            sockets = await bounded(
                [open_device(url, m, f"127.0.0.{2 + i // PER_SOURCE}") for i, m in enumerate([me, *receivers])], OPENING
            )
            readies = [asyncio.Event() for _ in sockets]
            readers = [
                asyncio.create_task(receive(ws, tally, ready)) for ws, ready in zip(sockets, readies, strict=True)
            ]
            try:
                await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 600)
                await _wait_until(
                    lambda: all(tally.counts.get(f"stored-{n}") == tally.devices for n in range(args.stored))
                )
                rate = await steady(sender, session, tally, args.rate, args.seconds)
                load = await throughput(relay, sender, session, tally, args.window, args.seconds)
            finally:
                for task in readers:
                    task.cancel()
                await bounded([ws.close() for ws in sockets], 256)
        return {
            "shape": f"{members} members x {per_member} devices",
            "receiving_devices": len(receivers),
            "sender_cpu_ms_per_message": round(encrypt_ms, 4),
            "megolm_ciphertext_bytes": ciphertext_bytes,
            "stored": stored,
            "steady": rate,
            "throughput": load,
            "load_average": os.getloadavg(),
        }

    return run_against(relay, inbox, bench, args.budget)


async def _wait_until(condition: Any, seconds: float = DRAIN_SECONDS) -> None:  # noqa: ANN401
    deadline = time.perf_counter() + seconds
    while not condition():
        if time.perf_counter() > deadline:
            raise RuntimeError("the stored messages never reached every device")
        await asyncio.sleep(0.05)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", action="append", help="MEMBERSxDEVICES (repeatable); default 1024x1 and 256x2")
    parser.add_argument("--rate", type=float, default=10.0, help="group messages/s in the steady phase")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each measured phase")
    parser.add_argument("--window", type=int, default=4, help="messages in flight in the throughput phase")
    parser.add_argument("--stored", type=int, default=20, help="messages sent while no receiver is connected")
    parser.add_argument("--database-url", help="an empty database (default: a fresh SQLite file)")
    parser.add_argument("--budget", type=float, default=900.0, help="seconds a shape may take in all")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    shapes = [tuple(int(x) for x in s.split("x")) for s in (args.shape or ["1024x1", "256x2"])]
    results = []
    for members, per_member in shapes:
        with tempfile.TemporaryDirectory(prefix="cove-bench-groups-") as folder:
            results.append(run_shape(args, members, per_member, Path(folder)))
    report = {"command": command(), "machine": machine(), "results": results}
    console = report_console(report)
    console.print_json(data=results)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
