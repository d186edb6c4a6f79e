"""Where batches go: a directory (the default; the outbox itself) or a NATS JetStream stream for continuous delivery.

NATS delivery is at-least-once: the files go to an object store first, then the manifest is published with the
batch id as ``Nats-Msg-Id``, so JetStream drops a duplicate publish and the recipient's chain check drops a
redelivered batch. A batch is marked published only after JetStream acknowledged it; ``cove share deliver``
publishes whatever is not marked yet, in sequence order.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from cove.clock import now_ms
from cove.sharing import wire
from cove.sharing.storage import sharing_batches

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"


async def _ensure_streams(js, recipient: str):  # noqa: ANN001, ANN202 - nats JetStreamContext, ObjectStore
    from nats.js.errors import BucketNotFoundError, NotFoundError

    await wire.ensure_nats_streams(js)
    bucket = wire.nats_object_bucket(recipient)
    try:
        return await js.object_store(bucket)
    except (BucketNotFoundError, NotFoundError):
        return await js.create_object_store(bucket)


async def publish_pending(engine: AsyncEngine, recipient: str, outbox: Path, url: str = DEFAULT_NATS_URL) -> list[str]:
    """Publish every batch of ``recipient`` not yet on NATS, oldest first; returns their ids."""
    import nats

    async with engine.connect() as conn:
        pending = (
            await conn.execute(
                select(sharing_batches.c.batch_id, sharing_batches.c.manifest, sharing_batches.c.signature)
                .where(sharing_batches.c.recipient == recipient, sharing_batches.c.published_nats_at_ms.is_(None))
                .order_by(sharing_batches.c.sequence)
            )
        ).all()
    if not pending:
        return []
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=3)
    published = []
    try:
        js = nc.jetstream()
        store = await _ensure_streams(js, recipient)
        for batch_id, manifest, signature in pending:
            folder = outbox / batch_id
            parsed = wire.Manifest.model_validate_json(manifest)
            for entry in parsed.files():
                await store.put(f"{batch_id}/{entry.name}", (folder / entry.name).read_bytes())
            await js.publish(
                wire.nats_batch_subject(recipient),
                manifest.encode(),
                headers={"Nats-Msg-Id": batch_id, wire.NATS_SIGNATURE_HEADER: signature},
            )
            async with engine.begin() as conn:
                await conn.execute(
                    update(sharing_batches)
                    .where(sharing_batches.c.batch_id == batch_id)
                    .values(published_nats_at_ms=now_ms())
                )
            published.append(batch_id)
    finally:
        await nc.close()
    return published


async def fetch_nats_acks(recipient: str, url: str = DEFAULT_NATS_URL) -> list[wire.Ack]:
    """Every acknowledgement the recipient published; acks are idempotent, so reading all of them is safe."""
    import nats
    from nats.js.api import ConsumerConfig, DeliverPolicy

    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=3)
    acks = []
    try:
        js = nc.jetstream()
        await _ensure_streams(js, recipient)
        sub = await js.pull_subscribe(
            wire.nats_ack_subject(recipient),
            durable=None,
            stream=wire.NATS_ACK_STREAM,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
        )
        while True:
            try:
                messages = await sub.fetch(100, timeout=1)
            except TimeoutError:
                break
            for msg in messages:
                acks.append(wire.Ack.model_validate_json(msg.data))
                await msg.ack()
        await sub.unsubscribe()
    finally:
        await nc.close()
    return acks


def directory_acks(outbox: Path) -> list[wire.Ack]:
    folder = outbox / wire.ACKS_DIR
    if not folder.is_dir():
        return []
    return [wire.Ack.model_validate_json(path.read_bytes()) for path in sorted(folder.glob("*.json"))]
