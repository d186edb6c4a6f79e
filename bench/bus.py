"""What the bus adds to each message that crosses relay processes: CPU per wake-up, both ends and NATS.

    .venv/bin/python bench/bus.py                       # 20,000 wake-ups to 1,000 connected devices
    .venv/bin/python bench/bus.py --messages 50000 --devices 10000

A wake-up is what a relay process does beyond a one-process relay when an envelope's device is held by
another process: the committing process publishes the envelope's frame on the device's subject
(:meth:`cove.messaging.wakeups.Wakeups.wake`), NATS routes it, and the holding process decodes it and offers it
to the socket (:class:`cove.messaging.hub.Hub`). Here both processes are two hubs in this one process, each
with its own NATS connection, so the CPU of both ends is this process's CPU; the NATS server's is measured
from its process. Sockets are stand-ins that count what they are offered: the socket's write is paid by a
one-process relay too.

It starts a NATS server of its own (``nats-server`` on the PATH), so that no other client's traffic is
counted; ``--nats URL`` uses a running one instead, and then its CPU is not reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

from cove.fleet.bus import Bus
from cove.messaging.envelope import Envelope, EnvelopeKind
from cove.messaging.hub import Hub, new_node
from cove.messaging.wakeups import Wakeups
from cove.testing import nats_server
from harness import command, cpu_seconds, machine


class Tally:
    def __init__(self, expected: int) -> None:
        self.offered = 0
        self.expected = expected
        self.done = asyncio.Event()


class CountingStream:
    def __init__(self, tally: Tally) -> None:
        self.tally = tally

    def offer(self, item: Any) -> None:  # noqa: ANN401 - whatever the hub hands over
        self.tally.offered += 1
        if self.tally.offered >= self.tally.expected:
            self.tally.done.set()

    def close(self, code: int, reason: str) -> None:
        pass


async def run(args: argparse.Namespace, nats_url: str, nats: psutil.Process | None) -> dict[str, Any]:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    buses = [Bus(nats_url, prefix, poll_seconds=60) for _ in range(2)]
    for bus in buses:
        await bus.start()
    await asyncio.gather(*(bus.ready() for bus in buses))
    sender, holder = (Hub(Wakeups(bus, new_node())) for bus in buses)
    tally = Tally(args.messages)
    keys = [(str(uuid.uuid4()), 1) for _ in range(args.devices)]
    for key in keys:
        await holder.attach(key, CountingStream(tally))
    body = bytes(args.body_bytes)
    now = int(time.time() * 1000)
    envelopes = [
        Envelope(i + 1, *keys[i % len(keys)], EnvelopeKind.OLM_MESSAGE, "sender", 1, f"m{i}", body, now, now + 1)
        for i in range(args.messages)
    ]
    me = psutil.Process()
    cpu0, nats0, wall0 = cpu_seconds(me), cpu_seconds(nats) if nats else 0.0, time.perf_counter()
    for start in range(0, len(envelopes), args.batch):
        await sender.deliver(envelopes[start : start + args.batch])
        await asyncio.sleep(0)
    await tally.done.wait()
    wall = time.perf_counter() - wall0
    cpu, nats_cpu = cpu_seconds(me) - cpu0, (cpu_seconds(nats) - nats0) if nats else None
    for bus in buses:
        await bus.stop()
    return {
        "command": command(),
        "machine": machine(),
        "messages": args.messages,
        "devices": args.devices,
        "body_bytes": args.body_bytes,
        "wakeups_per_second": round(args.messages / wall),
        "relay_cpu_ms_per_wakeup": round(cpu * 1000 / args.messages, 4),
        "nats_server_cpu_ms_per_wakeup": round(nats_cpu * 1000 / args.messages, 4) if nats_cpu is not None else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nats", default=None, help="a running NATS server (default: start one of its own)")
    parser.add_argument("--messages", type=int, default=20_000, help="wake-ups sent (default 20000)")
    parser.add_argument("--devices", type=int, default=1_000, help="connected devices they go to (default 1000)")
    parser.add_argument("--body-bytes", type=int, default=200, help="ciphertext size (default 200)")
    parser.add_argument("--batch", type=int, default=1, help="envelopes per commit (default 1: light load)")
    args = parser.parse_args()
    if args.nats:
        print(json.dumps(asyncio.run(run(args, args.nats, None)), indent=2))
        return
    with tempfile.TemporaryDirectory() as folder:
        server = nats_server(Path(folder))
        server.start()
        try:
            result = asyncio.run(run(args, server.url, psutil.Process(server.pid)))
        finally:
            server.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
