"""`cove business gateway serve|token|secret|status|dead-letters|replay`: run and operate a business's gateway.

The gateway runs as the business's Cove profile (``cove register PHONE --profile shop``, then
``PUT /v1/business/profile``): its keys, sessions, message statuses and webhook outbox share that profile's
SQLite file.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import httpx
import typer
import uvicorn
import uvloop
from rich.console import Console
from rich.table import Table

from cove.business.gateway.app import create_app
from cove.business.gateway.delivery import WebhookDeliverer, WebhookSetupError, verify_endpoint
from cove.business.gateway.graph import Identity, now_ms
from cove.business.gateway.media import MediaService
from cove.business.gateway.media_store import MediaStore
from cove.business.gateway.outbox import Outbox
from cove.business.gateway.relay import relay_client
from cove.business.gateway.service import Gateway
from cove.business.gateway.store import GatewayStore
from cove.cli_guard import err
from cove.client.core import ClientCore, Request
from cove.client.paths import segment
from cove.client.profile import open_profile, profile_folder
from cove.client.transport import RelayError
from cove.keyfile import read_or_create

console = Console()

gateway_app = typer.Typer(
    help="The business gateway: the WhatsApp Cloud API and signed webhooks over end-to-end encrypted Cove.",
    no_args_is_help=True,
)
ProfileOption = typer.Option(
    os.environ.get("COVE_PROFILE", "default"), "--profile", "-p", help="The business's Cove profile (env COVE_PROFILE)"
)


def _core(profile: str) -> ClientCore:
    core = open_profile(profile)
    if not core.token:
        err.print(
            f"[red]error:[/red] profile {profile!r} is not registered: run `cove register PHONE --profile {profile}`"
        )
        raise typer.Exit(1)
    return core


def app_secret(profile: str) -> str:
    """The secret that signs webhooks: COVE_GATEWAY_APP_SECRET, or a 0600 file made once in the profile."""
    return os.environ.get("COVE_GATEWAY_APP_SECRET") or read_or_create(profile_folder(profile) / "webhook.secret").hex()


@gateway_app.command("serve")
def serve(
    profile: str = ProfileOption,
    host: str = typer.Option("127.0.0.1", help="Address to listen on"),
    port: int = typer.Option(8090, help="Port of the Cloud API endpoints"),
    webhook_url: str = typer.Option(
        None, envvar="COVE_GATEWAY_WEBHOOK_URL", help="Where webhooks go (env COVE_GATEWAY_WEBHOOK_URL); none: kept"
    ),
    verify_token: str = typer.Option(
        None, envvar="COVE_GATEWAY_VERIFY_TOKEN", help="Sent in the GET handshake (env COVE_GATEWAY_VERIFY_TOKEN)"
    ),
    server: str = typer.Option(None, help="Relay URL [default: the one the profile registered with]"),
    media_quota_mb: int = typer.Option(
        2048, min=1, envvar="COVE_GATEWAY_MEDIA_QUOTA_MB", help="Media storage, MB (env COVE_GATEWAY_MEDIA_QUOTA_MB)"
    ),
    allow_private_links: bool = typer.Option(
        False,
        envvar="COVE_GATEWAY_ALLOW_PRIVATE_LINKS",
        help="Fetch media links to private and loopback addresses too (env COVE_GATEWAY_ALLOW_PRIVATE_LINKS); "
        "off: only public addresses",
    ),
) -> None:
    """Serve the Cloud API for this business, receive its users' messages and deliver webhooks."""
    core = _core(profile)
    if webhook_url and not verify_token:
        err.print("[red]error:[/red] a webhook URL needs --verify-token for the subscription handshake")
        raise typer.Exit(2)
    url = server or core.store.get("server") or "http://127.0.0.1:8080"
    # uvloop (from uvicorn[standard]): the gateway's event loop carries every send, receipt and webhook.
    media = MediaSettings(profile_folder(profile) / "media", media_quota_mb * 1_000_000, allow_private_links)
    uvloop.run(_serve(core, profile, url, host, port, webhook_url, verify_token, media))


@dataclass(frozen=True)
class MediaSettings:
    folder: Path
    quota_bytes: int
    allow_private_links: bool


async def _serve(
    core: ClientCore,
    profile: str,
    url: str,
    host: str,
    port: int,
    webhook_url: str | None,
    verify_token: str | None,
    media_settings: MediaSettings,
) -> None:
    # Links are fetched with a client of their own: no proxy from the environment, which would make the address
    # checks (cove.business.gateway.media_fetch) moot.
    fetcher = httpx.AsyncClient(trust_env=False, timeout=httpx.Timeout(10.0, read=20.0))
    async with relay_client(url, core) as client, httpx.AsyncClient() as http, fetcher:
        store = GatewayStore(core.store)
        outbox = Outbox(store.db)
        deliverer = None
        if webhook_url:
            try:
                await verify_endpoint(http, webhook_url, verify_token or "")
            except (WebhookSetupError, httpx.TransportError) as exc:
                err.print(f"[red]error:[/red] the webhook URL failed the subscription handshake: {exc}")
                raise typer.Exit(1) from exc
            deliverer = WebhookDeliverer(outbox, webhook_url, app_secret(profile).encode(), http, now_ms)
        identity = Identity(core.account_id or "", core.phone_number or "")
        media_store = MediaStore(core.store, media_settings.folder, media_settings.quota_bytes)
        media = MediaService(client, media_store, fetcher, now_ms, media_settings.allow_private_links)
        gateway = Gateway(client, store, outbox, deliverer, identity, media=media)
        config = uvicorn.Config(create_app(gateway), host=host, port=port, log_level="warning", lifespan="on")
        messages = f"/v21.0/{segment('phone_number_id', identity.phone_number_id)}/messages"
        console.print(
            f"gateway for {identity.display_phone_number} on http://{_url_host(host)}:{port}{messages}"
            + (f", webhooks to {webhook_url}" if webhook_url else ", webhooks kept (no --webhook-url)")
        )
        await uvicorn.Server(config).serve()


def _url_host(host: str) -> str:
    """The host as a URL writes it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


@gateway_app.command("token")
def token(profile: str = ProfileOption, label: str = typer.Option("default", help="What this token is for")) -> None:
    """Create an access token for the business's systems (shown once; keep it like a password)."""
    store = GatewayStore(_core(profile).store)
    typer.echo(store.create_token(label, now_ms()))


@gateway_app.command("revoke-tokens")
def revoke_tokens(profile: str = ProfileOption) -> None:
    """Revoke every access token at once (after a leak); create new ones with `token`."""
    count = GatewayStore(_core(profile).store).revoke_tokens()
    console.print(f"{count} token(s) revoked")


@gateway_app.command("profile")
def profile_command(
    profile: str = ProfileOption,
    display_name: str = typer.Option(None, help="The name users see (3-128 characters); required the first time"),
    about: str = typer.Option(None, help="A line under the name (1-139 characters)"),
    description: str = typer.Option(None, help="What the business does (up to 512 characters)"),
    address: str = typer.Option(None, help="Where to find it"),
    email: str = typer.Option(None, help="A contact address"),
    website: list[str] = typer.Option(None, help="Up to two http(s) addresses"),
    vertical: str = typer.Option(None, help="The industry, e.g. RETAIL, RESTAURANT (see the OpenAPI document)"),
) -> None:
    """Make this profile's account a business, or change its profile; without options, show it."""
    core = _core(profile)
    changes = {
        "display_name": display_name,
        "about": about,
        "description": description,
        "address": address,
        "email": email,
        "websites": website or None,
        "vertical": vertical,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    shown = asyncio.run(_profile(core, changes))
    badge = "verified" if shown["verified"] else "not verified (an operator runs `cove business verify`)"
    console.print(f"[bold]{shown['display_name']}[/bold], {badge}")
    for field in ("about", "description", "address", "email", "websites", "vertical", "quality", "messaging_limit"):
        if shown.get(field) not in (None, []):
            console.print(f"  {field}: {shown[field]}")


async def _profile(core: ClientCore, changes: dict[str, object]) -> dict[str, object]:
    async with relay_client(core.store.get("server") or "http://127.0.0.1:8080", core) as client:
        try:
            current = await client.call(Request("GET", "/v1/business/profile"))
        except RelayError as exc:
            if exc.status != 404:
                raise _fail(exc) from exc
            current = {}
        if not changes:
            if not current:
                raise _fail("this account is not a business yet: give --display-name (and more) to make it one")
            return current
        fields = ("display_name", "about", "description", "address", "email", "websites", "vertical")
        body = {k: current[k] for k in fields if current.get(k) is not None} | changes
        try:
            await client.call(Request("PUT", "/v1/business/profile", body))
            return await client.call(Request("GET", "/v1/business/profile"))
        except RelayError as exc:
            raise _fail(exc) from exc


def _fail(problem: object) -> typer.Exit:
    err.print(f"[red]error:[/red] {problem}")
    return typer.Exit(1)


@gateway_app.command("secret")
def secret(profile: str = ProfileOption) -> None:
    """Print the app secret that signs webhooks, for the business's webhook receiver."""
    _core(profile)
    typer.echo(app_secret(profile))


def _outbox(profile: str) -> Outbox:
    return Outbox(GatewayStore(_core(profile).store).db)


@gateway_app.command("status")
def status(profile: str = ProfileOption) -> None:
    """Webhook delivery: pending, delivered and dead events, and the oldest pending one's age."""
    for name, value in _outbox(profile).stats(now_ms()).items():
        console.print(f"{name}: {value if value is not None else '-'}")


@gateway_app.command("dead-letters")
def dead_letters(profile: str = ProfileOption) -> None:
    """Webhooks given up on after 7 days of failed attempts, with the last error."""
    dead = _outbox(profile).dead_letters()
    if not dead:
        console.print("no dead letters")
        return
    table = Table("event id", "attempts", "last error")
    for event in dead:
        table.add_row(event.event_id, str(event.attempts), event.last_error or "")
    console.print(table)


@gateway_app.command("replay")
def replay(
    event_ids: list[str] = typer.Argument(None, help="Dead letters to send again (see dead-letters)"),
    every: bool = typer.Option(False, "--all", help="Send every dead letter again"),
    profile: str = ProfileOption,
) -> None:
    """Queue dead letters again; a running gateway delivers them with their original ids and signatures."""
    if not event_ids and not every:
        err.print("[red]error:[/red] name event ids, or --all")
        raise typer.Exit(2)
    count = _outbox(profile).replay(None if every else list(event_ids), now_ms())
    console.print(f"{count} event(s) queued again")
