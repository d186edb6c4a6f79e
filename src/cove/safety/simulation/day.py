"""One simulated day of acts as numpy columns, unsorted: sessions of messages, bursts, group creates and adds,
and what recipients do about them (answer, block, report).

A *session* is a run of messages from one sender to one chat (a contact, a stranger or a group); a burst is
many one-message sessions to different people in quick succession. Replies and reactions are drawn per
session, so an account's fan-out to strangers and their silence, blocks and reports come from the same draws.
"""

from __future__ import annotations

import numpy as np

from cove.safety.simulation.world import DAY_MS, World

# Event kinds, in the columns' ``kind``; the last two are drawn with the world, not with a day's acts.
MESSAGE, GROUP_MESSAGE, GROUP_CREATE, GROUP_ADD, BLOCKED, REPORTED, REGISTERED, PARENT_FLAGGED = range(8)
MAX_ATTACHED = 5  # a report may carry the last few messages of the chat (issue 14)

Columns = dict[str, np.ndarray]
COLUMNS = ("t", "kind", "a", "b", "members", "forward", "contact", "attached", "first", "count")


def columns(n: int, **values: np.ndarray | int) -> Columns:
    """Columns of ``n`` events; a value not given is 0 (``first``/``count`` index the day's recipient lists)."""
    out = {name: np.zeros(n, dtype=np.int64) for name in COLUMNS}
    for name, value in values.items():
        out[name][:] = value
    return out


def concat(parts: list[Columns]) -> Columns:
    return {name: np.concatenate([p[name] for p in parts]) for name in COLUMNS}


def take(cols: Columns, index: np.ndarray) -> Columns:
    return {name: cols[name][index] for name in COLUMNS}


class Sessions:
    """Sessions of one kind being collected: sender, start, messages, mean gap, chat, members, to a contact."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(self, *arrays: np.ndarray) -> None:
        self.parts.append(tuple(np.asarray(a) for a in arrays))

    def arrays(self) -> tuple[np.ndarray, ...]:
        return tuple(np.concatenate(col) for col in zip(*self.parts, strict=True))


def draw(world: World, rng: np.random.Generator, d0: int, d1: int, next_group: int) -> tuple[Columns, np.ndarray, int]:
    """The acts of [d0, d1): columns, the recipient lists of creates and adds, and the next free group id."""
    n = world.size
    begin = np.maximum(world.registered_ms, d0)
    active = begin < d1
    span = np.where(active, d1 - begin, 0)
    degree = np.diff(world.contact_offsets)
    n_groups = np.diff(world.group_offsets)
    col = world.column

    one_to_one, groups = Sessions(), Sessions()

    # Ordinary sessions, at uniform instants while the account exists.
    count = rng.poisson(world.sessions_per_day * span / DAY_MS)
    sender = np.repeat(np.arange(n), count)
    t = begin[sender] + (rng.random(len(sender)) * span[sender]).astype(np.int64)
    messages = rng.geometric(1.0 / col("session_messages")[sender])
    gap = col("gap_s")[sender]
    in_group = (rng.random(len(sender)) < col("group_share")[sender]) & (n_groups[sender] > 0)
    g = sender[in_group]
    gid = world.group_offsets[g] + (rng.random(len(g)) * n_groups[g]).astype(np.int64)
    groups.add(g, t[in_group], messages[in_group], gap[in_group], gid, world.group_sizes[gid] - 1)
    s = ~in_group
    stranger = (rng.random(len(sender)) < col("to_stranger")[sender]) & (t >= world.abuse_from_ms[sender])
    _add_one_to_one(one_to_one, world, rng, sender[s], t[s], messages[s], gap[s], stranger[s], degree)

    # Bursts: many people, one message each, seconds apart; after the warm-up, or once at the take-over.
    after = np.maximum(begin, world.abuse_from_ms)
    window = np.where(active, np.maximum(d1 - after, 0), 0)
    count = rng.poisson(col("bursts_per_day") * window / DAY_MS) * (col("burst_once") == 0)
    owner = np.repeat(np.arange(n), count)
    starts = after[owner] + (rng.random(len(owner)) * window[owner]).astype(np.int64)
    once = np.flatnonzero((world.once_ms >= d0) & (world.once_ms < d1))
    owner = np.concatenate([owner, once])
    starts = np.concatenate([starts, world.once_ms[once]])
    size = _lognormal_counts(rng, col("burst_size", 0)[owner], col("burst_size", 1)[owner], 1)
    sender = np.repeat(owner, size)
    t = np.repeat(starts, size) + _offsets_within(rng, size, col("burst_gap_s")[sender])
    stranger = rng.random(len(sender)) < col("burst_to_stranger")[sender]
    _add_one_to_one(
        one_to_one, world, rng, sender, t, np.ones(len(sender), np.int64), col("gap_s")[sender], stranger, degree
    )

    # Groups created (then written to) and members added, each to contacts or strangers.
    can_group = active & ~world.business
    creators = np.repeat(np.arange(n), rng.poisson(col("creates_per_day") * span / DAY_MS) * can_group)
    adders = np.repeat(np.arange(n), rng.poisson(col("add_acts_per_day") * span / DAY_MS) * (n_groups > 0) * active)
    actor = np.concatenate([creators, adders])
    create = np.arange(len(actor)) < len(creators)
    t = begin[actor] + (rng.random(len(actor)) * span[actor]).astype(np.int64)
    added = _lognormal_counts(rng, col("adds", 0)[actor], col("adds", 1)[actor], 1)
    existing = world.group_offsets[adders] + (rng.random(len(adders)) * n_groups[adders]).astype(np.int64)
    gid = np.concatenate([next_group + np.arange(len(creators)), existing])
    members = added.copy()
    members[~create] += world.group_sizes[existing] - 1
    added_by = np.repeat(actor, added)
    stranger = (rng.random(len(added_by)) < col("add_stranger")[added_by]) | (degree[added_by] == 0)
    recipients = _pick(world, rng, added_by, stranger, degree)
    first = np.concatenate([[0], np.cumsum(added)[:-1]]).astype(np.int64)
    acts = columns(
        len(actor),
        t=t,
        kind=np.where(create, GROUP_CREATE, GROUP_ADD),
        a=actor,
        b=gid,
        members=members,
        first=first,
        count=added,
    )
    follow = t[create] + rng.exponential(60_000, len(creators)).astype(np.int64)
    groups.add(
        creators,
        follow,
        rng.geometric(1.0 / col("session_messages")[creators]),
        col("gap_s")[creators],
        gid[create],
        added[create],
    )
    reactions, _ = _reactions(world, rng, added_by, recipients, ~stranger, np.repeat(t, added))

    parts = [acts, reactions]
    if one_to_one.parts:
        sender, t, messages, gap, recipient, contact = one_to_one.arrays()
        parts += _one_to_one_events(world, rng, sender, t, messages, gap, recipient, contact)
    if groups.parts:
        sender, t, messages, gap, gid, members = groups.arrays()
        parts.append(_messages(world, rng, GROUP_MESSAGE, sender, t, messages, gap, gid, members, forwards=True))
    return concat(parts), recipients, next_group + len(creators)


def _add_one_to_one(
    sessions: Sessions,
    world: World,
    rng: np.random.Generator,
    sender: np.ndarray,
    t: np.ndarray,
    messages: np.ndarray,
    gap: np.ndarray,
    stranger: np.ndarray,
    degree: np.ndarray,
) -> None:
    stranger = stranger | (degree[sender] == 0)
    sessions.add(sender, t, messages, gap, _pick(world, rng, sender, stranger, degree), ~stranger)


def _pick(
    world: World, rng: np.random.Generator, sender: np.ndarray, stranger: np.ndarray, degree: np.ndarray
) -> np.ndarray:
    """A contact of each sender, or any account (a stranger) where ``stranger``; never the sender."""
    k = len(sender)
    slot = world.contact_offsets[sender] + (rng.random(k) * np.maximum(degree[sender], 1)).astype(np.int64)
    contact = world.contacts[np.minimum(slot, len(world.contacts) - 1)] if len(world.contacts) else np.zeros(k)
    anyone = rng.integers(0, world.size, k)
    anyone = np.where(anyone == sender, (anyone + 1) % world.size, anyone)
    return np.where(stranger, anyone, contact).astype(np.int64)


def _one_to_one_events(
    world: World,
    rng: np.random.Generator,
    sender: np.ndarray,
    t: np.ndarray,
    messages: np.ndarray,
    gap: np.ndarray,
    recipient: np.ndarray,
    contact: np.ndarray,
) -> list[Columns]:
    """The messages of 1:1 sessions, the recipients' blocks and reports, and the answers of those who did
    not block."""
    sent = _messages(world, rng, MESSAGE, sender, t, messages, gap, recipient, 1, forwards=True)
    reactions, blocked_sessions = _reactions(world, rng, sender, recipient, contact, t)
    blocked = np.zeros(len(sender), dtype=bool)
    blocked[blocked_sessions] = True
    col = world.column
    answer_p = np.where(contact, col("reply_contact")[sender], col("reply_stranger")[sender])
    answers = (rng.random(len(sender)) < answer_p) & ~blocked
    replies = world.config.replies
    last = t + (messages * gap * 1000).astype(np.int64)
    when = last[answers] + rng.exponential(replies.delay_s * 1000, answers.sum()).astype(np.int64)
    count = rng.geometric(1.0 / replies.messages, answers.sum())
    back = _messages(
        world,
        rng,
        MESSAGE,
        recipient[answers],
        when,
        count,
        np.full(len(when), replies.gap_s),
        sender[answers],
        1,
        forwards=False,
    )
    return [sent, reactions, back]


def _messages(
    world: World,
    rng: np.random.Generator,
    kind: int,
    sender: np.ndarray,
    t: np.ndarray,
    messages: np.ndarray,
    gap_s: np.ndarray,
    chat: np.ndarray,
    members: np.ndarray | int,
    forwards: bool,
) -> Columns:
    """Each session's messages, ``gap_s`` apart on average; some forwarded ``forward_hops`` times on average."""
    row = np.repeat(np.arange(len(sender)), messages)
    who = sender[row]
    times = t[row] + _offsets_within(rng, messages, gap_s[row])
    forward = np.zeros(len(row), dtype=np.int64)
    if forwards:
        col = world.column
        forwarded = rng.random(len(row)) < col("forward_share")[who]
        forward[forwarded] = rng.geometric(1.0 / col("forward_hops")[who[forwarded]])
    members = members[row] if isinstance(members, np.ndarray) else members
    return columns(len(row), t=times, kind=kind, a=who, b=chat[row], members=members, forward=forward)


def _reactions(
    world: World,
    rng: np.random.Generator,
    sender: np.ndarray,
    recipient: np.ndarray,
    contact: np.ndarray,
    t: np.ndarray,
) -> tuple[Columns, np.ndarray]:
    """Blocks and reports of ``sender`` by ``recipient``, some minutes after ``t``, and the indexes of the
    sessions that got a block."""
    col = world.column
    scale = world.reaction[sender]
    parts, blocked = [], np.zeros(0, dtype=np.int64)
    for kind, (as_contact, as_stranger) in (
        (BLOCKED, ("block_contact", "block_stranger")),
        (REPORTED, ("report_contact", "report_stranger")),
    ):
        p = np.minimum(1.0, scale * np.where(contact, col(as_contact)[sender], col(as_stranger)[sender]))
        hit = np.flatnonzero(rng.random(len(sender)) < p)
        delay = rng.exponential(world.config.reaction_delay_s * 1000, len(hit)).astype(np.int64)
        attached = rng.integers(0, MAX_ATTACHED + 1, len(hit)) if kind == REPORTED else 0
        parts.append(
            columns(
                len(hit),
                t=t[hit] + delay,
                kind=kind,
                a=recipient[hit],
                b=sender[hit],
                contact=contact[hit],
                attached=attached,
            )
        )
        blocked = hit if kind == BLOCKED else blocked
    return concat(parts), blocked


def _offsets_within(rng: np.random.Generator, counts: np.ndarray, gap_s: np.ndarray) -> np.ndarray:
    """Milliseconds since its run's start of every message of runs of ``counts`` messages (the first at 0),
    with exponential gaps of mean ``gap_s`` (one per message)."""
    gaps = (rng.exponential(1.0, len(gap_s)) * gap_s * 1000).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    gaps[starts[counts > 0]] = 0
    total = np.cumsum(gaps)
    return total - np.repeat(total[starts] if len(total) else starts, counts)


def _lognormal_counts(rng: np.random.Generator, median: np.ndarray, sigma: np.ndarray, lowest: int) -> np.ndarray:
    values = np.exp(np.log(median) + sigma * rng.standard_normal(len(median)))
    return np.maximum(values.round(), lowest).astype(np.int64)
