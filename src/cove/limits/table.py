"""Every rate limit of the relay in one table: its size, and whether it fails open or closed.

Like Signal-Server's ``RateLimiters`` (each limiter with its ``failOpen``), a row says what a limit allows and
what happens to requests while the shared store of a fleet of relays (Redis, ``COVE_REDIS_URL``) cannot be
reached or answers slower than its timeout:

- **closed**: the request is refused with 503 ``limiter_unavailable``, because letting it through unlimited
  costs what cannot be taken back (an SMS paid for, a phone-number space harvested, a 128 MiB hash per call);
- **open**: the request is counted in this process's own bucket instead, so while Redis is away a fleet of N
  relays allows at most N times the limit, and none of the service stops.

The sizes of the business limits are Meta's (sources beside them); the others come from :class:`Settings`
where an operator may tune them. Limits held per connection (a WebSocket's bad frames, ``cove.messaging``)
and the connection counts of ``cove.serving`` belong to one process by nature and are not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum

from cove.config import Settings
from cove.limits.rules import Limit, Quota


class Limiter(StrEnum):
    """A limit's name: the first part of its keys in the store, and in a refusal's message."""

    KEY_FETCH = "key fetch"
    CONTACT_DISCOVERY = "contact discovery"
    PIN_CHANGE = "PIN change"
    PROVISIONING = "provisioning"
    CODE_NUMBER = "code number"  # without "code ", a refusal's ``limit`` (cove.accounts.code_limits)
    CODE_SOURCE = "code source"
    CODE_RANGE = "code range"
    CODE_OVERALL = "code overall"
    BUSINESS_THROUGHPUT = "business throughput"
    BUSINESS_PAIR = "business pair rate"
    MARKETING_HELD = "marketing in flight"
    ATTACHMENT_CREATE = "attachment create"
    ATTACHMENT_RECIPIENTS = "attachment recipients"  # devices added to blobs by forwards (cove.attachments)
    SAFETY_THROTTLE = "throttled send"
    SAFETY_DEFENCES = "blocks and reports"
    FORWARD_BATCH = "forward batch"  # the chats of one forward action (cove.safety.forwarding)
    FORWARD = "forward"  # an account's forwarded sends, whatever their batch
    DATA_EXPORT = "data export"  # "download my data" (cove.accounts.export)


class Fails(Enum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True)
class Rule:
    size: Limit | Quota
    fails: Fails
    why: str  # why it fails the way it does


DEFAULT_THROUGHPUT_MPS = 80  # Meta's throughput page: 80 mps a number (1,000 after upgrade, 20 coexistence)
PAIR_BURST = 45  # pair rate ([3P] dualhook.com/docs/capacity-quality-limits): bursts of 45 in 6 s
PAIR_SECONDS_PER_MESSAGE = 6  # pair rate (131056): about 1 message / 6 s, 600 an hour
PAIR_LIMIT = Limit(size=PAIR_BURST, refill_per_second=1 / PAIR_SECONDS_PER_MESSAGE)
# Per-user marketing cap (131049): Meta's is adaptive and unpublished; Cove's documented default is 2 marketing
# templates per user in any 24 h from all businesses together, counting only those that open a conversation
# (sent outside a service window), as Meta's does. Counted from the database's log, plus the deliveries accepted
# and not yet committed, which are held for IN_FLIGHT_MS: long enough for any queue commit.
MARKETING_CAP_PER_USER = 2
MARKETING_CAP_PERIOD_MS = 24 * 3_600_000
IN_FLIGHT_MS = 60_000
# A user's own defences (cove.safety.defences): changes of blocks and acceptances an hour, of which a report costs
# REPORT_COST. Each change writes a fleet event, so the bucket bounds that churn too.
DEFENCE_CHANGES_PER_HOUR = 100
REPORT_COST = 5
# "Download my data": a retry or two after a failed download, not a scraper's loop.
DATA_EXPORTS_BURST = 5


def table(s: Settings) -> dict[Limiter, Rule]:
    L, O, C = Limiter, Fails.OPEN, Fails.CLOSED  # noqa: E741, N806 - columns that a reader can scan
    codes = s.code_send_window_seconds
    return {
        # per caller and account fetched: protects the one-time keys from being drained
        L.KEY_FETCH: Rule(Limit(100, 0.5), O, "refusing would stop people starting chats; keys run out gently"),
        # numbers looked up per account
        L.CONTACT_DISCOVERY: Rule(
            Limit(s.discovery_bucket_size, s.discovery_refill_per_second),
            C,
            "an address book can wait a minute; a harvest of who uses Cove cannot be recalled",
        ),
        # per account: setting a PIN costs a 128 MiB hash, a few an hour is plenty
        L.PIN_CHANGE: Rule(Limit(5, 5 / 3600), C, "rare for a person, costly for the relay: retrying later is cheap"),
        # provisioning channels opened per source address (no account yet): each is a row for 10 minutes
        L.PROVISIONING: Rule(
            Limit(s.provisioning_per_source, s.provisioning_per_source / 600),
            C,
            "unauthenticated writes: a flood of channels fills the database",
        ),
        # verification codes (cove.accounts.code_limits): per number and source, per source, per range, overall
        L.CODE_NUMBER: Rule(Quota(s.code_max_sends, codes), C, "each code is an SMS paid for: toll fraud"),
        L.CODE_SOURCE: Rule(Quota(s.code_max_sends_per_source, codes), C, "as above"),
        L.CODE_RANGE: Rule(Quota(s.code_max_sends_per_range, codes), C, "as above: SMS pumping of a number block"),
        L.CODE_OVERALL: Rule(Quota(s.code_max_sends_overall, codes), C, "as above: the operator's SMS budget"),
        # per business number: its own throughput_mps (business_accounts) fills and refills it each second
        L.BUSINESS_THROUGHPUT: Rule(
            Limit(DEFAULT_THROUGHPUT_MPS, DEFAULT_THROUGHPUT_MPS),
            O,
            "it paces, it does not protect anyone: refusing would stop every business's customer service",
        ),
        # per business number and user (131056)
        L.BUSINESS_PAIR: Rule(PAIR_LIMIT, O, "the opt-ins, tiers and marketing log in the database still hold"),
        # per account: uploads started (Signal's attachmentCreate: 50, then one per 1.2 s)
        L.ATTACHMENT_CREATE: Rule(
            Limit(50, 1 / 1.2), O, "each upload is bounded in size and expires; refusing would stop every photo sent"
        ),
        # per account: devices added to blobs' recipients (forwards of files), a device costing 1
        L.ATTACHMENT_RECIPIENTS: Rule(
            Limit(s.attachment_recipients_bucket, s.attachment_recipients_per_hour / 3600),
            O,
            "each blob still expects at most 10000 devices and expires with the retention; the forward limits hold",
        ),
        # per account throttled by safety (cove.safety.actions): sends while the step is in force
        L.SAFETY_THROTTLE: Rule(
            Limit(s.safety_throttle_burst, s.safety_throttle_per_hour / 3600),
            O,
            "only accounts already throttled are in it, and each process still paces them on its own",
        ),
        # per account: blocks, unblocks and acceptances cost 1, a report REPORT_COST (20 reports an hour)
        L.SAFETY_DEFENCES: Rule(
            Limit(DEFENCE_CHANGES_PER_HOUR, DEFENCE_CHANGES_PER_HOUR / 3600),
            O,
            "a person defending themselves must not be stopped by an outage; each change is a row or two",
        ),
        # per account and forward action (its batch): the chats it reached; the quota's count is per message
        # (cove.protocol.forwarding.limit: 5 chats, or 1 for a message forwarded 5 times or more)
        L.FORWARD_BATCH: Rule(
            Quota(5, s.forward_batch_window_seconds),
            O,
            "a friction for people, not a wall against a modified client, which can drop the header anyway",
        ),
        # per account: forwarded sends of every batch, a frequently forwarded one costing as much as 5 chats
        L.FORWARD: Rule(
            Limit(s.forward_bucket_size, s.forward_refill_per_hour / 3600), O, "as above: the detector counts too"
        ),
        # per account: "download my data" reads every capability's tables, up to a few MB of JSON
        L.DATA_EXPORT: Rule(
            Limit(DATA_EXPORTS_BURST, DATA_EXPORTS_BURST / 3600),
            O,
            "a person must get their data during an outage; each process still allows only a few an hour",
        ),
        # per user, from every business: sliding, the database's log plus these holds (131049)
        L.MARKETING_HELD: Rule(
            Quota(MARKETING_CAP_PER_USER, MARKETING_CAP_PERIOD_MS / 1000),
            O,
            "the committed log still counts: only sends in flight at one moment can overshoot",
        ),
    }
