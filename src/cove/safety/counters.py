"""Per-account counters the detector keeps in memory: what each account did over the last 15 s, hour and day,
and since the relay first saw it, fed by every act towards others and by safety's signals.

Each window is a ring of buckets (15 of a second, 12 of five minutes, 24 of an hour) holding one count per
:class:`Column`, plus a running total, so recording an act costs a handful of list writes whatever the traffic
(the ring clears at most its own length of buckets when time jumps). The number of accounts is bounded: the
least recently active account is forgotten first (an idle account has nothing in its windows anyway).

Whether a recipient ever wrote back needs no database: the counters remember, per account, the peers it wrote
to first (bounded too), and mark one as answered when that peer writes to it. Nothing here holds content: only
account ids, counts, scores and instants (tests/test_safety_privacy.py checks it).
"""

from __future__ import annotations

from array import array
from collections import OrderedDict
from enum import IntEnum

from cove.activity import Action, Outbound
from cove.safety import reliability
from cove.safety.signals import Blocked, Judged, ParentFlagged, Registered, Reported, Signal


class Column(IntEnum):
    SENDS = 0  # messages, one-to-one or to a group (the only column of the 15-second window)
    DELIVERIES = 1  # accounts those messages reached
    NEW_PEERS = 2  # people messaged one-to-one for the first time
    STRANGERS = 3  # ... of whom had not written first
    GROUPS = 4  # groups created
    ADDS = 5  # members added to groups
    FORWARDS = 6  # messages carrying a forward count


class Peak(IntEnum):
    SECONDS = 0  # the most messages within 15 seconds
    MINUTES = 1  # the most messages within one five-minute bucket (a take-over's run of scams lasts minutes)


PEAKS = len(Peak)  # read on every send: an enum's len() is a slow call
ZERO_PEAKS = array("i", bytes(4 * PEAKS))


class Window:
    """Counts per column over the last ``buckets * width_ms``, and the largest bursts (Peak) in each bucket.

    Counts live in one flat array of 4-byte integers (an account's windows take about a kilobyte)."""

    __slots__ = ("buckets", "width_ms", "columns", "head", "counts", "totals", "peaks")

    def __init__(self, buckets: int, width_ms: int, columns: int) -> None:
        self.buckets = buckets
        self.width_ms = width_ms
        self.columns = columns
        self.head = 0  # the absolute index (time // width) of the newest bucket
        self.counts = array("i", bytes(4 * buckets * columns))
        self.totals = [0] * columns
        self.peaks = array("i", bytes(4 * buckets * PEAKS))

    def roll(self, at_ms: int) -> int:
        """Move the ring to ``at_ms`` (clearing the buckets that fell out) and return the current slot. An act
        stamped before the newest bucket (the clocks of two processes) counts in the newest."""
        index = at_ms // self.width_ms
        gone = index - self.head
        if gone > 0:
            counts, totals, columns, peaks = self.counts, self.totals, self.columns, self.peaks
            for step in range(1, min(gone, self.buckets) + 1):
                slot = (self.head + step) % self.buckets
                base = slot * columns
                for column in range(columns):
                    if counts[base + column]:
                        totals[column] -= counts[base + column]
                        counts[base + column] = 0
                peaks[slot * PEAKS : slot * PEAKS + PEAKS] = ZERO_PEAKS
            self.head = index
        return self.head % self.buckets

    def add(self, slot: int, column: int, amount: int) -> None:
        self.counts[slot * self.columns + column] += amount
        self.totals[column] += amount

    def peak(self, slot: int, peak: Peak, burst: int) -> None:
        at = slot * PEAKS + peak
        if burst > self.peaks[at]:
            self.peaks[at] = burst

    def highest(self, peak: Peak) -> int:
        return max(self.peaks[peak::PEAKS])


# Bits of an entry in Account.peers.
WROTE_FIRST = 1  # the account wrote to this peer before the peer wrote to it
ANSWERED = 2  # ... and the peer has written back since
WAS_WRITTEN = 4  # the peer wrote to the account first: writing to it is a reply, not a cold contact


class Account:
    """Everything the detector knows about one account. Registration fields are ``None`` when the account was
    created before this process started (the model reads them as missing)."""

    __slots__ = (
        "account_id",
        "business",
        "registered_at_ms",
        "client_version",
        "number_score",
        "range_score",
        "source_score",
        "device_score",
        "challenged",
        "parent_flagged",
        "second",
        "hour",
        "day",
        "sends",
        "forwards",
        "peers",
        "peers_full",
        "strangers",
        "answered",
        "blocks_weighted",
        "reports_weighted",
        "reporters",
        "judged",
        "upheld",
        "step",
    )

    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        self.business = False
        self.registered_at_ms: int | None = None
        self.client_version: str | None = None
        self.number_score: float | None = None
        self.range_score: float | None = None
        self.source_score: float | None = None
        self.device_score: float | None = None
        self.challenged = False
        self.parent_flagged = False
        self.second = Window(15, 1_000, 1)
        self.hour = Window(12, 300_000, len(Column))  # to the five minutes
        self.day = Window(24, 3_600_000, len(Column))
        self.sends = 0
        self.forwards = 0
        self.peers: dict[str, int] = {}  # peer account id -> WROTE_FIRST | ANSWERED | WAS_WRITTEN
        self.peers_full = 0  # first contacts not remembered because ``peers`` was full
        self.strangers = 0  # peers written to first (cold contacts)
        self.answered = 0  # ... who wrote back
        # Blocks and reports by people who had not accepted the account, each weighted by their reliability.
        self.blocks_weighted = 0.0
        self.reports_weighted = 0.0
        self.reporters: list[str] = []  # who reported it since the last judgement (bounded), to learn from one
        self.judged = 0  # as a reporter: reports of it a person decided
        self.upheld = 0  # ... that the person found abusive
        self.step: str | None = None  # the highest step the detector asked for


class Counters:
    """The counters of up to ``max_accounts`` accounts, each remembering up to ``max_peers`` peers."""

    MAX_REPORTERS = 16

    def __init__(self, max_accounts: int, max_peers: int) -> None:
        self.max_accounts = max_accounts
        self.max_peers = max_peers
        self.accounts: OrderedDict[str, Account] = OrderedDict()

    def get(self, account_id: str) -> Account | None:
        return self.accounts.get(account_id)

    def touch(self, account_id: str) -> Account:
        """The account's counters, created if new, marked most recently active."""
        account = self.accounts.get(account_id)
        if account is None:
            account = self.accounts[account_id] = Account(account_id)
            if len(self.accounts) > self.max_accounts:
                self.accounts.popitem(last=False)
        else:
            self.accounts.move_to_end(account_id)
        return account

    def observe(self, outbound: Outbound) -> Account | None:
        """Count one act; ``None`` when it counts for nothing (a read receipt is sent by the app, not the user)."""
        if outbound.receipt:
            return None
        account = self.touch(outbound.sender)
        account.business = outbound.business
        at_ms = outbound.at_ms
        hour, day = account.hour, account.day
        h, d = hour.roll(at_ms), day.roll(at_ms)
        action = outbound.action
        if action is Action.MESSAGE or action is Action.GROUP_MESSAGE:
            second = account.second
            second.add(second.roll(at_ms), Column.SENDS, 1)
            burst = second.totals[Column.SENDS]
            hour.peak(h, Peak.SECONDS, burst)
            day.peak(d, Peak.SECONDS, burst)
            account.sends += 1
            hour.add(h, Column.SENDS, 1)
            day.add(d, Column.SENDS, 1)
            day.peak(d, Peak.MINUTES, hour.counts[h * hour.columns + Column.SENDS])
            hour.add(h, Column.DELIVERIES, outbound.members)
            day.add(d, Column.DELIVERIES, outbound.members)
            if outbound.forward_count > 0:
                account.forwards += 1
                hour.add(h, Column.FORWARDS, 1)
                day.add(d, Column.FORWARDS, 1)
            if action is Action.MESSAGE:
                self._contact(account, outbound.chat, h, d)
        else:
            if action is Action.GROUP_CREATE:
                hour.add(h, Column.GROUPS, 1)
                day.add(d, Column.GROUPS, 1)
            hour.add(h, Column.ADDS, len(outbound.recipients))
            day.add(d, Column.ADDS, len(outbound.recipients))
        return account

    def _contact(self, account: Account, peer_id: str, h: int, d: int) -> None:
        known = account.peers.get(peer_id)
        if known is not None:
            return
        peer = self.accounts.get(peer_id)
        mine = peer.peers.get(account.account_id) if peer is not None else None
        if mine is not None and mine & WROTE_FIRST:
            # A reply: the peer wrote first, and now has an answer.
            if not mine & ANSWERED:
                peer.peers[account.account_id] = mine | ANSWERED
                peer.answered += 1
            flags = WAS_WRITTEN
        else:
            flags = WROTE_FIRST
            account.strangers += 1
            account.hour.add(h, Column.STRANGERS, 1)
            account.day.add(d, Column.STRANGERS, 1)
        account.hour.add(h, Column.NEW_PEERS, 1)
        account.day.add(d, Column.NEW_PEERS, 1)
        if len(account.peers) < self.max_peers:
            account.peers[peer_id] = flags
        else:
            account.peers_full += 1

    def signal(self, signal: Signal) -> Account | None:
        """Learn from a safety signal; returns the account whose score may have changed, if any."""
        if isinstance(signal, Registered):
            account = self.touch(signal.account_id)
            account.business = signal.business
            account.registered_at_ms = signal.at_ms
            account.client_version = signal.client_version
            account.number_score = signal.number_score
            account.range_score = signal.range_score
            account.source_score = signal.source_score
            account.device_score = signal.device_score
            account.challenged = signal.challenged
            return account
        if isinstance(signal, Blocked):
            if signal.contact:
                return None  # falling out with a contact says nothing about spam
            account = self.touch(signal.blocked)
            account.blocks_weighted += self._weight(signal.blocker)
            return account
        if isinstance(signal, Reported):
            if signal.contact:
                return None
            account = self.touch(signal.subject)
            account.reports_weighted += self._weight(signal.reporter)
            if len(account.reporters) < self.MAX_REPORTERS:
                account.reporters.append(signal.reporter)
            return account
        if isinstance(signal, ParentFlagged):
            account = self.touch(signal.account_id)
            account.parent_flagged = True
            return account
        if isinstance(signal, Judged):
            judged = self.accounts.get(signal.account_id)
            if judged is not None:
                for reporter_id in judged.reporters:
                    reporter = self.accounts.get(reporter_id)
                    if reporter is not None:
                        reporter.judged += 1
                        reporter.upheld += signal.abusive
                judged.reporters.clear()
        # A kind of signal the counters have no use for (yet): the publisher must not fail for it.
        return None

    def _weight(self, reporter_id: str) -> float:
        reporter = self.accounts.get(reporter_id)
        if reporter is None:
            return reliability.weight(0, 0)
        return reliability.weight(reporter.upheld, reporter.judged)
