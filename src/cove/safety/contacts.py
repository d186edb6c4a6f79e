"""Who accepts whom, and who blocks whom: the relay's notion of contact, read on every send.

``A accepts B`` when A sent B a one-to-one message (not a receipt), or accepted B's message request
(``PUT /v1/safety/requests/{B}``), and has not blocked B since. The other safety concerns ask
:func:`accepts`; the defences' own outbound check asks :func:`between`.

Every answer comes from this process's cache of pairs (cove.safety.pairs) once warm: a send costs two
dictionary look-ups, and a pair never seen costs one read of both directions. How the cache stays true in a
fleet of relay processes:

- A block, an unblock or an explicit acceptance is rare and must take effect everywhere: it is announced
  (``ContactsChanged``, cove.fleet), and every process forgets the pair within milliseconds, or within
  ``COVE_FLEET_POLL_SECONDS`` when the bus lost it.
- An acceptance recorded by a send is not announced: there is one per new pair of people, and a fleet event
  each would double the writes of a first message. Another process may so hold "B does not accept A" for up
  to ``COVE_SAFETY_CONTACTS_TTL_SECONDS``. Where a stale "no" would take something from a user (their read
  receipt withheld), :func:`confirmed_accepts` reads the database before saying no; a receipt to someone not
  accepted is rare, so that read is too. For the detector's counts a minute's lag does not matter.
- A deleted account's pairs are not forgotten: account ids are never reused, and a send to a deleted account
  is refused before any check, so its entries only wait for eviction.
"""

from __future__ import annotations

from collections.abc import Iterable

from cove.clock import now_ms
from cove.context import Relay
from cove.events import ContactsChanged
from cove.safety import defences_storage as storage
from cove.safety.pairs import ACCEPTS, Pairs
from cove.safety.parts import of


def pairs(relay: Relay) -> Pairs:
    cache = of(relay).contacts
    assert cache is not None, "cove.safety.hooks.register sizes the cache at start-up"
    return cache


async def load(relay: Relay, account: str, others: Iterable[str]) -> dict[tuple[str, str], int]:
    """Read ``account``'s relations to each of ``others``, both ways, into the cache; returns those found."""
    others = list(others)
    async with relay.engine.connect() as conn:
        found = await storage.relations(conn, account, others)
    cache = pairs(relay)
    for other in others:
        cache.put(account, other, found.get((account, other), 0))
        cache.put(other, account, found.get((other, account), 0))
    return found


async def between(relay: Relay, a: str, b: str) -> tuple[int, int]:
    """The flags of ``a`` to ``b`` and of ``b`` to ``a``."""
    known = pairs(relay).both(a, b)
    if known is None:
        found = await load(relay, a, [b])
        known = found.get((a, b), 0), found.get((b, a), 0)
    return known


async def accepts(relay: Relay, owner: str, peer: str) -> bool:
    """Whether ``owner`` accepts ``peer`` (wrote to them, or accepted their request, and has not blocked them
    since). Cached: at most ``COVE_SAFETY_CONTACTS_TTL_SECONDS`` behind an acceptance another process recorded."""
    there, _ = await between(relay, owner, peer)
    return bool(there & ACCEPTS)


async def confirmed_accepts(relay: Relay, owner: str, peer: str) -> bool:
    """:func:`accepts`, with a "no" read again from the database (another process may have recorded a yes)."""
    if await accepts(relay, owner, peer):
        return True
    await load(relay, owner, [peer])
    return await accepts(relay, owner, peer)


async def record(relay: Relay, owner: str, peer: str) -> None:
    """``owner`` wrote to ``peer``: they accept them from now on. Cheap when already known."""
    if await accepts(relay, owner, peer):
        return
    async with relay.engine.begin() as conn:
        await storage.accept(conn, owner, peer, now_ms())
    pairs(relay).mark(owner, peer, ACCEPTS)


def forget(relay: Relay, event: ContactsChanged) -> None:
    pairs(relay).forget(event.owner, event.peer)
