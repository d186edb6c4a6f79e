"""Attachment throughput through the SDK end to end: encryption, upload, download, digest check and decryption.

    .venv/bin/python bench/attachments.py                     # 3 files of 50 MB each way, SQLite
    .venv/bin/python bench/attachments.py --mb 90 --files 5 --database-url postgresql+asyncpg://.../DB

``--database-url`` must name a database of the benchmark's own: the relay migrates it and writes to it.

A relay process of its own (``cove serve``, a fresh interpreter) on loopback; two registered SDK users. Each
round, the sender's ``upload_attachment`` encrypts a file of random bytes into a temporary ciphertext and
uploads it in 4 MiB requests; the recipient's ``download_attachment`` streams it back, checks size and digest
and decrypts it into a file. MB/s is plaintext megabytes (10^6 bytes) over wall time of each phase, and the
encryption alone (to a temporary file, no network) is reported apart so the network's share shows.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from cove.client.attachments import encrypt_file
from cove.testing import CodeInbox, RelayProcess
from harness import command, local_relay, machine
from relay import new_user, register


def write_random(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        for _ in range(size // (1 << 20)):
            f.write(os.urandom(1 << 20))
        f.write(os.urandom(size % (1 << 20)))


def seal(source: Path) -> None:
    with open(source, "rb") as plain, tempfile.TemporaryFile() as sealed:
        encrypt_file(plain, sealed, os.urandom(32))


async def run(args: argparse.Namespace, relay: RelayProcess, inbox: CodeInbox, workdir: Path) -> dict[str, float]:
    sender, recipient = new_user(relay.url, workdir / "a", 1), new_user(relay.url, workdir / "b", 2)
    for user in (sender, recipient):
        await register(user, inbox)
    size = args.mb * 1_000_000
    source = workdir / "file.bin"
    write_random(source, size)
    timings = {"encrypt": 0.0, "upload": 0.0, "download": 0.0}
    for n in range(args.files):
        start = time.perf_counter()
        await asyncio.to_thread(seal, source)
        timings["encrypt"] += time.perf_counter() - start
        start = time.perf_counter()
        pointer = await sender.client.upload_attachment(source, recipients=1)
        timings["upload"] += time.perf_counter() - start
        start = time.perf_counter()
        saved = await recipient.client.download_attachment(pointer, workdir / f"saved-{n}.bin")
        timings["download"] += time.perf_counter() - start
        assert saved.stat().st_size == size
        saved.unlink()
    for user in (sender, recipient):
        await user.client.aclose()
    return {phase: args.mb * args.files / seconds for phase, seconds in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=50, help="Megabytes per file (the relay takes 100 MiB at most)")
    parser.add_argument("--files", type=int, default=3)
    parser.add_argument("--database-url", default=None, help="An empty database of its own (default: SQLite)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cove-bench-") as tmp:
        workdir = Path(tmp)
        relay, inbox = local_relay(workdir, args.database_url, {})
        relay.start()
        try:
            rates = asyncio.run(run(args, relay, inbox, workdir))
        finally:
            relay.stop()
            inbox.close()
    m = machine()
    print(f"command  {command()}")
    print(f"machine  {m['cpus']} CPUs, {m['memory_gb']} GB, Python {m['python']}, {m['platform']}")
    print(f"{args.files} files of {args.mb} MB, plaintext MB/s (10^6 bytes per second):")
    for phase, rate in rates.items():
        print(
            f"  {phase:9} {rate:8.1f}"
            + ("  (AES-256-GCM to a temporary file, no network)" if phase == "encrypt" else "")
        )
    print("  upload includes encryption; download includes the digest check and decryption")


if __name__ == "__main__":
    main()
