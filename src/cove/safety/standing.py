"""The actions in force per account, as one relay process remembers them (cove.safety.actions reads through it).

Most accounts have none, and remembering that is what saves a database read on their every send; so an entry
is kept for every account seen, in least-recently-used order, up to ``limit`` (COVE_SAFETY_ACTIONS_CACHED).
A change anywhere in the fleet (SafetyActionChanged) forgets the account here; a load that raced with such a
change is not kept, so a stale answer cannot outlive the event that should have removed it.
"""

from __future__ import annotations

from collections import OrderedDict

from cove.safety.ladder import Taken


class Standing:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._entries: OrderedDict[str, tuple[Taken, ...]] = OrderedDict()
        self._changes = 0  # counts forgets, so that a load started before one is not kept

    def get(self, account_id: str) -> tuple[Taken, ...] | None:
        actions = self._entries.get(account_id)
        if actions is not None:
            self._entries.move_to_end(account_id)
        return actions

    def mark(self) -> int:
        """Call before loading from the database; pass the mark to :meth:`keep`."""
        return self._changes

    def keep(self, account_id: str, actions: tuple[Taken, ...], mark: int) -> None:
        if mark != self._changes:
            return
        self._entries[account_id] = actions
        self._entries.move_to_end(account_id)
        while len(self._entries) > self.limit:
            self._entries.popitem(last=False)

    def forget(self, account_id: str) -> None:
        self._changes += 1
        self._entries.pop(account_id, None)
