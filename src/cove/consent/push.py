"""Notices over the WebSocket: sent on connect when due, and pushed to connected devices when a wave opens."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from cove.accounts.storage import DeviceRecord, accounts
from cove.consent import notice, rollout, service
from cove.consent.storage import consent_accounts
from cove.context import Relay

log = logging.getLogger("cove.consent")


def notice_frame(due: Any) -> dict[str, Any]:
    return {"type": "notice", "notice": notice.layered(due)}


async def on_connect(relay: Relay, device: DeviceRecord) -> list[dict[str, Any]]:
    due = await service.due_notice(relay.engine, relay.policies, device.account_id)
    return [notice_frame(due)] if due else []


async def announce_forever(relay: Relay, every_seconds: float) -> None:
    """Push a policy's notice to the connected devices a wave reaches, as the wave opens."""
    announced = {
        (p.version, w.name) for p in await relay.policies.reload() for w in p.rollout.waves if w.start <= _now()
    }
    while True:
        await asyncio.sleep(every_seconds)
        try:
            policies = await relay.policies.all()
            opening = [
                (p, w)
                for p in policies
                for w in p.rollout.waves
                if w.start <= _now() and (p.version, w.name) not in announced
            ]
            if opening:
                await _push(relay, opening)
                announced.update((p.version, w.name) for p, w in opening)
        except Exception:
            log.exception("announcing policy notices failed")


async def _push(relay: Relay, opening: list) -> None:  # noqa: ANN001
    connected = relay.hub.connected()
    if not connected:
        return
    account_ids = sorted({account for account, _ in connected})
    async with relay.engine.connect() as conn:
        placement = {
            r.id: (r.rollout_bucket, r.calling_code)
            for r in await conn.execute(
                select(accounts.c.id, accounts.c.rollout_bucket, accounts.c.calling_code).where(
                    accounts.c.id.in_(account_ids)
                )
            )
        }
        accepted = {
            r.account_id: r.policy_version
            for r in await conn.execute(
                select(consent_accounts.c.account_id, consent_accounts.c.policy_version).where(
                    consent_accounts.c.account_id.in_(account_ids)
                )
            )
        }
    for account_id, device_id in connected:
        bucket, code = placement.get(account_id, (None, None))
        if bucket is None:
            continue
        for policy, wave in opening:
            if accepted.get(account_id) != policy.version and rollout.in_wave(wave, bucket, code):
                relay.hub.push((account_id, device_id), notice_frame(policy))
                break


def _now() -> datetime:
    return datetime.now(UTC)
