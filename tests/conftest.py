"""Shared fixtures: a real relay process on a random port, over SQLite or PostgreSQL, and SDK users.

PostgreSQL runs only when COVE_TEST_POSTGRES_URL is set (CI sets it); each test gets its own database.
Verification codes reach the tests the way they would reach an SMS gateway: through the webhook sender.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from cove.client.core import ClientCore
from cove.client.store import ClientStore
from cove.client.transport import CoveClient

POSTGRES_URL = os.environ.get("COVE_TEST_POSTGRES_URL")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CodeInbox:
    """Plays the SMS gateway: receives the relay's code webhook and hands codes to tests."""

    def __init__(self) -> None:
        self.codes: dict[str, list[str]] = {}
        self.fail = False
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if inbox.fail:
                    self.send_response(503)
                else:
                    inbox.codes.setdefault(body["phone_number"], []).append(body["code"])
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/sms"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def latest(self, phone_number: str) -> str:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.codes.get(phone_number):
                return self.codes[phone_number][-1]
            time.sleep(0.02)
        raise AssertionError(f"no code was sent to {phone_number}")

    def close(self) -> None:
        self._server.shutdown()


class RelayProcess:
    """``cove serve`` in a subprocess; restartable on the same database."""

    def __init__(self, database_url: str, data_dir: Path, code_url: str, extra_env: dict[str, str]) -> None:
        self.database_url = database_url
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "relay.log"
        self.env = {
            **os.environ,
            "COVE_DATABASE_URL": database_url,
            "COVE_DATA_DIR": str(data_dir),
            "COVE_CODE_SENDER": "webhook",
            "COVE_CODE_WEBHOOK_URL": code_url,
            "COVE_CONFIG": str(data_dir / "none.toml"),
            **extra_env,
        }
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "cove", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"relay exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("relay did not start in 30 s")

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


async def _postgres(statement: str) -> None:
    import asyncpg

    dsn = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL tests need COVE_TEST_POSTGRES_URL (e.g. postgresql+asyncpg://postgres@127.0.0.1/test)")
    name = f"cove_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_postgres(f'CREATE DATABASE "{name}"'))
    base = POSTGRES_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    asyncio.run(_postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def code_inbox() -> Iterator[CodeInbox]:
    inbox = CodeInbox()
    yield inbox
    inbox.close()


@pytest.fixture
def relay_env() -> dict[str, str]:
    """Override in a test module to start the relay with other settings."""
    return {}


@pytest.fixture
def relay(
    database_url: str, tmp_path: Path, code_inbox: CodeInbox, relay_env: dict[str, str]
) -> Iterator[RelayProcess]:
    data_dir = tmp_path / "relay"
    data_dir.mkdir()
    process = RelayProcess(database_url, data_dir, code_inbox.url, relay_env)
    process.start()
    yield process
    process.stop()


class Users:
    """Makes registered SDK users, each with its own local store under the test's tmp_path."""

    def __init__(self, relay: RelayProcess, inbox: CodeInbox, folder: Path) -> None:
        self.relay, self.inbox, self.folder = relay, inbox, folder
        self._clients: list[CoveClient] = []
        self._next = 0

    def client(self, name: str) -> CoveClient:
        """A client for the named local profile (the same name reopens the same state, as after an app restart)."""
        folder = self.folder / name
        folder.mkdir(parents=True, exist_ok=True)
        key_file = folder / "key"
        if not key_file.exists():
            key_file.write_bytes(os.urandom(32))
        info = {
            "model": "Pixel 9",
            "os_name": "Android",
            "os_version": "15",
            "app_version": "0.1.0",
            "vendor_device_id": f"vendor-{name}",
        }
        core = ClientCore(ClientStore(folder / "state.db"), key_file.read_bytes(), info)
        client = CoveClient(self.relay.url, core)
        self._clients.append(client)
        return client

    async def register(self, name: str, phone_number: str | None = None) -> CoveClient:
        self._next += 1
        phone_number = phone_number or f"+1415555{self._next:04d}"
        client = self.client(name)
        await client.request_code(phone_number)
        await client.register(phone_number, self.inbox.latest(phone_number))
        return client

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()
            client.core.store.close()


@pytest.fixture
async def users(relay: RelayProcess, code_inbox: CodeInbox, tmp_path: Path):  # noqa: ANN201
    made = Users(relay, code_inbox, tmp_path / "clients")
    yield made
    await made.aclose()
