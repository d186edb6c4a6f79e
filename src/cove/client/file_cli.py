"""Files in the ``cove`` CLI: what ``send --file`` checks before anything is sent, and how ``inbox`` and
``listen`` save what arrives (a refused download is one line; the other files are still saved)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from cove.client.attachments import AttachmentError
from cove.client.events import AttachmentReceived, SentElsewhere
from cove.client.profile import profile_folder
from cove.client.transport import CoveClient, RelayError
from cove.protocol.attachments import InvalidPointer

SaveToOption = typer.Option(None, help="Save received files here [default: the profile's files folder]")


def refusal(text: str | None, path: Path | None) -> str | None:
    """Why ``send`` (one-to-one or to a group) cannot send this text or file, or ``None``."""
    if path is None:
        return "say what to send: a TEXT, or --file PATH" if text is None else None
    return unreadable(path)


def unreadable(path: Path) -> str | None:
    """Why ``path`` cannot be sent, or ``None``."""
    if not path.is_file():
        return f"{path} is not a file"
    if not os.access(path, os.R_OK):
        return f"{path} cannot be read"
    return None


def files_folder(profile: str, chosen: Path | None) -> Path:
    """Where received files go: the folder asked for, else the profile's own ``files`` folder."""
    return chosen if chosen is not None else profile_folder(profile) / "files"


async def save(
    client: CoveClient, event: AttachmentReceived | SentElsewhere, folder: Path, out: Console, err: Console
) -> None:
    try:
        saved = await client.save_attachment(event, folder)
    except (AttachmentError, InvalidPointer, RelayError, httpx.TransportError) as exc:
        name = event.attachment["name"] if isinstance(event, AttachmentReceived) else "sent from your other device"
        err.print(f"[red]the file {escape(name)} could not be saved: {escape(str(exc))}[/red]")
        return
    out.print(f"[dim]saved to {escape(str(saved))}[/dim]")
