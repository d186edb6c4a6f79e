"""`cove console serve` and `cove console operator add|remove|list`: the operator's dashboard and who may use it.

Like the other operator commands, they find the relay's database the way `cove serve` does (cove.operator).
"""

from __future__ import annotations

import ipaddress
import sys

import typer
from rich.markup import escape

from cove.cli_guard import CommandError, err
from cove.clock import now_ms, to_datetime
from cove.console import operators
from cove.console.passwords import WeakPassword, hash_password
from cove.operator import ensure_relay_database, on_database
from cove.web.assets import require_built
from cove.web.local import bind, serve

console_app = typer.Typer(help="The operator's console: a dashboard page with its own login.", no_args_is_help=True)
operator_app = typer.Typer(help="Who may sign in to the console.", no_args_is_help=True)
console_app.add_typer(operator_app, name="operator")


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@console_app.command("serve")
def serve_console(
    port: int = typer.Option(8070, min=0, max=65535, help="Port to listen on (0: a free one)"),
    host: str = typer.Option(
        "127.0.0.1",
        help="Address to listen on. Anything but the loopback lets other machines reach the sign-in page, and "
        "then the session cookie needs HTTPS: put a TLS-terminating proxy in front of it",
    ),
) -> None:
    """Serve the console: rollout, consent, sharing, business, safety and relay health, behind a sign-in."""
    from cove.config import Settings
    from cove.console.server import create_app

    require_built()
    ensure_relay_database()
    local = _loopback(host)
    if not local:
        err.print(
            f"warning: the console listens on {escape(host)}: other machines can reach its sign-in page. Its session "
            "cookie travels over HTTPS only: open it through a TLS-terminating proxy in front of this address"
        )
    sock = bind(host, port)

    def ready(url: str) -> None:
        typer.echo(f"Cove console: {url}/login")
        err.print("Sign in as an operator (`cove console operator add NAME` makes one). Ctrl-C stops the console.")

    serve(create_app(Settings(), local_only=local), sock, ready)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        return hash_password(password)
    except WeakPassword as exc:
        raise CommandError(str(exc)) from None


def _name(name: str) -> str:
    try:
        return operators.checked_name(name)
    except operators.BadName as exc:
        raise CommandError(str(exc)) from None


@operator_app.command("add")
def add(
    name: str = typer.Argument(..., help="The operator's sign-in name"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin's first line"),
) -> None:
    """Let a new operator sign in (asks for the password twice, hidden)."""
    _name(name)
    hashed = _password(password_stdin)

    async def run(engine) -> None:  # noqa: ANN001
        async with engine.begin() as conn:
            await operators.add(conn, name, hashed, now_ms())

    try:
        on_database(run)
    except operators.OperatorExists:
        raise CommandError(
            f"an operator named {name} exists already (remove it first to change the password)"
        ) from None
    typer.echo(f"operator {name} may sign in to the console")


@operator_app.command("remove")
def remove(name: str = typer.Argument(..., help="The operator's sign-in name")) -> None:
    """Stop an operator signing in (a session already open ends at its next request)."""
    _name(name)

    async def run(engine) -> bool:  # noqa: ANN001
        async with engine.begin() as conn:
            return await operators.remove(conn, name)

    if not on_database(run):
        raise CommandError(f"no operator is named {name}")
    typer.echo(f"operator {name} removed")


@operator_app.command("list")
def list_operators() -> None:
    """The operators, when each was added and last signed in."""

    async def run(engine) -> list[operators.Operator]:  # noqa: ANN001
        async with engine.connect() as conn:
            return await operators.all_operators(conn)

    found = on_database(run)
    if not found:
        err.print("no operators yet: `cove console operator add NAME` makes one")

    def when(ms: int | None) -> str:
        return to_datetime(ms).isoformat(timespec="seconds") if ms else "never"

    for operator in found:
        typer.echo(
            f"{operator.name}\tadded {when(operator.created_at_ms)}\tlast sign-in {when(operator.last_login_ms)}"
        )
