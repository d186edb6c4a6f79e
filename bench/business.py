"""Business messaging benchmark: sustained template sends through the gateway to opted-in users.

    .venv/bin/python bench/business.py                       # 10,000 users, 3 rounds, 64 requests in flight
    .venv/bin/python bench/business.py --users 500 --rounds 2  # a quick run
    .venv/bin/python bench/business.py --deliver 200           # 200 users online: `delivered` webhooks too
    .venv/bin/python bench/business.py --postgres postgresql+asyncpg://postgres@127.0.0.1/test

What a business does with Cove: its systems call the gateway (``cove business gateway serve``) with the Cloud
API, the gateway encrypts each message end to end and sends it to the relay, and status webhooks come back to
the business's receiver. This measures that whole path, with real processes:

- the relay (``cove serve``) on a fresh SQLite file in a temp dir, or with ``--postgres`` on a fresh database
  created on that server (and dropped afterwards);
- the business's webhook receiver (tests/webhook_receiver.py: checks both signatures, dedups, appends to a file);
- the business's gateway, with its own SQLite store (keys, Olm sessions, message statuses, webhook outbox).

Set-up, not timed (its duration is printed): the business registers its profile; the operator verifies it
and raises its limits (``cove business verify``, ``cove business limits --tier unlimited --throughput 1000``,
since the default tier allows 250 new users a day and 80 messages/s); the business creates a UTILITY template
with one parameter through the gateway and the operator approves it. Then ``--users`` users register through
the API with real vodozemac identities (the SDK's ``ClientCore`` over an in-memory store, as bench/relay.py
registers them) and opt in to the business's utility messages (``PUT /v1/business/{id}/opt-in``), which
returns their per-business user id. The business sends to that id, as a Cloud API integration sends to a
``wa_id``: contact discovery by phone number is rate-limited and is not what is measured here.

Timed: ``--rounds`` rounds, each sending the template once to every user through
``POST /v21.0/{phone_number_id}/messages``, at most ``--concurrency`` requests in flight over keep-alive
connections (httpx). A round starts when the previous one has been answered in full, so the rounds can be told
apart: in round 1 the gateway meets every user for the first time (it resolves the user id to an account,
fetches the identity and a key bundle, opens an Olm session: four relay calls per message); in later rounds it
has the session and makes one relay call per message. Nothing is bypassed: every send goes through all the
relay's business rules (cove.business.decision: opt-in, service window, template approval and pause state, the
number's quality, the messaging tier, the pair rate, the number's throughput; the marketing cap applies only to
MARKETING templates, so it is evaluated and passes). The limits are raised so as not to bind, not switched
off: every send is outside a service window, so every one is counted against the tier and stores its reach.

Figures:

- messages/s end to end: messages that were answered 200 **and** reported ``sent`` by webhook, over the time
  from the first request to the last such 200. A 200 the relay refused later is reported by a ``failed``
  webhook; those, and every non-200 answer, are counted and printed, never dropped silently.
- latency p50/p99 of the 200 answers, per round. Closed loop: with 64 requests in flight it is mostly queueing.
- webhook events/s: status webhooks received (``sent``, plus ``delivered`` with ``--deliver`` and any
  ``failed``) over the time from the first request until the receiver has recorded the last one expected; the
  receiver's file is read every 50 ms. The number of ``sent`` webhooks must equal the number of sends.
- CPU seconds of each process over the timed part (user + system from /proc via psutil): relay, gateway,
  webhook receiver, this bench client and, with ``--postgres``, the PostgreSQL backends serving the relay's
  database; ``others`` is the rest of the machine's busy time (other programs running meanwhile). All share the
  machine's cores, so the bench client and the receiver take CPU from the relay and the gateway.

``--deliver K``: the first K users also keep a WebSocket open through the timed part, decrypt what they get
and ack it, so their delivery receipts reach the gateway and come back as ``delivered`` webhooks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from rich.console import Console
from rich.progress import Progress, TaskID
from rich.table import Table
from sqlalchemy import func, select

from cove.business.storage import business_reach
from cove.client.core import ClientCore, Request
from cove.client.events import QueueEmpty, TemplateReceived, Undecryptable
from cove.client.store import ClientStore
from cove.client.transport import CoveClient
from cove.db import create_engine
from cove.testing import CodeInbox, RelayProcess
from harness import command, cpu_seconds, machine, ms, percentile, report_console, run_against

sys.path.append(str(Path(__file__).resolve().parents[1] / "tests"))  # the gateway's test world: real processes

from consent import progress_bar  # noqa: E402 - bench/ is on the path as the script's folder
from gateway_world import API, GatewayProcess, Receiver, operator, register_profile  # noqa: E402
from relay import DEVICE_INFO, User, register  # noqa: E402
from test_business_gateway import ORDER_READY, PROFILE, SHOP_PHONE, approved_templates, template  # noqa: E402

TARGET_PER_S = 500  # the target on 2 cores
# The set-up registers every user from one address, one number range after another and one device model: the
# registration gate (cove.safety.registration) would make each past the 300th an hour solve a proof of work, which
# is not what is measured. Raised, as the harness raises the code limits, for the set-up's registrations only:
# nothing registers during the timed part.
SETUP_ENV = {
    "COVE_REGISTRATION_GATE_SOURCE_PER_HOUR": "1000000",
    "COVE_REGISTRATION_GATE_RANGE_PER_HOUR": "1000000",
    "COVE_REGISTRATION_GATE_DEVICE_PER_HOUR": "1000000",
}
SETUP_WORKERS = 16  # users registered at once
OPT_IN = {"categories": ["utility"], "source": "web"}
POLL_S = 0.05  # how often the receiver's file is read
STALL_S = 30.0  # after the last send: stop waiting for the webhooks still expected when none came for this long
READY_S = 30.0  # for the --deliver users' streams to be past their backlog


def phone_number(index: int) -> str:
    """+1 415 2NN NNNN: a million valid numbers, none of them the business's (+1 415 555 0190)."""
    return f"+14152{index:06d}"


# Users ------------------------------------------------------------------------------------------------
@dataclass
class Member:
    """An opted-in user: the id the business sends to and, for --deliver, the user's own connected client."""

    index: int
    user_id: str = ""
    client: CoveClient | None = None


async def onboard(
    url: str, inbox: CodeInbox, business_id: str, count: int, deliver: int, tick: Callable[[], None]
) -> list[Member]:
    """Register ``count`` users through the API and opt each in to utility messages.

    An httpx client costs ~30 ms of CPU to create (its TLS context), five minutes for 10,000 users; so each
    worker reuses one ``CoveClient`` and hands it each user's core in turn. A user's local store lives in
    memory and is closed once the user has opted in, except for the first ``deliver`` users, who keep a
    client of their own to receive on.
    """
    members = [Member(i) for i in range(count)]
    pending = iter(members)

    async def worker() -> None:
        shared: CoveClient | None = None
        try:
            for member in pending:
                key = os.urandom(32)
                info = {**DEVICE_INFO, "vendor_device_id": f"bench-{member.index}"}
                core = ClientCore(ClientStore(":memory:"), key, info)
                if member.index < deliver:
                    client = member.client = CoveClient(url, core)
                else:
                    shared = shared or CoveClient(url, core)
                    client = shared
                    client.core = core
                await register(User(client, key, phone_number(member.index)), inbox)
                opted = await client.call(Request("PUT", f"/v1/business/{business_id}/opt-in", OPT_IN))
                member.user_id = opted["user_id"]
                if member.client is None:
                    core.store.close()
                tick()
        finally:
            if shared is not None:
                await shared.aclose()

    await asyncio.gather(*(worker() for _ in range(SETUP_WORKERS)))
    return members


async def listen(member: Member, received: Counter[str], ready: asyncio.Event) -> None:
    """A --deliver user: decrypt and ack everything (the SDK acks after storing), which sends the receipts."""
    assert member.client is not None
    try:
        async for event in member.client.events():
            if isinstance(event, QueueEmpty):
                ready.set()
            elif isinstance(event, TemplateReceived):
                received["templates received"] += 1
            elif isinstance(event, Undecryptable):
                received[f"undecryptable: {event.reason}"] += 1
    except Exception as exc:  # counted: the other users go on
        received[f"stream failed: {type(exc).__name__}: {str(exc)[:60]}"] += 1


# Webhooks ---------------------------------------------------------------------------------------------
class Webhooks:
    """What the receiver has recorded, read from its file as it grows: when each status was first seen."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self.seen: dict[str, dict[str, float]] = {}  # message id -> status -> perf_counter() when read
        self.status_events = 0
        self.settled = 0  # messages with a sent or failed status
        self.delivered = 0
        self.failures: Counter[str] = Counter()
        self.last_at = 0.0

    def read(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            f.seek(self._offset)
            chunk = f.read()
        complete = chunk.rfind(b"\n") + 1  # the receiver may be half-way through a line
        self._offset += complete
        now = time.perf_counter()
        for line in chunk[:complete].splitlines():
            for entry in json.loads(line)["body"]["entry"]:
                for change in entry["changes"]:
                    for status in change["value"].get("statuses", []):
                        self._status(status, now)

    def _status(self, status: dict[str, Any], now: float) -> None:
        self.status_events += 1
        self.last_at = now
        seen = self.seen.setdefault(status["id"], {})
        if status["status"] in ("sent", "failed") and not {"sent", "failed"} & seen.keys():
            self.settled += 1
        if status["status"] == "delivered" and "delivered" not in seen:
            self.delivered += 1
        if status["status"] == "failed":
            self.failures[f"failed status webhook, code {status['errors'][0]['code']}"] += 1
        seen.setdefault(status["status"], now)

    def count(self, status: str, ids: list[str] | set[str]) -> int:
        return sum(1 for i in ids if status in self.seen.get(i, {}))

    async def follow(self) -> None:
        while True:
            self.read()
            await asyncio.sleep(POLL_S)


# The timed sends --------------------------------------------------------------------------------------
@dataclass
class Round:
    number: int
    started: float = 0.0
    answered: dict[str, tuple[float, int]] = field(default_factory=dict)  # message id -> (200 time, member)
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    cpu: dict[str, float] = field(default_factory=dict)


async def send_round(
    api: httpx.AsyncClient, path: str, members: list[Member], rnd: Round, concurrency: int, tick: Callable[[], None]
) -> None:
    pending = iter(members)

    async def worker() -> None:
        for member in pending:
            body = template(ORDER_READY["name"], member.user_id, f"R{rnd.number}-{member.index}")
            started = time.perf_counter()
            try:
                answer = await api.post(path, json=body)
            except httpx.HTTPError as exc:
                rnd.errors[f"{type(exc).__name__}: {str(exc)[:60]}"] += 1
                tick()
                continue
            done = time.perf_counter()
            if answer.status_code == 200:
                rnd.answered[answer.json()["messages"][0]["id"]] = (done, member.index)
                rnd.latencies.append(done - started)
            else:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    code = answer.json()["error"]["code"]
                rnd.errors[f"HTTP {answer.status_code} (code {code})"] += 1
            tick()

    rnd.started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))


def cpu_now(processes: dict[str, psutil.Process], postgres_database: str | None) -> dict[str, float]:
    """CPU seconds so far of each process, of the PostgreSQL backends serving the relay's database, and of the
    machine. The backends are a lower bound: one that closes between two readings (the relay's pool closes its
    overflow connections) takes its CPU with it, and the server's background processes are not counted."""
    now = {name: cpu_seconds(p) for name, p in processes.items()}
    if postgres_database is not None:
        now["postgresql"] = sum(
            cpu_seconds(p)
            for p in psutil.process_iter(["name", "cmdline"])
            if p.info["name"] == "postgres" and postgres_database in " ".join(p.info["cmdline"] or [])
        )
    times = psutil.cpu_times()
    now["machine"] = sum(times) - times.idle - getattr(times, "iowait", 0.0)
    return now


def cpu_since(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds between two readings; ``others`` is whatever else ran on the machine meanwhile."""
    spent = {name: after[name] - before[name] for name in after}
    machine_s = spent.pop("machine")
    spent["others"] = max(0.0, machine_s - sum(spent.values()))
    return spent


# The run ----------------------------------------------------------------------------------------------
@dataclass
class World:
    relay: RelayProcess
    inbox: CodeInbox
    receiver: Receiver
    gateway: GatewayProcess
    home: Path


async def set_up_business(args: argparse.Namespace, world: World, console: Console) -> None:
    """Register, verify and raise the business's limits, start its gateway, approve its template."""
    relay, gateway, receiver = world.relay, world.gateway, world.receiver
    receiver.start()
    gateway.phone_number_id = await register_profile(relay, world.inbox, world.home, "shop", SHOP_PHONE, PROFILE)
    raised = ("limits", SHOP_PHONE, "--tier", "unlimited", "--throughput", str(args.throughput))
    for step in (("verify", SHOP_PHONE), raised):
        done = operator(relay, "business", *step)
        if done.returncode != 0:
            raise RuntimeError(f"cove business {' '.join(step)}: {done.stderr}")
        console.print(f"cove business {step[0]}: {done.stdout.strip()}")
    gateway.start()
    await approved_templates(gateway, relay, receiver, ORDER_READY)


async def reached_users(database_url: str, business_id: str) -> int:
    """Users the relay has recorded as reached by the business: evidence that the tier rule counted each one."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            r = business_reach
            query = select(func.count()).select_from(r).where(r.c.business_id == business_id)
            return (await conn.execute(query)).scalar_one()
    finally:
        await engine.dispose()


async def run(args: argparse.Namespace, world: World, console: Console) -> dict[str, Any]:
    relay, gateway, receiver = world.relay, world.gateway, world.receiver
    started = time.perf_counter()
    await set_up_business(args, world, console)
    business_s = time.perf_counter() - started
    console.print(f"business registered, verified, limits raised, gateway up, template approved: {business_s:.1f} s")

    with progress_bar(console) as progress:
        task = progress.add_task("users registered and opted in", total=args.users, rate="")
        started = time.perf_counter()
        members = await onboard(
            relay.url, world.inbox, gateway.phone_number_id, args.users, args.deliver, ticker(progress, task, started)
        )
    onboard_s = time.perf_counter() - started
    console.print(f"{args.users:,} users registered and opted in: {onboard_s:.1f} s ({args.users / onboard_s:.0f}/s)")

    received: Counter[str] = Counter()
    ready = [asyncio.Event() for m in members if m.client is not None]
    listeners = [
        asyncio.create_task(listen(m, received, r)) for m, r in zip(members[: args.deliver], ready, strict=True)
    ]
    try:
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), READY_S)
        result = await timed(args, world, members, console)
    finally:
        for listener in listeners:
            listener.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
        for m in members:
            if m.client is not None:
                await m.client.aclose()
                m.client.core.store.close()

    async with httpx.AsyncClient(base_url=f"{gateway.url}/{API}", headers=auth(gateway)) as api:
        number = (await api.get(f"/{gateway.phone_number_id}")).json()
    result["setup"] = {"business_s": round(business_s, 1), "users_s": round(onboard_s, 1)}
    result["number_after"] = {k: number.get(k) for k in ("quality_rating", "messaging_limit_tier", "throughput")}
    result["users_reached_on_relay"] = await reached_users(relay.database_url, gateway.phone_number_id)
    result["receiver_stats"] = receiver.stats()
    result["received_by_users"] = dict(received)
    return result


def auth(gateway: GatewayProcess) -> dict[str, str]:
    return {"Authorization": f"Bearer {gateway.token}"}


def ticker(progress: Progress, task: TaskID, started: float) -> Callable[[], None]:
    """Advances the task by one, showing the rate since ``started``."""
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        progress.update(task, advance=1, rate=f"{done / max(1e-9, time.perf_counter() - started):,.0f}/s")

    return tick


async def timed(args: argparse.Namespace, world: World, members: list[Member], console: Console) -> dict[str, Any]:
    """The rounds of sends, then the wait for the last status webhook; CPU of every process over both."""
    processes = {
        "relay": psutil.Process(world.relay.pid),
        "gateway": psutil.Process(world.gateway._proc.pid),  # noqa: SLF001 - the classes keep their Popen private
        "receiver": psutil.Process(world.receiver._proc.pid),  # noqa: SLF001
        "bench": psutil.Process(),
    }
    database = world.relay.database_url.rsplit("/", 1)[1] if args.postgres else None
    webhooks = Webhooks(world.receiver.out)
    webhooks.read()  # the set-up's webhooks (template approved, tier changes) carry no message status
    follower = asyncio.create_task(webhooks.follow())
    try:
        with progress_bar(console) as progress:
            cpu0 = cpu_now(processes, database)
            rounds = await send_rounds(args, world.gateway, members, processes, database, progress)
            first = rounds[0].started
            cpu_sends = cpu_since(cpu0, cpu_now(processes, database))
            answered = {mid: at for rnd in rounds for mid, at in rnd.answered.items()}
            online = {mid for mid, (_, index) in answered.items() if index < args.deliver}
            # Each message answered 200 gets a sent (or failed) webhook; an online user's also a delivered one.
            await wait_for_webhooks(webhooks, len(answered) + len(online), progress)
            cpu = {"sends": cpu_sends, "all": cpu_since(cpu0, cpu_now(processes, database))}
    finally:
        follower.cancel()
    webhooks.read()
    rss = {name: round(p.memory_info().rss / 2**20, 1) for name, p in processes.items()}
    return summarise(args, rounds, answered, online, webhooks, first, cpu, rss)


async def send_rounds(
    args: argparse.Namespace,
    gateway: GatewayProcess,
    members: list[Member],
    processes: dict[str, psutil.Process],
    database: str | None,
    progress: Progress,
) -> list[Round]:
    """Every round in turn over one pool of keep-alive connections, as many as requests in flight."""
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency, keepalive_expiry=2.0
    )
    task = progress.add_task("template sends answered", total=args.rounds * args.users, rate="")
    tick = ticker(progress, task, time.perf_counter())
    rounds = [Round(n) for n in range(1, args.rounds + 1)]
    async with httpx.AsyncClient(
        base_url=f"{gateway.url}/{API}", headers=auth(gateway), timeout=60, limits=limits
    ) as api:
        before = cpu_now(processes, database)
        for rnd in rounds:
            await send_round(api, f"/{gateway.phone_number_id}/messages", members, rnd, args.concurrency, tick)
            after = cpu_now(processes, database)
            rnd.cpu, before = cpu_since(before, after), after
    return rounds


async def wait_for_webhooks(webhooks: Webhooks, expected: int, progress: Progress) -> None:
    """Until every status expected has arrived, or none has for STALL_S (what is missing is an error)."""
    task = progress.add_task("status webhooks received", total=expected, rate="")
    started = time.perf_counter()
    while (
        webhooks.settled + webhooks.delivered < expected
        and time.perf_counter() - max(webhooks.last_at, started) < STALL_S
    ):
        progress.update(task, completed=webhooks.settled + webhooks.delivered)
        await asyncio.sleep(POLL_S)
    progress.update(task, completed=webhooks.settled + webhooks.delivered)


# The report -------------------------------------------------------------------------------------------
def summarise(
    args: argparse.Namespace,
    rounds: list[Round],
    answered: dict[str, tuple[float, int]],
    online: set[str],
    webhooks: Webhooks,
    first: float,
    cpu: dict[str, dict[str, float]],
    rss: dict[str, float],
) -> dict[str, Any]:
    sent = [mid for mid in answered if "sent" in webhooks.seen.get(mid, {})]
    last_sent = max((answered[mid][0] for mid in sent), default=first)
    send_s = last_sent - first
    webhook_s = webhooks.last_at - first if webhooks.status_events else None
    lags = [webhooks.seen[mid]["sent"] - answered[mid][0] for mid in sent]
    errors: Counter[str] = sum((rnd.errors for rnd in rounds), Counter()) + webhooks.failures
    unsettled = sum(1 for mid in answered if not {"sent", "failed"} & webhooks.seen.get(mid, {}).keys())
    if unsettled:
        errors["answered 200, no sent or failed webhook"] += unsettled
    delivered = webhooks.count("delivered", list(online))
    if delivered < len(online):
        errors["delivered webhook missing"] += len(online) - delivered
    per_s = len(sent) / send_s if send_s > 0 else 0.0
    return {
        "command": command(),
        "machine": machine(),
        "settings": {
            "database": "postgresql" if args.postgres else "sqlite",
            "users": args.users,
            "rounds": args.rounds,
            "concurrency": args.concurrency,
            "deliver": args.deliver,
            "throughput_limit_mps": args.throughput,
        },
        "rounds": [round_figures(rnd, webhooks) for rnd in rounds],
        "results": {
            "requests": args.rounds * args.users,
            "answered_200": len(answered),
            "sent": len(sent),
            "messages_per_s": round(per_s, 1),
            "send_seconds": round(send_s, 2),
            "webhook_events": webhooks.status_events,
            "sent_webhooks": webhooks.count("sent", list(answered)),
            "delivered_webhooks": delivered,
            "webhook_events_per_s": round(webhooks.status_events / webhook_s, 1) if webhook_s else None,
            "webhook_seconds": round(webhook_s, 2) if webhook_s else None,
            "webhooks_done_after_last_send_s": round(webhooks.last_at - last_sent, 2) if webhook_s else None,
            "webhook_lag_p50_ms": ms(percentile(lags, 50)),
            "webhook_lag_p99_ms": ms(percentile(lags, 99)),
            "cpu_seconds_sends": {k: round(v, 1) for k, v in cpu["sends"].items()},
            "cpu_seconds_all": {k: round(v, 1) for k, v in cpu["all"].items()},
            "cpu_ms_per_message": {k: round(v * 1000 / len(sent), 3) for k, v in cpu["all"].items()} if sent else {},
            "rss_mb_at_end": rss,
            "errors": sum(errors.values()),
            "error_kinds": dict(errors),
            "target": f">= {TARGET_PER_S} messages/s end to end on 2 cores",
            "verdict": "PASS" if per_s >= TARGET_PER_S and not errors else "MISS",
        },
    }


def round_figures(rnd: Round, webhooks: Webhooks) -> dict[str, Any]:
    sent = [mid for mid in rnd.answered if "sent" in webhooks.seen.get(mid, {})]
    last = max((rnd.answered[mid][0] for mid in sent), default=rnd.started)
    seconds = last - rnd.started
    return {
        "round": rnd.number,
        "sessions": "new" if rnd.number == 1 else "existing",
        "answered_200": len(rnd.answered),
        "sent": len(sent),
        "seconds": round(seconds, 2),
        "messages_per_s": round(len(sent) / seconds, 1) if seconds > 0 else None,
        "latency_p50_ms": ms(percentile(rnd.latencies, 50)),
        "latency_p99_ms": ms(percentile(rnd.latencies, 99)),
        "relay_cpu_ms_per_message": round(rnd.cpu["relay"] * 1000 / len(sent), 3) if sent else None,
        "gateway_cpu_ms_per_message": round(rnd.cpu["gateway"] * 1000 / len(sent), 3) if sent else None,
        "errors": sum(rnd.errors.values()),
    }


def print_report(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
        return
    console = report_console(result)
    s, r = result["settings"], result["results"]
    console.print(
        f"[bold]settings[/bold] {s['database']}, {s['users']:,} opted-in users, {s['rounds']} rounds, "
        f"{s['concurrency']} requests in flight, {s['deliver']} users online, throughput limit "
        f"{s['throughput_limit_mps']} msg/s; set-up {result['setup']['business_s']} s (business) + "
        f"{result['setup']['users_s']} s (users)",
        soft_wrap=True,
    )
    table = Table(
        "round",
        "sessions",
        "200s",
        "sent",
        "s",
        "msg/s",
        "p50 ms",
        "p99 ms",
        "relay CPU ms/msg",
        "gateway CPU ms/msg",
        "errors",
        header_style="bold",
    )
    for x in result["rounds"]:
        table.add_row(*(str("-" if v is None else v) for v in x.values()))
    console.print(table)
    cpu, per = r["cpu_seconds_all"], r["cpu_ms_per_message"]
    rows = [
        ("messages/s end to end (200 and a sent webhook)", r["messages_per_s"]),
        ("target", r["target"]),
        ("verdict", r["verdict"]),
        ("requests / answered 200 / sent", f"{r['requests']:,} / {r['answered_200']:,} / {r['sent']:,}"),
        ("seconds, first request to last 200", r["send_seconds"]),
        (
            "status webhooks received (sent / delivered)",
            f"{r['webhook_events']:,} ({r['sent_webhooks']:,} / {r['delivered_webhooks']:,})",
        ),
        ("webhook events/s (first request to last webhook)", r["webhook_events_per_s"]),
        ("last webhook, seconds after the last 200", r["webhooks_done_after_last_send_s"]),
        ("sent webhook after its 200, p50 / p99 ms", f"{r['webhook_lag_p50_ms']} / {r['webhook_lag_p99_ms']}"),
    ]
    rows += [(f"{name} CPU s (ms per message)", f"{cpu[name]} ({per.get(name)})") for name in cpu]
    rows += [("RSS at the end, MB", ", ".join(f"{k} {v}" for k, v in r["rss_mb_at_end"].items()))]
    rows += [
        ("users reached, as the relay counted them for the tier", f"{result['users_reached_on_relay']:,}"),
        ("the number afterwards", json.dumps(result["number_after"])),
        ("receiver", json.dumps(result["receiver_stats"])),
        ("received by the online users", json.dumps(result["received_by_users"])),
        ("errors", r["errors"]),
    ]
    rows += [(f"  {kind}", count) for kind, count in r["error_kinds"].items()]
    figures = Table("figure", "value", header_style="bold")
    for name, value in rows:
        figures.add_row(name, "-" if value is None else str(value))
    console.print(figures)


# Setting up and tearing down ----------------------------------------------------------------------------
@contextlib.contextmanager
def database(postgres: str | None, folder: Path) -> Iterator[str]:
    """A fresh SQLite file, or a fresh database on the PostgreSQL server of ``postgres``, dropped at the end."""
    if postgres is None:
        yield f"sqlite+aiosqlite:///{folder / 'cove.db'}"
        return
    import asyncpg

    server = postgres.replace("postgresql+asyncpg://", "postgresql://")
    name = f"cove_business_bench_{uuid.uuid4().hex[:8]}"

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(server)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{postgres.rsplit('/', 1)[0]}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=10_000, help="opted-in users (default 10,000)")
    parser.add_argument("--rounds", type=int, default=3, help="template sends to every user (default 3)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight (default 64)")
    parser.add_argument("--deliver", type=int, default=0, help="users online to receive and ack (default 0)")
    parser.add_argument("--throughput", type=int, default=1000, help="the number's limit, msg/s (default 1000)")
    parser.add_argument(
        "--postgres",
        default=None,
        help="a PostgreSQL server URL, e.g. postgresql+asyncpg://postgres@127.0.0.1/test: a fresh database is "
        "created there and dropped afterwards (default: a fresh SQLite file)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    args = parser.parse_args()
    if not 1 <= args.users <= 999_999:  # phone numbers are +14152NNNNNN
        parser.error("--users must be between 1 and 999,999")
    if not 0 <= args.deliver <= args.users:
        parser.error("--deliver must be between 0 and --users")
    if args.rounds < 1 or args.concurrency < 1:
        parser.error("--rounds and --concurrency must be at least 1")
    return args


def main() -> None:
    args = parse_args()
    # Set-up costs ~10 ms of CPU per user; past this budget something is stuck.
    budget = 300 + 0.1 * args.users * (1 + args.rounds) + STALL_S
    console = Console(stderr=args.json)
    if not console.is_terminal:  # piped: wide enough for the progress bars
        console = Console(stderr=args.json, width=150)
    with tempfile.TemporaryDirectory(prefix="cove-bench-business-") as tmp, database(args.postgres, Path(tmp)) as url:
        work = Path(tmp)
        (work / "relay").mkdir()
        (work / "business").mkdir()
        inbox = CodeInbox()
        relay = RelayProcess(url, work / "relay", inbox.url, SETUP_ENV)
        relay.start()
        receiver = Receiver(work)
        world = World(
            relay,
            inbox,
            receiver,
            GatewayProcess(relay, work / "business", "shop", receiver.url, preloaded=False),
            work / "business",
        )
        try:
            result = run_against(relay, inbox, lambda: run(args, world, console), budget)
        except BaseException:
            if world.gateway.log.exists():
                print(f"--- end of the gateway log ---\n{world.gateway.log.read_text(errors='replace')[-2000:]}")
            raise
        finally:
            world.gateway.stop()
            receiver.stop()
    print_report(result, args.json)


if __name__ == "__main__":
    main()
