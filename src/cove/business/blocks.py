"""A business's blocklist: which of the users it asked to block it may block, and what blocking means.

Meta's Block Users API ([M] https://developers.facebook.com/documentation/business-messaging/whatsapp/block-users/):

- only users who messaged the business in the last 24 hours can be blocked; any other is a failed user with
  131047 ("Re-engagement required"), per user, while the others in the same request are blocked;
- at most 1,000 users per request, and 64,000 on the blocklist (then 139101, "Blocklist limit reached");
- a block is two-way: the blocked user cannot reach the business, the business cannot message the user.

Pure: the caller loads each candidate (its account, when the user last wrote, whether already blocked) and
stores what :func:`plan` answers. An id that is not one of the business's users gets the same 131047 as a user
who has not written lately, so the answer confirms nothing about ids the business does not know.
"""

from __future__ import annotations

from dataclasses import dataclass

from cove.business.errors import CloudApiError

MAX_PER_REQUEST = 1_000
MAX_BLOCKLIST = 64_000
BLOCKABLE_FOR_MS = 24 * 60 * 60 * 1000  # since the user's last message to the business

NOT_RECENT = "User has not messaged in the last 24 hours"


@dataclass(frozen=True)
class Candidate:
    """One user the business asked to block, as the relay knows them."""

    user_id: str  # the business's id for the user
    account_id: str | None  # None: no user of this business has this id
    last_user_message_ms: int | None  # the user's last message to the business
    blocked: bool  # already on the blocklist


@dataclass(frozen=True)
class Outcome:
    user_id: str
    account_id: str | None
    error: CloudApiError | None = None  # None: blocked (now or before)
    new: bool = False  # a row to add

    @property
    def added(self) -> bool:
        return self.error is None


def plan(candidates: list[Candidate], blocklist_size: int, now_ms: int) -> list[Outcome]:
    """The outcome for each distinct user, in the order asked. Blocking someone already blocked succeeds again
    (a retried request must not fail); the new ones take the blocklist's free places in that order."""
    if len(candidates) > MAX_PER_REQUEST:
        raise ValueError(f"at most {MAX_PER_REQUEST} users per request")
    free = MAX_BLOCKLIST - blocklist_size
    outcomes: list[Outcome] = []
    seen: set[str] = set()
    for c in candidates:
        if c.user_id in seen:
            continue
        seen.add(c.user_id)
        if c.account_id is not None and c.blocked:
            outcomes.append(Outcome(c.user_id, c.account_id))
        elif c.account_id is None or not recent(c.last_user_message_ms, now_ms):
            outcomes.append(Outcome(c.user_id, c.account_id, CloudApiError(131047, NOT_RECENT)))
        elif free <= 0:
            outcomes.append(Outcome(c.user_id, c.account_id, CloudApiError(139101)))
        else:
            free -= 1
            outcomes.append(Outcome(c.user_id, c.account_id, new=True))
    return outcomes


def recent(last_user_message_ms: int | None, now_ms: int) -> bool:
    return last_user_message_ms is not None and now_ms - last_user_message_ms < BLOCKABLE_FOR_MS
