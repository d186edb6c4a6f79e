"""What every benchmark here shares: running against a relay process, timing CPU, and percentiles."""

from __future__ import annotations

import asyncio
import math
import os
import platform
import shlex
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import psutil

from cove.testing import CodeInbox, RelayProcess


def machine() -> dict[str, Any]:
    """What a figure was measured on, for the report."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
    }


def report_console(result: dict[str, Any], width: int = 150):  # noqa: ANN201 - a rich Console
    """A console for a report, opened with the command and the machine it ran on."""
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    if not console.is_terminal:  # piped or redirected: wide enough for the tables, not the default 80 columns
        console = Console(width=width)
    console.print(f"[bold]command[/bold]  {escape(result['command'])}", soft_wrap=True)
    m = result["machine"]
    console.print(
        f"[bold]machine[/bold]  {m['cpus']} CPUs, {m['memory_gb']} GB, Python {m['python']}, {m['platform']}",
        soft_wrap=True,
    )
    return console


def command() -> str:
    """The command line that reproduces the run."""
    return shlex.join([sys.executable, *sys.argv])


class Window(Protocol):
    t0: float  # the timed window, in time.perf_counter() seconds
    t1: float


async def bounded(coros: list[Awaitable[Any]], limit: int = 16) -> list[Any]:
    """Await all, at most ``limit`` at a time (set-up would otherwise open hundreds of connections at once)."""
    gate = asyncio.Semaphore(limit)

    async def one(coro: Awaitable[Any]) -> Any:
        async with gate:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros))


def cpu_seconds(process: psutil.Process) -> float:
    """CPU seconds of the process and its children (``cove serve --workers N`` is a parent and N workers)."""
    total = 0.0
    for one in [process, *process.children(recursive=True)]:
        try:
            times = one.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def tree_rss(process: psutil.Process) -> int:
    """Resident bytes of the process and its children (all of ``cove serve --workers N``)."""
    total = 0
    for one in [process, *process.children(recursive=True)]:
        try:
            total += one.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


# The servers a fleet of relays uses, by process name; their CPU is reported apart from the relay's.
SERVICES = {"postgresql": "postgres", "nats": "nats-server", "redis": "redis-server"}


def services_cpu() -> dict[tuple[str, int], float]:
    """CPU seconds of every PostgreSQL, NATS and Redis server process on this machine, by (service, pid)."""
    found = {}
    names = {process_name: service for service, process_name in SERVICES.items()}
    for process in psutil.process_iter(["name"]):
        service = names.get(process.info["name"])
        if service is None:
            continue
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        found[(service, process.pid)] = times.user + times.system
    return found


def services_delta(before: dict[tuple[str, int], float], after: dict[tuple[str, int], float]) -> dict[str, float]:
    """CPU seconds per service between two readings. A process that ended in between is not counted (a
    PostgreSQL backend of a closed connection): the figure is a lower bound."""
    totals = dict.fromkeys(SERVICES, 0.0)
    for (service, pid), seconds in after.items():
        totals[service] += seconds - before.get((service, pid), 0.0)
    return totals


def per_process_cpu(process: psutil.Process) -> dict[int, float]:
    """CPU seconds of each process of the tree, by pid: how the load spread over ``--workers``."""
    found = {}
    for one in [process, *process.children(recursive=True)]:
        try:
            times = one.cpu_times()
        except psutil.NoSuchProcess:
            continue
        found[one.pid] = times.user + times.system
    return found


async def measure_cpu(relay: psutil.Process, window: Window) -> dict[str, float]:
    """CPU seconds over the timed window: the relay (all its processes), this process, and each service
    (anything else using PostgreSQL, NATS or Redis on the machine meanwhile is counted too)."""
    me = psutil.Process()
    await asyncio.sleep(max(0.0, window.t0 - time.perf_counter()))
    relay0, me0, services0, each0 = cpu_seconds(relay), cpu_seconds(me), services_cpu(), per_process_cpu(relay)
    await asyncio.sleep(max(0.0, window.t1 - time.perf_counter()))
    each = per_process_cpu(relay)
    return {
        "relay": cpu_seconds(relay) - relay0,
        "relay_processes": sorted((seconds - each0.get(pid, 0.0) for pid, seconds in each.items()), reverse=True),
        "bench": cpu_seconds(me) - me0,
        **services_delta(services0, services_cpu()),
    }


async def postgres_counters(url: str) -> dict[str, int]:
    """The database's write counters now: WAL position (bytes), commits, rows inserted and deleted. The WAL
    is the server's, so anything else writing to the same server meanwhile is counted too."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        wal = await conn.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
        row = await conn.fetchrow(
            "SELECT xact_commit, tup_inserted, tup_deleted, tup_updated FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
    finally:
        await conn.close()
    return {"wal_bytes": int(wal), **{k: int(v) for k, v in row.items()}}


def postgres_per_unit(before: dict[str, int], after: dict[str, int], units: int) -> dict[str, float | None]:
    """What the database wrote per delivered message (or decision). pg_stat_database lags by up to its
    stats interval, so run long enough for that not to matter (10 s and more)."""
    return {k: round((after[k] - before[k]) / units, 4) if units else None for k in after}


def fleet_env(workers: int, nats_url: str) -> dict[str, str]:
    """Settings for ``--workers N``: NATS between the processes, on subjects of this run's own."""
    if workers == 1:
        return {}
    return {"COVE_NATS_URL": nats_url, "COVE_BUS_PREFIX": f"bench{os.getpid()}"}


def per_unit_ms(cpu: dict[str, float], units: int) -> dict[str, float | None]:
    """Each service's CPU ms per delivered message (or decision)."""
    return {name: round(cpu[name] * 1000 / units, 3) if units else None for name in SERVICES}


def percentile(values: list[float], q: float) -> float | None:
    """Nearest rank: the smallest value with at least q% of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def local_relay(
    workdir: Path, database_url: str | None, env: dict[str, str], workers: int = 1
) -> tuple[RelayProcess, CodeInbox]:
    """A relay (not started) keeping its files in ``workdir/relay``, its database there too unless
    ``database_url`` names one, and the inbox its verification codes go to."""
    (workdir / "relay").mkdir()
    inbox = CodeInbox()
    url = database_url or f"sqlite+aiosqlite:///{workdir / 'relay' / 'cove.db'}"
    return RelayProcess(url, workdir / "relay", inbox.url, env, workers=workers), inbox


def run_against(
    relay: RelayProcess, inbox: CodeInbox, bench: Callable[[], Awaitable[dict[str, Any]]], budget: float
) -> dict[str, Any]:
    """Run ``bench`` on uvloop within ``budget`` seconds, stopping at once if the relay dies; always clean up.

    ``bench`` starts the relay itself when it needs to (the consent bench fills the database first).
    """

    async def bounded_run() -> dict[str, Any]:
        # SIGTERM (e.g. from `timeout`) would end Python at once and leave the relay running: cancel instead,
        # so that sockets close and the relay is stopped below. Ctrl-C does the same by itself.
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
        async with asyncio.timeout(budget):
            task = asyncio.create_task(bench())
            watch = asyncio.create_task(_relay_exit(relay))
            await asyncio.wait([task, watch], return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                # A relay that dies would only show up as odd figures at the end: stop the run at once instead.
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                raise RuntimeError(f"the relay exited during the run with code {watch.result()}")
            watch.cancel()
            return task.result()

    try:
        # uvloop (installed with uvicorn[standard]) keeps the client's share of the CPU down.
        try:
            import uvloop

            loop_factory = uvloop.new_event_loop
        except ImportError:
            loop_factory = None
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(bounded_run())
    except asyncio.CancelledError:
        sys.exit("bench: terminated")
    except BaseException:
        if relay.log_path.exists():
            print(f"--- end of the relay log ---\n{relay.log_path.read_text(errors='replace')[-2000:]}")
        raise
    finally:
        relay.stop()
        inbox.close()


async def _relay_exit(relay: RelayProcess) -> int:
    while not relay.started:  # noqa: ASYNC110 - the bench may start the relay only after its set-up
        await asyncio.sleep(0.2)
    return await relay.wait_for_exit()
