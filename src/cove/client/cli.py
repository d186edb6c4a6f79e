"""Client commands of the ``cove`` CLI: register, verify, send, inbox, listen, history, whoami."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import Callable, Coroutine, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn
from websockets.exceptions import WebSocketException

from cove.cli_guard import err
from cove.client import file_cli, forwards, group_show, safety_status
from cove.client.attachments import AttachmentError, carries_file, file_line
from cove.client.business_show import SHOWN, history_text
from cove.client.codes import registration_code
from cove.client.core import ClientCore, NotRegistered, UntrustedDevices
from cove.client.events import (
    AttachmentReceived,
    Delivered,
    DeviceListRefused,
    DevicesChanged,
    Event,
    GroupMessageReceived,
    HistoryImported,
    IdentityChanged,
    MessageReceived,
    NoticeReceived,
    PayloadReceived,
    QueueEmpty,
    Read,
    RequestReceived,
    SentElsewhere,
    TemplateReceived,
    Undecryptable,
    VerifiedKeyChanged,
)
from cove.client.group_client import Groups
from cove.client.profile import DEFAULT_SERVER, open_profile, profile_folder, remove_profile
from cove.client.safety_client import Safety
from cove.client.transport import CoveClient, RelayError
from cove.client.verification import SAS_START, SAS_TYPES
from cove.protocol import forwarding
from cove.protocol.phone import INTERNATIONAL_FORMAT
from cove.protocol.templates import TemplateError

console = Console()

LOGGED_OUT = (
    "the relay no longer accepts this profile: it was logged out or unlinked (its number was registered on another "
    "device, banned or deleted). Register it again with `cove register PHONE`, or link it with `cove devices link`"
)

# The relay the running command talks to, for "cannot reach the relay at URL" (set by _client).
_relay_url = {"url": DEFAULT_SERVER}

ProfileOption = typer.Option(
    os.environ.get("COVE_PROFILE", "default"),
    "--profile",
    "-p",
    help="Local identity to use (env COVE_PROFILE)",
)


def _run(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async command and turn the failures a user can fix into a message and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            asyncio.run(fn(*args, **kwargs))
        except RelayError as exc:
            said = LOGGED_OUT if exc.status == 401 else safety_status.refusal(exc) or str(exc)
            err.print(f"[red]error:[/red] {escape(said)}")
            raise typer.Exit(1) from exc
        except (NotRegistered, UntrustedDevices, AttachmentError) as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}")
            raise typer.Exit(1) from exc
        except (httpx.TransportError, OSError) as exc:
            err.print(f"[red]error:[/red] cannot reach the relay at {_relay_url['url']}: {escape(str(exc))}")
            raise typer.Exit(1) from exc
        except WebSocketException as exc:
            err.print(
                f"[red]error:[/red] lost the connection to the relay at {_relay_url['url']} ({escape(str(exc))}); "
                "nothing that arrived is lost: run the command again"
            )
            raise typer.Exit(1) from exc
        except KeyboardInterrupt:
            raise typer.Exit(130) from None

    return wrapper


def _refuse(message: str) -> NoReturn:
    """Input the relay would refuse anyway: said before anything is sent or created."""
    err.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(2)


def _not_registered(profile: str, core: ClientCore | None) -> NotRegistered:
    pending = core.store.get("pending_phone") if core else None
    if pending:
        return NotRegistered(
            f"profile {profile!r} is not registered yet: a code was requested for {pending}; "
            f"the next step is `cove verify CODE --profile {profile}`"
        )
    return NotRegistered(f"profile {profile!r} is not registered: run `cove register PHONE --profile {profile}`")


def _existing(profile: str) -> ClientCore | None:
    """The profile if it exists; reading one never creates its folder."""
    return open_profile(profile) if profile_folder(profile).is_dir() else None


def _registered(profile: str) -> ClientCore:
    core = _existing(profile)
    if core is None or not core.token:
        raise _not_registered(profile, core)
    return core


def _client(core: ClientCore, server: str | None = None) -> CoveClient:
    url = server or core.store.get("server") or os.environ.get("COVE_SERVER", DEFAULT_SERVER)
    _relay_url["url"] = url
    client = CoveClient(url, core)
    client.on_challenge = lambda: err.status("the relay asks this account to prove it is not a bulk sender: working")
    return client


def _name(core: ClientCore, account_id: str) -> str:
    """A peer's number once contact discovery confirmed it, else their full account id."""
    return core.store.peer_phone(account_id) or account_id


def _forwarded(core: ClientCore, chat: str, client_message_id: str) -> str:
    """The forward label a message is shown with (rich markup), or nothing."""
    label = forwarding.label(forwards.count_of(core.store, chat, client_message_id))
    return f" [magenta]\\[{label}][/magenta]" if label else ""


def _line(core: ClientCore, sender: str, sent_at: int, text: str, business: bool, client_message_id: str = "") -> None:
    when = datetime.fromtimestamp(sent_at / 1000).strftime("%H:%M:%S")
    label = " [cyan]\\[business][/cyan]" if business else ""
    label += _forwarded(core, sender, client_message_id)
    if business and client_message_id:  # to react to it: `cove businesses react`
        text += f"\n  (id {client_message_id})"
    console.print(f"[dim]{when}[/dim] [bold]{_name(core, sender)}[/bold]{label}: {escape(text)}")


async def _show_template(client: CoveClient, event: TemplateReceived) -> None:
    """A template is shown only as the server signed it, with the business's values checked against it."""
    try:
        shown = await client.render_template(event)
    except (TemplateError, RelayError) as exc:
        err.print(f"[red]a business message from {_name(client.core, event.sender)} did not verify: {exc}[/red]")
        return
    parts = [p for p in (shown.header, shown.body, shown.footer) if p]
    parts += [f"[{b.text}]" for b in shown.buttons]
    _line(client.core, event.sender, event.sent_at, "\n  ".join(parts), True, event.client_message_id)


async def _show(client: CoveClient, event: Event) -> None:
    core = client.core
    if isinstance(event, RequestReceived):
        console.print(f"[yellow]message request from {_name(core, event.sender)}[/yellow] [dim](`cove requests` shows "
                      "it; accept, block or report it there)[/dim]")  # fmt: skip
    elif core.contacts.waiting(event):
        pass  # the message of a request: shown by `cove requests` only, when the user asks
    elif isinstance(event, MessageReceived):
        _line(core, event.sender, event.sent_at, event.text, event.business is not None, event.client_message_id)
    elif isinstance(event, TemplateReceived):
        await _show_template(client, event)
    elif isinstance(event, AttachmentReceived) and not group_show.in_group(event):
        business = event.business is not None  # a business's media: shown with its label, as its texts are
        _line(core, event.sender, event.sent_at, file_line(event), business, event.client_message_id)
    elif (
        isinstance(event, PayloadReceived)
        and event.payload.get("type") == "interactive"
        and event.payload.get("interactive", {}).get("type") == "request_contact_info"
    ):  # answered through the relay, never in the chat
        text = event.payload["interactive"].get("body", {}).get("text", "")
        text += f"\n  [share your number: cove businesses share-number {event.sender}]"
        _line(core, event.sender, event.sent_at, text, event.business is not None, event.client_message_id)
    elif isinstance(event, PayloadReceived) and event.business is not None and event.payload.get("type") in SHOWN:
        # A business's reaction names a message of the user's: there is nothing to answer, so no id.
        answerable = event.payload.get("type") != "reaction"
        cmid = event.client_message_id if answerable else ""
        _line(core, event.sender, event.sent_at, history_text(event.payload), True, cmid)
    elif isinstance(event, Delivered):
        console.print(f"[dim]delivered to {_name(core, event.peer)}: {event.client_message_id[:8]}[/dim]")
    elif isinstance(event, Read):
        console.print(f"[dim]read by {_name(core, event.peer)}: {len(event.client_message_ids)} message(s)[/dim]")
    elif isinstance(event, IdentityChanged):
        console.print(
            f"[yellow]{_name(core, event.peer)} registered on a new phone: their security code changed[/yellow]"
        )
    elif isinstance(event, SentElsewhere):
        what = escape(event.text) if event.text is not None else f"a {escape(str(event.payload.get('type')))} message"
        if carries_file(event):
            what = escape(file_line(event))
        when = datetime.fromtimestamp(event.sent_at / 1000).strftime("%H:%M:%S")
        console.print(f"[dim]{when}[/dim] → [bold]{_name(core, event.peer)}[/bold]: {what} "
                      f"[dim](from your device {event.sender_device})[/dim]")  # fmt: skip
    elif isinstance(event, HistoryImported):
        console.print(f"[dim]history from your phone: {event.count} message(s) (part {event.part + 1} of "
                      f"{event.parts}); see `cove history`[/dim]")  # fmt: skip
    elif isinstance(event, VerifiedKeyChanged):
        _warn_changed(core, event.peer)
    elif isinstance(event, PayloadReceived) and event.payload.get("type") in SAS_TYPES:
        if event.payload["type"] == SAS_START:  # the rest of a comparison belongs to a running `cove verify sas`
            who = _name(core, event.sender)
            console.print(f"[yellow]{who} wants to compare security emoji: run `cove verify sas {who}`[/yellow]")
    elif isinstance(event, DevicesChanged):
        added = f" linked device(s) {event.added}" if event.added else ""
        removed = f" unlinked device(s) {event.removed}" if event.removed else ""
        console.print(f"[yellow]security: {_name(core, event.peer)}{added}{removed}[/yellow]")
    elif isinstance(event, DeviceListRefused):
        console.print(
            f"[red]security: the relay served a device list for {_name(core, event.peer)} that does not verify "
            f"({escape(event.reason)}); it was ignored[/red]"
        )
    elif isinstance(event, Undecryptable):
        console.print(f"[red]a message from {_name(core, event.sender)} could not be read: {event.reason}[/red]")
    elif isinstance(event, NoticeReceived):
        console.print("[yellow]A privacy notice is waiting for you: read it with `cove privacy notice`.[/yellow]")
    elif (line := group_show.describe(core, event, functools.partial(_name, core))) is not None:
        if isinstance(event, GroupMessageReceived) or group_show.in_group(event):
            group = event.group_id if isinstance(event, GroupMessageReceived) else event.group
            line += _forwarded(core, group or "", event.client_message_id)
        console.print(line)
    elif isinstance(event, PayloadReceived):
        kind = escape(str(event.payload.get("type")))
        console.print(f"[dim]{_name(core, event.sender)} sent a {kind} message this client cannot show[/dim]")
    # QueueEmpty says only that everything waiting has arrived, ReadElsewhere that another device showed some
    # messages already: nothing to show


def _warn_changed(core: ClientCore, peer: str) -> None:
    console.print(
        f"[bold red]warning:[/bold red] the security number of {_name(core, peer)}, whom you verified, has changed: "
        f"they are not verified any more. Compare again with `cove verify show {_name(core, peer)}`."
    )


def _warn_all_changed(core: ClientCore, already: Sequence[Event] = ()) -> None:
    """Every verified contact whose key changed, each time until verified again (but once per command)."""
    shown = {e.peer for e in already if isinstance(e, VerifiedKeyChanged)}
    for peer in core.store.changed_contacts():
        if peer not in shown:
            _warn_changed(core, peer)


async def _reply_read(client: CoveClient, events: list[Event]) -> None:
    by_peer: dict[str, list[str]] = {}
    for e in events:
        if isinstance(e, MessageReceived | TemplateReceived | PayloadReceived | AttachmentReceived) and not (
            group_show.in_group(e) or client.core.contacts.waiting(e)  # a request's reader says nothing yet
        ):
            by_peer.setdefault(e.sender, []).append(e.client_message_id)
    for peer, ids in by_peer.items():
        await client.mark_read(peer, ids)
    await group_show.reply_read(client, events)


async def _name_senders(client: CoveClient) -> None:
    """Best effort: a sender is shown by account id until contact discovery confirms their number."""
    with contextlib.suppress(RelayError, httpx.TransportError, OSError):
        await client.name_senders()


async def _report_usage(client: CoveClient) -> None:
    """Best effort: usage counters wait for the next command if the relay cannot take them now."""
    with contextlib.suppress(RelayError, httpx.TransportError, OSError):
        await client.report_usage()


@_run
async def verify_code(
    code: str = typer.Argument(..., help="The 6-digit code"),
    profile: str = ProfileOption,
    pin: str = typer.Option(None, help="The registration lock's PIN, if the number has one (else asked for)"),
) -> None:
    """Confirm the code: this profile becomes the number's device and publishes its keys (step 2 of 2)."""
    typed, code = code, registration_code(code) or ""
    if not code:
        _refuse(f"{typed!r} is not a code: the code is the 6 digits the relay sent, like 123456")
    core = _existing(profile)
    phone = core.store.get("pending_phone") if core else None
    if core is None or not phone:
        raise NotRegistered("no code was requested for this profile: run `cove register PHONE` first")
    async with _client(core) as client:
        try:
            body = await client.register(phone, code, pin)
        except RelayError as exc:
            if exc.code != "registration_lock" or pin is not None:
                raise
            err.print(f"{phone} has a registration lock, set with `cove pin set` on its other phone.")
            pin = typer.prompt("PIN", hide_input=True)
            body = await client.register(phone, code, pin)
    again = " (this number's old devices were logged out)" if body["reregistered"] else ""
    console.print(f"Registered {phone} as account {body['account_id']}{again}")


@contextlib.contextmanager
def _work_progress() -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr while the relay's registration gate makes this phone prove work."""
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), console=err) as bar:
        task: list[TaskID] = []

        def progress(tried: int, expected: int) -> None:
            if not task:
                task.append(bar.add_task(f"proving work ({expected:,} hashes on average)", total=expected))
            bar.update(task[0], completed=tried)

        yield progress


def register_client_commands(app: typer.Typer) -> None:
    @app.command()
    @_run
    async def register(
        phone_number: str = typer.Argument(..., help="Your number in international form, e.g. +14155550123"),
        profile: str = ProfileOption,
        server: str = typer.Option(None, help=f"Relay URL (env COVE_SERVER) [default: {DEFAULT_SERVER}]"),
    ) -> None:
        """Ask the relay to send a verification code to PHONE_NUMBER (step 1 of 2)."""
        if not phone_number.startswith("+"):
            _refuse(f"{phone_number!r} has no country code: {INTERNATIONAL_FORMAT}")
        new = not profile_folder(profile).exists()
        core = open_profile(profile)
        try:
            async with _client(core, server) as client:
                with _work_progress() as progress:
                    sent = await client.request_code(phone_number, progress)
        except BaseException:
            if new:  # a failed first step leaves no profile behind
                remove_profile(core, profile)
            raise
        core.store.set("server", client.base_url)
        core.store.set("pending_phone", sent["phone_number"])
        console.print(f"Code sent to {sent['phone_number']}. Now run: cove verify CODE --profile {profile}")

    @app.command()
    @_run
    async def send(
        to: str = typer.Argument(..., help="Recipient: a phone number (+...) or an account id"),
        text: str = typer.Argument(None, help="The message (with --file: its caption)"),
        file: Path = typer.Option(None, "--file", "-f", help="Send this file, encrypted end to end"),
        profile: str = ProfileOption,
    ) -> None:
        """Send an end-to-end encrypted message or file."""
        if why := file_cli.refusal(text, file):
            _refuse(why)
        core = _registered(profile)
        async with _client(core) as client:
            recipient = await client.resolve(to) if to.startswith("+") else to
            answering = core.contacts.requested(recipient)
            if file is not None:
                cmid = await client.send_file(recipient, file, text)
            else:
                cmid = await client.send_text(recipient, text)
            if answering:  # a reply accepts the request: what it held is read now
                await Safety(client).read_accepted(recipient)
            await _report_usage(client)
        console.print(f"sent {cmid[:8]} to {to}")

    @app.command()
    @_run
    async def inbox(
        profile: str = ProfileOption,
        receipts: bool = typer.Option(True, help="Send read receipts for what is shown"),
        save_to: Path = file_cli.SaveToOption,
    ) -> None:
        """Fetch and show everything that arrived while you were away, saving files, then exit."""
        core = _registered(profile)
        folder = file_cli.files_folder(profile, save_to)
        async with _client(core) as client:
            events = await client.inbox()
            await _name_senders(client)
            for event in events:
                await _show(client, event)
                if carries_file(event) and not core.contacts.waiting(event):  # a stranger's file is not fetched
                    await file_cli.save(client, event, folder, console, err)
            _warn_all_changed(core, events)
            if not events:
                console.print("[dim]nothing new[/dim]")
            if receipts:
                await _reply_read(client, events)
            await Groups(client).welcome(events)
            await _report_usage(client)

    @app.command()
    @_run
    async def listen(
        profile: str = ProfileOption,
        save_to: Path = file_cli.SaveToOption,
    ) -> None:
        """Stay connected and show messages, files and receipts as they arrive (Ctrl-C to stop)."""
        core = _registered(profile)
        folder = file_cli.files_folder(profile, save_to)
        async with _client(core) as client:
            console.print("[dim]listening; Ctrl-C to stop[/dim]")
            _warn_all_changed(core)
            async for event in client.events():
                written = isinstance(
                    event,
                    MessageReceived
                    | RequestReceived
                    | TemplateReceived
                    | PayloadReceived
                    | AttachmentReceived
                    | GroupMessageReceived,
                )
                if written:
                    await _name_senders(client)
                await _show(client, event)
                if carries_file(event) and not core.contacts.waiting(event):
                    await file_cli.save(client, event, folder, console, err)
                if written:
                    await _reply_read(client, [event])
                elif isinstance(event, QueueEmpty):
                    await _report_usage(client)  # what earlier sessions counted, and this open
                else:
                    await Groups(client).welcome([event])

    @app.command("delete-account")
    @_run
    async def delete_account(
        profile: str = ProfileOption,
        yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation"),
    ) -> None:
        """Delete your account on the relay and this profile's local data. This cannot be undone."""
        core = _registered(profile)
        phone = core.phone_number or "this profile"
        if not yes:
            typer.confirm(
                f"Delete the account of {phone} and every message, key and contact this profile "
                "keeps? This cannot be undone",
                abort=True,
            )
        async with _client(core) as client:
            erasures = await client.delete_account()
        remove_profile(core, profile)
        console.print(
            f"Deleted the account of {phone} and the local profile {profile!r}. "
            "The relay keeps only the record of your privacy choices, as the law requires."
        )
        for receipt in erasures:  # keep these: each id alone lets anyone holding it check that erasure later
            console.print(
                f"Erasure requested from {escape(receipt['recipient'])}: {escape(receipt['event_id'])} "
                f"(check it: GET {escape(client.base_url)}/v1/erasures/{escape(receipt['event_id'])})"
            )

    @app.command()
    def history(
        peer: str = typer.Argument(None, help="Only this phone number or account id"),
        profile: str = ProfileOption,
        limit: int = typer.Option(50, min=1),
    ) -> None:
        """Show the conversation history kept on this device."""
        core = _existing(profile)
        if core is None:
            err.print(str(_not_registered(profile, None)))
            raise typer.Exit(1)
        peer_id = core.store.peer_by_phone(peer) if peer and peer.startswith("+") else peer
        for m in core.store.messages(peer_id, limit):
            arrow = "→" if m.direction == "out" else "←"
            who = m.peer_phone or m.peer_account
            status = f" [dim]({m.status})[/dim]" if m.direction == "out" else ""
            label = _forwarded(core, m.peer_account, m.client_message_id)
            console.print(
                f"[dim]{escape(m.client_message_id[:8])}[/dim] {arrow} {who}{label}: {escape(m.text)}{status}"
            )

    @app.command()
    def whoami(profile: str = ProfileOption) -> None:
        """Show this profile's number, account and relay."""
        core = _existing(profile)
        if core is None or not core.account_id:
            err.print(str(_not_registered(profile, core)))
            raise typer.Exit(1)
        console.print(
            f"{core.phone_number}  account {core.account_id}  device {core.device_id}  relay {core.store.get('server')}"
        )
