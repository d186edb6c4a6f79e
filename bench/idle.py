"""Memory per idle authenticated WebSocket: a real relay process holding N connected devices that do nothing.

    .venv/bin/python bench/idle.py                          # N = 1,000 and 10,000 (a fresh relay for each)
    .venv/bin/python bench/idle.py --connections 2000
    .venv/bin/python bench/idle.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench
    .venv/bin/python bench/idle.py --connections 10000 --nats nats://127.0.0.1:4222   # as one process of a fleet

How a run goes, for each N:

1. Create N accounts with one device each, straight into a fresh database (SQLite by default) before the relay
   starts: rows as registration writes them, each device with a real random token stored as its SHA-256 digest
   (``cove.accounts.tokens``). Registering 10,000 numbers through the API would take minutes of code requests,
   identity checks and key uploads that have nothing to do with an idle socket; what the relay does for a
   socket (authenticate the token, note the device as seen, read its queue, wait) is unchanged.
2. Start ``python -m cove serve`` with ``COVE_MAX_CONNECTIONS`` raised to let N in. The per-address limit keeps
   its default: the bench spreads its sockets over several loopback source addresses (127.0.0.2, ...) instead.
3. Warm up: open and close a few hundred sockets, so that code paths, caches and allocator arenas used by any
   connection exist before the baseline. Then read the relay's memory with none open.
4. Open N/2 sockets, wait until every one has received ``queue_empty`` (authenticated, backlog read, idle),
   let the relay settle and read its memory; then the other N/2, and read it again.

Memory is the relay's RSS (``VmRSS`` in ``/proc/PID/status``) and its PSS (``/proc/PID/smaps_rollup``, RSS with
pages shared with other processes divided among them). "KiB per connection" is (memory at N - memory at 0) / N;
the second half's own figure, (memory at N - memory at N/2) / (N/2), shows whether the cost is linear.

Everything the relay keeps because a device is connected counts: the socket's protocol objects and buffers, the
ASGI scope, the tasks serving it, the hub's entry, and also the token cache and last-seen entries of the device.
The bench's own client sockets live in this process and do not count.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import secrets
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table
from websockets.asyncio.client import ClientConnection, connect

from cove.accounts import cohort
from cove.accounts.storage import accounts, devices
from cove.accounts.tokens import new_token, token_digest
from cove.clock import now_ms
from cove.db import create_engine, migrate
from cove.testing import CodeInbox, RelayProcess
from harness import bounded, command, machine, report_console, run_against

TARGET_KIB = 16
WARMUP_SOCKETS = 200
PER_SOURCE = 1000  # sockets per loopback source address: the relay's default max_connections_per_address
OPENING = 64  # handshakes under way at once
SETTLE_SECONDS = 3.0  # after the last queue_empty: last-seen writes and other work after a connect finish
READY_SECONDS = 600.0


@dataclass(frozen=True)
class Memory:
    rss_kib: int
    pss_kib: int


def relay_memory(pid: int) -> Memory:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    pss = next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
    return Memory(rss, pss)


# The devices ------------------------------------------------------------------------------------------
def device_rows(count: int, at_ms: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """Accounts and primary devices as ``accounts.service.register`` writes them, and each device's token."""
    account_rows, device_rows, tokens = [], [], []
    for n in range(count):
        account_id = str(uuid.uuid4())
        phone = f"+1415{n:07d}"
        token = new_token()
        account_rows.append(
            {
                "id": account_id,
                "phone_number": phone,
                "created_at_ms": at_ms,
                "identity_generation": 1,
                "rollout_bucket": cohort.bucket(account_id),
                "calling_code": cohort.calling_code(phone),
            }
        )
        device_rows.append(
            {
                "account_id": account_id,
                "device_id": 1,
                "registration_id": secrets.randbelow(16380) + 1,
                # Public keys are not checked after registration; these have their size and encoding.
                "identity_curve25519": base64.b64encode(os.urandom(32)).decode().rstrip("="),
                "identity_ed25519": base64.b64encode(os.urandom(32)).decode().rstrip("="),
                "token_hash": token_digest(token),
                "device_model": "Pixel 9",
                "os_name": "Android",
                "os_version": "15",
                "app_version": "0.1.0",
                "vendor_device_id": None,
                "created_at_ms": at_ms,
                "updated_at_ms": at_ms,
                "last_seen_at_ms": at_ms,
            }
        )
        tokens.append(token)
    return account_rows, device_rows, tokens


async def create_devices(database_url: str, count: int) -> list[str]:
    """Migrate the empty database and insert ``count`` accounts with one device each; their tokens."""
    engine = create_engine(database_url)
    try:
        await migrate(engine)
        account_rows, device_rows_, tokens = device_rows(count, now_ms())
        async with engine.begin() as conn:
            await conn.execute(accounts.insert(), account_rows)
            await conn.execute(devices.insert(), device_rows_)
    finally:
        await engine.dispose()
    return tokens


# The sockets ------------------------------------------------------------------------------------------
async def open_idle(url: str, token: str, source: str) -> ClientConnection:
    """One device's socket, returned once the relay said ``queue_empty``."""
    ws = await connect(
        url,
        additional_headers={"Authorization": f"Bearer {token}"},
        compression=None,
        max_size=2**20,
        close_timeout=2,
        ping_interval=None,  # an idle client: nothing on the wire, and no keepalive timer in this process
        local_addr=(source, 0),
    )
    async with asyncio.timeout(60):
        while True:
            frame = json.loads(await ws.recv())
            frames = frame["frames"] if frame.get("type") == "batch" else [frame]
            if any(f.get("type") == "queue_empty" for f in frames):
                return ws
            if any(f.get("type") == "error" for f in frames):
                raise RuntimeError(f"the relay refused a socket: {frame}")


async def open_many(url: str, tokens: list[str], first: int) -> list[ClientConnection]:
    """Sockets for ``tokens``, the i-th from source address 127.0.0.(2 + (first + i) // PER_SOURCE)."""
    sources = [f"127.0.0.{2 + (first + i) // PER_SOURCE}" for i in range(len(tokens))]
    return await bounded([open_idle(url, t, s) for t, s in zip(tokens, sources, strict=True)], OPENING)


async def close_all(sockets: list[ClientConnection]) -> None:
    await bounded([ws.close() for ws in sockets], 256)


async def measure(relay: RelayProcess, tokens: list[str]) -> dict[str, Any]:
    url = relay.url.replace("http", "ws", 1) + "/v1/websocket"
    n = len(tokens)
    half = n // 2
    sockets: list[ClientConnection] = []
    try:
        # The warm-up devices are the last ones, connected again later: the same kind of cache entries.
        warm = await open_many(url, tokens[-WARMUP_SOCKETS:], 0)
        await close_all(warm)
        await asyncio.sleep(SETTLE_SECONDS)
        at_zero = relay_memory(relay.pid)
        started = time.perf_counter()
        sockets += await open_many(url, tokens[:half], 0)
        await asyncio.sleep(SETTLE_SECONDS)
        at_half = relay_memory(relay.pid)
        sockets += await open_many(url, tokens[half:], half)
        opened_in = time.perf_counter() - started
        await asyncio.sleep(SETTLE_SECONDS)
        at_full = relay_memory(relay.pid)
        still_open = sum(1 for ws in sockets if ws.close_code is None)
    finally:
        await close_all(sockets)
    return {
        "connections": n,
        "open_at_the_end": still_open,
        "opened_in_s": round(opened_in, 1),
        "memory_kib": {"0": at_zero.__dict__, str(half): at_half.__dict__, str(n): at_full.__dict__},
        "rss_kib_per_connection": round((at_full.rss_kib - at_zero.rss_kib) / n, 2),
        "pss_kib_per_connection": round((at_full.pss_kib - at_zero.pss_kib) / n, 2),
        "rss_kib_per_connection_first_half": round((at_half.rss_kib - at_zero.rss_kib) / half, 2),
        "rss_kib_per_connection_second_half": round((at_full.rss_kib - at_half.rss_kib) / (n - half), 2),
    }


def run_one(n: int, database_url: str | None, nats_url: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cove-idle-") as tmp:
        folder = Path(tmp, "relay")
        folder.mkdir()
        url = database_url or f"sqlite+aiosqlite:///{folder / 'cove.db'}"
        tokens = asyncio.run(create_devices(url, n))
        inbox = CodeInbox()
        env = {"COVE_MAX_CONNECTIONS": str(n + WARMUP_SOCKETS + 100)}
        if nats_url:  # the relay as one process of a fleet: each socket also holds its device's NATS subscription
            env |= {"COVE_NATS_URL": nats_url, "COVE_BUS_PREFIX": f"idle{os.getpid()}"}
        relay = RelayProcess(url, folder, inbox.url, env)

        async def bench() -> dict[str, Any]:
            relay.start()
            return await measure(relay, tokens)

        return run_against(relay, inbox, bench, READY_SECONDS)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--connections",
        type=int,
        nargs="+",
        default=[1000, 10000],
        help="idle sockets to open, one relay run for each figure (default 1000 10000)",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="an empty PostgreSQL database, used for one figure only (default: a fresh SQLite file per figure)",
    )
    parser.add_argument(
        "--nats",
        default=None,
        help="run the relay as part of a fleet, with this NATS server (e.g. nats://127.0.0.1:4222)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = parser.parse_args()
    if any(not 2 * WARMUP_SOCKETS <= n <= 250 * PER_SOURCE for n in args.connections):
        parser.error(f"--connections must be between {2 * WARMUP_SOCKETS} and {250 * PER_SOURCE}")
    if args.database_url and len(args.connections) > 1:
        parser.error("--database-url needs an empty database: give one --connections figure with it")
    # This process holds one descriptor per socket too.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = max(args.connections) + 200
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            parser.error(f"ulimit -n is {hard}: {need} file descriptors are needed (raise the hard limit)")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    return args


def print_table(result: dict[str, Any]) -> None:
    console = report_console(result)
    table = Table(show_header=True, header_style="bold")
    for column in ("connections", "RSS MiB at 0 / N/2 / N", "KiB/conn RSS", "KiB/conn PSS", "1st half", "2nd half"):
        table.add_column(column, justify="right")
    for run in result["runs"]:
        memory = list(run["memory_kib"].values())
        table.add_row(
            f"{run['connections']:,} ({run['open_at_the_end']:,} open at the end)",
            " / ".join(f"{m['rss_kib'] / 1024:.1f}" for m in memory),
            f"{run['rss_kib_per_connection']:.2f}",
            f"{run['pss_kib_per_connection']:.2f}",
            f"{run['rss_kib_per_connection_first_half']:.2f}",
            f"{run['rss_kib_per_connection_second_half']:.2f}",
        )
    console.print(table)
    console.print(f"target: at most {TARGET_KIB} KiB of relay RSS per idle authenticated WebSocket at 10,000")


def main() -> None:
    args = parse_args()
    result = {
        "command": command(),
        "machine": machine(),
        "database": "postgresql" if args.database_url else "sqlite",
        "fleet": bool(args.nats),
        "runs": [run_one(n, args.database_url, args.nats) for n in args.connections],
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
