"""`cove app --profile NAME`: serve the messenger page for one profile on this machine."""

from __future__ import annotations

import secrets
import webbrowser

import typer

from cove.cli_guard import err
from cove.client.cli import ProfileOption
from cove.web.assets import require_built
from cove.web.local import bind, serve


def register_app_command(app: typer.Typer) -> None:
    @app.command("app")
    def run_app(
        profile: str = ProfileOption,
        port: int = typer.Option(0, min=0, max=65535, help="Port on 127.0.0.1 (0: a free one)"),
        server: str = typer.Option(None, help="Relay URL for a new profile [default: COVE_SERVER or the local relay]"),
        open_browser: bool = typer.Option(False, "--open/--no-open", help="Open the page in the default browser"),
    ) -> None:
        """Open the messenger for one profile as a page on this machine: chats, devices and the privacy center.

        The keys and the decryption stay in this process; the page answers only this machine and this run's link."""
        from cove.desktop.server import create_app
        from cove.desktop.state import Desktop

        require_built()
        key = secrets.token_urlsafe(32)
        desktop = Desktop.open(profile, server)
        sock = bind("127.0.0.1", port)

        def ready(url: str) -> None:
            link = f"{url}/open?key={key}"
            typer.echo(f"Cove for {profile}: {link}", err=False)
            err.print("Keep this link to yourself: it opens this profile. Ctrl-C stops the app.")
            if open_browser:
                webbrowser.open(link)

        serve(create_app(desktop, key), sock, ready)
