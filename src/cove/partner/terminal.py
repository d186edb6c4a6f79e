"""What the partner's commands print through: plain lines for scripts, errors on stderr with a non-zero exit."""

from __future__ import annotations

import time

import typer
from rich.console import Console

console = Console()
err = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(1)


def say(text: str) -> None:
    """One plain line: never wrapped (scripts grep it) and never read as rich markup (ids are data)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def now_ms() -> int:
    return time.time_ns() // 1_000_000
