"""Consent through a real relay: notices on connect and when a wave opens, terms apart from choices,
windows, objections, transparency, and messaging untouched by refusals."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from cove.client.events import NoticeReceived
from cove.client.transport import RelayError
from cove.consent import service
from cove.consent.ledger_storage import load_account, verify_database
from cove.consent.policy import load_policy
from cove.consent.predicate import permitted_accounts
from cove.consent.storage import consent_accounts, consent_served, load_policies
from cove.db import create_engine
from cove.testing import policy_opening_now, run_cove
from helpers import texts

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "policies" / "cove-default.toml"
ORIGINAL = ROOT / "policies" / "2016-original.toml"
NOW_MS = lambda: int(datetime.now(UTC).timestamp() * 1000)  # noqa: E731


@pytest.fixture
def relay_env() -> dict[str, str]:
    return {"COVE_NOTICE_INTERVAL_SECONDS": "0.3", "COVE_FLEET_POLL_SECONDS": "0.3"}


def cove(relay, *args: str) -> subprocess.CompletedProcess:
    return run_cove(list(args), relay.env)


async def publish(relay, policy) -> None:
    engine = create_engine(relay.database_url)
    try:
        await service.publish(engine, policy)
    finally:
        await engine.dispose()
    await asyncio.sleep(0.5)  # a publish reaches the relay within COVE_FLEET_POLL_SECONDS


async def permitted(relay, purpose: str, recipient: str = "parent") -> set[str]:
    engine = create_engine(relay.database_url)
    try:
        async with engine.connect() as conn:
            policies = await load_policies(conn)
            rows = await conn.execute(permitted_accounts(policies, purpose, recipient), {"at_ms": NOW_MS()})
            return {r.account_id for r in rows}
    finally:
        await engine.dispose()


async def first_notice(client) -> dict:
    async def wait() -> dict:
        async for event in client.events():
            if isinstance(event, NoticeReceived):
                return event.notice
        raise AssertionError("stream ended without a notice")

    return await asyncio.wait_for(wait(), 10)


async def test_publish_check_and_status_from_the_command_line(relay):
    check = cove(relay, "policy", "check", str(DEFAULT), "--law", "eu")
    assert check.returncode == 0, check.stdout + check.stderr
    assert cove(relay, "policy", "check", str(ORIGINAL), "--law", "eu").returncode == 1
    published = cove(relay, "policy", "publish", str(DEFAULT))
    assert published.returncode == 0, published.stderr
    again = cove(relay, "policy", "publish", str(DEFAULT))
    assert again.returncode == 1 and "already published" in again.stderr
    status = cove(relay, "policy", "status")
    assert status.returncode == 0 and "eligible" in status.stdout


async def test_accepting_terms_turns_nothing_on_and_each_purpose_is_a_separate_act(users, relay):
    policy = policy_opening_now(DEFAULT)
    await publish(relay, policy)
    alice = await users.register("alice")

    notice = await first_notice(alice)  # delivered on connect, with the first layer
    assert notice["version"] == policy.version and notice["purposes"] and notice["text_hash"]
    await alice.notice_shown(notice)
    await alice.accept_terms(notice, "adult")

    view = await alice.privacy()
    assert view["policy"]["version"] == policy.version
    optional = [p for p in view["purposes"] if p["legal_basis"] == "consent"]
    assert optional and not any(p["active"] or p["your_choice"] for p in optional)
    for purpose in policy.purposes:
        if purpose.legal_basis == "consent":
            assert alice.core.account_id not in await permitted(relay, purpose.id)

    ads = next(p.id for p in policy.purposes if p.use == "advertising")
    await alice.choose(ads, "in")
    assert alice.core.account_id in await permitted(relay, ads)
    await alice.withdraw(ads)
    assert alice.core.account_id not in await permitted(relay, ads)
    view = await alice.privacy()
    ads_view = next(p for p in view["purposes"] if p["id"] == ads)
    assert ads_view["your_choice"] == "out" and ads_view["method"] == "withdraw" and ads_view["deadline"] is None

    engine = create_engine(relay.database_url)
    async with engine.connect() as conn:
        served = (await conn.execute(select(consent_served))).all()
        kinds = [e.kind for e in await load_account(conn, alice.core.account_id)]
        problems = await verify_database(conn)
    await engine.dispose()
    assert [s.text_hash for s in served] == [notice["text_hash"]]
    assert kinds == ["notice_served", "terms_accepted", "choice", "withdrawal"]
    assert problems == []
    assert cove(relay, "ledger", "verify").returncode == 0


async def test_refusing_every_optional_purpose_changes_nothing_in_messaging(users, relay):
    policy = policy_opening_now(DEFAULT)
    await publish(relay, policy)
    alice = await users.register("alice")
    bob = await users.register("bob")
    notice = await alice.pending_notice()
    await alice.accept_terms(notice, "adult")
    for purpose in policy.purposes:
        if purpose.legal_basis == "consent":
            await alice.choose(purpose.id, "out")
        elif purpose.objectable:
            await alice.object_to(purpose.id)
    await alice.send_text(bob.core.account_id, "still here")
    assert texts(await bob.inbox()) == ["still here"]
    await bob.send_text(alice.core.account_id, "and you can read me")
    assert texts(await alice.inbox()) == ["and you can read me"]


async def test_a_windowed_policy_refuses_late_changes_naming_the_deadline(users, relay):
    policy = policy_opening_now(ORIGINAL)
    await publish(relay, policy)
    alice = await users.register("alice")
    await alice.accept_terms(await alice.pending_notice(), "adult")
    windowed = next(p for p in policy.purposes if p.window_days)

    await alice.choose(windowed.id, "out")  # inside the window: fine
    engine = create_engine(relay.database_url)
    async with engine.begin() as conn:  # the clock moves on: accepted 31 days ago
        await conn.execute(
            update(consent_accounts).values(accepted_at_ms=NOW_MS() - (windowed.window_days + 1) * 86_400_000)
        )
    await engine.dispose()
    with pytest.raises(RelayError) as late:
        await alice.choose(windowed.id, "in")
    assert late.value.status == 409 and late.value.code == "choice_window_closed"
    assert late.value.details["deadline"] in str(late.value)


async def test_a_connected_device_gets_the_notice_when_its_wave_opens(users, relay):
    alice = await users.register("alice")
    policy = load_policy(DEFAULT)
    opens = datetime.now(UTC) + timedelta(seconds=1.5)
    waves = [policy.rollout.waves[-1].model_copy(update={"start": opens, "percent": 100, "country_codes": []})]
    policy = policy.model_copy(
        update={"effective": opens, "rollout": policy.rollout.model_copy(update={"waves": waves})}
    )
    listening = asyncio.create_task(first_notice(alice))
    await asyncio.sleep(0.3)
    await publish(relay, policy)  # published before its wave opens: nothing is pushed yet
    assert not listening.done()
    notice = await listening
    assert notice["version"] == policy.version


async def test_objection_and_terms_errors(users, relay):
    policy = policy_opening_now(DEFAULT)
    await publish(relay, policy)
    alice = await users.register("alice")
    with pytest.raises(RelayError) as early:
        await alice.choose("ads", "in")
    assert early.value.code == "terms_not_accepted"
    notice = await alice.pending_notice()
    with pytest.raises(RelayError) as changed:
        await alice.accept_terms(notice | {"text_hash": "0" * 64}, "adult")
    assert changed.value.code == "notice_changed"
    await alice.accept_terms(notice, "minor")
    assert await alice.pending_notice() is None
    with pytest.raises(RelayError) as unknown:
        await alice.choose("no_such_purpose", "in")
    assert unknown.value.status == 404
    interest = [p for p in policy.purposes if p.legal_basis == "legitimate_interest" and p.objectable]
    for purpose in interest:
        await alice.object_to(purpose.id)
        assert alice.core.account_id not in await permitted(relay, purpose.id, purpose.recipients[0])
    ads = next(p for p in policy.purposes if p.use == "advertising")
    await alice.choose(ads.id, "in")  # a minor's tap is recorded, but never used (R18)
    assert alice.core.account_id not in await permitted(relay, ads.id)
