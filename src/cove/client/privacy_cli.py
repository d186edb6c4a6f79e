"""The ``cove privacy`` commands: the notice, the terms, each purpose's choice, what was shared, my data."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from datetime import datetime
from pathlib import Path

import typer
from rich.markdown import Markdown
from rich.table import Table

from cove.cli_guard import CommandError
from cove.client.cli import ProfileOption, _client, _registered, _run, console

privacy_app = typer.Typer(
    help="Your privacy: the notice, your choices per purpose, what was shared.", no_args_is_help=True
)


def _show_notice(notice: dict) -> None:
    console.rule(f"[bold]{notice['title']}[/bold] (version {notice['version']}, effective {notice['effective'][:10]})")
    console.print(Markdown(notice["summary"]))
    table = Table(show_lines=True)
    for column in ("purpose", "what happens", "basis", "who receives it", "your choice"):
        table.add_column(column)
    for p in notice["purposes"]:
        who = ", ".join(f"{r['name']} ({(r['role'] or 'role not stated').replace('_', ' ')})" for r in p["recipients"])
        if p["optional"]:
            choice = "off until you turn it on" if p["default"] == "out" else "on unless you turn it off"
            if p["window_days"]:
                choice += f" (only within {p['window_days']} days of accepting)"
        else:
            choice = "no choice"
        basis = (p["legal_basis"] or "not stated").replace("_", " ")
        table.add_row(f"{p['title']} [dim]({p['id']})[/dim]", p["description"], basis, who, choice)
    console.print(table)
    console.print("[dim]Accepting the terms turns nothing on: each purpose is your separate choice.[/dim]")


@privacy_app.command("show")
@_run
async def privacy_show(profile: str = ProfileOption) -> None:
    """The policy in force for you, each purpose's state and why, your deadlines, and what was shared."""
    core = _registered(profile)
    async with _client(core) as client:
        view = await client.privacy()
    if view["pending_notice"]:
        notice = view["pending_notice"]
        console.print(f"[yellow]A new privacy notice is waiting: {notice['title']} ({notice['version']}). "
                      f"Read it with `cove privacy notice`.[/yellow]")  # fmt: skip
    if view["policy"] is None:
        console.print("You have not accepted any privacy policy: nothing about you is used by anyone else.")
        return
    policy = view["policy"]
    console.print(f"Policy in force: [bold]{policy['title']}[/bold] ({policy['version']}), accepted "
                  f"{datetime.fromtimestamp(policy['accepted_at'] / 1000):%Y-%m-%d %H:%M}")  # fmt: skip
    table = Table()
    for column in ("purpose", "basis", "recipients", "in use", "your choice", "deadline"):
        table.add_column(column)
    for p in view["purposes"]:
        if p["objected_at"]:
            mine = "objected"
        elif p["your_choice"]:
            when = datetime.fromtimestamp(p["chosen_at"] / 1000).strftime("%Y-%m-%d")
            mine = f"{'on' if p['your_choice'] == 'in' else 'off'} ({p['method']}, {when})"
        else:
            mine = "no choice made"
        deadline = datetime.fromtimestamp(p["deadline"] / 1000).strftime("%Y-%m-%d") if p["deadline"] else "none"
        table.add_row(
            f"{p['title']} [dim]({p['id']})[/dim]",
            (p["legal_basis"] or "not stated").replace("_", " "),
            ", ".join(p["recipients"]),
            "[green]yes[/green]" if p["active"] else "no",
            mine,
            deadline,
        )
    console.print(table)
    shared = view["disclosures"]
    console.print(f"Shared about you: {len(shared)} disclosure(s)" if shared else "Shared about you: nothing yet.")
    for r in view.get("revocations", []):  # what a batch told a recipient to stop using, and whether it did
        when = datetime.fromtimestamp(r["at"] / 1000).strftime("%Y-%m-%d")
        done = "applied" if r["acknowledged_at"] else "not acknowledged yet"
        console.print(f"Revoked: {r['purpose']} for {r['recipient']} ({r['reason']}, {when}): {done}")
    for signal in view.get("signals_received", []):  # what a partner said about this number: weighed, never a ban
        when = datetime.fromtimestamp(signal["at"] / 1000).strftime("%Y-%m-%d")
        console.print(f"Received about you: {signal['from']} reported this number ({signal['reason']}, {when})")


@privacy_app.command("notice")
@_run
async def privacy_notice(profile: str = ProfileOption) -> None:
    """Show the privacy notice due for you (this is recorded as shown)."""
    core = _registered(profile)
    async with _client(core) as client:
        notice = await client.pending_notice()
        if notice is None:
            console.print("No privacy notice is waiting for you.")
            return
        _show_notice(notice)
        await client.notice_shown(notice)
    console.print(f"Accept with: cove privacy accept --age adult --profile {profile}")


@privacy_app.command("accept")
@_run
async def privacy_accept(
    age: str = typer.Option(..., help="adult or minor: minors are never used for ads or profiling"),
    profile: str = ProfileOption,
) -> None:
    """Accept the terms of the notice due. This turns no purpose on."""
    if age not in ("adult", "minor"):
        raise typer.BadParameter("--age must be adult or minor")
    core = _registered(profile)
    async with _client(core) as client:
        notice = await client.pending_notice()
        if notice is None:
            console.print("No privacy notice is waiting for you.")
            return
        await client.notice_shown(notice, surface="cli")
        await client.accept_terms(notice, age)
    console.print(f"Accepted {notice['version']}. Every optional purpose stays off until you turn it on "
                  f"(`cove privacy choose PURPOSE in`).")  # fmt: skip


@privacy_app.command("choose")
@_run
async def privacy_choose(
    purpose: str = typer.Argument(..., help="The purpose id, as `cove privacy show` lists it"),
    choice: str = typer.Argument(..., help="in or out"),
    profile: str = ProfileOption,
) -> None:
    """Turn a purpose on (in) or off (out)."""
    if choice not in ("in", "out"):
        raise typer.BadParameter("CHOICE must be in or out")
    async with _client(_registered(profile)) as client:
        await client.choose(purpose, choice)
    console.print(f"{purpose}: {'on' if choice == 'in' else 'off'}")


@privacy_app.command("withdraw")
@_run
async def privacy_withdraw(purpose: str = typer.Argument(...), profile: str = ProfileOption) -> None:
    """Withdraw your consent to a purpose; it stops before the next export."""
    async with _client(_registered(profile)) as client:
        await client.withdraw(purpose)
    console.print(f"{purpose}: consent withdrawn")


@privacy_app.command("object")
@_run
async def privacy_object(purpose: str = typer.Argument(...), profile: str = ProfileOption) -> None:
    """Object to a purpose that rests on legitimate interest."""
    async with _client(_registered(profile)) as client:
        await client.object_to(purpose)
    console.print(f"{purpose}: objection recorded")


def write_private(path: Path, data: bytes, overwrite: bool) -> None:
    """Write ``data`` to ``path`` readable by its owner only, all or nothing: a temporary file beside it, synced,
    then linked (which fails if ``path`` exists) or, with ``overwrite``, renamed over it."""
    folder = path.parent
    if not folder.is_dir():
        raise CommandError(f"{folder} is not a folder")
    if path.exists() and not overwrite:
        raise CommandError(f"{path} exists: choose another name, or pass --force to replace it")
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".partial")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if overwrite:
            os.replace(temporary, path)
        else:
            try:
                os.link(temporary, path)  # unlike a rename, never replaces a file made since the check above
            except FileExistsError:
                raise CommandError(f"{path} exists: choose another name, or pass --force to replace it") from None
            os.unlink(temporary)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


@privacy_app.command("export")
@_run
async def privacy_export(
    out: Path = typer.Option(..., "--out", "-o", help="The JSON file to write (readable by you only)"),
    force: bool = typer.Option(False, "--force", help="Replace the file if it exists"),
    profile: str = ProfileOption,
) -> None:
    """Download your data: everything the relay holds about your account, and your consent receipts, as JSON."""
    async with _client(_registered(profile)) as client:
        document = await client.export_my_data()
    write_private(out, json.dumps(document, indent=2, ensure_ascii=False).encode() + b"\n", force)
    cut = [name for name, part in _lists(document["sections"]) if part["truncated"]]
    console.print(f"Wrote everything the relay holds about you to {out} ({len(document['sections'])} sections).")
    if cut:
        console.print(f"[yellow]Only the first items of {', '.join(cut)}: the relay caps each list.[/yellow]")


def _lists(value: object, name: str = "") -> list[tuple[str, dict]]:
    """Every capped list in the export, by its dotted name."""
    if not isinstance(value, dict):
        return []
    if isinstance(value.get("truncated"), bool):  # a capped list, or the consent receipts
        return [(name, value)]
    return [found for key, part in value.items() for found in _lists(part, f"{name}.{key}".lstrip("."))]
