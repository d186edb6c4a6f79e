"""The relay's ASGI application: wiring only; every rule lives in its capability package."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from cove import __version__
from cove.accounts.directory import DeviceDirectory
from cove.accounts.routes import router as accounts_router
from cove.accounts.senders import make_code_sender
from cove.business import storage as business_storage
from cove.business.routes import router as business_router
from cove.config import Settings
from cove.consent import push as consent_push
from cove.consent.ledger_storage import checkpoint_forever
from cove.consent.routes import router as consent_router
from cove.context import Relay
from cove.db import create_engine, migrate
from cove.errors import install_error_handlers
from cove.events import Hooks
from cove.fleet.broadcast import Broadcast
from cove.fleet.bus import Bus
from cove.keys.routes import router as keys_router
from cove.messaging.hub import Hub, new_node
from cove.messaging.routes import router as messaging_router
from cove.messaging.wakeups import Wakeups
from cove.messaging.writer import QueueWriter, purge_expired_forever
from cove.safety.service import enforce_bans_forever
from cove.sharing.erasure import record_erasure

log = logging.getLogger("cove")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.resolved_database_url)
        await migrate(engine)
        bus = Bus(settings.nats_url, settings.bus_prefix, settings.fleet_poll_seconds) if settings.nats_url else None
        hub = Hub(Wakeups(bus, new_node()) if bus is not None else None)
        hooks = Hooks()
        retention_ms = int(settings.message_retention_days * 86_400_000)
        writer = QueueWriter(engine, hub, retention_ms)
        writer.start()
        relay = Relay(
            settings=settings,
            engine=engine,
            hub=hub,
            writer=writer,
            directory=DeviceDirectory(engine),
            code_sender=make_code_sender(settings),
            code_secret=settings.resolved_secret_key(),
            hooks=hooks,
        )
        relay.account_deleted_hooks.append(record_erasure)  # erasure events travel to every recipient
        relay.account_deleted_hooks.append(business_storage.forget_account)
        app.state.relay = relay
        relay.connect_frames.append(consent_push.on_connect)
        relay.consent_writer.start()
        broadcast = Broadcast(engine, hooks, bus, settings.fleet_poll_seconds)
        await broadcast.start()
        if bus is not None:
            bus.on_gap(hub.rescan)
            await bus.start()
        background = [
            asyncio.create_task(purge_expired_forever(engine, retention_ms, settings.purge_interval_seconds)),
            asyncio.create_task(consent_push.announce_forever(relay, settings.notice_interval_seconds)),
            asyncio.create_task(checkpoint_forever(engine, settings.ledger_checkpoint_seconds)),
            asyncio.create_task(enforce_bans_forever(engine, hub, relay.directory, settings.ban_sweep_seconds)),
        ]
        if bus is not None:
            background.append(asyncio.create_task(hub.rescan_forever(settings.queue_rescan_seconds)))
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
            await writer.stop()
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
    app.include_router(messaging_router)
    app.include_router(consent_router)
    app.include_router(business_router)

    @app.get("/health", tags=["operations"], summary="Liveness: the relay is up")
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
