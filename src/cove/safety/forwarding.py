"""The relay's forward limits, from the visible header alone (cove.protocol.forwarding): one forward action (its
``batch``) reaches at most 5 chats, 1 for a message forwarded 5 times or more; an account's forwarded sends of
every batch draw on one bucket, where a frequently forwarded send costs as much as 5 chats.

Both are counted in the fleet-wide limit store (``Limiter.FORWARD_BATCH`` and ``Limiter.FORWARD``), so the
relays of a fleet agree. A chat counts once per batch: a send retried (a lost answer, a device list that changed)
is not a second chat. What a modified client can still do: drop the header, so that its forwards look like
originals to the relay and carry no label to their recipients, or reuse a count it invents. The bucket bounds
what it gains by a new batch per chat; the detector counts forwarded sends and burst sends anyway.
"""

from __future__ import annotations

from cove.activity import Outbound
from cove.context import Relay
from cove.errors import ApiError
from cove.limits.rules import Quota
from cove.limits.store import Use
from cove.limits.table import Limiter
from cove.protocol import forwarding


def forward_limit(count: int, chats: int) -> ApiError:
    """The refusal of a chat beyond what one forward action of a message forwarded ``count`` times may reach."""
    chat_s = "chat" if chats == 1 else "chats"
    message = f"a message forwarded {count} times can be forwarded to at most {chats} {chat_s} at once"
    return ApiError(429, "forward_limit", message, limit=chats)


async def check(relay: Relay, outbound: Outbound) -> None:
    """The outbound check (cove.activity): refuses with 429 ``forward_limit`` a chat beyond the action's limit,
    or ``rate_limited`` (with ``Retry-After``) when the account's forwards outran its bucket."""
    if not outbound.forward_count or outbound.forward_batch is None:
        return
    held = outbound.forward_count - 1  # the count the forwarding person's client showed
    chats = forwarding.limit(held)
    action = f"{outbound.sender}:{outbound.forward_batch}"
    window = relay.limits.rules[Limiter.FORWARD_BATCH].size
    assert isinstance(window, Quota)
    # One call, all or nothing: the action's chats, and whether this chat is one of them already.
    counted, seen = await relay.limits.count(
        [
            Use((Limiter.FORWARD_BATCH, action), Quota(chats, window.window_seconds)),
            Use((Limiter.FORWARD_BATCH, f"{action}:{outbound.chat}"), Quota(1, window.window_seconds)),
        ]
    )
    if seen.wait:
        return  # a chat this action reached before: counted (and its cost spent) then
    if counted.wait:
        raise forward_limit(held, chats)
    await relay.limits.check(Limiter.FORWARD, outbound.sender, forwarding.MAX_CHATS / chats)
