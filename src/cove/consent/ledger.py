"""The consent ledger, pure: entries chained by hash per account, checkpoints chaining the accounts together.

R6 asks for demonstrable consent: an append-only record of what each person was shown and what they chose.
Append-only is a promise; this module makes breaking it visible.

* Every account has its own chain. Entry ``seq`` counts from 1; each entry's ``hash`` is SHA-256 over its
  canonical form (sorted-key compact JSON of account, seq, kind, payload, time and ``prev_hash``), and
  ``prev_hash`` is the hash of the entry before it (the first entry chains from :data:`GENESIS`).
  Editing an entry breaks its hash; deleting or moving one breaks the sequence or the link.
* A chain alone cannot show that its newest entries were removed. So every so often a global
  *checkpoint* records, for each account whose head changed since the previous checkpoint, the account's
  head (seq and hash), and the id of the last ledger row it covers. Checkpoints are chained by hash
  too, so the accounts are bound to one another: rewriting or truncating any covered history means
  rewriting every later checkpoint.

What remains undetectable from the database alone: changes after the newest checkpoint, and the removal
or rewriting of the newest checkpoint itself. Keep the newest checkpoint hash somewhere else (the relay
logs it; see :func:`cove.consent.ledger_storage.checkpoint_forever`) to close that gap.

Nothing here does I/O: :mod:`cove.consent.ledger_storage` keeps the entries in the relay's database.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

#: Where every account's chain, and the chain of checkpoints, starts.
GENESIS = "0" * 64

#: Version of the canonical form; part of every hashed document.
FORMAT_VERSION = 1

NOTICE_SERVED = "notice_served"
TERMS_ACCEPTED = "terms_accepted"
CHOICE = "choice"
OBJECTION = "objection"
WITHDRAWAL = "withdrawal"

#: The kinds of entry callers write.
KINDS = frozenset({NOTICE_SERVED, TERMS_ACCEPTED, CHOICE, OBJECTION, WITHDRAWAL})

#: Key under which a loader keeps a payload that is not valid JSON (so that verify can say so).
UNREADABLE = "$unreadable"


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept as is, no NaN or infinity: one text for one value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _sha256(document: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()


class Head(NamedTuple):
    """An account's newest entry, as far as chaining and checkpoints are concerned."""

    account_id: str
    seq: int
    hash: str


@dataclass(frozen=True, slots=True)
class Entry:
    """One event in an account's consent history. ``id`` is the ledger row id (None until stored)."""

    account_id: str
    seq: int
    kind: str
    payload: dict[str, Any]
    at_ms: int
    prev_hash: str
    hash: str
    id: int | None = None

    @property
    def head(self) -> Head:
        return Head(self.account_id, self.seq, self.hash)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A global seal: the chain of checkpoints, the last ledger row covered, and the heads that changed."""

    last_entry_id: int
    heads: tuple[Head, ...]
    at_ms: int
    prev_hash: str
    hash: str
    id: int | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing verification found wrong, located as precisely as possible and said in plain words."""

    code: str
    message: str
    entry_id: int | None = None
    account_id: str | None = None
    seq: int | None = None
    checkpoint_id: int | None = None
    related: tuple[int, ...] = field(default=())
    """Other ledger row ids involved (the row a moved entry collides with, for example)."""

    @property
    def where(self) -> str:
        if self.entry_id is not None:
            return f"entry {self.entry_id} (account {self.account_id}, seq {self.seq})"
        if self.checkpoint_id is not None:
            return f"checkpoint {self.checkpoint_id}"
        return "ledger"

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


# Problem codes.
EDITED = "edited"
UNREADABLE_PAYLOAD = "unreadable"
MISSING = "missing"
BROKEN_LINK = "broken_link"
REORDERED = "reordered"
DUPLICATE = "duplicate"
INVALID = "invalid"
CHECKPOINT_EDITED = "checkpoint_edited"
CHECKPOINT_MISSING = "checkpoint_missing"
CHECKPOINT_REORDERED = "checkpoint_reordered"
TAIL_DELETED = "tail_deleted"
REWRITTEN = "rewritten"
RENUMBERED = "renumbered"
UNCOVERED = "uncovered"


# --- Entries ---------------------------------------------------------------------------------------------


def entry_document(
    account_id: str, seq: int, kind: str, payload: Mapping[str, Any], at_ms: int, prev_hash: str
) -> dict[str, Any]:
    """What an entry's hash covers (everything but the row id, which the database assigns later)."""
    return {
        "v": FORMAT_VERSION,
        "account_id": account_id,
        "seq": seq,
        "kind": kind,
        "payload": payload,
        "at_ms": at_ms,
        "prev_hash": prev_hash,
    }


def canonical_entry(
    account_id: str, seq: int, kind: str, payload: Mapping[str, Any], at_ms: int, prev_hash: str
) -> bytes:
    return canonical_json(entry_document(account_id, seq, kind, payload, at_ms, prev_hash)).encode("utf-8")


def entry_hash(account_id: str, seq: int, kind: str, payload: Mapping[str, Any], at_ms: int, prev_hash: str) -> str:
    """SHA-256 (hex) over the canonical form of an entry, which includes the previous entry's hash."""
    return hashlib.sha256(canonical_entry(account_id, seq, kind, payload, at_ms, prev_hash)).hexdigest()


def hash_of(entry: Entry) -> str:
    """The hash an entry should carry, recomputed from its content."""
    return entry_hash(entry.account_id, entry.seq, entry.kind, entry.payload, entry.at_ms, entry.prev_hash)


def next_entry(head: Head | None, account_id: str, kind: str, payload: Mapping[str, Any], at_ms: int) -> Entry:
    """The entry that follows ``head`` (the account's newest entry, or None for its first).

    The payload is normalised through its canonical JSON, so the entry holds exactly what a reader of
    the stored text gets back (and a payload that JSON cannot carry fails here, not at verification).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown ledger entry kind {kind!r}; expected one of {sorted(KINDS)}")
    if not isinstance(payload, Mapping):
        raise TypeError("a ledger payload is a JSON object (a mapping with string keys)")
    if isinstance(at_ms, bool) or not isinstance(at_ms, int):
        raise TypeError("at_ms is integer milliseconds since the epoch")
    if head is not None and head.account_id != account_id:
        raise ValueError(f"head belongs to account {head.account_id!r}, not {account_id!r}")
    normalised = json.loads(canonical_json(dict(payload)))
    seq = head.seq + 1 if head else 1
    prev_hash = head.hash if head else GENESIS
    digest = entry_hash(account_id, seq, kind, normalised, at_ms, prev_hash)
    return Entry(account_id, seq, kind, normalised, at_ms, prev_hash, digest)


# --- Checkpoints -----------------------------------------------------------------------------------------


def checkpoint_document(prev_hash: str, last_entry_id: int, heads: Iterable[Head], at_ms: int) -> dict[str, Any]:
    return {
        "v": FORMAT_VERSION,
        "prev_hash": prev_hash,
        "last_entry_id": last_entry_id,
        "heads": [[h.account_id, h.seq, h.hash] for h in sorted(heads)],
        "at_ms": at_ms,
    }


def checkpoint_hash(prev_hash: str, last_entry_id: int, heads: Iterable[Head], at_ms: int) -> str:
    """SHA-256 over the previous checkpoint's hash, the last row covered and the sorted changed heads."""
    return _sha256(checkpoint_document(prev_hash, last_entry_id, heads, at_ms))


def checkpoint_hash_of(cp: Checkpoint) -> str:
    return checkpoint_hash(cp.prev_hash, cp.last_entry_id, cp.heads, cp.at_ms)


def make_checkpoint(prev_hash: str, last_entry_id: int, heads: Iterable[Head], at_ms: int) -> Checkpoint:
    """The checkpoint after the one hashed ``prev_hash`` (:data:`GENESIS` for the first), covering rows up
    to ``last_entry_id``, with the heads that changed since."""
    ordered = tuple(sorted(Head(*h) for h in heads))
    return Checkpoint(
        last_entry_id, ordered, at_ms, prev_hash, checkpoint_hash(prev_hash, last_entry_id, ordered, at_ms)
    )


def changed_heads(entries: Iterable[Entry], after_id: int) -> tuple[int, list[Head]]:
    """The last row id and each account's newest entry among stored entries with ``id > after_id``."""
    heads: dict[str, Entry] = {}
    last = after_id
    for entry in entries:
        if entry.id is None or entry.id <= after_id:
            continue
        last = max(last, entry.id)
        current = heads.get(entry.account_id)
        if current is None or entry.seq > current.seq:
            heads[entry.account_id] = entry
    return last, sorted(e.head for e in heads.values())


# --- Verification ----------------------------------------------------------------------------------------


def _short(digest: str) -> str:
    return digest[:12] + "…" if len(digest) > 12 else digest


def _seq_range(first: int, last: int) -> str:
    return f"seq {first}" if first == last else f"seqs {first} to {last}"


def _seqs(first: int, last: int) -> str:
    return f"{_seq_range(first, last)} {'is' if first == last else 'are'}"


def _longest_ordered(seqs: list[int]) -> set[int]:
    """Positions of a longest non-decreasing subsequence: the rows that are in order among themselves."""
    tails: list[int] = []  # tails[k]: smallest tail value of a run of length k + 1
    tail_pos: list[int] = []
    parent = [-1] * len(seqs)
    for i, seq in enumerate(seqs):
        k = bisect.bisect_right(tails, seq)
        parent[i] = tail_pos[k - 1] if k else -1
        if k == len(tails):
            tails.append(seq)
            tail_pos.append(i)
        else:
            tails[k] = seq
            tail_pos[k] = i
    kept: set[int] = set()
    i = tail_pos[-1] if tail_pos else -1
    while i != -1:
        kept.add(i)
        i = parent[i]
    return kept


def _check_entries(entries: list[Entry]) -> list[Problem]:
    problems: list[Problem] = []
    seen_ids: set[int] = set()
    for e in entries:
        if e.id in seen_ids:
            problems.append(Problem(DUPLICATE, "another entry has the same row id", e.id, e.account_id, e.seq))
        seen_ids.add(e.id)
        if UNREADABLE in e.payload:
            problems.append(
                Problem(UNREADABLE_PAYLOAD, "its payload is not valid JSON: it was edited", e.id, e.account_id, e.seq)
            )
        elif hash_of(e) != e.hash:
            problems.append(
                Problem(
                    EDITED,
                    "its content no longer matches its hash: the entry was edited after it was written",
                    e.id,
                    e.account_id,
                    e.seq,
                )
            )
    return problems


def _check_order(rows: list[Entry]) -> list[Problem]:
    """Within an account, row ids and seqs must rise together; name the rows that break the order."""
    seqs = [r.seq for r in rows]
    kept = _longest_ordered(seqs)
    if len(kept) == len(rows):
        return []
    problems = []
    for i, row in enumerate(rows):
        if i in kept:
            continue
        before = [r for r in rows[:i] if r.seq > row.seq]
        after = [r for r in rows[i + 1 :] if r.seq < row.seq]
        if before:
            other = before[-1]
            detail = f"it comes after row {other.id}, which holds the later seq {other.seq}"
        else:
            other = after[0]
            detail = f"it comes before row {other.id}, which holds the earlier seq {other.seq}"
        problems.append(
            Problem(
                REORDERED,
                f"entries are out of order: {detail}; rows were swapped or renumbered",
                row.id,
                row.account_id,
                row.seq,
                (other.id,) if other.id is not None else (),
            )
        )
    return problems


def _check_chain(rows: list[Entry]) -> list[Problem]:
    """In seq order, an account's entries count 1, 2, 3… and each links to the hash of the one before."""
    problems = []
    previous: Entry | None = None
    expected = 1
    for row in sorted(rows, key=lambda r: (r.seq, r.id)):
        if previous is not None and row.seq == previous.seq:
            problems.append(
                Problem(
                    DUPLICATE,
                    f"row {previous.id} holds the same seq: one of them was inserted or copied",
                    row.id,
                    row.account_id,
                    row.seq,
                    (previous.id,),
                )
            )
            continue
        if row.seq < expected:  # only a seq below 1 gets here
            problems.append(Problem(INVALID, "its seq is not a positive number", row.id, row.account_id, row.seq))
            continue
        if row.seq > expected:
            problems.append(
                Problem(
                    MISSING,
                    f"{_seqs(expected, row.seq - 1)} missing before it: entries were deleted",
                    row.id,
                    row.account_id,
                    row.seq,
                )
            )
        elif previous is None and row.prev_hash != GENESIS:
            problems.append(
                Problem(
                    BROKEN_LINK,
                    "it is the account's first entry but does not chain from the genesis value: "
                    "it was replaced or moved",
                    row.id,
                    row.account_id,
                    row.seq,
                )
            )
        elif previous is not None and row.prev_hash != previous.hash:
            problems.append(
                Problem(
                    BROKEN_LINK,
                    f"it does not link to the entry before it (seq {previous.seq}, row {previous.id}): "
                    "that entry was replaced, or this one was moved",
                    row.id,
                    row.account_id,
                    row.seq,
                    (previous.id,),
                )
            )
        previous = row
        expected = row.seq + 1
    return problems


def _check_checkpoints(checkpoints: list[Checkpoint], by_account: dict[str, list[Entry]]) -> list[Problem]:
    problems: list[Problem] = []
    by_seq = {account: {r.seq: r for r in rows} for account, rows in by_account.items()}
    latest: dict[str, Head] = {}
    previous: Checkpoint | None = None
    for cp in checkpoints:
        edited = checkpoint_hash_of(cp) != cp.hash
        if edited:
            problems.append(
                Problem(
                    CHECKPOINT_EDITED,
                    "its content no longer matches its hash: the checkpoint was edited",
                    checkpoint_id=cp.id,
                )
            )
        if previous is None and cp.prev_hash != GENESIS:
            problems.append(
                Problem(
                    CHECKPOINT_MISSING,
                    "it is the first checkpoint but does not chain from the genesis value: "
                    "earlier checkpoints were deleted",
                    checkpoint_id=cp.id,
                )
            )
        elif previous is not None and cp.prev_hash != previous.hash:
            problems.append(
                Problem(
                    CHECKPOINT_MISSING,
                    f"it does not link to the checkpoint before it ({previous.id}): "
                    "a checkpoint between them was deleted or replaced",
                    checkpoint_id=cp.id,
                )
            )
        if previous is not None and cp.last_entry_id < previous.last_entry_id:
            problems.append(
                Problem(
                    CHECKPOINT_REORDERED,
                    f"it covers rows up to {cp.last_entry_id}, fewer than the checkpoint before it "
                    f"({previous.id}, up to row {previous.last_entry_id}): checkpoints were reordered",
                    checkpoint_id=cp.id,
                )
            )
        for head in cp.heads:
            if not edited:  # an edited checkpoint's heads prove nothing; it is reported once, above
                problems += _check_head(cp, head, by_account.get(head.account_id, []), by_seq.get(head.account_id, {}))
            latest[head.account_id] = head
        previous = cp

    if previous is not None:
        problems += _check_coverage(previous, by_account, latest)
    return problems


def _check_head(cp: Checkpoint, head: Head, rows: list[Entry], by_seq: dict[int, Entry]) -> list[Problem]:
    def problem(code: str, message: str, entry: Entry | None = None) -> Problem:
        return Problem(
            code,
            message,
            entry.id if entry else None,
            head.account_id,
            head.seq,
            cp.id,
        )

    entry = by_seq.get(head.seq)
    if not rows:
        return [
            problem(
                TAIL_DELETED,
                f"checkpoint {cp.id} covered account {head.account_id} up to seq {head.seq}, but the account "
                "has no entries left: its history was deleted",
            )
        ]
    if entry is None:
        top = max(r.seq for r in rows)
        if top < head.seq:
            return [
                problem(
                    TAIL_DELETED,
                    f"checkpoint {cp.id} covered account {head.account_id} up to seq {head.seq}, but the account "
                    f"ends at seq {top}: its last entries ({_seq_range(top + 1, head.seq)}) were deleted",
                )
            ]
        return [
            problem(
                MISSING,
                f"checkpoint {cp.id} covered account {head.account_id} up to seq {head.seq}, and that entry is "
                "missing: it was deleted",
            )
        ]
    if entry.hash != head.hash:
        return [
            problem(
                REWRITTEN,
                f"checkpoint {cp.id} recorded hash {_short(head.hash)} for this entry, but it now has "
                f"{_short(entry.hash)}: the account's history was rewritten after the checkpoint",
                entry,
            )
        ]
    if entry.id is not None and entry.id > cp.last_entry_id:
        return [
            problem(
                RENUMBERED,
                f"checkpoint {cp.id} covered rows up to {cp.last_entry_id}, yet this entry it recorded now has "
                f"row id {entry.id}: rows were renumbered",
                entry,
            )
        ]
    return []


def _check_coverage(last: Checkpoint, by_account: dict[str, list[Entry]], latest: dict[str, Head]) -> list[Problem]:
    """Every entry up to the newest checkpoint's last row was written before it, so some checkpoint saw it."""
    problems = []
    for account, rows in by_account.items():
        covered = [r for r in rows if r.id is not None and r.id <= last.last_entry_id]
        if not covered:
            continue
        top = max(covered, key=lambda r: r.seq)
        head = latest.get(account)
        if head is None or top.seq > head.seq:
            problems.append(
                Problem(
                    UNCOVERED,
                    f"its row id is within checkpoint {last.id} (rows up to {last.last_entry_id}), but no remaining "
                    "checkpoint recorded it: it was inserted afterwards, or the checkpoint that covered it was deleted",
                    top.id,
                    top.account_id,
                    top.seq,
                    checkpoint_id=last.id,
                )
            )
    return problems


def verify(entries: Iterable[Entry], checkpoints: Iterable[Checkpoint]) -> list[Problem]:
    """Everything wrong with a stored ledger (entries and checkpoints with their row ids); empty if intact.

    Detects edited entries (hash mismatch), deleted entries (a gap in seq or a broken ``prev_hash`` link),
    reordered entries (seq against row-id order, or a broken link), edited or deleted checkpoints (hash or
    chain mismatch), an account's deleted or rewritten tail that a checkpoint had covered, and entries
    slipped in below the newest checkpoint.
    """
    ordered = sorted(entries, key=lambda e: (e.id is None, e.id or 0))
    problems = _check_entries(ordered)
    by_account: dict[str, list[Entry]] = {}
    for e in ordered:
        by_account.setdefault(e.account_id, []).append(e)
    chain_problems: list[Problem] = []
    for rows in by_account.values():
        chain_problems += _check_order(rows)
        chain_problems += _check_chain(rows)
    problems += chain_problems
    problems.sort(key=lambda p: (p.entry_id is None, p.entry_id or 0))
    problems += _check_checkpoints(sorted(checkpoints, key=lambda c: c.id or 0), by_account)
    return problems
