"""What the partner's commands share: plain lines for scripts, errors on stderr with a non-zero exit, and the
store and trust bundle they open."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import typer
from pydantic import ValidationError
from rich.console import Console

from cove.partner import config
from cove.partner.store import open_store
from cove.sharing import wire

console = Console()
err = Console(stderr=True, soft_wrap=True)  # an error stays one line, whatever the width

STORE = typer.Option(None, "--store", help="The partner's DuckDB store [default: COVE_PARTNER_STORE or var/partner]")
TRUST = typer.Option(None, "--trust", help="The messenger's trust bundle [default: COVE_PARTNER_TRUST or var/partner]")


def fail(message: str) -> typer.Exit:
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(1)


def say(text: str) -> None:
    """One plain line: never wrapped (scripts grep it) and never read as rich markup (ids are data)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def open_or_fail(store: Path | None) -> duckdb.DuckDBPyConnection:
    path = store or config.store_path()
    try:
        return open_store(path)
    except duckdb.Error as exc:
        raise fail(f"cannot open the partner store {path}: {exc}") from None


def trust_or_fail(path: Path | None) -> wire.TrustBundle:
    """The messenger's trust bundle: it verifies batches and keys the phone hashes linking and suggestions use."""
    path = path or config.trust_path()
    try:
        return config.load_trust(path)
    except FileNotFoundError:
        raise fail(
            f"no trust bundle at {path}. On the messenger, `cove share keys --recipient parent` writes it to "
            f"DATA_DIR/sharing/parent-trust.json: copy that to the partner as {path}, or point --trust or "
            "COVE_PARTNER_TRUST at it."
        ) from None
    except ValidationError as exc:
        raise fail(f"{path} is not a trust bundle: {exc.errors()[0]['msg']}") from None
