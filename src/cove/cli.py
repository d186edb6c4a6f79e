"""The ``cove`` command line: run the relay, and use Cove as a client (see ``cove --help``)."""

from __future__ import annotations

import typer

from cove.business.commands import business_app
from cove.cli_guard import CommandError, GuardedGroup
from cove.client import business_chat_cli  # noqa: F401  (adds react, location and contact to businesses_app)
from cove.client.appeal_cli import register_appeal_commands
from cove.client.business_cli import businesses_app
from cove.client.cli import register_client_commands
from cove.client.devices_cli import devices_app
from cove.client.forward_cli import register_forward_command
from cove.client.group_cli import group_app
from cove.client.pin_cli import pin_app
from cove.client.privacy_cli import privacy_app
from cove.client.safety_cli import register_safety_commands
from cove.client.verify_cli import verify_app
from cove.config import settings_help
from cove.consent.commands import ledger_app, policy_app
from cove.console.command import console_app
from cove.desktop.command import register_app_command
from cove.fleet.commands import relay_app
from cove.partner.cli import partner_app
from cove.safety.commands import safety_app
from cove.sharing.commands import share_app

app = typer.Typer(
    help="Cove: an end-to-end encrypted messenger whose privacy promises are enforced by code.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    cls=GuardedGroup,
)


@app.callback()
def main() -> None:
    """Run a relay with `cove serve`; register, send and read messages as a client."""


@app.command(epilog=settings_help())
def serve(
    host: str = typer.Option(None, help="Interface to listen on [default: COVE_HOST or 127.0.0.1]"),
    port: int = typer.Option(None, help="Port to listen on [default: COVE_PORT or 8080]"),
    workers: int = typer.Option(
        1,
        min=1,
        max=64,
        help="Relay processes sharing the port. More than one needs PostgreSQL (COVE_DATABASE_URL) and NATS "
        "(COVE_NATS_URL); see docs/scaling.md.",
    ),
) -> None:
    """Run the relay: migrate the database, then serve HTTP and WebSocket clients."""
    import asyncio
    import logging
    import os

    import uvicorn

    from cove.config import Settings
    from cove.operator import migrate_or_explain
    from cove.serving import SUPERVISOR_ENV, uvicorn_options

    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = {
        "host": host or settings.host,
        "port": port if port is not None else settings.port,
        "log_level": settings.log_level,
        **uvicorn_options(settings),  # connection limits and timeouts uvicorn lacks
        "ws_per_message_deflate": False,  # ciphertext does not compress; deflate costs ~4x memory per socket
        "access_log": False,
    }
    url = settings.resolved_database_url
    if workers > 1 and url.startswith("sqlite"):
        raise CommandError(
            f"--workers {workers} needs PostgreSQL: SQLite takes one writing process. Set COVE_DATABASE_URL="
            "postgresql+asyncpg://user@host:5432/db (and COVE_NATS_URL), or run one process."
        )
    if workers > 1 and not settings.nats_url:
        raise CommandError(
            f"--workers {workers} needs NATS to wake the process that holds a device: set COVE_NATS_URL="
            "nats://127.0.0.1:4222, or run one process."
        )
    # Here, before any worker starts: a database that cannot be opened is one clear line, not a traceback from
    # each worker's start-up, and no worker waits for another's migration.
    asyncio.run(migrate_or_explain(url))
    if workers == 1:
        from cove.app import create_app

        uvicorn.run(create_app(settings), **options)
        return
    os.environ[SUPERVISOR_ENV] = str(os.getpid())  # each worker ends with this process (cove.serving)
    # Each worker builds its app from the environment (factory) and restarts if it dies (uvicorn supervises).
    uvicorn.run("cove.app:create_app", factory=True, workers=workers, **options)


register_client_commands(app)
register_app_command(app)
register_forward_command(app)
register_appeal_commands(app)
app.add_typer(privacy_app, name="privacy")
app.add_typer(policy_app, name="policy")
app.add_typer(ledger_app, name="ledger")
app.add_typer(safety_app, name="safety")
app.add_typer(relay_app, name="relay")
app.add_typer(share_app, name="share")
app.add_typer(partner_app, name="partner")
app.add_typer(businesses_app, name="businesses")
app.add_typer(business_app, name="business")
app.add_typer(pin_app, name="pin")
app.add_typer(verify_app, name="verify")
app.add_typer(devices_app, name="devices")
app.add_typer(group_app, name="group")
app.add_typer(console_app, name="console")
register_safety_commands(app, group_app)
