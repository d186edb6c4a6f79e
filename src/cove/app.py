"""The relay's ASGI application: wiring only; every rule lives in its capability package."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from cove import __version__
from cove.accounts import hooks as accounts_hooks
from cove.accounts.code_limits import CodeLimits
from cove.accounts.directory import DeviceDirectory
from cove.accounts.presence import Presence
from cove.accounts.routes import router as accounts_router
from cove.accounts.senders import make_code_sender
from cove.attachments import hooks as attachments_hooks
from cove.attachments import service as attachments_service
from cove.attachments.routes import router as attachments_router
from cove.business import hooks as business_hooks
from cove.business import upkeep as business_upkeep
from cove.business.blocks_routes import router as business_blocks_router
from cove.business.identity_routes import router as business_identity_router
from cove.business.routes import router as business_router
from cove.config import Settings
from cove.consent import hooks as consent_hooks
from cove.consent import push as consent_push
from cove.consent.ledger_storage import checkpoint_forever
from cove.consent.routes import router as consent_router
from cove.consent.service import PolicyBook
from cove.consent.writer import ConsentWriter
from cove.context import Relay
from cove.db import create_engine, migrate
from cove.devices import hooks as devices_hooks
from cove.devices.routes import router as devices_router
from cove.errors import install_error_handlers
from cove.events import Hooks
from cove.fleet.broadcast import Broadcast
from cove.fleet.bus import Bus
from cove.fleet.health_recorder import HealthWriter
from cove.groups import hooks as groups_hooks
from cove.groups.routes import router as groups_router
from cove.keys import hooks as keys_hooks
from cove.keys.routes import router as keys_router
from cove.limits.limiters import Limits
from cove.messaging import hooks as messaging_hooks
from cove.messaging.hub import Hub, new_node
from cove.messaging.routes import router as messaging_router
from cove.messaging.storage import queued_envelopes
from cove.messaging.wakeups import Wakeups
from cove.messaging.writer import QueueWriter, purge_expired_forever
from cove.safety import defences as safety_defences
from cove.safety import hooks as safety_hooks
from cove.safety.actions_routes import router as safety_actions_router
from cove.safety.connections import Occupancy
from cove.safety.routes import router as safety_router
from cove.serving import follow_supervisor
from cove.sharing import hooks as sharing_hooks
from cove.sharing.routes import router as sharing_router

log = logging.getLogger("cove")


# Each capability registers its reactions to the others' events, its connect frames and its send rule.
CAPABILITIES = (
    accounts_hooks,
    keys_hooks,
    devices_hooks,
    messaging_hooks,
    attachments_hooks,
    groups_hooks,
    safety_hooks,
    consent_hooks,
    business_hooks,
    sharing_hooks,
)


def build_relay(settings: Settings, engine: AsyncEngine, bus: Bus | None = None) -> Relay:
    """The relay's parts, wired, nothing started (``create_app``'s lifespan starts the writers and the bus)."""
    hub = Hub(Wakeups(bus, new_node()) if bus is not None else None)
    # A publish reaches every process as an event (PolicyPublished); the reload a minute is for a lost one.
    policies = PolicyBook(engine, reload_seconds=60.0)
    limits = Limits.from_settings(settings)
    relay = Relay(
        settings=settings,
        engine=engine,
        hub=hub,
        writer=QueueWriter(engine, hub, int(settings.message_retention_days * 86_400_000)),
        directory=DeviceDirectory(engine),
        code_sender=make_code_sender(settings),
        code_secret=settings.resolved_secret_key(),
        presence=Presence(engine),
        policies=policies,
        consent_writer=ConsentWriter(engine, policies),
        open_sockets=Occupancy(settings.max_sockets_per_account),
        limits=limits,
        code_limits=CodeLimits(limits, settings.code_range_digits),
        hooks=Hooks(),
    )
    for capability in CAPABILITIES:
        capability.register(relay)
    return relay


def create_app(settings: Settings | None = None) -> FastAPI:
    follow_supervisor()  # a worker of `cove serve --workers` ends with it
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.resolved_database_url)
        await migrate(engine)
        bus = Bus(settings.nats_url, settings.bus_prefix, settings.fleet_poll_seconds) if settings.nats_url else None
        relay = build_relay(settings, engine, bus)
        hub = relay.hub
        app.state.relay = relay
        relay.writer.start()
        relay.consent_writer.start()
        broadcast = Broadcast(engine, relay.hooks, bus, settings.fleet_poll_seconds)
        await broadcast.start()
        if bus is not None:
            bus.on_gap(hub.bus_gap)
            await bus.start()
        background = [
            asyncio.create_task(purge_expired_forever(engine, relay.retention_ms, settings.purge_interval_seconds)),
            asyncio.create_task(consent_push.announce_forever(relay, settings.notice_interval_seconds)),
            asyncio.create_task(business_upkeep.sweep_forever(engine, settings.purge_interval_seconds, hub.deliver)),
            asyncio.create_task(checkpoint_forever(engine, settings.ledger_checkpoint_seconds)),
            asyncio.create_task(safety_defences.purge_attached_forever(relay, settings.purge_interval_seconds)),
            asyncio.create_task(
                attachments_service.purge_expired_forever(
                    engine, attachments_service.blob_store(relay), settings.purge_interval_seconds
                )
            ),
        ]
        if bus is not None:
            background.append(asyncio.create_task(hub.rescan_forever(settings.queue_rescan_seconds)))
        health = HealthWriter(
            engine, hub.health, lambda: len(hub.connected()), queued_envelopes, settings.purge_interval_seconds
        )
        background.append(asyncio.create_task(health.run_forever(settings.health_interval_seconds)))
        log.info("relay ready on %s", engine.url.render_as_string(hide_password=True))
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await broadcast.stop()
            hub.close_all()
            if bus is not None:
                await bus.stop()
            await relay.presence.drain()
            await relay.writer.stop()
            await relay.consent_writer.stop()
            await relay.code_sender.aclose()
            await relay.limits.aclose()
            await engine.dispose()

    app = FastAPI(
        title="Cove relay",
        version=__version__,
        description="Accounts, key directory and store-and-forward relay of end-to-end encrypted messages. "
        'Every error is `{"error": {"code": ..., "message": ...}}`.',
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(accounts_router)
    app.include_router(keys_router)
    app.include_router(devices_router)
    app.include_router(messaging_router)
    app.include_router(attachments_router)
    app.include_router(groups_router)
    app.include_router(consent_router)
    app.include_router(business_router)
    app.include_router(business_blocks_router)
    app.include_router(business_identity_router)  # after: its paths are more general
    app.include_router(safety_actions_router)
    app.include_router(safety_router)
    app.include_router(sharing_router)

    @app.get("/health", tags=["operations"], summary="Liveness: the relay is up")
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
