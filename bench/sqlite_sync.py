"""What one SQLite commit costs with each ``PRAGMA synchronous`` the relay might run, on this machine's disk.

    .venv/bin/python bench/sqlite_sync.py              # NORMAL and FULL, twice each, 300 commits per run

Each run opens a fresh WAL database next to the system's temp files (the disk the relay's benchmarks use)
and commits one ~300-byte row per transaction: the floor under the relay's group commit, which pays one
such commit for every batch of sends and acks.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path


def commits_per_second(mode: str, commits: int) -> float:
    with tempfile.TemporaryDirectory(prefix="cove-sync-") as folder:
        db = sqlite3.connect(Path(folder) / "bench.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={mode}")
        db.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, body BLOB)")
        started = time.perf_counter()
        for _ in range(commits):
            db.execute("BEGIN")
            db.execute("INSERT INTO rows (body) VALUES (?)", (b"x" * 300,))
            db.execute("COMMIT")
        took = time.perf_counter() - started
        db.close()
        return commits / took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commits", type=int, default=300, help="commits per run (default 300)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each mode, alternating (default 2)")
    args = parser.parse_args()
    for _ in range(args.rounds):
        for mode in ("NORMAL", "FULL"):
            rate = commits_per_second(mode, args.commits)
            print(f"synchronous={mode:<6} {rate:>9,.0f} commits/s  {1000 / rate:6.2f} ms per commit")


if __name__ == "__main__":
    main()
