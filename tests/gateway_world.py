"""Real processes for the gateway tests and benchmark: a business's gateway (`cove business gateway serve`) and
a webhook receiver (tests/webhook_receiver.py), beside the relay and SDK users that conftest.py makes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx

from cove.client.profile import open_profile
from cove.client.transport import CoveClient
from cove.testing import CodeInbox, PreloadedCove, RelayProcess, free_port, run_cove

API = "v21.0"
RECEIVER = Path(__file__).with_name("webhook_receiver.py")
SECRET = "a-webhook-app-secret-for-tests"
VERIFY_TOKEN = "verify-me"


def _wait_until_up(proc: subprocess.Popen[bytes] | PreloadedCove, url: str, log: Path, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(httpx.TransportError):
            httpx.get(url, timeout=1)
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not start in 30 s")


def _stop(proc: subprocess.Popen[bytes] | PreloadedCove | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Receiver:
    """The business's webhook endpoint: verifies both signatures, dedups by event id, can be taken down."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.out = folder / "webhooks.jsonl"
        self.down_file = folder / "receiver.down"
        self.log = folder / "receiver.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = ["--port", str(self.port), "--secret", SECRET, "--verify-token", VERIFY_TOKEN, "--out", str(self.out)]
        log = open(self.log, "ab")  # noqa: SIM115 - owned by the child process
        command = [sys.executable, str(RECEIVER), *args, "--down-file", str(self.down_file)]
        self._proc = subprocess.Popen(command, stdout=log, stderr=log)
        _wait_until_up(self._proc, f"http://127.0.0.1:{self.port}/stats", self.log, "webhook receiver")

    def stop(self) -> None:
        _stop(self._proc)

    def down(self) -> None:
        self.down_file.touch()

    def up(self) -> None:
        self.down_file.unlink(missing_ok=True)

    def stats(self) -> dict[str, int]:
        return httpx.get(f"http://127.0.0.1:{self.port}/stats", timeout=5).json()

    def events(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]

    def changes(self, field: str | None = None) -> list[dict[str, Any]]:
        """Every ``entry[].changes[]`` received, in arrival order, optionally of one field."""
        found = []
        for event in self.events():
            for entry in event["body"]["entry"]:
                found += [c for c in entry["changes"] if field is None or c["field"] == field]
        return found

    def statuses(self) -> list[tuple[str, str, list[dict[str, Any]]]]:
        """``(message id, status, errors)`` of every status webhook, in arrival order."""
        return [
            (s["id"], s["status"], s.get("errors", []))
            for c in self.changes("messages")
            for s in c["value"].get("statuses", [])
        ]

    async def wait_for(self, predicate: Callable[[Receiver], Any], timeout: float = 20.0) -> Any:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = predicate(self)
            if found:
                return found
            await asyncio.sleep(0.05)
        raise AssertionError(f"the webhook never came; received so far: {json.dumps(self.changes())[-2000:]}")


class GatewayProcess:
    """`cove business gateway serve` for a business profile, with a token for the business's systems."""

    def __init__(
        self,
        relay: RelayProcess,
        home: Path,
        profile: str,
        webhook_url: str | None,
        server: str | None = None,
        *,
        preloaded: bool = True,
    ) -> None:
        """``server``: where the gateway reaches the relay, if not at ``relay.url`` (a recording proxy).
        ``preloaded`` forks it from a process that imported Cove already (cove.testing.PreloadedCove); the
        benchmark turns it off to measure a fresh interpreter."""
        self.relay, self.home, self.profile, self.webhook_url = relay, home, profile, webhook_url
        self.server = server or relay.url
        self.preloaded = preloaded
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / f"gateway-{profile}.log"
        self.env = {**os.environ, "COVE_HOME": str(home), "COVE_GATEWAY_APP_SECRET": SECRET}
        self.token = ""
        self.phone_number_id = ""
        self._proc: subprocess.Popen[bytes] | PreloadedCove | None = None

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cove(["business", "gateway", *args, "--profile", self.profile], self.env)

    def start(self) -> None:
        if not self.token:
            made = self.cli("token")
            assert made.returncode == 0, made.stderr
            self.token = made.stdout.strip()
        args = ["serve", "--port", str(self.port), "--server", self.server]
        if self.webhook_url:
            args += ["--webhook-url", self.webhook_url, "--verify-token", VERIFY_TOKEN]
        argv = ["business", "gateway", *args, "--profile", self.profile]
        if self.preloaded:
            self._proc = PreloadedCove(argv, self.env, self.log)
        else:
            log = open(self.log, "ab")  # noqa: SIM115 - owned by the child process
            self._proc = subprocess.Popen([sys.executable, "-m", "cove", *argv], env=self.env, stdout=log, stderr=log)
        _wait_until_up(self._proc, f"{self.url}/docs", self.log, "gateway")

    def stop(self) -> None:
        _stop(self._proc)

    def api(self) -> httpx.AsyncClient:
        """The business's own systems: a Cloud API client with only the base URL changed."""
        return httpx.AsyncClient(
            base_url=f"{self.url}/{API}", headers={"Authorization": f"Bearer {self.token}"}, timeout=30
        )


async def register_profile(
    relay: RelayProcess, inbox: CodeInbox, home: Path, profile: str, phone: str, business: dict[str, Any] | None = None
) -> str:
    """Register a `cove --profile` identity as `cove register` and `cove verify` would (and, given a business
    profile, make it a business); returns its account id."""
    core = open_profile(profile, home)
    async with CoveClient(relay.url, core) as client:
        await client.request_code(phone)
        await client.register(phone, await inbox.code_for(phone))
        core.store.set("server", relay.url)
        if business is not None:
            async with httpx.AsyncClient(base_url=relay.url, headers={"Authorization": f"Bearer {core.token}"}) as api:
                made = await api.put("/v1/business/profile", json=business)
                assert made.status_code == 200, made.text
    account_id = core.account_id or ""
    core.store.close()
    return account_id


@contextlib.asynccontextmanager
async def shop_gateway(
    relay: RelayProcess, inbox: CodeInbox, tmp_path: Path, phone: str, business: dict[str, Any]
) -> AsyncIterator[tuple[GatewayProcess, Receiver]]:
    """A registered business's gateway (its profile under ``home``, its account as ``phone_number_id``), posting
    webhooks to a receiver that checks both signatures; both stopped on the way out."""
    home = tmp_path / "business-home"
    home.mkdir()
    receiver = Receiver(tmp_path)
    receiver.start()
    shop_id = await register_profile(relay, inbox, home, "shop", phone, business)
    gateway = GatewayProcess(relay, home, "shop", receiver.url)
    gateway.start()
    gateway.phone_number_id = shop_id
    try:
        yield gateway, receiver
    finally:
        gateway.stop()
        receiver.stop()


def operator(relay: RelayProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cove(list(args), relay.env)
