"""What accounts does when the account changes elsewhere: its device directory forgets the cached entry, in
every relay process (cove.events forwards the event to the fleet). Its own part of an account's data export."""

from __future__ import annotations

from cove.accounts.export import account_sections
from cove.context import Relay
from cove.events import AccountChanged, AccountDeleted, DevicesLoggedOut


def register(relay: Relay) -> None:
    def forget(event: AccountDeleted | DevicesLoggedOut | AccountChanged) -> None:
        relay.directory.forget(event.account_id)

    for kind in (AccountDeleted, DevicesLoggedOut, AccountChanged):
        relay.hooks.on(kind, forget)
    relay.export_sections.append(account_sections)
