"""Shared fixtures: a real relay process on a random port, over SQLite or PostgreSQL, and SDK users.

PostgreSQL runs only when COVE_TEST_POSTGRES_URL is set (CI sets it); each test gets its own database, a copy of
one migrated once per session (a file copy on SQLite, CREATE DATABASE ... TEMPLATE on PostgreSQL), so the relay
starts on an up-to-date schema; the migrations themselves still run from scratch once per session.
Verification codes reach the tests the way they would reach an SMS gateway: through the webhook sender.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from cove.client.core import ClientCore
from cove.client.store import ClientStore
from cove.client.transport import CoveClient
from cove.db import create_engine, migrate
from cove.testing import CodeInbox, RelayProcess

POSTGRES_URL = os.environ.get("COVE_TEST_POSTGRES_URL")

# Property tests judge behaviour, never speed: a deadline or a "too slow" check only fails on a loaded machine.
settings.register_profile("cove", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("cove")


async def _postgres(statement: str) -> None:
    import asyncpg

    dsn = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def _migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "relay.db"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def _migrated_postgres() -> Iterator[str]:
    name = f"cove_template_{uuid.uuid4().hex[:12]}"
    asyncio.run(_postgres(f'CREATE DATABASE "{name}"'))
    asyncio.run(_migrate(f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"))
    yield name
    asyncio.run(_postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _database(request: pytest.FixtureRequest, tmp_path: Path, migrated: bool) -> Iterator[str]:
    if request.param == "sqlite":
        if migrated:
            shutil.copyfile(request.getfixturevalue("_migrated_sqlite"), tmp_path / "relay.db")
        yield f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL tests need COVE_TEST_POSTGRES_URL (e.g. postgresql+asyncpg://postgres@127.0.0.1/test)")
    name = f"cove_test_{uuid.uuid4().hex[:12]}"
    template = f' TEMPLATE "{request.getfixturevalue("_migrated_postgres")}"' if migrated else ""
    asyncio.run(_postgres(f'CREATE DATABASE "{name}"{template}'))
    base = POSTGRES_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    asyncio.run(_postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of the test's own with Cove's schema, as the relay leaves it after its first start."""
    yield from _database(request, tmp_path, migrated=True)


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of the test's own with no schema yet (no file at all on SQLite)."""
    yield from _database(request, tmp_path, migrated=False)


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
    process = RelayProcess(database_url, data_dir, code_inbox.url, relay_env, preloaded=True)
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


REDIS_URL = os.environ.get("COVE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_env() -> Iterator[dict[str, str]]:
    """Settings that keep a relay's limits in the local Redis under a key prefix of the test's own (so parallel
    tests never share a limit); its keys are deleted afterwards. Fails in CI when Redis is down, skips elsewhere."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is unreachable at {REDIS_URL}: {exc}")
        pytest.skip(f"Redis is unreachable at {REDIS_URL}: {exc}")
    prefix = f"cove-test:{uuid.uuid4().hex[:12]}:"
    # A relay's first check connects and loads the scripts: on a busy 2-core CI machine that can pass the 100 ms
    # default, and a limit that fails closed would answer 503. These tests are about sharing limits; timeouts are
    # tested against a server that never answers (tests/test_limits.py).
    yield {"COVE_REDIS_URL": REDIS_URL, "COVE_REDIS_PREFIX": prefix, "COVE_REDIS_TIMEOUT_SECONDS": "2"}
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)
    client.close()
