"""The queues' writer: every send and ack waiting at one moment shares one transaction (cove.batching).

A sender is answered only once its envelopes are durable; acked envelopes are deleted and their
senders' receipts queued in the same transaction, then handed to the hub for live delivery.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from cove.batching import GroupCommit, new_future
from cove.clock import now_ms
from cove.db import TransactionRunner
from cove.messaging import storage
from cove.messaging.envelope import (
    CIPHERTEXT_KINDS,
    QUEUE_ID_MAX,
    Envelope,
    EnvelopeKind,
    metadata_body,
    receipt_body,
    shared_wire,
)
from cove.messaging.hub import Hub

log = logging.getLogger("cove.queue")

# A group message to 1,024 devices comes back as about as many acks (one job each): at 512 jobs a commit, they
# took several commits, each with its sync, and the sends behind them waited (bench/groups.py).
MAX_BATCH = 2048
# How long an ack may wait for a send to share its commit. Senders get their delivery receipts up to this
# much later and a device reconnecting within it is sent what it acked again (clients drop repeats by id);
# at 20 msg/s it turns three commits per message into one.
ACK_LINGER_SECONDS = 0.1
# While sends come faster than one per 5 ms, a commit waits until 10 ms after its oldest job (cove.batching).
COMMIT_DELAY_SECONDS = 0.01


@dataclass
class SendJob:
    sender_account_id: str
    recipient_account_id: str
    client_message_id: str
    envelopes: list[Envelope]
    business: Any = None  # what Relay.send_rule decided: stored with the envelopes, unless a duplicate
    held: bool = False  # set by the writer: the send rule kept the envelopes (held for later), none were queued
    future: asyncio.Future[list[Envelope] | None] = field(default_factory=new_future)


@dataclass
class GroupSendJob:
    """One group message: its ciphertext is stored once, and a queue row pointing at it is added for every device
    in ``devices`` (every current device of every member but the sending one)."""

    sender_account_id: str
    sender_device_id: int
    group_id: str
    client_message_id: str
    body: bytes
    devices: list[tuple[str, int]]
    server_ts_ms: int
    expires_at_ms: int
    forward_count: int | None = None  # the forward header's count, shown to every member
    future: asyncio.Future[list[Envelope] | None] = field(default_factory=new_future)

    @property
    def recipient_account_id(self) -> str:
        return self.group_id  # what the idempotency record names as the recipient


@dataclass
class AckJob:
    account_id: str
    device_id: int
    ids: list[int]
    future: asyncio.Future[int] = field(default_factory=new_future)


Job = SendJob | GroupSendJob | AckJob


class QueueWriter:
    def __init__(self, engine: AsyncEngine, hub: Hub, retention_ms: int) -> None:
        self._transactions = TransactionRunner(engine)
        self._hub = hub
        self._retention_ms = retention_ms
        # Stores the send rule's writes of these jobs in the batch's transaction (sync: the writer's); set with the
        # rule. Returns the jobs whose envelopes it keeps itself (a business send held for pacing): not queued now.
        self.store_with_sends: Callable[[Connection, list[SendJob]], list[SendJob]] | None = None
        self._batches: GroupCommit[Job] = GroupCommit(
            "cove-queue-writer", self._commit, MAX_BATCH, linger=ACK_LINGER_SECONDS, delay=COMMIT_DELAY_SECONDS
        )

    def start(self) -> None:
        self._batches.start()

    async def stop(self) -> None:
        await self._batches.stop()
        self._transactions.close()

    async def send(self, job: SendJob | GroupSendJob) -> list[Envelope] | None:
        """Queue the envelopes durably; ``None`` when this client message id was already sent."""
        return await self._batches.submit(job)

    def submit_send(self, job: SendJob) -> asyncio.Future[list[Envelope] | None]:
        """Queue the envelopes without waiting: jobs commit in the order they were submitted."""
        return self._batches.submit(job)

    def submit_ack(self, account_id: str, device_id: int, ids: list[int]) -> asyncio.Future[int]:
        """Queue an ack without waiting for its commit (a lost ack only means a redelivery); it rides along
        the next send's commit, or is committed within ACK_LINGER_SECONDS.

        Raises ValueError for an id no queue can hold: the database would refuse it inside the shared
        commit and fail everyone's jobs with it."""
        if ids and (min(ids) < 1 or max(ids) > QUEUE_ID_MAX):  # min and max: no generator step per id
            raise ValueError(f"queue ids are between 1 and {QUEUE_ID_MAX}")
        future = self._batches.submit(AckJob(account_id, device_id, ids), urgent=False)
        future.add_done_callback(_retrieve)
        return future

    async def _commit(self, batch: list[Job]) -> None:
        try:
            results, queued = await self._transactions.run(lambda conn: self._apply(conn, batch))
        except Exception:
            if len(batch) == 1:
                log.exception("queue write failed")
                if not batch[0].future.done():
                    batch[0].future.set_exception(RuntimeError("queue write failed"))
                return
            # One bad job must not fail its neighbours: retry them one by one.
            for job in batch:
                await self._commit([job])
            return
        try:
            await self._hub.deliver(queued)
        except Exception:
            # Stored is what the senders were promised: a push that failed is made good by the next read of the
            # queue (a re-read in a fleet, a reconnect otherwise).
            log.exception("handing committed envelopes to their sockets failed")
        for job, result in zip(batch, results, strict=True):
            if not job.future.done():
                job.future.set_result(result)

    def _apply(self, conn: Connection, batch: list[Job]) -> tuple[list[Any], list[Envelope]]:
        now = now_ms()
        acks = [job for job in batch if isinstance(job, AckJob)]
        sends = [job for job in batch if not isinstance(job, AckJob)]
        acked = storage.delete_acked(conn, [(job.account_id, job.device_id, i) for job in acks for i in job.ids])
        # A sender may have deleted their account since: its envelopes are still delivered (they are the
        # recipients' mail), but nothing is queued back for an account that no longer exists.
        receipts = self._receipts([e for e in acked if e.kind in CIPHERTEXT_KINDS and e.sender_exists], now)
        receipts += group_receipts(conn, acked, now + self._retention_ms, now)
        fresh = self._first_sends(conn, sends, now)
        business = [job for job in fresh if isinstance(job, SendJob) and job.business is not None]
        if business:
            assert self.store_with_sends is not None, "a send rule's writes need its store"
            for job in self.store_with_sends(conn, business):
                job.held = True
        pairwise = [job for job in fresh if isinstance(job, SendJob) and not job.held]
        queued = storage.insert_envelopes(conn, [e for job in pairwise for e in job.envelopes] + receipts)

        by_job: dict[int, list[Envelope]] = {id(job): [] for job in fresh if isinstance(job, SendJob) and job.held}
        cursor = 0
        for job in pairwise:
            by_job[id(job)] = queued[cursor : cursor + len(job.envelopes)]
            cursor += len(job.envelopes)
        for job in fresh:
            if isinstance(job, GroupSendJob):
                by_job[id(job)] = fan_out(conn, job)
                queued += by_job[id(job)]
        acked_per_device: dict[tuple[str, int], int] = {}
        for e in acked:
            acked_per_device[(e.account_id, e.device_id)] = acked_per_device.get((e.account_id, e.device_id), 0) + 1
        results: list[Any] = []
        for job in batch:
            if isinstance(job, AckJob):
                # Several acks of one device in a batch: the first is answered with the count of them all.
                results.append(acked_per_device.pop((job.account_id, job.device_id), 0))
            else:
                results.append(by_job.get(id(job)))
        return results, queued

    @staticmethod
    def _first_sends(conn: Connection, sends: list[SendJob | GroupSendJob], now: int) -> list[SendJob | GroupSendJob]:
        """Record the sends; those whose (sender, client message id) was never seen, in or before this batch."""
        first: dict[tuple[str, str], SendJob | GroupSendJob] = {}
        for job in sends:
            first.setdefault((job.sender_account_id, job.client_message_id), job)
        new = storage.record_sent(
            conn,
            [
                {
                    "sender_account_id": sender,
                    "client_message_id": client_message_id,
                    "recipient_account_id": job.recipient_account_id,
                    "created_at_ms": now,
                }
                for (sender, client_message_id), job in first.items()
            ],
        )
        return [job for key, job in first.items() if key in new]

    def _receipts(self, delivered: list[storage.AckedEnvelope], now: int) -> list[Envelope]:
        """One receipt per (sender device, recipient device) for everything acked in this commit."""
        grouped: dict[tuple[str, int, str, int], list[str]] = {}
        for e in delivered:
            key = (e.sender_account_id, e.sender_device_id, e.account_id, e.device_id)
            grouped.setdefault(key, []).append(e.client_message_id)
        return [
            Envelope(
                id=None,
                account_id=sender,
                device_id=sender_device,
                kind=EnvelopeKind.DELIVERY_RECEIPT,
                sender_account_id=recipient,
                sender_device_id=recipient_device,
                client_message_id=ids[0],
                body=receipt_body(ids),
                server_ts_ms=now,
                expires_at_ms=now + self._retention_ms,
            )
            for (sender, sender_device, recipient, recipient_device), ids in grouped.items()
        ]


def fan_out(conn: Connection, job: GroupSendJob) -> list[Envelope]:
    """Store the group message once and queue a row pointing at it for each device, in one executemany."""
    if not job.devices:
        return []  # a group of one device: nothing to store for nobody
    message_id = storage.insert_group_message(
        conn,
        {
            "group_id": job.group_id,
            "sender_account_id": job.sender_account_id,
            "sender_device_id": job.sender_device_id,
            "client_message_id": job.client_message_id,
            "body": job.body,
            "server_ts_ms": job.server_ts_ms,
            "expires_at_ms": job.expires_at_ms,
            "remaining": len(job.devices),
            "forward_count": job.forward_count,
        },
    )
    shared = {
        "kind": EnvelopeKind.MEGOLM,
        # Read from the message stored once (storage.GROUP_MESSAGE_FIELDS): a third of each row's bytes.
        "sender_account_id": "",
        "client_message_id": "",
        "body": b"",
        "sender_device_id": job.sender_device_id,
        "server_ts_ms": job.server_ts_ms,
        "expires_at_ms": job.expires_at_ms,
        "group_message_id": message_id,
    }
    ids = storage.insert_fan_out(conn, shared, job.devices)
    # Every envelope field but the queue id, account and device, shared by the message's envelopes.
    fields = (
        EnvelopeKind.MEGOLM,
        job.sender_account_id,
        job.sender_device_id,
        job.client_message_id,
        job.body,
        job.server_ts_ms,
        job.expires_at_ms,
        None,
        message_id,
        job.group_id,
        job.forward_count,
    )
    rest = shared_wire(Envelope(None, "", 0, *fields))
    return [
        Envelope(queue_id, account, device, *fields, rest)
        for queue_id, (account, device) in zip(ids, job.devices, strict=True)
    ]


def group_receipts(conn: Connection, acked: list[storage.AckedEnvelope], expires: int, now: int) -> list[Envelope]:
    """Count acked group rows against their messages; one GROUP_RECEIPT per (sender device, group) for them all."""
    rows = [e for e in acked if e.group_message_id is not None]
    counts: dict[int, int] = {}
    for e in rows:
        counts[e.group_message_id] = counts.get(e.group_message_id, 0) + 1  # type: ignore[index]
    messages = storage.lower_remaining(conn, counts)
    grouped: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for e in rows:
        message = messages.get(e.group_message_id)  # type: ignore[arg-type]
        if message is None or not message.sender_exists:  # expired meanwhile, or its sender is gone
            continue
        receipt = {"client_message_id": message.client_message_id, "account": e.account_id, "device": e.device_id}
        key = (message.sender_account_id, message.sender_device_id, message.group_id)
        grouped.setdefault(key, []).append(receipt)
    # The group stands in the sender's place: the receipt is the relay's, about the group's members.
    return [
        Envelope(
            None,
            sender,
            device,
            EnvelopeKind.GROUP_RECEIPT,
            group,
            0,
            r[0]["client_message_id"],
            metadata_body(group, receipts=r),
            now,
            expires,
        )
        for (sender, device, group), r in grouped.items()
    ]


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def purge_expired_forever(engine: AsyncEngine, retention_ms: int, every_seconds: float = 60.0) -> None:
    """Delete envelopes nobody collected within the retention, and idempotency records as old."""
    while True:
        try:
            now = now_ms()
            async with engine.begin() as conn:
                removed = await storage.purge_expired(conn, now, now - retention_ms)
            if removed:
                log.info("expired %d uncollected envelopes", removed)
        except Exception:
            log.exception("purge of expired envelopes failed")
        await asyncio.sleep(every_seconds)
