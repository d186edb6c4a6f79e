"""Consent benchmark: publishing a rollout, the permitted set over a big population, decisions over HTTP.

    .venv/bin/python bench/consent.py                          # 1,000,000 accounts, 200 users, 10 s of load
    .venv/bin/python bench/consent.py --accounts 100000 --seconds 5
    .venv/bin/python bench/consent.py --client raw            # the relay's limit, not the client's
    .venv/bin/python bench/consent.py --database-url postgresql+asyncpg://user@127.0.0.1/bench --json

How a run goes, on a fresh SQLite file in a temp dir (or ``--database-url``, an empty PostgreSQL database):

1. Migrate, then generate ``--accounts`` accounts straight into the ``accounts`` table, in big batches of one
   transaction each: random v4 ids, E.164 numbers over a mix of calling codes, ``rollout_bucket`` from
   ``cove.accounts.cohort.bucket`` and ``calling_code``, as registration would store them.
2. (a) Publish ``policies/cove-default.toml`` with ``cove.consent.service.publish``, its waves moved to start
   now (``cove.testing.policy_opening_now``) so its notice is due. Time it and count the rows of
   every table before and after: a rollout must write one row whatever the number of accounts.
3. (c) Fill ``consent_accounts`` and ``consent_purposes`` for those accounts with a realistic mix (80% accepted
   the policy, 90% of them adults; per consent purpose 15-35% opted in and 20-40% out, the rest undecided; 5%
   objected to each legitimate-interest purpose). Then, per purpose, time ``SELECT COUNT(*)`` over the compiled
   predicate (``cove.consent.predicate.permitted_accounts``) and fetching every permitted account id, and check
   a random sample of accounts against the pure decision (``cove.consent.decision.permitted`` over
   ``cove.consent.storage.load_consent``): both must agree on every account and purpose.
4. (b) Start ``python -m cove serve`` on that database, register ``--users`` users through the HTTP API with the
   SDK (codes through the webhook, as an SMS gateway would get them), have each accept the terms, then for
   ``--warmup`` + ``--seconds`` each user keeps ``--window`` requests in flight of
   ``PUT /v1/privacy/choices/{purpose}``, cycling over the consent purposes, in and out in turn. Decisions/s,
   latency and errors are over the last ``--seconds``; relay CPU is the relay process alone (with PostgreSQL,
   the database server's CPU is not in it). The bench client shares the machine with the relay: with the
   SDK's httpx client (``--client sdk``, the default) it spends ~0.7 ms of CPU per request, enough to cap a 2-core
   machine near 1,500 requests/s whatever the relay does; ``--client raw`` sends the same requests from
   hand-built HTTP/1.1 on keep-alive connections. ``--relay-env NAME=VALUE`` passes settings to the relay.
   Every decision acknowledged must have left exactly one ``choice`` entry in the consent ledger.

Targets (printed, never fatal): publish under 1 s writing O(1) rows; each permitted-set query under 2 s;
at least 2,000 decisions/s on SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import sqlite3
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from sqlalchemy import func, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from cove.accounts.cohort import bucket, calling_code
from cove.client.core import ClientCore
from cove.client.store import ClientStore
from cove.client.transport import CoveClient, RelayError
from cove.consent import service, storage
from cove.consent.decision import effective_ms, permitted
from cove.consent.ledger_storage import ledger_entries
from cove.consent.policy import LegalBasis, Policy
from cove.consent.predicate import permitted_accounts
from cove.db import create_engine, migrate
from cove.testing import CodeInbox, RelayProcess, policy_opening_now
from harness import (
    bounded,
    command,
    fleet_env,
    machine,
    measure_cpu,
    ms,
    per_unit_ms,
    percentile,
    report_console,
    run_against,
    tree_rss,
)

ROOT = Path(__file__).resolve().parents[1]
POLICY_FILE = ROOT / "policies" / "cove-default.toml"

BATCH = 50_000  # rows per insert transaction
DAY_MS = 86_400_000
REQUEST_TIMEOUT = 10.0  # seconds, for each HTTP request of the load
DRAIN_SECONDS = 15.0  # after the load: wait this long at most for requests still in flight
SAMPLE = 1_000  # accounts cross-checked against the pure decision
DEVICE_INFO = {"model": "Pixel 9", "os_name": "Android", "os_version": "15", "app_version": "0.1.0"}

TARGET_PUBLISH_S = 1.0
TARGET_QUERY_S = 2.0
TARGET_DECISIONS_PER_S = 2_000.0

# The population's consent state (part c).
ACCEPTED = 0.80
ADULT = 0.90
OPTED_IN = (0.15, 0.35)  # per consent purpose, a share drawn from this range
OPTED_OUT = (0.20, 0.40)
WITHDRAWN = 0.25  # of the opt-outs, the share that withdrew an earlier opt-in
OBJECTED = 0.05  # per legitimate-interest purpose


@dataclass(frozen=True)
class Country:
    """Numbers ``+{code}{prefix}{n:0{digits}d}``: calling codes are prefix-free, so the numbers never collide,
    and none has the form +1415555NNNN of the users the bench registers through the API."""

    code: int
    prefix: str
    digits: int
    weight: float


COUNTRIES = (
    Country(91, "9", 9, 0.20),  # India
    Country(1, "9", 9, 0.12),  # United States, Canada
    Country(55, "11", 9, 0.12),  # Brazil
    Country(49, "15", 9, 0.09),  # Germany
    Country(44, "7", 9, 0.08),  # United Kingdom
    Country(62, "81", 9, 0.08),  # Indonesia
    Country(33, "6", 8, 0.07),  # France
    Country(81, "90", 8, 0.07),  # Japan
    Country(34, "6", 8, 0.06),  # Spain
    Country(39, "3", 9, 0.06),  # Italy
    Country(234, "80", 8, 0.05),  # Nigeria
)

ACCOUNT_COLUMNS = ("id", "phone_number", "created_at_ms", "identity_generation", "rollout_bucket", "calling_code")
CONSENT_ACCOUNT_COLUMNS = ("account_id", "policy_version", "accepted_at_ms", "age_bracket", "text_hash")
CONSENT_PURPOSE_COLUMNS = (
    "account_id",
    "policy_version",
    "purpose_id",
    "choice",
    "chosen_at_ms",
    "method",
    "objected_at_ms",
)


def now_ms() -> int:
    return int(time.time() * 1000)


def chunks(items: Sequence[Any], size: int = BATCH) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


# Bulk inserts -----------------------------------------------------------------------------------------
class BulkWriter:
    """Big inserts, one transaction per batch: plain sqlite3 ``executemany`` on SQLite, ``COPY`` (asyncpg)
    on PostgreSQL. The benchmark's data set-up, not what it measures."""

    def __init__(self, url: str, engine: AsyncEngine) -> None:
        self._engine = engine
        self._db: sqlite3.Connection | None = None
        if engine.dialect.name == "sqlite":
            self._db = sqlite3.connect(url.split("///", 1)[1], isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=OFF")  # set-up only: a crash would just mean running again
            self._db.execute("PRAGMA cache_size=-1048576")  # 1 GiB: the indexes over random ids stay in memory

    async def insert(self, table: str, columns: Sequence[str], rows: list[tuple]) -> None:
        if not rows:
            return
        if self._db is not None:
            marks = ", ".join("?" * len(columns))
            self._db.execute("BEGIN")
            try:
                self._db.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return
        async with self._engine.begin() as conn:
            raw = await conn.get_raw_connection()
            await raw.driver_connection.copy_records_to_table(table, records=rows, columns=list(columns))

    def close(self) -> None:
        if self._db is not None:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
            self._db = None


def database_mb(url: str, engine: AsyncEngine) -> float | None:
    if engine.dialect.name != "sqlite":
        return None
    path = Path(url.split("///", 1)[1])
    files = [path, path.with_name(path.name + "-wal")]
    return round(sum(f.stat().st_size for f in files if f.exists()) / 2**20, 1)


async def count_rows(engine: AsyncEngine) -> dict[str, int]:
    """Rows in every table of the database (not only those this code knows about)."""
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        return {name: (await conn.execute(text(f'SELECT COUNT(*) FROM "{name}"'))).scalar_one() for name in names}


# Accounts -----------------------------------------------------------------------------------------------
def account_rows(rng: random.Random, start: int, count: int, at_ms: int) -> tuple[list[str], list[tuple]]:
    countries = rng.choices(COUNTRIES, weights=[c.weight for c in COUNTRIES], k=count)
    ids: list[str] = []
    rows: list[tuple] = []
    for n, country in zip(range(start, start + count), countries, strict=True):
        account_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        phone = f"+{country.code}{country.prefix}{n:0{country.digits}d}"
        created = at_ms - rng.randrange(3 * 365 * DAY_MS)
        rows.append((account_id, phone, created, 1, bucket(account_id), country.code))
        ids.append(account_id)
    return ids, rows


async def generate_accounts(
    args: argparse.Namespace, bulk: BulkWriter, rng: random.Random, console: Console
) -> tuple[list[str], dict[str, Any]]:
    ids: list[str] = []
    at = now_ms()
    started = time.perf_counter()
    checked = 0
    with progress_bar(console) as progress:
        task = progress.add_task("generating accounts", total=args.accounts, rate="")
        for start in range(0, args.accounts, BATCH):
            batch_ids, rows = account_rows(rng, start, min(BATCH, args.accounts - start), at)
            if checked < 1000:  # the calling codes stored are the ones registration would derive
                for row in rows[:100]:
                    assert calling_code(row[1]) == row[5], f"calling code of {row[1]} is not {row[5]}"
                checked += 100
            await bulk.insert("accounts", ACCOUNT_COLUMNS, rows)
            ids += batch_ids
            rate = len(ids) / (time.perf_counter() - started)
            progress.update(task, completed=len(ids), rate=f"{rate:,.0f} rows/s")
    seconds = time.perf_counter() - started
    codes = Counter(c.code for c in COUNTRIES)
    return ids, {
        "accounts": args.accounts,
        "seconds": round(seconds, 2),
        "rows_per_s": round(args.accounts / seconds) if seconds else None,
        "calling_codes": sorted(codes),
    }


# (a) Publish ----------------------------------------------------------------------------------------------
async def part_publish(engine: AsyncEngine, policy: Policy) -> dict[str, Any]:
    before = await count_rows(engine)
    started = time.perf_counter()
    await service.publish(engine, policy)
    seconds = time.perf_counter() - started
    after = await count_rows(engine)
    written = {name: after.get(name, 0) - before.get(name, 0) for name in sorted(set(before) | set(after))}
    total = sum(abs(v) for v in written.values())
    return {
        "policy": f"{POLICY_FILE.relative_to(ROOT)} (version {policy.version}, waves moved to start now)",
        "accounts": before.get("accounts", 0),
        "seconds": round(seconds, 4),
        "rows_before": before,
        "rows_after": after,
        "rows_written": total,
        "target": f"< {TARGET_PUBLISH_S:g} s and 1 row",
        "verdict": verdict(seconds < TARGET_PUBLISH_S and total == 1),
    }


# (c) The permitted set ----------------------------------------------------------------------------------
async def fill_consent(
    bulk: BulkWriter, ids: list[str], policy: Policy, rng: random.Random, console: Console
) -> dict[str, Any]:
    version, text_hash = policy.version, policy.text_hash()
    at = now_ms()
    earliest = max(effective_ms(policy), at - 30 * DAY_MS)
    mix = {
        p.id: (rng.uniform(*OPTED_IN), rng.uniform(*OPTED_OUT))
        for p in policy.purposes
        if p.legal_basis in (LegalBasis.CONSENT, None)
    }
    interests = [p.id for p in policy.purposes if p.legal_basis == LegalBasis.LEGITIMATE_INTEREST]
    counts: Counter[str] = Counter()
    started = time.perf_counter()
    with progress_bar(console) as progress:
        task = progress.add_task("filling consent state", total=len(ids), rate="")
        done = 0
        for batch in chunks(ids):
            accounts_rows: list[tuple] = []
            purpose_rows: list[tuple] = []
            for account_id in batch:
                if rng.random() >= ACCEPTED:
                    continue
                accepted = rng.randrange(earliest, at - 60_000)
                age = "adult" if rng.random() < ADULT else "minor"
                counts[age] += 1
                accounts_rows.append((account_id, version, accepted, age, text_hash))
                for purpose_id, (p_in, p_out) in mix.items():
                    r = rng.random()
                    if r < p_in:
                        choice, method = "in", "opt_in"
                    elif r < p_in + p_out:
                        choice, method = "out", "withdraw" if rng.random() < WITHDRAWN else "opt_out"
                    else:
                        continue  # undecided: no row, as before the user's first act
                    counts[f"{purpose_id}:{choice}"] += 1
                    purpose_rows.append(
                        (account_id, version, purpose_id, choice, rng.randrange(accepted, at), method, None)
                    )
                for purpose_id in interests:
                    if rng.random() < OBJECTED:
                        counts[f"{purpose_id}:objected"] += 1
                        purpose_rows.append(
                            (account_id, version, purpose_id, None, None, None, rng.randrange(accepted, at))
                        )
            await bulk.insert("consent_accounts", CONSENT_ACCOUNT_COLUMNS, accounts_rows)
            await bulk.insert("consent_purposes", CONSENT_PURPOSE_COLUMNS, purpose_rows)
            counts["consent_accounts"] += len(accounts_rows)
            counts["consent_purposes"] += len(purpose_rows)
            done += len(batch)
            rows = counts["consent_accounts"] + counts["consent_purposes"]
            progress.update(task, completed=done, rate=f"{rows / (time.perf_counter() - started):,.0f} rows/s")
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "consent_accounts": counts["consent_accounts"],
        "consent_purposes": counts["consent_purposes"],
        "adults": counts["adult"],
        "minors": counts["minor"],
        "mix": {
            purpose_id: {
                "in": counts[f"{purpose_id}:in"],
                "out": counts[f"{purpose_id}:out"],
                "in_share": round(p_in, 3),
                "out_share": round(p_out, 3),
            }
            for purpose_id, (p_in, p_out) in mix.items()
        }
        | {purpose_id: {"objected": counts[f"{purpose_id}:objected"]} for purpose_id in interests},
    }


def recipient_for(policy: Policy, purpose_id: str) -> str:
    recipients = policy.purpose(purpose_id).recipients
    return "parent" if "parent" in recipients else recipients[0]


async def part_permitted(
    engine: AsyncEngine, bulk: BulkWriter, ids: list[str], policy: Policy, rng: random.Random, console: Console
) -> dict[str, Any]:
    filled = await fill_consent(bulk, ids, policy, rng, console)
    bulk.close()  # everything is written: checkpoint the WAL before querying
    at = now_ms()
    queries = []
    permitted_sets: dict[str, set[str]] = {}
    async with engine.connect() as conn:
        policies = await storage.load_policies(conn)
        for purpose in policy.purposes:
            recipient = recipient_for(policy, purpose.id)
            statement = permitted_accounts(policies, purpose.id, recipient)
            started = time.perf_counter()
            count_query = select(func.count()).select_from(statement.subquery())
            count = (await conn.execute(count_query, {"at_ms": at})).scalar_one()
            count_s = time.perf_counter() - started
            started = time.perf_counter()
            fetched = (await conn.execute(statement, {"at_ms": at})).scalars().all()
            fetch_s = time.perf_counter() - started
            permitted_sets[purpose.id] = set(fetched)
            queries.append(
                {
                    "purpose": purpose.id,
                    "basis": purpose.legal_basis.value if purpose.legal_basis else None,
                    "recipient": recipient,
                    "count": count,
                    "rows_fetched": len(fetched),
                    "count_s": round(count_s, 3),
                    "fetch_s": round(fetch_s, 3),
                    "consistent": count == len(fetched) == len(permitted_sets[purpose.id]),
                    "verdict": verdict(count_s < TARGET_QUERY_S and fetch_s < TARGET_QUERY_S),
                }
            )
        # The pure decision over the stored state of a random sample, against the SQL result.
        sample = rng.sample(ids, min(SAMPLE, len(ids)))
        checks = agree = 0
        disagreements: list[dict[str, Any]] = []
        started = time.perf_counter()
        for account_id in sample:
            consent = await storage.load_consent(conn, account_id)
            for purpose in policy.purposes:
                recipient = recipient_for(policy, purpose.id)
                expected = any(permitted(p, consent, purpose.id, recipient, at) for p in policies)
                checks += 1
                if expected == (account_id in permitted_sets[purpose.id]):
                    agree += 1
                elif len(disagreements) < 5:
                    disagreements.append({"account_id": account_id, "purpose": purpose.id, "decision": expected})
        cross_s = time.perf_counter() - started
    all_fast = all(q["verdict"] == "PASS" for q in queries)
    agreement = agree / checks * 100 if checks else 0.0
    return {
        "fill": filled,
        "at_ms": at,
        "queries": queries,
        "cross_check": {
            "accounts": len(sample),
            "checks": checks,
            "agree": agree,
            "agreement_pct": round(agreement, 3),
            "seconds": round(cross_s, 2),
            "disagreements": disagreements,
            "verdict": verdict(checks > 0 and agree == checks),
        },
        "target": f"each query < {TARGET_QUERY_S:g} s; 100% agreement",
        "verdict": verdict(all_fast and checks > 0 and agree == checks and all(q["consistent"] for q in queries)),
    }


# (b) Decisions over HTTP ------------------------------------------------------------------------------
@dataclass
class User:
    client: CoveClient
    phone_number: str
    next_act: int = 0  # the user's acts cycle over the purposes, in and out in turn


@dataclass
class Tally:
    t0: float = math.inf  # the timed window, in time.perf_counter() seconds
    t1: float = math.inf
    latencies: list[float] = field(default_factory=list)  # of decisions sent inside the window
    in_window: int = 0
    total: int = 0
    errors: Counter[str] = field(default_factory=Counter)


def new_user(url: str, folder: Path, number: int) -> User:
    folder.mkdir(parents=True)
    core = ClientCore(
        ClientStore(folder / "state.db"), os.urandom(32), {**DEVICE_INFO, "vendor_device_id": f"b{number}"}
    )
    return User(CoveClient(url, core, timeout=REQUEST_TIMEOUT), f"+1415555{number:04d}")


async def onboard(user: User, inbox: CodeInbox, version: str) -> None:
    """Register through the API, then accept the terms of the notice due, as an app would."""
    await user.client.request_code(user.phone_number)
    await user.client.register(user.phone_number, await inbox.code_for(user.phone_number))
    notice = await user.client.pending_notice()
    if notice is None or notice["version"] != version:
        raise RuntimeError(f"{user.phone_number}: expected the notice of {version}, got {notice and notice['version']}")
    await user.client.accept_terms(notice, "adult")


class RawHttp:
    """One keep-alive HTTP/1.1 connection with hand-built requests (``--client raw``).

    httpx costs about 0.7 ms of client CPU per request, so on a small machine the client would take the CPU the
    relay needs; this costs a few microseconds. The relay sees the same requests as from the SDK.
    """

    def __init__(self, url: str, token: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self._host, self._port = host, int(port)
        self._head = f"Host: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def put(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        assert self._reader is not None
        try:
            self._writer.write(
                f"PUT {path} HTTP/1.1\r\n{self._head}Content-Length: {len(body)}\r\n\r\n".encode() + body
            )
            status_line = await self._reader.readline()
            if not status_line:
                raise ConnectionError("the relay closed the connection")
            status, length, close = int(status_line.split()[1]), 0, False
            while (line := await self._reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection":
                    close = value.strip().lower() == b"close"
            content = await self._reader.readexactly(length) if length else b""
        except BaseException:
            self.close()  # in an unknown state: the next request opens a new connection
            raise
        if close:
            self.close()
        return status, content

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


def choice_body(choice: str) -> bytes:
    """What the SDK sends (ClientCore.choose)."""
    return json.dumps({"choice": choice, "surface": "settings", "app_version": DEVICE_INFO["app_version"]}).encode()


async def decide(user: User, purposes: list[str], tally: Tally, raw: RawHttp | None) -> None:
    """One slot of the user's window: choose, wait for the answer, choose again, until the window closes."""
    bodies = {choice: choice_body(choice) for choice in ("in", "out")}
    while time.perf_counter() < tally.t1:
        act = user.next_act
        user.next_act += 1
        purpose = purposes[act % len(purposes)]
        choice = "in" if (act // len(purposes)) % 2 == 0 else "out"
        started = time.perf_counter()
        try:
            if raw is None:
                await user.client.choose(purpose, choice)  # its own timeout: REQUEST_TIMEOUT
            else:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    status, content = await raw.put(f"/v1/privacy/choices/{purpose}", bodies[choice])
                if status != 204:
                    raise RelayError(status, json.loads(content) if content else {})
        except RelayError as exc:
            tally.errors[f"HTTP {exc.status} {exc.code}"] += 1
            continue
        except Exception as exc:  # counted, and the load goes on
            reason = str(exc)[:80] or f"no answer within {REQUEST_TIMEOUT:g} s"
            tally.errors[f"{type(exc).__name__}: {reason}"] += 1
            await asyncio.sleep(0.05)
            continue
        done = time.perf_counter()
        tally.total += 1
        if tally.t0 <= done <= tally.t1:
            tally.in_window += 1
        if started >= tally.t0:
            tally.latencies.append(done - started)


async def choice_entries(engine: AsyncEngine) -> int:
    """Choices in the consent ledger: each decision acknowledged must have left exactly one."""
    async with engine.connect() as conn:
        kind = ledger_entries.c.kind == "choice"
        return (await conn.execute(select(func.count()).select_from(ledger_entries).where(kind))).scalar_one()


async def part_decisions(
    args: argparse.Namespace,
    engine: AsyncEngine,
    policy: Policy,
    relay: RelayProcess,
    inbox: CodeInbox,
    work: Path,
    console: Console,
) -> dict[str, Any]:
    purposes = [p.id for p in policy.purposes if p.legal_basis in (LegalBasis.CONSENT, None)]
    users = [new_user(relay.url, work / "clients" / f"u{n}", n) for n in range(1, args.users + 1)]
    tally = Tally()
    raws: list[RawHttp] = []
    try:
        started = time.perf_counter()
        await bounded([onboard(u, inbox, policy.version) for u in users])
        onboard_s = time.perf_counter() - started
        choices_before = await choice_entries(engine)
        if engine.dialect.name == "postgresql":
            # The tables were filled a moment ago in bulk, faster than autovacuum analyses them: without
            # statistics the planner takes the choice index over the primary key for every update (12 ms each).
            async with engine.begin() as conn:
                await conn.execute(text("ANALYZE"))

        console.print(
            f"(b) {args.users} users onboarded in {onboard_s:.1f} s; load for {args.warmup:g} + {args.seconds:g} s ..."
        )
        start = time.perf_counter() + 0.05
        tally.t0 = start + args.warmup
        tally.t1 = tally.t0 + args.seconds
        relay_process = psutil.Process(relay.pid)
        slots = []
        for u in users:
            for _ in range(args.window):
                raw = RawHttp(relay.url, u.client.core.token) if args.client == "raw" else None
                raws += [raw] if raw else []
                slots.append(asyncio.create_task(decide(u, purposes, tally, raw)))
        cpu = await measure_cpu(relay_process, tally)
        # The slots stop issuing at t1; let what is in flight finish (each request has its own timeout).
        _, late = await asyncio.wait(slots, timeout=DRAIN_SECONDS)
        for task in late:
            task.cancel()
        await asyncio.gather(*slots, return_exceptions=True)
        if late:
            tally.errors["still in flight after the drain"] += len(late)
        rss = tree_rss(relay_process)
        choices_after = await choice_entries(engine)
    finally:
        for raw in raws:
            raw.close()
        for u in users:
            await u.client.aclose()
            u.client.core.store.close()

    rate = tally.in_window / args.seconds
    errors = sum(tally.errors.values())
    ledger_written = choices_after - choices_before
    return {
        "users": args.users,
        "window": args.window,
        "client": args.client,
        "purposes": purposes,
        "onboarding_s": round(onboard_s, 2),
        "decisions_per_s": round(rate, 1),
        "latency_p50_ms": ms(percentile(tally.latencies, 50)),
        "latency_p99_ms": ms(percentile(tally.latencies, 99)),
        "latency_max_ms": ms(max(tally.latencies, default=None)),
        "relay_cpu_ms_per_decision": round(cpu["relay"] * 1000 / tally.in_window, 3) if tally.in_window else None,
        "relay_cpu_percent": round(cpu["relay"] / args.seconds * 100, 1),
        "relay_cpu_percent_per_process": [round(c / args.seconds * 100, 1) for c in cpu["relay_processes"]],
        "services_cpu_ms_per_decision": per_unit_ms(cpu, tally.in_window),
        "bench_client_cpu_percent": round(cpu["bench"] / args.seconds * 100, 1),
        "relay_rss_mb": round(rss / 2**20, 1),
        "decisions_in_window": tally.in_window,
        "decisions_total": tally.total,
        "ledger_choice_entries_written": ledger_written,
        "errors": errors,
        "error_kinds": dict(tally.errors),
        "target": f">= {TARGET_DECISIONS_PER_S:,.0f} decisions/s (SQLite, 2 cores), 0 errors",
        "verdict": verdict(rate >= TARGET_DECISIONS_PER_S and errors == 0 and ledger_written == tally.total),
    }


# The run ----------------------------------------------------------------------------------------------
async def run(
    args: argparse.Namespace, url: str, relay: RelayProcess, inbox: CodeInbox, work: Path, console: Console
) -> dict[str, Any]:
    rng = random.Random(args.seed)
    result: dict[str, Any] = {
        "command": command(),
        "machine": machine(),
        "settings": {
            "database": "postgresql" if args.database_url else "sqlite (fresh file)",
            "accounts": args.accounts,
            "users": args.users,
            "window": args.window,
            "client": args.client,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "seed": args.seed,
            "relay_env": args.relay_env,
        },
    }
    engine = create_engine(url)
    bulk = BulkWriter(url, engine)
    try:
        await migrate(engine)
        existing = await count_rows(engine)
        if existing.get("accounts") or existing.get("consent_policies"):
            raise SystemExit("bench: the database must be empty (it holds accounts or policies)")

        ids, generated = await generate_accounts(args, bulk, rng, console)
        generated["database_mb"] = database_mb(url, engine)
        result["generate"] = generated

        policy = policy_opening_now(POLICY_FILE)
        result["publish"] = await part_publish(engine, policy)
        console.print(f"(a) published {policy.version} in {result['publish']['seconds']:.4f} s")

        result["permitted"] = await part_permitted(engine, bulk, ids, policy, rng, console)
        result["generate"]["database_mb_with_consent"] = database_mb(url, engine)
        console.print(f"(c) permitted sets queried; cross-check {result['permitted']['cross_check']['verdict']}")
        del ids

        console.print(f"(b) starting the relay, onboarding {args.users} users ...")
        relay.start()
        result["decisions"] = await part_decisions(args, engine, policy, relay, inbox, work, console)
    finally:
        bulk.close()
        await engine.dispose()
    result["verdicts"] = {
        "a_publish": result["publish"]["verdict"],
        "b_decisions": result["decisions"]["verdict"],
        "c_permitted": result["permitted"]["verdict"],
    }
    return result


# The report -------------------------------------------------------------------------------------------
def mix_line(mix: dict[str, dict[str, int]]) -> str:
    """The consent mix ``fill_consent`` produced, on one line."""
    return "; ".join(
        f"{pid} " + (f"{v['objected']:,} objected" if "objected" in v else f"{v['in']:,} in / {v['out']:,} out")
        for pid, v in mix.items()
    )


def figures(title: str, rows: list[tuple[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left", show_header=True, header_style="bold")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, "-" if value is None else (f"{value:,}" if isinstance(value, int) else str(value)))
    return table


def print_report(result: dict[str, Any]) -> None:
    console = report_console(result)
    s = result["settings"]
    console.print(
        f"[bold]settings[/bold] {s['database']}, {s['accounts']:,} accounts, {s['users']} API users x window "
        f"{s['window']} ({s['client']} client), {s['seconds']:g} s measured after {s['warmup']:g} s warm-up, "
        f"seed {s['seed']}" + (f", relay env {' '.join(s['relay_env'])}" if s["relay_env"] else ""),
        soft_wrap=True,
    )
    g = result["generate"]
    console.print(
        f"[bold]accounts[/bold] {g['accounts']:,} generated in {g['seconds']} s ({g['rows_per_s']:,} rows/s), "
        f"calling codes {', '.join(map(str, g['calling_codes']))}; database "
        f"{g['database_mb'] if g['database_mb'] is not None else '-'} MB, "
        f"{g.get('database_mb_with_consent') or '-'} MB with the consent state",
        soft_wrap=True,
    )

    a = result["publish"]
    table = Table(title=f"(a) publish a rollout to {a['accounts']:,} accounts", title_justify="left")
    for name in ("table", "rows before", "rows after", "written"):
        table.add_column(name, justify="left" if name == "table" else "right")
    for name in sorted(a["rows_after"]):
        before, after = a["rows_before"].get(name, 0), a["rows_after"][name]
        table.add_row(name, f"{before:,}", f"{after:,}", f"{after - before:+,}" if after != before else "0")
    console.print(table)
    console.print(
        f"publish: {a['seconds'] * 1000:.1f} ms, {a['rows_written']} row(s) written  "
        f"[{a['verdict']}] target {a['target']}  ({a['policy']})",
        soft_wrap=True,
    )

    c = result["permitted"]
    f = c["fill"]
    console.print(
        f"\n[bold](c) consent state[/bold] {f['consent_accounts']:,} consent_accounts ({f['adults']:,} adults, "
        f"{f['minors']:,} minors), {f['consent_purposes']:,} consent_purposes rows, written in {f['seconds']} s",
        soft_wrap=True,
    )
    console.print(f"mix: {mix_line(f['mix'])}", soft_wrap=True)
    table = Table(title="(c) the permitted set per purpose", title_justify="left")
    for name in ("purpose", "basis", "recipient", "permitted", "COUNT(*) s", "fetch ids s", "verdict"):
        table.add_column(name, justify="right" if name in ("permitted", "COUNT(*) s", "fetch ids s") else "left")
    for q in c["queries"]:
        table.add_row(
            q["purpose"],
            str(q["basis"]),
            q["recipient"],
            f"{q['count']:,}" + ("" if q["consistent"] else " (!)"),
            f"{q['count_s']:.3f}",
            f"{q['fetch_s']:.3f}",
            q["verdict"],
        )
    console.print(table)
    x = c["cross_check"]
    console.print(
        f"cross-check: {x['accounts']:,} random accounts x {len(c['queries'])} purposes = {x['checks']:,} decisions, "
        f"{x['agree']:,} agree ({x['agreement_pct']}%) in {x['seconds']} s  [{x['verdict']}]"
        + (f"  disagreements: {x['disagreements']}" if x["disagreements"] else ""),
        soft_wrap=True,
    )

    b = result["decisions"]
    rows = [
        ("decisions/s", b["decisions_per_s"]),
        ("latency p50 (ms)", b["latency_p50_ms"]),
        ("latency p99 (ms)", b["latency_p99_ms"]),
        ("latency max (ms)", b["latency_max_ms"]),
        ("relay CPU ms per decision", b["relay_cpu_ms_per_decision"]),
        ("relay CPU (% of one core)", b["relay_cpu_percent"]),
        *((f"{name} server CPU ms per decision", v) for name, v in b["services_cpu_ms_per_decision"].items()),
        ("bench client CPU (% of one core)", b["bench_client_cpu_percent"]),
        ("relay RSS at the end (MB)", b["relay_rss_mb"]),
        ("decisions in the timed window", b["decisions_in_window"]),
        ("decisions in the whole run", b["decisions_total"]),
        ("ledger 'choice' entries written", b["ledger_choice_entries_written"]),
        ("onboarding (register + accept terms) s", b["onboarding_s"]),
        ("errors", b["errors"]),
    ]
    rows += [(f"  {kind}", count) for kind, count in b["error_kinds"].items()]
    console.print(
        f"\n[bold](b) decisions over HTTP[/bold] PUT /v1/privacy/choices/{{purpose}}: {b['users']} users x "
        f"{b['window']} in flight ({b['client']} client), cycling over {', '.join(b['purposes'])}",
        soft_wrap=True,
    )
    console.print(figures("(b) decisions per second", rows))

    table = Table(title="targets", title_justify="left")
    for name in ("part", "target", "measured", "verdict"):
        table.add_column(name)
    slowest = max(c["queries"], key=lambda q: max(q["count_s"], q["fetch_s"]))
    table.add_row("(a) publish", a["target"], f"{a['seconds'] * 1000:.1f} ms, {a['rows_written']} row(s)", a["verdict"])
    table.add_row(
        "(b) decisions",
        b["target"],
        f"{b['decisions_per_s']:,} /s, {b['errors']} errors on {result['machine']['cpus']} CPUs",
        b["verdict"],
    )
    table.add_row(
        "(c) permitted set",
        c["target"],
        f"slowest {slowest['purpose']}: {max(slowest['count_s'], slowest['fetch_s']):.3f} s; "
        f"{x['agreement_pct']}% agree",
        c["verdict"],
    )
    console.print(table)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=1_000_000, help="accounts generated (default 1000000)")
    parser.add_argument("--users", type=int, default=200, help="users registered through the API (default 200)")
    parser.add_argument("--window", type=int, default=2, help="requests each user keeps in flight (default 2)")
    parser.add_argument(
        "--client",
        choices=["sdk", "raw"],
        default="sdk",
        help="(b) sdk: CoveClient.choose over the SDK's httpx client (~0.7 ms client CPU a request); raw: hand-built "
        "HTTP/1.1 on keep-alive connections, so the client leaves the CPU to the relay (default sdk)",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the timed window (default 10)")
    parser.add_argument("--warmup", type=float, default=1.0, help="load before the timed window (default 1)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the population (default 1)")
    parser.add_argument(
        "--database-url",
        default=None,
        help="an empty PostgreSQL database, e.g. postgresql+asyncpg://user@127.0.0.1/bench (default: fresh SQLite)",
    )
    parser.add_argument(
        "--relay-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the relay, e.g. COVE_NOTICE_INTERVAL_SECONDS=3600 (repeatable)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="relay processes (cove serve --workers; needs PostgreSQL and NATS)"
    )
    parser.add_argument("--nats", default="nats://127.0.0.1:4222", help="NATS for --workers > 1 (default local)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    args = parser.parse_args()
    if args.workers > 1 and not args.database_url:
        parser.error("--workers needs --database-url (PostgreSQL): SQLite takes one process")
    if any("=" not in item for item in args.relay_env):
        parser.error("--relay-env takes NAME=VALUE")
    if args.accounts < 1:
        parser.error("--accounts must be at least 1")
    if not 1 <= args.users <= 9999:  # phone numbers are +1415555NNNN
        parser.error("--users must be between 1 and 9999")
    if args.window < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--window must be at least 1, --seconds above 0 and --warmup not negative")
    return args


def main() -> None:
    args = parse_args()
    console = Console(stderr=True)  # progress and steps; the report goes to stdout
    # Generous: set-up runs at ~100k rows/s and more; beyond this budget something is stuck.
    budget = 300 + args.accounts / 1_000_000 * 900 + args.users * 1.0 + args.warmup + args.seconds + DRAIN_SECONDS

    with tempfile.TemporaryDirectory(prefix="cove-consent-bench-") as tmp:
        work = Path(tmp)
        (work / "relay").mkdir()
        url = args.database_url or f"sqlite+aiosqlite:///{work / 'relay' / 'cove.db'}"
        inbox = CodeInbox()
        relay_env = {**fleet_env(args.workers, args.nats), **dict(item.split("=", 1) for item in args.relay_env)}
        relay = RelayProcess(url, work / "relay", inbox.url, relay_env, workers=args.workers)

        result = run_against(relay, inbox, lambda: run(args, url, relay, inbox, work, console), budget)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_report(result)


if __name__ == "__main__":
    main()
