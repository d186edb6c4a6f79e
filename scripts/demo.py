"""`make demo`: a real relay, two users, messages both ways, then what the server stored for them.

Everything runs as it would in production: the relay is a separate `cove serve` process on SQLite,
codes travel through the webhook sender, and Alice and Bob are SDK clients with their own Olm keys.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from cove.client.core import ClientCore
from cove.client.events import Delivered, MessageReceived, Read, RequestReceived
from cove.client.safety_client import Safety
from cove.client.store import ClientStore
from cove.client.transport import CoveClient
from cove.testing import CodeInbox, RelayProcess

console = Console()


async def register(relay: RelayProcess, inbox: CodeInbox, folder: Path, name: str, phone: str) -> CoveClient:
    device = {"model": "demo phone", "os_name": "DemoOS", "os_version": "1", "app_version": "demo"}
    client = CoveClient(relay.url, ClientCore(ClientStore(folder / "state.db"), os.urandom(32), device))
    await client.request_code(phone)
    body = await client.register(phone, inbox.latest(phone))
    console.print(f"[bold]{name}[/bold] registered {phone} as account {body['account_id']}")
    return client


async def show_server_rows(database_url: str, title: str) -> None:
    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT e.id, a.phone_number AS recipient, e.kind, length(e.body) AS size, e.body "
                    "FROM envelopes e JOIN accounts a ON a.id = e.account_id ORDER BY e.id"
                )
            )
        ).all()
    await engine.dispose()
    table = Table(title=title)
    for column in ("queue id", "for", "kind", "bytes", "what the relay holds (first 48 bytes, hex)"):
        table.add_column(column)
    kinds = {0: "Olm pre-key", 1: "Olm message", 5: "delivery receipt"}
    for row in rows:
        table.add_row(
            str(row.id), row.recipient, kinds.get(row.kind, str(row.kind)), str(row.size), row.body[:48].hex()
        )
    console.print(table if rows else f"[dim]{title}: nothing queued[/dim]")


def show(name: str, events: list) -> None:
    for e in events:
        if isinstance(e, RequestReceived):
            console.print(f"  {name} sees: a message request")
        elif isinstance(e, MessageReceived):
            console.print(f"  {name} reads: [green]{e.text}[/green]")
        elif isinstance(e, Delivered):
            console.print(f"  {name} sees: delivered {e.client_message_id[:8]}")
        elif isinstance(e, Read):
            console.print(f"  {name} sees: read {len(e.client_message_ids)} message(s)")


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="cove-demo-") as tmp:
        folder = Path(tmp)
        inbox = CodeInbox()
        database_url = f"sqlite+aiosqlite:///{folder / 'relay' / 'cove.db'}"
        (folder / "relay").mkdir()
        relay = RelayProcess(database_url, folder / "relay", inbox.url, {})
        relay.start()
        console.rule(f"relay running at {relay.url} on {database_url}")
        try:
            for name in ("alice", "bob"):
                (folder / name).mkdir()
            alice = await register(relay, inbox, folder / "alice", "Alice", "+14155550101")
            bob = await register(relay, inbox, folder / "bob", "Bob", "+14155550102")

            console.rule("Alice writes while Bob is offline")
            await alice.send_text(bob.core.account_id, "Hi Bob! Lunch at noon?")
            await alice.send_text(bob.core.account_id, "I found the place with the blue door.")
            await show_server_rows(database_url, "What the relay stores while Bob is offline")

            console.rule("Bob comes online: Alice is not his contact yet, so hers is a message request")
            show("Bob", await bob.inbox())
            await Safety(bob).accept(alice.core.account_id)  # now his read receipts reach her
            await bob.send_text(alice.core.account_id, "Noon works. See you there!")

            console.rule("Alice comes online")
            show("Alice", await alice.inbox())
            await show_server_rows(database_url, "What the relay stores now (acked envelopes are deleted)")

            leaked = [w for w in ("Lunch", "blue door", "Noon works") if w in relay.log()]
            console.print(f"Plaintext in the relay's log: {leaked or 'none'}")
            await alice.aclose()
            await bob.aclose()
        finally:
            relay.stop()
            inbox.close()


if __name__ == "__main__":
    asyncio.run(main())
