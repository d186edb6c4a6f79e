"""Sharing benchmark: full and incremental exports of the sharing gateway over a big population.

    .venv/bin/python bench/sharing.py                                  # 1,000,000 accounts, SQLite
    .venv/bin/python bench/sharing.py --accounts 100000 --changes 0.1%,1%
    .venv/bin/python bench/sharing.py --database-url postgresql+asyncpg://user@127.0.0.1/bench --json
    .venv/bin/python bench/sharing.py --profile                        # and where a full export spends its time

How a run goes, on a fresh SQLite file in a temp dir (or ``--database-url``, an empty PostgreSQL database):

1. Migrate, generate ``--accounts`` accounts (``bench/consent.py``'s ``generate_accounts``), publish
   ``policies/cove-default.toml`` as it is (effective 2026-09-01, so in force) with ``cove.consent.service.publish``
   and fill the consent state with the consent bench's mix (``fill_consent``: 80% accepted the policy, 90% of them
   adults, per consent purpose 15-35% opted in and 20-40% out, 5% objections). Then what the gateway reads: one
   primary device per account (models, OS, app versions and vendor ids of a realistic mix); ``usage_daily`` rows
   for the last ``--usage-days`` days for 60% of the accounts (each day with 75% probability), their devices last
   seen on their last active day and the others' over the 30 days before; 0.5% of the accounts banned
   (``safety_verdicts``, 10% of those bans lifted since; the numbers of those still banned in ``banned_numbers``).
   PostgreSQL is then ANALYZEd (autovacuum would, after such a load); SQLite is left as the relay leaves it.
2. Full export (``cove.sharing.gateway.export``) for ``parent`` (the policy's independent controller: safety,
   account linking, friend suggestions, ads) then ``parent_processor`` (analytics, with the usage rows), each
   timed: wall seconds, rows (profile and usage rows over every purpose) and rows/s, CPU seconds of this process
   (with PostgreSQL the server's CPU is not in it), peak RSS (sampled every 20 ms), bytes written, and the wall
   time of the gateway's phases (its functions wrapped with timers) and, inside the snapshot read, of each
   statement on its reader connection (they run side by side). The first export also gives every account
   its ordinal. Each batch is then checked as a recipient would: ``wire.verify_manifest`` with the public half of
   the signing key (and a tampered copy must fail), every file's SHA-256 and row count, the columns each purpose
   declares, one row per subject; the rows per purpose against a count of the permitted accounts in SQL; and
   ``--sample`` random accounts against the pure decision ``cove.consent.decision.permitted``: present in a
   purpose's file iff permitted and not banned (the safety purpose: iff permitted and banned), under the subject
   ``keys.subject(recipient, account_id)``, with exactly the values in the database (phone hash, days, device
   fields, usage rows).
3. Incremental exports, one step per ``--changes`` fraction (default 0.1%, 1%, 5%). Each step changes that
   fraction of the accounts, disjoint from the other steps' and stamped between the previous exports' as-of time
   and now: 39% device updates (app upgraded, last seen now), 30% usage reports (today's row grows or appears),
   15% withdraw ads consent (``consent_purposes.choice = 'out'``), 10% adults opting in to ads, 3% new bans, 1%
   banned accounts banned again for a graver reason (``safety_verdicts.updated_at_ms`` moves, ``banned_at_ms``
   stays, as ``cove.safety.verdicts.ban`` does), 2% account deletions (the rows ``cove.accounts.deletion`` deletes,
   and the capabilities' ``AccountDeleted`` handlers in the same transaction, as the relay's deletion does).
   Then ``export(..., since_batch=<the previous batch>)`` per recipient, timed as above; the report gives seconds,
   rows, revocations by reason, erasures, seconds per changed account and a least-squares fit seconds = fixed +
   per-change x changes. A replica per recipient, updated from every batch as a recipient would (upsert the rows,
   delete what is revoked, acknowledge erasures with ``cove.sharing.erasure.apply_acks``), must hold exactly
   what the pure decision permits, with the database's values, for the sample and the changed accounts it follows
   (all bans and deletions, up to 1,000 others per step).
4. With ``--profile``, one more full export for ``parent`` under cProfile (not in the figures above): the
   functions with the most time. aiosqlite runs SQLite on its own thread, which cProfile does not see: its share
   shows as the event loop waiting, and in the phase times.

Targets (printed, never fatal): a full export at least 200,000 rows/s (2 cores); an incremental export's time
grows with the changes, and at the smallest fraction stays under 10% of the full export's.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import functools
import inspect
import json
import pstats
import random
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import bindparam, case, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from consent import (
    DAY_MS,
    POLICY_FILE,
    ROOT,
    SAMPLE,
    BulkWriter,
    chunks,
    count_rows,
    database_mb,
    figures,
    fill_consent,
    generate_accounts,
    mix_line,
    now_ms,
    progress_bar,
    verdict,
)
from cove.accounts import deletion
from cove.accounts.storage import accounts, devices
from cove.accounts.usage_storage import usage_daily
from cove.app import build_relay
from cove.config import Settings
from cove.consent import service
from cove.consent.categories import DataCategory
from cove.consent.decision import permitted
from cove.consent.policy import Policy, Purpose, load_policy
from cove.consent.predicate import permitted_accounts
from cove.consent.storage import consent_accounts, consent_purposes, load_consent, load_policies
from cove.db import create_engine, migrate
from cove.events import AccountDeleted, Hooks
from cove.safety.storage import banned_numbers, safety_verdicts
from cove.sharing import erasure, gateway, wire
from cove.sharing.keys import SharingKeys
from harness import command, cpu_seconds, machine, report_console

RECIPIENTS = ("parent", "parent_processor")
CHANGED_PURPOSE = "ads"  # the consent the changes withdraw or give

TARGET_ROWS_PER_S = 200_000.0
TARGET_SMALL_SHARE = 0.10  # the smallest fraction's incremental export, as a share of the full export's time
TRACKED_PER_STEP = 1_000  # changed accounts followed through the replica per step, besides bans and deletions
IN_CHUNK = 500  # ids per IN (...) list

# The population the gateway reads (step 1).
ACTIVE = 0.60  # accounts with usage rows
ACTIVE_DAY = 0.75  # an active account's chance of a row on each of the last --usage-days days
INACTIVE_SEEN_DAYS = 30  # the others were last seen over the 30 days before those
BANNED = 0.005
LIFTED = 0.10  # of the bans, the share lifted since
BAN_WINDOW_DAYS = 180
VENDOR_ID_MISSING = 0.03  # no vendor id (not granted, or an old app)
ANDROID = 0.72
ANDROID_MODELS = {
    "Galaxy A15": 0.16,
    "Galaxy A55": 0.12,
    "Redmi Note 13": 0.14,
    "Galaxy S24": 0.10,
    "Pixel 9": 0.08,
    "Pixel 8a": 0.07,
    "moto g84": 0.08,
    "OnePlus 12": 0.05,
    "Xiaomi 14": 0.07,
    "Galaxy S23": 0.13,
}
ANDROID_VERSIONS = {"15": 0.35, "14": 0.35, "13": 0.20, "12": 0.10}
IOS_MODELS = {
    "iPhone 16": 0.15,
    "iPhone 16 Pro": 0.12,
    "iPhone 15": 0.22,
    "iPhone 14": 0.20,
    "iPhone 13": 0.18,
    "iPhone SE (3rd generation)": 0.13,
}
IOS_VERSIONS = {"18.1": 0.40, "18.0": 0.25, "17.6": 0.20, "17.5": 0.10, "16.7": 0.05}
APP_VERSIONS = {"0.3.1": 0.55, "0.3.0": 0.25, "0.2.4": 0.15, "0.1.0": 0.05}
NEW_APP_VERSION = "0.3.2"  # what a device update installs
REASONS = {"spam": 0.55, "bulk_messaging": 0.20, "abuse": 0.12, "fraud": 0.08, "impersonation": 0.05}

# What changes between two exports (step 3): shares of the changed accounts.
CHANGE_MIX = {
    "device": 0.39,
    "usage": 0.30,
    "withdraw": 0.15,
    "opt_in": 0.10,
    "ban": 0.03,
    "reban": 0.01,  # a banned account banned again for a graver reason: the reason changes, the instant stays
    "delete": 0.02,
}
GRAVER = "fraud"  # the reason of a second ban (or "impersonation" for an account already banned for fraud)

DEVICE_COLUMNS = (
    "account_id",
    "device_id",
    "registration_id",
    "identity_curve25519",
    "identity_ed25519",
    "token_hash",
    "device_model",
    "os_name",
    "os_version",
    "app_version",
    "vendor_device_id",
    "created_at_ms",
    "updated_at_ms",
    "last_seen_at_ms",
)
USAGE_COLUMNS = ("account_id", "day", "messages_sent", "messages_received", "app_opens", "updated_at_ms")
VERDICT_COLUMNS = ("account_id", "reason_code", "banned_at_ms", "lifted_at_ms", "updated_at_ms")
BANNED_NUMBER_COLUMNS = ("phone_number", "reason_code", "banned_at_ms", "account_id")
EPOCH = date(1970, 1, 1)


def pick(rng: random.Random, mix: dict[str, float]) -> str:
    return rng.choices(list(mix), weights=list(mix.values()))[0]


def as_date(ms: int | None) -> date | None:
    return None if ms is None else EPOCH + timedelta(days=ms // DAY_MS)


def share(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


# Step 1: what the gateway reads ------------------------------------------------------------------------------
def device_row(rng: random.Random, account_id: str, last_seen: int) -> tuple:
    if rng.random() < ANDROID:
        model, os_name, os_version = pick(rng, ANDROID_MODELS), "Android", pick(rng, ANDROID_VERSIONS)
        vendor = rng.randbytes(8).hex()  # ANDROID_ID
    else:
        model, os_name, os_version = pick(rng, IOS_MODELS), "iOS", pick(rng, IOS_VERSIONS)
        vendor = rng.randbytes(16).hex().upper()  # identifierForVendor, as 32 hex digits
        vendor = f"{vendor[:8]}-{vendor[8:12]}-{vendor[12:16]}-{vendor[16:20]}-{vendor[20:]}"
    if rng.random() < VENDOR_ID_MISSING:
        vendor = None
    # updated_at_ms moves when the model, OS or app version change, or last seen moves into a new UTC day.
    updated = rng.randrange(last_seen - last_seen % DAY_MS, last_seen + 1)
    return (
        account_id,
        1,
        rng.randrange(1, 16_380),
        base64.b64encode(rng.randbytes(32)).decode().rstrip("="),
        base64.b64encode(rng.randbytes(32)).decode().rstrip("="),
        rng.randbytes(32).hex(),
        model,
        os_name,
        os_version,
        pick(rng, APP_VERSIONS),
        vendor,
        updated - rng.randrange(2 * 365 * DAY_MS),
        updated,
        last_seen,
    )


def usage_counts(rng: random.Random) -> tuple[int, int, int]:
    return int(rng.expovariate(1 / 25)), int(rng.expovariate(1 / 40)), 1 + int(rng.expovariate(1 / 12))


async def fill_activity(
    args: argparse.Namespace,
    engine: AsyncEngine,
    bulk: BulkWriter,
    ids: list[str],
    rng: random.Random,
    console: Console,
) -> tuple[dict[str, Any], set[str]]:
    """Devices, usage rows and verdicts; returns the figures and every account with a verdict: is the ban on?"""
    at = now_ms()
    today = at // DAY_MS
    days = list(range(today - args.usage_days + 1, today + 1))
    counts: Counter[str] = Counter()
    judged: dict[str, bool] = {}
    active_bans: list[tuple[str, str, int]] = []
    started = time.perf_counter()
    with progress_bar(console) as progress:
        task = progress.add_task("devices, usage, verdicts", total=len(ids), rate="")
        done = 0
        for batch in chunks(ids):
            device_rows: list[tuple] = []
            usage_rows: list[tuple] = []
            verdict_rows: list[tuple] = []
            for account_id in batch:
                if rng.random() < BANNED:
                    banned_at = at - rng.randrange(1, BAN_WINDOW_DAYS * DAY_MS)
                    lifted = rng.randrange(banned_at, at) if rng.random() < LIFTED else None
                    reason = pick(rng, REASONS)
                    verdict_rows.append((account_id, reason, banned_at, lifted, lifted or banned_at))
                    judged[account_id] = lifted is None
                    if lifted is None:
                        active_bans.append((account_id, reason, banned_at))
                        # Logged out at the ban: last seen just before it, no usage since.
                        device_rows.append(device_row(rng, account_id, banned_at - rng.randrange(DAY_MS)))
                        continue
                if rng.random() < ACTIVE:
                    active = [d for d in days if rng.random() < ACTIVE_DAY] or [rng.choice(days)]
                    last_seen = 0
                    for day in active:
                        start = day * DAY_MS
                        updated = rng.randrange(start, max(min(start + DAY_MS, at), start + 1))
                        usage_rows.append((account_id, day, *usage_counts(rng), updated))
                        last_seen = max(last_seen, updated)
                else:
                    last_seen = at - rng.randrange(
                        args.usage_days * DAY_MS, (args.usage_days + INACTIVE_SEEN_DAYS) * DAY_MS
                    )
                device_rows.append(device_row(rng, account_id, last_seen))
            await bulk.insert("devices", DEVICE_COLUMNS, device_rows)
            await bulk.insert("usage_daily", USAGE_COLUMNS, usage_rows)
            await bulk.insert("safety_verdicts", VERDICT_COLUMNS, verdict_rows)
            counts["devices"] += len(device_rows)
            counts["usage_daily"] += len(usage_rows)
            counts["safety_verdicts"] += len(verdict_rows)
            done += len(batch)
            rows = counts["devices"] + counts["usage_daily"] + counts["safety_verdicts"]
            progress.update(task, completed=done, rate=f"{rows / (time.perf_counter() - started):,.0f} rows/s")
    phones = await phone_numbers(engine, [a for a, _, _ in active_bans])
    await bulk.insert(
        "banned_numbers", BANNED_NUMBER_COLUMNS, [(phones[a], reason, t, a) for a, reason, t in active_bans]
    )
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "devices": counts["devices"],
        "usage_rows": counts["usage_daily"],
        "usage_days": args.usage_days,
        "verdicts": counts["safety_verdicts"],
        "banned": len(active_bans),
        "lifted": counts["safety_verdicts"] - len(active_bans),
    }, judged


async def phone_numbers(engine: AsyncEngine, ids: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    async with engine.connect() as conn:
        for part in chunks(ids, IN_CHUNK):
            rows = await conn.execute(select(accounts.c.id, accounts.c.phone_number).where(accounts.c.id.in_(part)))
            found.update({r.id: r.phone_number for r in rows})
    return found


async def postgres_mb(engine: AsyncEngine) -> float | None:
    if engine.dialect.name != "postgresql":
        return None
    async with engine.connect() as conn:
        size = (await conn.execute(text("SELECT pg_database_size(current_database())"))).scalar_one()
    return round(size / 2**20, 1)


# Step 3: the changes ---------------------------------------------------------------------------------------------
@dataclass
class Step:
    fraction: float
    accounts: dict[str, list[str]]  # kind of change -> accounts
    tracked: list[str]  # followed through the replica

    @property
    def changed(self) -> int:
        return sum(len(v) for v in self.accounts.values())


class Picker:
    """Random accounts from a pool, each at most once over the whole run."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.taken: set[str] = set()

    def draw(self, pool: Sequence[str], count: int, allowed: Callable[[str], bool] = lambda _: True) -> list[str]:
        out: list[str] = []
        attempts = 0
        while pool and len(out) < count and attempts < 50 * count + 1000:
            attempts += 1
            account_id = pool[self.rng.randrange(len(pool))]
            if account_id not in self.taken and allowed(account_id):
                self.taken.add(account_id)
                out.append(account_id)
        return out


def split(total: int, mix: dict[str, float]) -> dict[str, int]:
    """``total`` shared out by ``mix``, largest remainders first."""
    exact = {kind: total * weight for kind, weight in mix.items()}
    counts = {kind: int(value) for kind, value in exact.items()}
    for kind in sorted(exact, key=lambda k: exact[k] - counts[k], reverse=True)[: total - sum(counts.values())]:
        counts[kind] += 1
    return counts


async def plan_changes(
    engine: AsyncEngine,
    args: argparse.Namespace,
    policy: Policy,
    ids: list[str],
    judged: dict[str, bool],
    rng: random.Random,
) -> list[Step]:
    """Choose every step's accounts before the full export, so the replica can follow them from the start."""
    async with engine.connect() as conn:
        ads_in = (
            (
                await conn.execute(
                    select(consent_purposes.c.account_id)
                    .where(
                        consent_purposes.c.policy_version == policy.version,
                        consent_purposes.c.purpose_id == CHANGED_PURPOSE,
                        consent_purposes.c.choice == "in",
                    )
                    .order_by(consent_purposes.c.account_id)
                )
            )
            .scalars()
            .all()
        )
        adults = (
            (
                await conn.execute(
                    select(consent_accounts.c.account_id)
                    .where(
                        consent_accounts.c.policy_version == policy.version, consent_accounts.c.age_bracket == "adult"
                    )
                    .order_by(consent_accounts.c.account_id)
                )
            )
            .scalars()
            .all()
        )
    opted_in = set(ads_in)
    picker = Picker(rng)
    pools: dict[str, tuple[Sequence[str], Callable[[str], bool]]] = {
        "device": (ids, lambda a: a not in judged),  # a banned account is logged out
        "usage": (ids, lambda a: a not in judged),
        "withdraw": (ads_in, lambda a: True),
        "opt_in": (adults, lambda a: a not in opted_in and a not in judged),
        "ban": (ids, lambda a: a not in judged),
        "reban": ([a for a, on in judged.items() if on], lambda a: True),
        "delete": (ids, lambda a: True),
    }
    steps = []
    for fraction in args.changes:
        wanted = split(max(1, round(fraction * len(ids))), CHANGE_MIX)
        chosen = {kind: picker.draw(pools[kind][0], n, pools[kind][1]) for kind, n in wanted.items()}
        special = chosen["ban"] + chosen["reban"] + chosen["delete"]
        rest = [a for kind, part in chosen.items() if kind not in ("ban", "reban", "delete") for a in part]
        tracked = special + rng.sample(rest, min(TRACKED_PER_STEP, len(rest)))
        steps.append(Step(fraction, chosen, tracked))
    return steps


async def apply_changes(
    engine: AsyncEngine, hooks: Hooks, step: Step, policy: Policy, since_ms: int, rng: random.Random
) -> dict:
    """Write the step's changes, each stamped after ``since_ms`` (the exports before) and before now."""
    await asyncio.sleep(max(0, since_ms + 3 - now_ms()) / 1000)
    until = now_ms()

    def stamp() -> int:
        return rng.randrange(since_ms + 1, until)

    kinds = step.accounts
    started = time.perf_counter()
    phones = await phone_numbers(engine, kinds["delete"])
    async with engine.begin() as conn:
        if kinds["device"]:
            await conn.execute(
                update(devices)
                .where(devices.c.account_id == bindparam("k_id"), devices.c.device_id == 1)
                .values(app_version=NEW_APP_VERSION, last_seen_at_ms=bindparam("k_t"), updated_at_ms=bindparam("k_t")),
                [{"k_id": a, "k_t": stamp()} for a in kinds["device"]],
            )
        await report_usage(conn, kinds["usage"], stamp, rng)
        if kinds["withdraw"]:
            await conn.execute(
                update(consent_purposes)
                .where(
                    consent_purposes.c.account_id == bindparam("k_id"),
                    consent_purposes.c.policy_version == policy.version,
                    consent_purposes.c.purpose_id == CHANGED_PURPOSE,
                )
                .values(choice="out", method="withdraw", chosen_at_ms=bindparam("k_t")),
                [{"k_id": a, "k_t": stamp()} for a in kinds["withdraw"]],
            )
        await opt_in(conn, kinds["opt_in"], policy, stamp)
        await ban(conn, kinds["ban"], stamp, rng)
        if kinds["reban"]:
            graver = case((safety_verdicts.c.reason_code == GRAVER, "impersonation"), else_=GRAVER)
            await conn.execute(
                update(safety_verdicts)
                .where(safety_verdicts.c.account_id == bindparam("k_id"))
                .values(reason_code=graver, updated_at_ms=bindparam("k_t")),
                [{"k_id": a, "k_t": stamp()} for a in kinds["reban"]],
            )
            graver = case((banned_numbers.c.reason_code == GRAVER, "impersonation"), else_=GRAVER)
            await conn.execute(
                update(banned_numbers).where(banned_numbers.c.account_id.in_(kinds["reban"])).values(reason_code=graver)
            )
        for account_id in kinds["delete"]:  # as cove.accounts.deletion.delete_account, with the app's handlers
            await deletion.delete_rows(conn, account_id, phones[account_id])
            await hooks.in_transaction(conn, AccountDeleted(account_id, stamp()))
    return {
        "changed": step.changed,
        "kinds": {k: len(v) for k, v in kinds.items()},
        "seconds": time.perf_counter() - started,
    }


async def report_usage(conn: AsyncConnection, ids: list[str], stamp: Callable[[], int], rng: random.Random) -> None:
    """Today's counters grow, or today's row appears, as a usage report from the app would do."""
    reports = [(a, stamp()) for a in ids]
    existing: set[tuple[str, int]] = set()
    for part in chunks(ids, IN_CHUNK):
        rows = await conn.execute(
            select(usage_daily.c.account_id, usage_daily.c.day).where(usage_daily.c.account_id.in_(part))
        )
        existing.update((r.account_id, r.day) for r in rows)
    grown = [(a, t) for a, t in reports if (a, t // DAY_MS) in existing]
    new = [(a, t) for a, t in reports if (a, t // DAY_MS) not in existing]
    c = usage_daily.c
    if grown:
        await conn.execute(
            update(usage_daily)
            .where(c.account_id == bindparam("k_id"), c.day == bindparam("k_day"))
            .values(
                messages_sent=c.messages_sent + bindparam("k_sent"),
                messages_received=c.messages_received + bindparam("k_received"),
                app_opens=c.app_opens + 1,
                updated_at_ms=bindparam("k_t"),
            ),
            [
                {
                    "k_id": a,
                    "k_day": t // DAY_MS,
                    "k_sent": 1 + rng.randrange(20),
                    "k_received": rng.randrange(30),
                    "k_t": t,
                }
                for a, t in grown
            ],
        )
    if new:
        await conn.execute(
            insert(usage_daily),
            [dict(zip(USAGE_COLUMNS, (a, t // DAY_MS, *usage_counts(rng), t), strict=True)) for a, t in new],
        )


async def opt_in(conn: AsyncConnection, ids: list[str], policy: Policy, stamp: Callable[[], int]) -> None:
    """Adults turning ads on: their undecided (no row) or 'out' choice becomes 'in'."""
    c = consent_purposes.c
    decided: set[str] = set()
    for part in chunks(ids, IN_CHUNK):
        rows = await conn.execute(
            select(c.account_id).where(
                c.account_id.in_(part), c.policy_version == policy.version, c.purpose_id == CHANGED_PURPOSE
            )
        )
        decided.update(rows.scalars())
    values = {"choice": "in", "method": "opt_in", "chosen_at_ms": bindparam("k_t")}
    if decided:
        await conn.execute(
            update(consent_purposes)
            .where(
                c.account_id == bindparam("k_id"), c.policy_version == policy.version, c.purpose_id == CHANGED_PURPOSE
            )
            .values(values),
            [{"k_id": a, "k_t": stamp()} for a in ids if a in decided],
        )
    fresh = [a for a in ids if a not in decided]
    if fresh:
        await conn.execute(
            insert(consent_purposes),
            [
                {
                    "account_id": a,
                    "policy_version": policy.version,
                    "purpose_id": CHANGED_PURPOSE,
                    "choice": "in",
                    "chosen_at_ms": stamp(),
                    "method": "opt_in",
                    "objected_at_ms": None,
                }
                for a in fresh
            ],
        )


async def ban(conn: AsyncConnection, ids: list[str], stamp: Callable[[], int], rng: random.Random) -> None:
    if not ids:
        return
    phones: dict[str, str] = {}
    for part in chunks(ids, IN_CHUNK):
        rows = await conn.execute(select(accounts.c.id, accounts.c.phone_number).where(accounts.c.id.in_(part)))
        phones.update({r.id: r.phone_number for r in rows})
    bans = [(a, pick(rng, REASONS), stamp()) for a in ids]
    await conn.execute(
        insert(safety_verdicts),
        [dict(zip(VERDICT_COLUMNS, (a, reason, t, None, t), strict=True)) for a, reason, t in bans],
    )
    await conn.execute(
        insert(banned_numbers),
        [dict(zip(BANNED_NUMBER_COLUMNS, (phones[a], reason, t, a), strict=True)) for a, reason, t in bans],
    )


# Measuring an export ---------------------------------------------------------------------------------------------
PHASES = (
    "_assign_ordinals",
    "_held",
    "Snapshot.read",  # the reader process: scope and table scans on several connections, one snapshot
    "Reader._people",  # DuckDB: every purpose's consent clause in one pass, joins, pseudonyms
    "Reader.select",  # DuckDB: each purpose's rows and columns
    "_revocation_reasons",
    "_write_files",  # Parquet (zstd), two files at a time
)


class Phases:
    """Wall time spent in the gateway's steps: its functions wrapped with timers (none of them nests another)."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()
        self.reader: dict[str, float] = {}  # the last snapshot's seconds per statement, in the reader process
        self._undo: list[tuple[Any, str, Any]] = []

    def install(self) -> None:
        for name in PHASES:
            owner_name, _, attr = name.rpartition(".")
            owner = getattr(gateway, owner_name) if owner_name else gateway
            original = getattr(owner, attr, None)
            if original is not None:  # a phase the gateway no longer has is simply not reported
                setattr(owner, attr, self._timed(name, original))
                self._undo.append((owner, attr, original))

    def uninstall(self) -> None:
        for owner, attr, original in reversed(self._undo):
            setattr(owner, attr, original)
        self._undo.clear()

    def _timed(self, name: str, fn: Callable) -> Callable:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await fn(*args, **kwargs)
                finally:
                    self.seconds[name] += time.perf_counter() - started

            return timed_async

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started
                if name == "Snapshot.read":
                    self.reader = dict(args[0].seconds)

        return timed


class PeakRss:
    """The process's peak RSS while inside the block, sampled every 20 ms on a thread."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._stop = threading.Event()
        self.start = self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


async def timed_export(
    engine: AsyncEngine, keys: SharingKeys, recipient: str, outbox: Path, since: str | None, phases: Phases
) -> tuple[gateway.ExportResult, dict[str, Any]]:
    me = psutil.Process()
    phases.seconds.clear()
    phases.reader = {}
    at = now_ms()
    cpu0, started = cpu_seconds(me), time.perf_counter()
    with PeakRss() as rss:
        result = await gateway.export(engine, keys, recipient, outbox, since_batch=since, at_ms=at)
    seconds = time.perf_counter() - started
    cpu = cpu_seconds(me) - cpu0
    manifest = result.manifest
    usage_rows = sum(p.usage.rows for p in manifest.purposes if p.usage is not None)
    timed = {name: round(s, 3) for name, s in phases.seconds.items()}
    return result, {
        "recipient": recipient,
        "batch_id": manifest.batch_id,
        "kind": manifest.kind,
        "as_of_ms": at,
        "seconds": round(seconds, 3),
        "rows": result.total_rows,
        "profile_rows": result.total_rows - usage_rows,
        "usage_rows": usage_rows,
        "rows_per_purpose": dict(result.rows),
        "rows_per_s": round(result.total_rows / seconds) if seconds else None,
        "revocations": manifest.revocations.rows,
        "cpu_s": round(cpu, 3),
        "cpu_percent": round(cpu / seconds * 100, 1) if seconds else None,
        "rss_start_mb": round(rss.start / 2**20, 1),
        "rss_peak_mb": round(rss.peak / 2**20, 1),
        "bytes_written": sum(f.stat().st_size for f in result.path.iterdir()),
        "phases_s": timed | {"other": round(seconds - sum(phases.seconds.values()), 3)},
        "reader_s": {name: round(s, 3) for name, s in phases.reader.items()},
    }


# Checking a batch ------------------------------------------------------------------------------------------------
def verify_batch(
    result: gateway.ExportResult, keys: SharingKeys, expected_purposes: list[str], previous: str | None
) -> dict[str, Any]:
    """What a recipient checks before applying a batch, and what the manifest promises about its files."""
    problems: list[str] = []
    path = result.path
    data = (path / wire.MANIFEST_FILE).read_bytes()
    signature = (path / wire.SIGNATURE_FILE).read_text()
    public = keys.signing_key.public_key()
    try:
        manifest = wire.verify_manifest(public, data, signature)
    except wire.BadBatch as exc:
        return {"problems": [f"manifest rejected: {exc.code}: {exc}"], "verdict": verdict(False)}
    tampered = data.replace(b'"rows":', b'"rows":1', 1)
    try:
        wire.verify_manifest(public, tampered, signature)
        problems.append("a tampered manifest verified")
    except wire.BadBatch:
        pass
    if manifest != result.manifest:
        problems.append("the manifest on disk is not the one export() returned")
    if manifest.previous_batch_id != previous:
        problems.append(f"previous_batch_id {manifest.previous_batch_id} is not {previous}")
    if sorted(p.id for p in manifest.purposes) != sorted(expected_purposes):
        problems.append(f"purposes {[p.id for p in manifest.purposes]}, expected {expected_purposes}")
    for entry in manifest.files():
        file = path / entry.name
        if not file.exists():
            problems.append(f"{entry.name}: missing")
            continue
        if wire.file_sha256(file) != entry.sha256:
            problems.append(f"{entry.name}: SHA-256 differs from the manifest's")
        if pq.ParquetFile(file).metadata.num_rows != entry.rows:
            problems.append(f"{entry.name}: row count differs from the manifest's")
    listed = {e.name for e in manifest.files()} | {wire.MANIFEST_FILE, wire.SIGNATURE_FILE}
    problems += [f"{f.name}: not in the manifest" for f in path.iterdir() if f.name not in listed]
    for purpose in manifest.purposes:
        table = pq.read_table(path / purpose.profile.name)
        columns = wire.profile_columns(purpose.categories, purpose.pseudonymised)
        if table.schema != wire.profile_schema(purpose.categories, purpose.pseudonymised):
            problems.append(f"{purpose.profile.name}: columns {table.column_names}, declared {columns}")
        if pc.count_distinct(table["subject"]).as_py() != table.num_rows:
            problems.append(f"{purpose.profile.name}: a subject appears twice")
        if purpose.usage is not None and pq.read_schema(path / purpose.usage.name) != wire.USAGE_SCHEMA:
            problems.append(f"{purpose.usage.name}: not the usage schema")
        rows = purpose.profile.rows + (purpose.usage.rows if purpose.usage else 0)
        if result.rows.get(purpose.id) != rows:
            problems.append(f"{purpose.id}: export() counted {result.rows.get(purpose.id)} rows, the files {rows}")
    if pq.read_schema(path / manifest.revocations.name) != wire.REVOCATION_SCHEMA:
        problems.append("revocations: not the revocation schema")
    return {"problems": problems, "verdict": verdict(not problems)}


def recipient_purposes(policies: list[Policy], recipient: str) -> dict[str, Purpose]:
    """Each purpose naming the recipient, as its newest version declares it."""
    found: dict[str, Purpose] = {}
    for policy in sorted(policies, key=lambda p: p.effective):
        found.update({p.id: p for p in policy.purposes if recipient in p.recipients})
    return found


def ban_rule(purpose: Purpose) -> bool | None:
    """True: banned accounts only; False: accounts in good standing only; None: either."""
    if DataCategory.SAFETY_VERDICTS in purpose.data_categories:
        return True
    return None if purpose.use.value == "safety" else False


async def count_expected(
    conn: AsyncConnection, policies: list[Policy], recipient: str, at: int
) -> dict[str, dict[str, int]]:
    """Rows a full batch must hold per purpose, counted in SQL: permitted, existing, and the ban rule."""
    banned = select(safety_verdicts.c.account_id).where(safety_verdicts.c.lifted_at_ms.is_(None))
    counts = {}
    for purpose_id, purpose in recipient_purposes(policies, recipient).items():
        ids = select(accounts.c.id).where(accounts.c.id.in_(permitted_accounts(policies, purpose_id, recipient)))
        rule = ban_rule(purpose)
        if rule is not None:
            ids = ids.where(accounts.c.id.in_(banned) if rule else accounts.c.id.not_in(banned))
        profile = (await conn.execute(select(func.count()).select_from(ids.subquery()), {"at_ms": at})).scalar_one()
        usage = 0
        if DataCategory.USAGE_COUNTERS in purpose.data_categories:
            query = select(func.count()).select_from(usage_daily).where(usage_daily.c.account_id.in_(ids))
            usage = (await conn.execute(query, {"at_ms": at})).scalar_one()
        counts[purpose_id] = {"profile": profile, "usage": usage}
    return counts


@dataclass
class Replica:
    """What a recipient holds about the tracked accounts, kept up to date from each batch as the recipient would."""

    recipient: str
    subjects: dict[str, str]  # subject -> account id, for the tracked accounts
    profile: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: defaultdict(dict))
    usage: dict[str, dict[str, dict[date, tuple]]] = field(default_factory=lambda: defaultdict(dict))

    def _tracked(self, table: pa.Table) -> list[dict[str, Any]]:
        mask = pc.is_in(table["subject"], value_set=pa.array(list(self.subjects), pa.string()))
        return table.filter(mask).to_pylist()

    def apply(self, path: Path, manifest: wire.Manifest) -> dict[str, Any]:
        """Upsert the rows, delete what is revoked; returns the revocations by reason and the erasure ids."""
        for purpose in manifest.purposes:
            for row in self._tracked(pq.read_table(path / purpose.profile.name)):
                self.profile[purpose.id][row.pop("subject")] = row
            if purpose.usage is not None:
                for row in self._tracked(pq.read_table(path / purpose.usage.name)):
                    held = self.usage[purpose.id].setdefault(row["subject"], {})
                    held[row["day"]] = (row["messages_sent"], row["messages_received"], row["app_opens"])
        revocations = pq.read_table(path / manifest.revocations.name)
        for row in self._tracked(revocations):
            purposes = [row["purpose"]] if row["purpose"] is not None else list(self.profile | self.usage)
            for purpose_id in purposes:
                self.profile[purpose_id].pop(row["subject"], None)
                self.usage[purpose_id].pop(row["subject"], None)
        reasons = revocations["reason"].to_pylist()
        erased = [e for e, r in zip(revocations["event_id"].to_pylist(), reasons, strict=True) if r == "erased"]
        return {"by_reason": dict(Counter(reasons)), "erasures": erased}


async def account_state(conn: AsyncConnection, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """What the database holds for each account that still exists: the values its rows must carry."""
    state: dict[str, dict[str, Any]] = {}
    for part in chunks(ids, IN_CHUNK):
        joined = accounts.join(devices, (devices.c.account_id == accounts.c.id) & (devices.c.device_id == 1))
        d = devices.c
        query = select(
            accounts.c.id,
            accounts.c.phone_number,
            accounts.c.created_at_ms,
            d.last_seen_at_ms,
            d.device_model,
            d.os_name,
            d.os_version,
            d.app_version,
            d.vendor_device_id,
        ).select_from(joined)
        for r in await conn.execute(query.where(accounts.c.id.in_(part))):
            state[r.id] = {
                "phone": r.phone_number,
                "account_created_day": as_date(r.created_at_ms),
                "last_seen_day": as_date(r.last_seen_at_ms),
                "device_model": r.device_model,
                "os_name": r.os_name,
                "os_version": r.os_version,
                "app_version": r.app_version,
                "vendor_device_id": r.vendor_device_id,
                "reason_code": None,
                "banned_day": None,
                "banned": False,
                "usage": {},
            }
        rows = await conn.execute(
            select(safety_verdicts).where(
                safety_verdicts.c.account_id.in_(part), safety_verdicts.c.lifted_at_ms.is_(None)
            )
        )
        for r in rows:
            if r.account_id in state:
                state[r.account_id] |= {
                    "reason_code": r.reason_code,
                    "banned_day": as_date(r.banned_at_ms),
                    "banned": True,
                }
        for r in await conn.execute(select(usage_daily).where(usage_daily.c.account_id.in_(part))):
            if r.account_id in state:
                state[r.account_id]["usage"][EPOCH + timedelta(days=r.day)] = (
                    r.messages_sent,
                    r.messages_received,
                    r.app_opens,
                )
    return state


async def check_replica(
    engine: AsyncEngine, keys: SharingKeys, replica: Replica, ids: Sequence[str], at: int
) -> dict[str, Any]:
    """Each tracked account in each purpose: held iff the pure decision permits it (and the ban rule), and then with
    the database's values."""
    recipient = replica.recipient
    phone_key = keys.phone_key(recipient)
    checks = agree = 0
    disagreements: list[dict[str, Any]] = []
    subject_of = {account_id: subject for subject, account_id in replica.subjects.items()}
    started = time.perf_counter()
    async with engine.connect() as conn:
        policies = await load_policies(conn)
        purposes = recipient_purposes(policies, recipient)
        state = await account_state(conn, ids)
        for account_id in ids:
            consent = await load_consent(conn, account_id)
            alive = state.get(account_id)
            subject = subject_of[account_id]
            for purpose_id, purpose in purposes.items():
                allowed = alive is not None and any(permitted(p, consent, purpose_id, recipient, at) for p in policies)
                rule = ban_rule(purpose)
                if allowed and rule is not None:
                    allowed = alive["banned"] == rule
                held = replica.profile[purpose_id].get(subject)
                usage = replica.usage[purpose_id].get(subject, {})
                problem = None
                if not allowed:
                    if held is not None or usage:
                        problem = "held but not permitted"
                elif held is None:
                    problem = "permitted but not held"
                else:
                    expected = alive | {
                        "phone_hash": wire.phone_hash(phone_key, alive["phone"]),
                        "phone_number": alive["phone"],
                    }
                    wrong = {k: (v, expected.get(k)) for k, v in held.items() if v != expected.get(k)}
                    if wrong:
                        problem = f"wrong values (held, expected): {wrong}"
                    elif DataCategory.USAGE_COUNTERS in purpose.data_categories and usage != alive["usage"]:
                        problem = f"usage rows {usage}, expected {alive['usage']}"
                checks += 1
                if problem is None:
                    agree += 1
                elif len(disagreements) < 5:
                    disagreements.append({"account_id": account_id, "purpose": purpose_id, "problem": str(problem)})
    return {
        "accounts": len(ids),
        "checks": checks,
        "agree": agree,
        "seconds": round(time.perf_counter() - started, 2),
        "disagreements": disagreements,
        "verdict": verdict(checks > 0 and agree == checks),
    }


async def acknowledge(engine: AsyncEngine, recipient: str, batch_id: str, erasures: list[str]) -> int:
    ack = wire.Ack(recipient=recipient, batch_id=batch_id, applied_at_ms=now_ms(), erasures=erasures)
    return await erasure.apply_acks(engine, [ack])


# The run -------------------------------------------------------------------------------------------------------
@dataclass
class Recipient:
    id: str
    replica: Replica
    purposes: list[str]
    last_batch: str | None = None
    last_at: int = 0
    full: dict[str, Any] = field(default_factory=dict)


async def export_and_check(
    engine: AsyncEngine,
    keys: SharingKeys,
    who: Recipient,
    outbox: Path,
    phases: Phases,
    tracked: Sequence[str],
    full: bool,
) -> dict[str, Any]:
    result, figures_ = await timed_export(engine, keys, who.id, outbox, None if full else who.last_batch, phases)
    figures_["verify"] = verify_batch(result, keys, who.purposes, who.last_batch)
    applied = who.replica.apply(result.path, result.manifest)
    figures_["revocations_by_reason"] = applied["by_reason"]
    figures_["erasures"] = len(applied["erasures"])
    figures_["erasures_acknowledged"] = await acknowledge(engine, who.id, result.manifest.batch_id, applied["erasures"])
    at = result.manifest.as_of_ms
    figures_["replica"] = await check_replica(engine, keys, who.replica, tracked, at)
    if full:
        async with engine.connect() as conn:
            expected = await count_expected(conn, await load_policies(conn), who.id, at)
        written = {
            p.id: {"profile": p.profile.rows, "usage": p.usage.rows if p.usage else 0} for p in result.manifest.purposes
        }
        figures_["counts"] = {"expected": expected, "written": written, "verdict": verdict(expected == written)}
    who.last_batch, who.last_at = result.manifest.batch_id, at
    return figures_


def fit(points: list[tuple[int, float]]) -> dict[str, float] | None:
    """Least squares: seconds = fixed + per_change x changed accounts."""
    if len({x for x, _ in points}) < 2:
        return None
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    return {"fixed_s": round(my - slope * mx, 3), "per_change_ms": round(slope * 1000, 4)}


async def run(args: argparse.Namespace, url: str, work: Path, console: Console) -> dict[str, Any]:
    rng = random.Random(args.seed)
    result: dict[str, Any] = {
        "command": command(),
        "machine": machine(),
        "settings": {
            "database": "postgresql" if args.database_url else "sqlite (fresh file)",
            "accounts": args.accounts,
            "usage_days": args.usage_days,
            "changes": args.changes,
            "sample": args.sample,
            "seed": args.seed,
        },
    }
    engine = create_engine(url)
    # The relay's own AccountDeleted handlers, wired as the app wires them (nothing is started).
    hooks = build_relay(Settings(database_url=url, secret_key="bench"), engine).hooks
    bulk = BulkWriter(url, engine)
    phases = Phases()
    phases.install()
    try:
        await migrate(engine)
        existing = await count_rows(engine)
        if existing.get("accounts") or existing.get("consent_policies"):
            raise SystemExit("bench: the database must be empty (it holds accounts or policies)")

        ids, generated = await generate_accounts(args, bulk, rng, console)
        policy = load_policy(POLICY_FILE)
        await service.publish(engine, policy)
        generated["policy"] = (
            f"{POLICY_FILE.relative_to(ROOT)} (version {policy.version}, effective {policy.effective:%Y-%m-%d})"
        )
        generated["consent"] = await fill_consent(bulk, ids, policy, rng, console)
        generated["activity"], judged = await fill_activity(args, engine, bulk, ids, rng, console)
        bulk.close()  # everything is written: checkpoint the WAL
        if engine.dialect.name == "postgresql":
            async with engine.begin() as conn:
                await conn.execute(text("ANALYZE"))
        generated["database_mb"] = database_mb(url, engine) or await postgres_mb(engine)
        result["generate"] = generated

        steps = await plan_changes(engine, args, policy, ids, judged, rng)
        sample = rng.sample(ids, min(args.sample, len(ids)))
        del ids
        tracked = list(dict.fromkeys(sample + [a for s in steps for a in s.tracked]))
        keys = SharingKeys.load_or_create(work / "data")
        async with engine.connect() as conn:
            policies = await load_policies(conn)
        recipients = [
            Recipient(
                r,
                Replica(r, {keys.subject(r, a): a for a in tracked}),
                list(recipient_purposes(policies, r)),
            )
            for r in RECIPIENTS
        ]
        outbox = work / "outbox"

        for who in recipients:
            console.print(f"full export for {who.id} ...")
            who.full = await export_and_check(engine, keys, who, outbox / who.id, phases, tracked, full=True)
            console.print(
                f"  {who.full['rows']:,} rows in {who.full['seconds']:.2f} s ({who.full['rows_per_s']:,} rows/s); "
                f"files {who.full['verify']['verdict']}, counts {who.full['counts']['verdict']}, "
                f"sample {who.full['replica']['verdict']}"
            )
        result["full"] = {who.id: who.full for who in recipients}

        result["incremental"] = []
        for n, step in enumerate(steps, 1):
            since = max(who.last_at for who in recipients)
            changes = await apply_changes(engine, hooks, step, policy, since, rng)
            console.print(f"step {n}: {step.changed:,} accounts changed ({step.fraction:.2%}); incremental exports ...")
            exports = {}
            for who in recipients:
                exports[who.id] = out = await export_and_check(
                    engine, keys, who, outbox / who.id, phases, tracked, full=False
                )
                out["share_of_full"] = share(out["seconds"], who.full["seconds"])
                out["seconds_per_change_ms"] = round(out["seconds"] / step.changed * 1000, 3) if step.changed else None
                console.print(
                    f"  {who.id}: {out['rows']:,} rows, {out['revocations']:,} revocations in {out['seconds']:.2f} s "
                    f"({out['share_of_full']:.1%} of the full export); replica {out['replica']['verdict']}"
                )
                for problem in out["verify"]["problems"] + out["replica"]["disagreements"][:2]:
                    console.print(f"    problem: {problem}", markup=False, highlight=False)
            result["incremental"].append(
                {
                    "fraction": step.fraction,
                    "changed": step.changed,
                    "kinds": changes["kinds"],
                    "tracked": len(step.tracked),
                    "exports": exports,
                }
            )

        if args.profile:
            console.print("profiling one more full export for parent ...")
            result["profile"] = await profile_export(engine, keys, outbox / "profile")
    finally:
        phases.uninstall()
        bulk.close()
        await engine.dispose()
    result["verdicts"] = verdicts(result)
    return result


async def profile_export(engine: AsyncEngine, keys: SharingKeys, outbox: Path) -> dict[str, Any]:
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    exported = await gateway.export(engine, keys, "parent", outbox)
    profiler.disable()
    seconds = time.perf_counter() - started
    stats = pstats.Stats(profiler)
    top = []
    for (file, line, name), (_, calls, tottime, cumtime, _) in stats.stats.items():
        top.append(
            {"function": f"{Path(file).name}:{line}({name})", "calls": calls, "tottime": tottime, "cumtime": cumtime}
        )
    rounded = [t | {"tottime": round(t["tottime"], 3), "cumtime": round(t["cumtime"], 3)} for t in top]
    return {
        "seconds": round(seconds, 3),
        "rows": exported.total_rows,
        "top_tottime": sorted(rounded, key=lambda t: t["tottime"], reverse=True)[:25],
        "top_cumtime": sorted(rounded, key=lambda t: t["cumtime"], reverse=True)[:25],
    }


def verdicts(result: dict[str, Any]) -> dict[str, Any]:
    full = result["full"]
    out: dict[str, Any] = {
        f"full_{r}": verdict(f["rows_per_s"] is not None and f["rows_per_s"] >= TARGET_ROWS_PER_S)
        for r, f in full.items()
    }
    checks = [f for f in full.values()] + [e for s in result["incremental"] for e in s["exports"].values()]
    out["correctness"] = verdict(
        all(c["verify"]["verdict"] == "PASS" and c["replica"]["verdict"] == "PASS" for c in checks)
        and all(f["counts"]["verdict"] == "PASS" for f in full.values())
    )
    steps = sorted(result["incremental"], key=lambda s: s["fraction"])
    result["fits"] = {}
    for recipient in full:
        seconds = [s["exports"][recipient]["seconds"] for s in steps]
        result["fits"][recipient] = fit([(s["changed"], s["exports"][recipient]["seconds"]) for s in steps])
        if not seconds:
            continue
        small = seconds[0] <= TARGET_SMALL_SHARE * full[recipient]["seconds"]
        grows = len(seconds) < 2 or seconds[-1] > seconds[0]
        out[f"incremental_{recipient}"] = verdict(small and grows)
    return out


# The report -----------------------------------------------------------------------------------------------------
def print_report(result: dict[str, Any]) -> None:
    console = report_console(result, width=160)
    s = result["settings"]
    console.print(
        f"[bold]settings[/bold] {s['database']}, {s['accounts']:,} accounts, usage over {s['usage_days']} days, "
        f"changes {', '.join(f'{c:.2%}' for c in s['changes'])}, sample {s['sample']:,}, seed {s['seed']}",
        soft_wrap=True,
    )
    g = result["generate"]
    c, a = g["consent"], g["activity"]
    console.print(
        f"[bold]population[/bold] {g['accounts']:,} accounts ({g['seconds']} s); {g['policy']}; "
        f"{c['consent_accounts']:,} accepted ({c['adults']:,} adults), {c['consent_purposes']:,} choice rows; "
        f"{a['devices']:,} devices, {a['usage_rows']:,} usage rows, {a['banned']:,} banned + {a['lifted']:,} lifted "
        f"({a['seconds']} s); database {g['database_mb'] if g['database_mb'] is not None else '-'} MB",
        soft_wrap=True,
    )
    console.print(f"consent mix: {mix_line(c['mix'])}", soft_wrap=True)

    full = result["full"]
    table = Table(title="full exports", title_justify="left")
    for name in (
        "recipient",
        "rows (profile + usage)",
        "seconds",
        "rows/s",
        "CPU s",
        "CPU %",
        "RSS start / peak MB (+export)",
        "MB written",
        "files",
        "counts",
        "sample",
        "verdict",
    ):
        table.add_column(
            name, justify="left" if name in ("recipient", "files", "counts", "sample", "verdict") else "right"
        )
    for r, f in full.items():
        x = f["replica"]
        table.add_row(
            r,
            f"{f['rows']:,} ({f['profile_rows']:,} + {f['usage_rows']:,})",
            f"{f['seconds']:.2f}",
            f"{f['rows_per_s']:,}",
            f"{f['cpu_s']:.2f}",
            f"{f['cpu_percent']}",
            f"{f['rss_start_mb']:,} / {f['rss_peak_mb']:,} (+{f['rss_peak_mb'] - f['rss_start_mb']:,.1f})",
            f"{f['bytes_written'] / 2**20:.1f}",
            f["verify"]["verdict"],
            f["counts"]["verdict"],
            f"{x['agree']:,}/{x['checks']:,}",
            result["verdicts"][f"full_{r}"],
        )
    console.print(table)
    table = Table(title="full exports: rows per purpose (written / counted in SQL)", title_justify="left")
    for name in ("recipient", "purpose", "profile rows", "usage rows"):
        table.add_column(name, justify="left" if name in ("recipient", "purpose") else "right")
    for r, f in full.items():
        for pid, w in f["counts"]["written"].items():
            e = f["counts"]["expected"].get(pid, {})
            table.add_row(
                r, pid, f"{w['profile']:,} / {e.get('profile', 0):,}", f"{w['usage']:,} / {e.get('usage', 0):,}"
            )
    console.print(table)

    steps = result["incremental"]
    table = Table(title="changes before each incremental export", title_justify="left")
    kinds = list(CHANGE_MIX)
    for name in ("fraction", "changed", *kinds, "followed in the replica"):
        table.add_column(name, justify="right")
    for step in steps:
        table.add_row(
            f"{step['fraction']:.2%}",
            f"{step['changed']:,}",
            *(f"{step['kinds'].get(k, 0):,}" for k in kinds),
            f"{step['tracked']:,}",
        )
    console.print(table)
    table = Table(title="incremental exports", title_justify="left")
    for name in (
        "changes",
        "recipient",
        "seconds",
        "of full",
        "ms per change",
        "rows",
        "revocations",
        "erasures",
        "replica",
        "CPU s",
    ):
        table.add_column(name, justify="left" if name in ("recipient", "replica", "changes") else "right")
    for step in steps:
        for n, (r, e) in enumerate(step["exports"].items()):
            reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(e["revocations_by_reason"].items()) if k != "erased")
            x = e["replica"]
            table.add_row(
                f"{step['fraction']:.2%} ({step['changed']:,})" if n == 0 else "",
                r,
                f"{e['seconds']:.2f}",
                f"{e['share_of_full']:.1%}",
                f"{e['seconds_per_change_ms']}",
                f"{e['rows']:,}",
                f"{e['revocations'] - e['erasures']:,}" + (f" ({reasons})" if reasons else ""),
                f"{e['erasures']:,} ({e['erasures_acknowledged']:,} acked)",
                f"{x['verdict']} {x['agree']:,}/{x['checks']:,}",
                f"{e['cpu_s']:.2f}",
            )
    console.print(table)
    for r, f in result["fits"].items():
        if f:
            console.print(f"fit {r}: seconds = {f['fixed_s']} + {f['per_change_ms']} ms x changed accounts")

    exports = [(f"full {r}", f) for r, f in full.items()] + [
        (f"{s['fraction']:.2%} {r}", e) for s in steps for r, e in s["exports"].items()
    ]
    seen = {n for _, e in exports for n in e["phases_s"]}
    names = [n for n in (*PHASES, "other") if n in seen]
    table = Table(title="where the time goes (wall seconds per gateway phase)", title_justify="left")
    table.add_column("phase", no_wrap=True)
    for label, _ in exports:
        table.add_column(label, justify="right")
    statements = list(dict.fromkeys(n for _, e in exports for n in e.get("reader_s", {})))
    for name in names:
        table.add_row(name, *(f"{e['phases_s'].get(name, 0):.2f}" for _, e in exports))
        if name == "Snapshot.read":  # inside it, each statement on its connection (they overlap)
            for statement in statements:
                cells = (
                    f"{e['reader_s'][statement]:.2f}" if statement in e.get("reader_s", {}) else "" for _, e in exports
                )
                table.add_row(f"  reader: {statement}", *cells)
    table.add_row("total", *(f"{e['seconds']:.2f}" for _, e in exports))
    console.print(table)

    problems = [
        (label, p)
        for label, e in exports
        for p in e["verify"]["problems"] + [d["problem"] for d in e["replica"]["disagreements"]]
    ]
    for label, problem in problems[:20]:
        console.print(f"[red]problem[/red] {label}: {escape(problem)}", soft_wrap=True)

    if "profile" in result:
        p = result["profile"]
        for order, key in (("own", "top_tottime"), ("cumulative", "top_cumtime")):
            title = (
                f"cProfile of one more full export for parent ({p['rows']:,} rows, {p['seconds']} s under the "
                f"profiler; with SQLite, the aiosqlite thread is not seen), by {order} time"
            )
            rows = [
                (t["function"], f"{t['tottime']:.3f} s own, {t['cumtime']:.3f} s cum, {t['calls']:,} calls")
                for t in p[key][:15]
            ]
            console.print(figures(title, rows))

    v = result["verdicts"]
    table = Table(title="targets", title_justify="left")
    for name in ("target", "measured", "verdict"):
        table.add_column(name)
    for r, f in full.items():
        table.add_row(
            f"full export for {r} >= {TARGET_ROWS_PER_S:,.0f} rows/s",
            f"{f['rows_per_s']:,} rows/s on {result['machine']['cpus']} CPUs",
            v[f"full_{r}"],
        )
    for r in full:
        if f"incremental_{r}" in v:
            seconds = ", ".join(f"{s['exports'][r]['seconds']:.2f}" for s in steps)
            table.add_row(
                f"incremental for {r}: grows with the changes, smallest < {TARGET_SMALL_SHARE:.0%} of full",
                f"{seconds} s vs full {full[r]['seconds']:.2f} s",
                v[f"incremental_{r}"],
            )
    table.add_row(
        "every batch verifies; replica and counts agree with the decision", f"{len(exports)} batches", v["correctness"]
    )
    console.print(table)


def fraction(text_: str) -> float:
    value = float(text_.rstrip("%")) / (100 if text_.endswith("%") else 1)
    if not 0 < value <= 0.5:
        raise argparse.ArgumentTypeError(f"{text_}: a change fraction is above 0 and at most 50%")
    return value


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=1_000_000, help="accounts generated (default 1000000)")
    parser.add_argument("--usage-days", type=int, default=3, help="days of usage rows (default 3)")
    parser.add_argument(
        "--changes",
        type=lambda s: [fraction(part) for part in s.split(",")],
        default=[0.001, 0.01, 0.05],
        help="fractions of the accounts changed before each incremental export, e.g. 0.1%%,1%%,5%% (the default)",
    )
    parser.add_argument(
        "--sample", type=int, default=SAMPLE, help=f"accounts checked against the decision (default {SAMPLE})"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed of the population (default 1)")
    parser.add_argument(
        "--database-url",
        default=None,
        help="an empty PostgreSQL database, e.g. postgresql+asyncpg://user@127.0.0.1/bench (default: fresh SQLite)",
    )
    parser.add_argument("--profile", action="store_true", help="profile one more full export for parent (cProfile)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    args = parser.parse_args()
    if args.accounts < 1:
        parser.error("--accounts must be at least 1")
    if not 1 <= args.usage_days <= 29:
        parser.error("--usage-days must be between 1 and 29")
    if sum(args.changes) > 0.9:
        parser.error("the --changes fractions add up to more than 90% of the accounts")
    if args.sample < 1:
        parser.error("--sample must be at least 1")
    return args


def main() -> None:
    args = parse_args()
    console = Console(stderr=True)  # progress and steps; the report goes to stdout
    with tempfile.TemporaryDirectory(prefix="cove-sharing-bench-") as tmp:
        work = Path(tmp)
        url = args.database_url or f"sqlite+aiosqlite:///{work / 'relay' / 'cove.db'}"
        result = asyncio.run(run(args, url, work, console))
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print_report(result)


if __name__ == "__main__":
    main()
