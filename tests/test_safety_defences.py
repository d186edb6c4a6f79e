"""Defences without HTTP: the pair cache, the report rules, the tables on SQLite and PostgreSQL, and the outbound
check on a relay built in this process (its cache, its fleet event, its cost once warm)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import select

from cove.accounts import deletion
from cove.accounts.storage import DeviceRecord
from cove.activity import Action, Outbound, Withheld
from cove.app import build_relay
from cove.config import Settings
from cove.context import Relay
from cove.db import create_engine
from cove.errors import ApiError
from cove.events import ContactsChanged
from cove.safety import contacts, defences, signals
from cove.safety import defences_storage as storage
from cove.safety.pairs import ACCEPTS, BLOCKS, Pairs
from cove.safety.parts import of
from cove.safety.reports import Attached, Kind, Refused, check_attached, participants
from helpers import Queries, insert_account


# the pair cache ---------------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_pair_is_known_both_ways_until_it_expires_is_forgotten_or_is_pushed_out():
    clock = Clock()
    cache = Pairs(max_pairs=4, ttl_seconds=10, clock=clock)
    assert cache.both("a", "b") is None
    cache.put("a", "b", ACCEPTS)
    assert cache.both("a", "b") is None  # b to a is not known yet
    cache.put("b", "a", BLOCKS)
    assert cache.both("a", "b") == (ACCEPTS, BLOCKS) and cache.both("b", "a") == (BLOCKS, ACCEPTS)
    cache.mark("b", "a", ACCEPTS)
    cache.mark("x", "y", ACCEPTS)  # unknown pairs stay unknown: a mark is no read
    assert cache.both("a", "b") == (ACCEPTS, BLOCKS | ACCEPTS) and len(cache) == 2
    clock.now += 9.9
    assert cache.both("a", "b") is not None
    clock.now += 0.1
    assert cache.both("a", "b") is None  # expired: read again
    for owner, peer in (("a", "b"), ("b", "a"), ("c", "d"), ("d", "c")):
        cache.put(owner, peer, 0)
    cache.put("a", "b", ACCEPTS)  # written again: now the newest
    cache.put("e", "f", 0)  # one too many: the oldest written goes
    assert len(cache) == 4 and cache.both("a", "b") is None and cache.both("c", "d") == (0, 0)
    cache.forget("c", "d")
    assert cache.both("c", "d") is None and cache.both("d", "c") is None


# the report rules -------------------------------------------------------------------------------------
def _attached(sender: str) -> Attached:
    return Attached(sender, "m1", 1, "buy cheap watches")


def test_attached_messages_must_come_from_the_chat_reported():
    one_to_one = participants("me", "spammer", None)
    assert one_to_one == {"me", "spammer"}
    check_attached([_attached("spammer"), _attached("me")], one_to_one)
    with pytest.raises(Refused) as refused:
        check_attached([_attached("spammer"), _attached("bystander")], one_to_one)
    assert refused.value.code == "foreign_message" and "messages.1" in str(refused.value)

    group = participants("me", "left-already", ["me", "member"])
    assert group == {"me", "member", "left-already"}  # the member reported may have left since
    check_attached([_attached("member"), _attached("left-already")], group)
    with pytest.raises(Refused):
        check_attached([_attached("spammer")], participants("me", None, ["me", "member"]))


# the tables -------------------------------------------------------------------------------------------
@pytest.fixture
async def relay(database_url: str, tmp_path) -> Any:  # noqa: ANN001
    engine = create_engine(database_url)
    settings = Settings(data_dir=tmp_path, database_url=database_url, secret_key="test", safety_max_blocks=2)
    yield build_relay(settings, engine)
    await engine.dispose()


async def test_blocks_and_acceptances_are_relations_both_ways_and_a_block_drops_the_acceptance(relay: Relay):
    async with relay.engine.begin() as conn:
        await storage.accept(conn, "a", "b", 1)
        await storage.accept(conn, "a", "b", 2)  # again: kept once, from the first instant
        await storage.accept(conn, "c", "a", 3)
        assert await storage.block(conn, "b", "a", 4)
        assert not await storage.block(conn, "b", "a", 5)  # idempotent
        found = await storage.relations(conn, "a", ["b", "c", "d"])
        assert found == {("a", "b"): ACCEPTS, ("b", "a"): BLOCKS, ("c", "a"): ACCEPTS}
        assert await storage.block(conn, "a", "b", 6)  # Alice blocks Bob: she no longer accepts him
        assert (await storage.relations(conn, "a", ["b"]))[("a", "b")] == BLOCKS
        assert await storage.blocks_of(conn, "a") == [storage.Blocked("b", 6)]
        assert await storage.block_count(conn, "b") == 1
        assert await storage.unblock(conn, "a", "b") and not await storage.unblock(conn, "a", "b")
        assert await storage.relations(conn, "a", ["b"]) == {("b", "a"): BLOCKS}


async def test_relations_of_many_accounts_are_read_in_chunks(relay: Relay):
    others = [f"acc-{i:04d}" for i in range(1200)]
    async with relay.engine.begin() as conn:
        for other in others[::100]:
            await storage.block(conn, other, "me", 1)
        found = await storage.relations(conn, "me", others)
    assert set(found) == {(other, "me") for other in others[::100]}


async def test_acceptances_are_paged_in_order_of_id(relay: Relay, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(defences, "ACCEPTED_PAGE", 2)
    me = DeviceRecord("me", 1, 1, "", "")
    async with relay.engine.begin() as conn:
        for peer in ("d", "b", "a", "c", "e"):
            await storage.accept(conn, "me", peer, 1)
        await storage.accept(conn, "other", "z", 1)
    assert await defences.accepted(relay, me, None) == (["a", "b"], "b")
    assert await defences.accepted(relay, me, "b") == (["c", "d"], "d")
    assert await defences.accepted(relay, me, "d") == (["e"], None)
    assert await defences.accepted(relay, DeviceRecord("nobody", 1, 1, "", ""), None) == ([], None)


# the service and the check, on a relay in this process --------------------------------------------------
def _device(account_id: str) -> DeviceRecord:
    return DeviceRecord(account_id, 1, 1, "", "")


def _send(sender: str, recipient: str, receipt: bool = False, business: bool = False) -> Outbound:
    return Outbound(Action.MESSAGE, sender, 1, business, recipient, (recipient,), 1, 1, receipt=receipt)


@pytest.fixture
async def people(relay: Relay) -> Relay:
    for n, name in enumerate(("alice", "bob", "carol")):
        await insert_account(relay.engine, name, f"+1415555018{n}")
    return relay


async def test_a_block_withholds_messages_and_receipts_and_every_process_forgets_the_pair(people: Relay):
    relay = people
    heard: list[Any] = []
    of(relay).observers.append(heard.append)
    await relay.check_outbound(_send("alice", "bob"))  # Alice writes to Bob: she accepts him
    assert await contacts.accepts(relay, "alice", "bob") and not await contacts.accepts(relay, "bob", "alice")

    await defences.block(relay, _device("bob"), "alice")
    assert heard == [signals.Blocked("bob", "alice", contact=False, at_ms=heard[0].at_ms)]
    for withheld in (_send("alice", "bob"), _send("alice", "bob", receipt=True)):
        with pytest.raises(Withheld):
            await relay.check_outbound(withheld)
    await relay.check_outbound(_send("bob", "alice"))  # the blocker may still write

    await defences.block(relay, _device("bob"), "alice")  # idempotent, and heard once
    assert len(heard) == 1
    await defences.unblock(relay, _device("bob"), "alice")
    await relay.check_outbound(_send("alice", "bob"))
    with pytest.raises(ApiError) as not_blocked:
        await defences.unblock(relay, _device("bob"), "alice")
    assert (not_blocked.value.status, not_blocked.value.code) == (404, "not_blocked")

    # Another process blocked: this one learns it from the event alone, not from its cache's expiry.
    async with relay.engine.begin() as conn:
        await storage.block(conn, "bob", "alice", 7)
    await relay.check_outbound(_send("alice", "bob"))  # still cached as not blocked
    await relay.hooks.handle(ContactsChanged("bob", "alice"))
    with pytest.raises(Withheld):
        await relay.check_outbound(_send("alice", "bob"))


async def test_receipts_reach_only_someone_the_reader_accepts(people: Relay):
    relay = people
    await relay.check_outbound(_send("alice", "bob"))  # a message request to Bob
    with pytest.raises(Withheld):
        await relay.check_outbound(_send("bob", "alice", receipt=True))
    assert not await contacts.accepts(relay, "bob", "alice")  # a receipt accepts no one

    await defences.accept(relay, _device("bob"), "alice")
    await relay.check_outbound(_send("bob", "alice", receipt=True))

    # Carol's acceptance recorded by another process: this one has "no" cached, and reads again before withholding.
    with pytest.raises(Withheld):
        await relay.check_outbound(_send("carol", "alice", receipt=True))
    async with relay.engine.begin() as conn:
        await storage.accept(conn, "carol", "alice", 9)
    assert not await contacts.accepts(relay, "carol", "alice")  # the cache lags...
    await relay.check_outbound(_send("carol", "alice", receipt=True))  # ...the receipt does not

    # A business is never a request, whichever way the receipt goes.
    await relay.check_outbound(_send("bob", "carol", receipt=True, business=True))


async def test_a_warm_send_costs_no_query_and_microseconds(people: Relay):
    relay = people
    await relay.check_outbound(_send("alice", "bob"))
    with pytest.raises(Withheld):
        await relay.check_outbound(_send("bob", "alice", receipt=True))  # Bob has not accepted: withheld
    queries = Queries(relay)
    check = defences.check
    rounds = 2000
    started = time.perf_counter()
    for _ in range(rounds):
        await check(relay, _send("alice", "bob"))
    per_send = (time.perf_counter() - started) / rounds
    assert queries.count == 0
    assert per_send < 200e-6, f"{per_send * 1e6:.1f} µs a send"  # about 2 µs here; generous for a busy CI


async def test_acceptances_are_recorded_once_and_businesses_record_none(people: Relay):
    relay = people
    queries = Queries(relay)
    await relay.check_outbound(_send("alice", "bob"))
    first = queries.count
    assert first >= 1  # read the pair, then wrote the acceptance
    await relay.check_outbound(_send("alice", "bob"))
    assert queries.count == first
    await relay.check_outbound(_send("carol", "bob", business=True))
    async with relay.engine.connect() as conn:
        rows = (await conn.execute(select(storage.safety_acceptances.c.owner_account_id))).scalars().all()
    assert rows == ["alice"]


async def test_someone_who_blocked_the_actor_cannot_be_put_in_a_group(people: Relay):
    relay = people
    await defences.block(relay, _device("carol"), "alice")
    for action in (Action.GROUP_CREATE, Action.GROUP_ADD):
        with pytest.raises(ApiError) as refused:
            await relay.check_outbound(Outbound(action, "alice", 1, False, "g" * 32, ("bob", "carol"), 2, 1))
        assert (refused.value.status, refused.value.code) == (403, "cannot_add")
        assert refused.value.message == "this person cannot be added"  # not why
        await relay.check_outbound(Outbound(action, "alice", 1, False, "g" * 32, ("bob",), 1, 1))
        await relay.check_outbound(Outbound(action, "carol", 1, False, "g" * 32, ("alice",), 1, 1))
    await relay.check_outbound(Outbound(Action.GROUP_ADD, "alice", 1, False, "g" * 32, (), 0, 1))  # a join: no one


async def test_block_refusals(people: Relay):
    relay = people
    for account, status, code in (("alice", 400, "cannot_block_self"), ("nobody", 404, "unknown_account")):
        with pytest.raises(ApiError) as refused:
            await defences.block(relay, _device("alice"), account)
        assert (refused.value.status, refused.value.code) == (status, code)
    await insert_account(relay.engine, "dave", "+14155550189")
    for blocked in ("bob", "carol"):
        await defences.block(relay, _device("alice"), blocked)
    with pytest.raises(ApiError) as full:
        await defences.block(relay, _device("alice"), "dave")  # COVE_SAFETY_MAX_BLOCKS is 2 here
    assert (full.value.status, full.value.code) == (409, "too_many_blocks")
    await defences.block(relay, _device("alice"), "bob")  # blocking again is no new block


async def test_a_report_keeps_what_was_reported_and_outlives_the_accounts(people: Relay):
    relay = people
    heard: list[Any] = []
    of(relay).observers.append(heard.append)
    await relay.check_outbound(_send("bob", "alice"))  # Bob accepts Alice: she is his contact
    draft = defences.Draft(
        Kind.MESSAGE,
        "alice",
        None,
        ("m1", "m2"),
        (Attached("alice", "m1", 10, "send me the code"), Attached("bob", "m0", 5, "who is this?")),
        block=True,
        leave=False,
    )
    made = await defences.report(relay, _device("bob"), draft)
    assert (made.contact, made.blocked, made.left_group, len(made.attached)) == (True, True, False, 2)
    assert [type(s).__name__ for s in heard] == ["Blocked", "Reported"]
    assert heard[1] == signals.Reported("bob", "alice", contact=True, attached=2, at_ms=made.at_ms)
    with pytest.raises(Withheld):
        await relay.check_outbound(_send("alice", "bob"))

    await deletion.delete_account(relay, "alice")
    await deletion.delete_account(relay, "bob")
    async with relay.engine.connect() as conn:
        assert await storage.relations(conn, "alice", ["bob", "carol"]) == {}
        report = (await conn.execute(select(storage.safety_reports))).mappings().one()
        kept = (await conn.execute(select(storage.safety_report_messages))).mappings().all()
    assert report["subject_account_id"] == "alice" and report["reporter_account_id"] == "bob"
    assert report["client_message_ids"] == ["m1", "m2"] and report["kind"] == "message"
    assert [(m["position"], m["sender_account_id"], m["text"]) for m in kept] == [
        (0, "alice", "send me the code"),
        (1, "bob", "who is this?"),
    ]


async def test_the_attached_messages_go_after_their_time_and_the_report_stays(people: Relay):
    relay = people
    draft = defences.Draft(
        Kind.PERSON, "alice", None, (), (Attached("alice", "m1", 10, "send me the code"),), block=False, leave=False
    )
    made = await defences.report(relay, _device("bob"), draft)
    async with relay.engine.begin() as conn:
        assert await storage.purge_attached(conn, made.at_ms) == 0  # made at that instant: not before it
        assert await storage.purge_attached(conn, made.at_ms + 1) == 1
    async with relay.engine.connect() as conn:
        report = (await conn.execute(select(storage.safety_reports))).mappings().one()
        assert (await conn.execute(select(storage.safety_report_messages))).all() == []
    assert report["reporter_account_id"] == "bob" and report["attached"] == 1


async def test_deleting_an_account_takes_its_blocks_and_acceptances_both_ways(people: Relay):
    relay = people
    await relay.check_outbound(_send("alice", "bob"))
    await relay.check_outbound(_send("carol", "alice"))
    await defences.block(relay, _device("bob"), "alice")
    await defences.block(relay, _device("alice"), "carol")
    await relay.check_outbound(_send("bob", "carol"))
    await deletion.delete_account(relay, "alice")
    async with relay.engine.connect() as conn:
        assert await storage.relations(conn, "alice", ["bob", "carol"]) == {}
        assert await storage.relations(conn, "bob", ["carol"]) == {("bob", "carol"): ACCEPTS}
