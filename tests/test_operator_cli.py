"""Operator commands find the relay's database as the relay does, refuse to make a new one, and never print a
traceback; `policy publish` runs the linter first; `share keys` writes its secret safely."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from cove.cli import app
from cove.db import create_engine, migrate

POLICIES = Path(__file__).parent.parent / "policies"
DEFAULT, ORIGINAL = POLICIES / "cove-default.toml", POLICIES / "2016-original.toml"

OPERATOR_COMMANDS = [
    ["policy", "status"],
    ["policy", "publish", str(DEFAULT)],
    ["ledger", "verify"],
    ["ledger", "export", "--account", "a1"],
    ["safety", "list"],
    ["safety", "ban", "+14155550199", "--reason", "spam"],
    ["share", "status", "--recipient", "parent"],
    ["share", "keys", "--recipient", "parent"],
    ["share", "export", "--recipient", "parent"],
    ["business", "templates"],
    ["business", "verify", "+14155550123"],
    ["business", "approve", "t1"],
    ["business", "reject", "t1", "--reason", "no"],
    ["business", "limits", "+14155550123", "--tier", "10k"],
]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The relay's settings as an operator's shell would have them: a data directory, no other configuration."""
    folder = tmp_path / "relay-data"
    monkeypatch.setenv("COVE_DATA_DIR", str(folder))
    monkeypatch.setenv("COVE_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.delenv("COVE_DATABASE_URL", raising=False)
    monkeypatch.delenv("COVE_DEBUG", raising=False)
    return folder


def _migrated(url: str) -> None:
    async def run() -> None:
        engine = create_engine(url)
        try:
            await migrate(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())


def cove(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def _refused(result: Result) -> None:
    """A clear message and exit status 1: no traceback, no exception escaping the command."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", OPERATOR_COMMANDS, ids=" ".join)
def test_an_operator_command_without_the_relay_database_refuses_and_creates_nothing(
    data_dir: Path, command: list[str]
) -> None:
    result = cove(*command)
    _refused(result)
    assert f"no relay database at {data_dir / 'cove.db'}" in result.output
    assert "cove serve" in result.output and "COVE_DATA_DIR" in result.output
    assert not data_dir.exists()


def test_a_database_the_relay_never_migrated_is_refused(data_dir: Path) -> None:
    data_dir.mkdir()
    (data_dir / "cove.db").touch()
    result = cove("safety", "list")
    _refused(result)
    assert "holds no Cove schema" in result.output


def test_empty_database_is_refused_then_used_once_migrated(
    empty_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite and PostgreSQL alike: the URL the relay would use, its password never shown."""
    monkeypatch.setenv("COVE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COVE_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("COVE_DATABASE_URL", empty_database_url)
    if empty_database_url.startswith("sqlite"):
        _refused(cove("policy", "status"))
        assert not Path(empty_database_url.split("///", 1)[1]).exists()
    else:
        refused = cove("policy", "status")
        _refused(refused)
        assert "holds no Cove schema" in refused.output
    _migrated(empty_database_url)
    status = cove("policy", "status")
    assert status.exit_code == 1 and "no policy is published" in status.output
    assert "relay database: " in status.output


def test_policy_publish_shows_the_linter_and_refuses_errors_unless_forced(data_dir: Path) -> None:
    _migrated(f"sqlite+aiosqlite:///{data_dir / 'cove.db'}")
    refused = cove("policy", "publish", str(ORIGINAL))
    _refused(refused)
    assert "R4" in refused.output and "purposes.0.window_days" in refused.output
    assert "not published" in refused.output and "--force" in refused.output
    assert "no policy is published" in cove("policy", "status").output

    uk = cove("policy", "publish", str(ORIGINAL), "--law", "us", "--force")
    assert uk.exit_code == 0, uk.output  # under us the findings are warnings: shown, and no --force needed
    assert "warning" in uk.output and "published whatsapp-2016-08-25" in uk.output

    clean = cove("policy", "publish", str(DEFAULT))
    assert clean.exit_code == 0, clean.output
    assert "error" not in clean.output.lower() and "published" in clean.output


def test_policy_publish_with_force_publishes_despite_errors(data_dir: Path) -> None:
    _migrated(f"sqlite+aiosqlite:///{data_dir / 'cove.db'}")
    forced = cove("policy", "publish", str(ORIGINAL), "--force")
    assert forced.exit_code == 0, forced.output
    assert "R4" in forced.output and "publishing despite" in forced.output
    assert "whatsapp-2016-08-25" in cove("policy", "status").output


def test_share_keys_writes_an_owner_only_secret_and_never_overwrites_another_file(data_dir: Path) -> None:
    _migrated(f"sqlite+aiosqlite:///{data_dir / 'cove.db'}")
    written = cove("share", "keys", "--recipient", "parent")
    assert written.exit_code == 0, written.output
    bundle = data_dir / "sharing" / "parent-trust.json"
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o600
    assert "phone_hash_key" in bundle.read_text()

    again = cove("share", "keys", "--recipient", "parent")
    assert again.exit_code == 0 and "unchanged" in again.output

    other = data_dir.parent / "notes.json"
    other.write_text("mine")
    _refused(cove("share", "keys", "--recipient", "parent", "--out", str(other)))
    assert other.read_text() == "mine"
    forced = cove("share", "keys", "--recipient", "parent", "--out", str(other), "--force")
    assert forced.exit_code == 0 and other.read_bytes() == bundle.read_bytes()
    assert stat.S_IMODE(other.stat().st_mode) == 0o600


def test_a_recipient_id_that_is_not_an_identifier_is_refused_before_any_path_is_made(data_dir: Path) -> None:
    result = cove("share", "keys", "--recipient", "../../etc")
    assert result.exit_code == 2 and "not a recipient id" in result.output
    assert not data_dir.exists()


def test_an_unexpected_error_is_one_line_with_a_debug_hint_and_exit_70(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _migrated(f"sqlite+aiosqlite:///{data_dir / 'cove.db'}")

    async def broken(_engine: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("cove.safety.service.banned_numbers", broken)
    result = cove("safety", "list")
    assert result.exit_code == 70 and isinstance(result.exception, SystemExit)
    assert "unexpected RuntimeError: boom" in result.output and "COVE_DEBUG=1" in result.output
    assert "Traceback" not in result.output

    monkeypatch.setenv("COVE_DEBUG", "1")
    debug = cove("safety", "list")
    assert isinstance(debug.exception, RuntimeError)


def test_serve_help_lists_the_settings() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for name in ("COVE_DATA_DIR=./var", "COVE_DATABASE_URL", "COVE_CONFIG", "COVE_FLEET_POLL_SECONDS", "cove.toml"):
        assert name in result.output
