"""The registry of events between capabilities (cove.events) and the handlers the relay's capabilities register
on it (cove.app.build_relay): in the transaction a raising handler aborts the change; after it, one failing
handler does not stop the others, the event goes to the fleet, and the handlers may run twice."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from sqlalchemy import select

from cove.accounts import deletion
from cove.accounts.storage import DeviceRecord, accounts
from cove.app import build_relay
from cove.business import service
from cove.config import Settings
from cove.db import create_engine
from cove.errors import ApiError
from cove.events import (
    KINDS,
    AccountChanged,
    AccountDeleted,
    ContactsChanged,
    DevicesLoggedOut,
    Event,
    Hooks,
    PolicyPublished,
    UnknownEvent,
    decode,
)
from cove.messaging.hub import CLOSE_LOGGED_OUT
from cove.safety.service import BANNED_REASON
from helpers import insert_account


class FakeStream:
    def __init__(self) -> None:
        self.closed: list[tuple[int, str]] = []

    def offer(self, item: Any) -> None:
        pass

    def close(self, code: int, reason: str) -> None:
        self.closed.append((code, reason))


SAMPLES: list[Event] = [
    AccountDeleted("acc-1", 1_700_000_000_000),
    DevicesLoggedOut("acc-1", (1, 2), "logged out: test", 1_000),
    AccountChanged("acc-1"),
    PolicyPublished("2026-01"),
    ContactsChanged("acc-1", "acc-2"),
]


def test_every_kind_crosses_a_process_as_json_unchanged() -> None:
    assert {type(e) for e in SAMPLES} == set(KINDS.values())
    for event in SAMPLES:
        assert decode(event.kind, json.loads(json.dumps(event.payload()))) == event
    with pytest.raises(UnknownEvent):
        decode("account_renamed", {"account_id": "acc-1"})
    with pytest.raises(TypeError):
        decode("account_changed", {"account_id": "acc-1", "extra": 1})


async def test_a_failing_handler_does_not_stop_the_others_and_the_event_goes_to_the_fleet(caplog) -> None:  # noqa: ANN001
    hooks = Hooks()
    seen: list[str] = []
    forwarded: list[Event] = []

    def broken(event: AccountChanged) -> None:
        raise RuntimeError("cache is gone")

    async def later(event: AccountChanged) -> None:
        seen.append(event.account_id)

    async def forward(event: Event) -> None:
        forwarded.append(event)

    hooks.on(AccountChanged, broken)
    hooks.on(AccountChanged, later)
    hooks.on(PolicyPublished, lambda e: seen.append("not this kind"))
    hooks.forward_to(forward)
    with caplog.at_level(logging.ERROR, logger="cove.events"):
        await hooks.emit(AccountChanged("acc-7"))
    assert seen == ["acc-7"]
    assert forwarded == [AccountChanged("acc-7")]
    assert "handling account_changed failed" in caplog.text
    await hooks.handle(AccountChanged("acc-8"))  # from another process: handled here, not sent back
    assert seen == ["acc-7", "acc-8"] and len(forwarded) == 1


async def test_an_in_transaction_handler_that_raises_stops_the_ones_after_it() -> None:
    hooks = Hooks()
    ran: list[str] = []

    async def first(conn: Any, event: AccountDeleted) -> None:
        ran.append("first")

    async def refuse(conn: Any, event: AccountDeleted) -> None:
        raise ApiError(503, "unavailable", "down")

    async def never(conn: Any, event: AccountDeleted) -> None:
        ran.append("never")

    for handler in (first, refuse, never):
        hooks.on_transaction(AccountDeleted, handler)
    with pytest.raises(ApiError):
        await hooks.in_transaction(None, AccountDeleted("acc-1", 1))  # type: ignore[arg-type]
    assert ran == ["first"]


@pytest.fixture
async def relay(database_url: str, tmp_path):  # noqa: ANN001, ANN201
    engine = create_engine(database_url)
    yield build_relay(Settings(data_dir=tmp_path, database_url=database_url, secret_key="test"), engine)
    await engine.dispose()


async def test_a_capability_handler_that_raises_aborts_the_deletion(relay) -> None:  # noqa: ANN001
    await insert_account(relay.engine, "acc-1", "+14155550191")

    async def refuse(conn: Any, event: AccountDeleted) -> None:
        raise ApiError(503, "unavailable", "the erasure log is down")

    relay.hooks.on_transaction(AccountDeleted, refuse)
    with pytest.raises(ApiError):
        await deletion.delete_account(relay, "acc-1")
    async with relay.engine.connect() as conn:
        assert (await conn.execute(select(accounts.c.id))).scalars().all() == ["acc-1"]


async def test_the_relays_after_commit_handlers_close_sockets_forget_the_directory_and_may_run_twice(
    relay,  # noqa: ANN001
) -> None:
    await insert_account(relay.engine, "acc-1", "+14155550191")
    phone, other = FakeStream(), FakeStream()
    await relay.hub.attach(("acc-1", 1), phone)
    await relay.hub.attach(("acc-2", 1), other)
    assert [d.device_id for d in await relay.directory.devices_of("acc-1")] == [1]  # now cached

    ban = DevicesLoggedOut("acc-1", (), BANNED_REASON, 1_000)
    await relay.hooks.emit(ban)
    await relay.hooks.handle(ban)  # again, as from the bus after the catch-up read: nothing changes, no error
    assert phone.closed == [(CLOSE_LOGGED_OUT, BANNED_REASON)] and other.closed == []
    assert relay.hub.connected() == [("acc-2", 1)]

    await deletion.delete_account(relay, "acc-1")
    assert await relay.directory.devices_of("acc-1") == []  # forgotten: read again, and gone
    await relay.hooks.handle(AccountDeleted("acc-1", 1))  # a second copy of the event changes nothing


async def test_a_business_profile_refreshes_the_cached_business_flag(relay) -> None:  # noqa: ANN001
    await insert_account(relay.engine, "acc-1", "+14155550191")
    before: list[DeviceRecord] = await relay.directory.devices_of("acc-1")
    assert not before[0].business
    await service.put_profile(relay.engine, "acc-1", {"display_name": "Bakery"})
    assert not (await relay.directory.devices_of("acc-1"))[0].business  # still the cached entry
    await relay.hooks.emit(AccountChanged("acc-1"))
    assert (await relay.directory.devices_of("acc-1"))[0].business
