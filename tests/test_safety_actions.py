"""The actions service inside one relay process, on SQLite and PostgreSQL: what the detector's calls to
:func:`cove.safety.actions.take` do, and what the outbound check costs and refuses."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from cove.accounts import deletion
from cove.activity import Action, Outbound
from cove.app import build_relay
from cove.clock import now_ms
from cove.config import Settings
from cove.context import Relay
from cove.db import create_engine
from cove.errors import ApiError
from cove.safety import actions, actions_storage, service
from cove.safety.actions_storage import safety_actions
from cove.safety.ladder import Review, Source, Step
from cove.safety.parts import of
from cove.safety.storage import banned_numbers
from cove.safety.verdicts import ReasonCode
from helpers import Queries, insert_account

SPAM = ReasonCode.SPAM


async def make_relay(database_url: str, tmp_path: Any, automatic: bool) -> Relay:  # noqa: ANN401
    settings = Settings(
        data_dir=tmp_path, database_url=database_url, secret_key="test", safety_automatic_actions=automatic
    )
    relay = build_relay(settings, create_engine(database_url))
    for name, phone in (("alice", "+14155550160"), ("bob", "+14155550161")):
        await insert_account(relay.engine, name, phone)
    return relay


@pytest.fixture
async def relay(database_url: str, tmp_path: Any) -> Any:  # noqa: ANN401
    made = await make_relay(database_url, tmp_path, automatic=True)
    yield made
    await made.engine.dispose()


def send(action: Action = Action.MESSAGE, receipt: bool = False) -> Outbound:
    return Outbound(action, "alice", 1, False, "bob", ("bob",), 1, now_ms(), receipt=receipt)


async def refusal(relay: Relay, outbound: Outbound) -> ApiError | None:
    try:
        await actions.check(relay, outbound)
    except ApiError as exc:
        return exc
    return None


async def rows(relay: Relay) -> list[Any]:
    async with relay.engine.connect() as conn:
        return list(await conn.execute(select(safety_actions).order_by(safety_actions.c.id)))


async def test_automatic_actions_are_off_when_the_setting_says_so(database_url: str, tmp_path: Any):
    relay = await make_relay(database_url, tmp_path, automatic=False)
    try:
        assert await actions.take(relay, "alice", Step.BAN, SPAM, Source.MODEL, 0.99) is None
        assert await rows(relay) == []
        assert await refusal(relay, send()) is None
        operator = await actions.take(relay, "alice", Step.RESTRICT, SPAM, Source.OPERATOR)
        assert operator is not None and operator.review is Review.NONE  # a person's action needs no review
    finally:
        await relay.engine.dispose()


async def test_steps_escalate_and_never_fall_back(relay: Relay):
    throttle = await actions.take(relay, "alice", Step.THROTTLE, SPAM, Source.RULE, 0.7)
    assert throttle is not None and throttle.review is Review.NONE and throttle.expires_at_ms is not None
    assert await actions.take(relay, "alice", Step.THROTTLE, SPAM, Source.RULE, 0.8) is None
    restrict = await actions.take(relay, "alice", Step.RESTRICT, ReasonCode.MANY_GROUPS, Source.MODEL, 0.9)
    assert restrict is not None and restrict.review is Review.PENDING
    assert await actions.take(relay, "alice", Step.CHALLENGE, SPAM, Source.RULE, 0.9) is None
    assert [(r.step, r.reason, r.source, r.score, r.review) for r in await rows(relay)] == [
        ("throttle", "spam", "rule", 0.7, "none"),
        ("restrict", "many_groups", "model", 0.9, "pending"),
    ]
    assert await actions.take(relay, "nobody", Step.BAN, SPAM, Source.RULE) is None  # no such account


async def test_each_step_refuses_what_it_forbids(relay: Relay):
    assert await refusal(relay, send()) is None
    await actions.take(relay, "alice", Step.CHALLENGE, SPAM, Source.RULE, 0.8)
    challenged = await refusal(relay, send(Action.GROUP_MESSAGE))
    assert challenged is not None and challenged.status == 428 and challenged.details["challenge"]["bits"] == 20
    assert await refusal(relay, send(receipt=True)) is None  # receipts pass

    await actions.take(relay, "alice", Step.RESTRICT, ReasonCode.UNSOLICITED_FAN_OUT, Source.RULE, 0.9)
    for act in (Action.MESSAGE, Action.GROUP_CREATE, Action.GROUP_ADD):  # bob never wrote to alice
        refused = await refusal(relay, send(act))
        assert refused is not None and (refused.status, refused.code) == (403, "account_restricted")
        assert refused.details["reason"] == "unsolicited_fan_out"
    assert await refusal(relay, send(Action.GROUP_MESSAGE)) is None

    await actions.take(relay, "alice", Step.BAN, SPAM, Source.MODEL, 0.99)
    banned = await refusal(relay, send(receipt=True))
    assert banned is not None and banned.code == "account_banned"
    async with relay.engine.connect() as conn:
        numbers = list(await conn.execute(select(banned_numbers.c.phone_number, banned_numbers.c.account_id)))
    assert [tuple(n) for n in numbers] == [("+14155550160", "alice")]  # the ban is cove.safety.service's


async def test_a_throttle_meters_sends_from_its_bucket(relay: Relay):
    await actions.take(relay, "alice", Step.THROTTLE, SPAM, Source.RULE)
    burst = relay.settings.safety_throttle_burst
    for _ in range(burst):
        assert await refusal(relay, send()) is None
    refused = await refusal(relay, send())
    assert refused is not None and refused.code == "throttled" and int(refused.headers["Retry-After"]) >= 1


async def test_the_check_reads_nothing_once_warm_and_a_repeated_take_costs_no_transaction(relay: Relay):
    queries = Queries(relay)
    await actions.check(relay, send())
    cold = queries.count
    assert cold == 1  # one read of alice's steps in force: none
    for _ in range(100):
        await actions.check(relay, send())
    assert queries.count == cold
    await actions.take(relay, "alice", Step.RESTRICT, SPAM, Source.RULE)
    taken = queries.count
    for _ in range(10):
        assert await actions.take(relay, "alice", Step.THROTTLE, SPAM, Source.RULE) is None
    assert queries.count == taken + 1  # the steps read again once after the change, then from memory


async def test_unbanning_a_number_lifts_the_ban_step_too(relay: Relay):
    await actions.take(relay, "alice", Step.BAN, SPAM, Source.RULE, 0.99)
    assert await service.unban(relay.engine, "+14155550160") is not None
    assert [(r.step, r.lifted_by) for r in await rows(relay)] == [("ban", "unban")]
    of(relay).standing.forget("alice")  # what the fleet event the unban wrote does in every process
    assert await refusal(relay, send()) is None


async def test_a_deleted_account_takes_its_appeals_and_leaves_its_actions(relay: Relay):
    await actions.take(relay, "alice", Step.RESTRICT, SPAM, Source.RULE)
    async with relay.engine.begin() as conn:
        assert await actions_storage.file_appeal(conn, "alice", None, "my own words", now_ms()) is not None
    await deletion.delete_account(relay, "alice")
    async with relay.engine.connect() as conn:
        assert await actions_storage.latest_appeal(conn, "alice") is None
    assert [r.step for r in await rows(relay)] == ["restrict"]  # kept, as verdicts are
