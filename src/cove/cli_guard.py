"""What every ``cove`` command does with a failure: one line on stderr and an exit status, never a traceback.

A failure the user can act on (a refused input, a missing database, a domain rule) is a :class:`CommandError` or
an :class:`~cove.errors.ApiError` raised by the services operator commands call: its message is printed as
``error: ...`` with exit status 1. Anything else is a bug in Cove. It still gets one line, naming the exception,
and exit status 70 (``EX_SOFTWARE`` in sysexits.h) so that scripts tell it from a refusal; ``COVE_DEBUG=1``
re-raises it with its traceback for the bug report. A traceback by default would bury the one line that matters
under frames a user cannot act on, and hiding the failure behind a generic message would lose the bug.
"""

from __future__ import annotations

import os
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup
from typer.exceptions import TyperException

from cove.errors import ApiError

DEBUG_ENV = "COVE_DEBUG"
EX_SOFTWARE = 70
EX_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C

# The one error console of every `cove` command (the partner's service keeps its own): soft_wrap, so that an
# error stays on one line whatever the terminal's width.
err = Console(stderr=True, soft_wrap=True)
# Exits, aborts and usage errors (TyperException): Typer already turns these into a message and a status.
_HANDLED_BY_TYPER = (typer.Exit, typer.Abort, TyperException)


class CommandError(Exception):
    """A failure the user can fix; the message says how."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class GuardedGroup(TyperGroup):
    """The top-level ``cove`` group: every subcommand runs inside :meth:`invoke`, so its failures end here."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _HANDLED_BY_TYPER:
            raise
        except CommandError as exc:
            err.print(f"[red]error:[/red] {escape(exc.message)}", soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except ApiError as exc:
            err.print(f"[red]error:[/red] {escape(exc.message)}", soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(EX_INTERRUPTED) from None
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            err.print(
                f"[red]error:[/red] unexpected {escape(type(exc).__name__)}: {escape(str(exc))}\n"
                f"This is a bug in Cove. Run the command again with {DEBUG_ENV}=1 to see the traceback, and report it.",
                soft_wrap=True,
            )
            raise typer.Exit(EX_SOFTWARE) from None
