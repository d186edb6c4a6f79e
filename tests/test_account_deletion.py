"""Deleting an account: every row the relay holds about it goes in one transaction, except the consent
ledger (and, by design, the recipients' mail it sent); its token stops working; hooks run inside."""

from __future__ import annotations

import os
import subprocess

import httpx
import pytest
from sqlalchemy import insert, select

from cove.accounts import deletion
from cove.accounts.storage import accounts
from cove.accounts.usage_storage import usage_daily
from cove.app import build_relay  # every capability's tables on the metadata, too
from cove.client.events import MessageReceived
from cove.config import Settings
from cove.consent.ledger_storage import load_account, verify_database
from cove.db import create_engine, metadata, migrate
from cove.errors import ApiError
from cove.events import AccountDeleted
from cove.testing import policy_opening_now, run_cove
from helpers import insert_account, texts
from test_consent_e2e import DEFAULT, publish

# Columns that name an account, and the phone-number columns.
ACCOUNT_COLUMNS = ("account_id", "sender_account_id", "recipient_account_id", "business_id", "user_account_id")
# What deletion keeps on purpose (cove.accounts.deletion explains why): the consent ledger; the mail the
# deleted account sent that still waits for its recipients; other users' idempotency records of their sends
# to it. The sharing gateway adds its erasure log here.
KEPT = {
    ("ledger_entries", "account_id"),
    ("envelopes", "sender_account_id"),
    ("sent_messages", "recipient_account_id"),
    # One erasure event per recipient, kept to track its acknowledgement (cove.sharing.erasure).
    ("sharing_erasures", "account_id"),
}


@pytest.fixture
def relay_env() -> dict[str, str]:
    return {
        "COVE_NOTICE_INTERVAL_SECONDS": "0.3",
        "COVE_FLEET_POLL_SECONDS": "0.3",
    }  # published policies are seen at once


async def rows_about(database_url: str, account_id: str, phone_number: str) -> dict[tuple[str, str], int]:
    """(table, column) -> how many rows name the account (or its number), over every table the relay has."""
    found: dict[tuple[str, str], int] = {}
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            for table in metadata.sorted_tables:
                wanted = {c: account_id for c in ACCOUNT_COLUMNS if c in table.c}
                if table.name == "accounts":
                    wanted["id"] = account_id
                if "phone_number" in table.c:
                    wanted["phone_number"] = phone_number
                for column, value in wanted.items():
                    rows = (await conn.execute(select(table).where(table.c[column] == value))).all()
                    if rows:
                        found[(table.name, column)] = len(rows)
    finally:
        await engine.dispose()
    return found


async def test_a_deleted_accounts_rows_are_gone_from_every_table_but_the_ledger(users, relay):
    policy = policy_opening_now(DEFAULT)
    await publish(relay, policy)
    alice = await users.register("alice", "+14155550141")
    bob = await users.register("bob")
    alice_id = alice.core.account_id
    await alice.set_pin("480731")  # a registration lock goes with the account

    notice = await alice.pending_notice()
    await alice.notice_shown(notice)
    await alice.accept_terms(notice, "adult")
    ads = next(p.id for p in policy.purposes if p.use == "advertising")
    await alice.choose(ads, "in")
    await alice.send_text(bob.core.account_id, "hello")
    assert texts(await bob.inbox()) == ["hello"]
    await bob.send_text(alice_id, "hi alice")
    assert texts(await alice.inbox()) == ["hi alice"]
    await alice.report_usage()
    await alice.send_text(bob.core.account_id, "goodbye")  # still queued for Bob when Alice leaves
    await bob.send_text(alice_id, "are you there?")  # queued for Alice: goes with her account
    await alice.request_code("+14155550141")  # a pending code for her number

    before = await rows_about(relay.database_url, alice_id, "+14155550141")
    for table in ("accounts", "devices", "one_time_keys", "fallback_keys", "envelopes", "sent_messages"):
        assert any(t == table for t, _ in before), table
    for table in ("usage_daily", "consent_accounts", "consent_purposes", "consent_served", "verification_codes"):
        assert any(t == table for t, _ in before), table

    token = alice.core.token
    await alice.delete_account()
    assert alice.core.token is None and alice.core.store.messages() == []  # the local store is wiped too

    after = await rows_about(relay.database_url, alice_id, "+14155550141")
    assert {k: v for k, v in after.items() if k not in KEPT} == {}
    assert after[("ledger_entries", "account_id")] == before[("ledger_entries", "account_id")]
    # Bob's mail: "goodbye", and the delivery receipt for "hi alice" (Alice's device acked it).
    assert after.get(("envelopes", "sender_account_id")) == 2

    async with httpx.AsyncClient(base_url=relay.url, headers={"Authorization": f"Bearer {token}"}) as http:
        refused = await http.get("/v1/accounts/me")
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthenticated"
        assert (await http.delete("/v1/accounts/me")).status_code == 401

    # Bob still gets what Alice sent before she left; his ack queues no receipt for an account that is gone.
    events = await bob.inbox()
    assert texts(events) == ["goodbye"] and len(events) == 2
    after_ack = await rows_about(relay.database_url, alice_id, "+14155550141")
    assert ("envelopes", "account_id") not in after_ack and ("envelopes", "sender_account_id") not in after_ack

    engine = create_engine(relay.database_url)
    try:
        async with engine.connect() as conn:
            kinds = [e.kind for e in await load_account(conn, alice_id)]
            assert await verify_database(conn) == []  # the ledger's chains still verify
    finally:
        await engine.dispose()
    assert kinds == ["notice_served", "terms_accepted", "choice"]

    # The number is free again: registering it makes a new account.
    back = await users.register("alice-again", "+14155550141")
    assert back.core.account_id != alice_id


async def test_a_message_from_an_account_deleted_before_the_first_contact_is_undecryptable_not_fatal(users):
    alice = await users.register("alice")
    bob = await users.register("bob")
    await alice.send_text(bob.core.account_id, "first contact")  # a pre-key message: Bob needs Alice's keys
    await alice.delete_account()
    events = await bob.inbox()
    assert not [e for e in events if isinstance(e, MessageReceived)]
    assert len(events) == 1 and "Undecryptable" in type(events[0]).__name__
    assert await bob.inbox() == []  # it was acked


async def test_deletion_hooks_run_inside_the_transaction_and_a_failing_hook_aborts_it(database_url, tmp_path):
    engine = create_engine(database_url)
    await migrate(engine)
    relay = build_relay(Settings(data_dir=tmp_path, database_url=database_url), engine)
    try:
        for account_id, phone in (("acc-1", "+14155550191"), ("acc-2", "+14155550192")):
            await insert_account(engine, account_id, phone)
            async with engine.begin() as conn:
                await conn.execute(
                    insert(usage_daily).values(
                        account_id=account_id, day=1, messages_sent=1, messages_received=1, app_opens=1, updated_at_ms=1
                    )
                )

        seen = []

        async def record(conn, event: AccountDeleted) -> None:  # noqa: ANN001
            left = (await conn.execute(select(accounts.c.id).where(accounts.c.id == event.account_id))).all()
            seen.append((event.account_id, event.at_ms, left))

        async def refuse(conn, event: AccountDeleted) -> None:  # noqa: ANN001
            raise ApiError(503, "unavailable", "the erasure log is down")

        relay.hooks.on_transaction(AccountDeleted, record)
        await deletion.delete_account(relay, "acc-1")
        assert len(seen) == 1 and seen[0][0] == "acc-1" and seen[0][1] > 0
        assert seen[0][2] == []  # the hook sees the deletion: same transaction, before the commit

        relay.hooks.on_transaction(AccountDeleted, refuse)
        with pytest.raises(ApiError):
            await deletion.delete_account(relay, "acc-2")
        async with engine.connect() as conn:
            left = {r.id for r in await conn.execute(select(accounts.c.id))}
            usage_left = {r.account_id for r in await conn.execute(select(usage_daily.c.account_id))}
        assert left == {"acc-2"} and usage_left == {"acc-2"}  # nothing of acc-2 was deleted
        with pytest.raises(ApiError) as gone:
            await deletion.delete_account(relay, "acc-1")
        assert gone.value.status == 404
    finally:
        await relay.consent_writer.stop()
        await engine.dispose()


def cove(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return run_cove(list(args), env, input=stdin)


async def test_the_cli_asks_before_deleting_then_removes_the_account_and_the_profile(relay, code_inbox, tmp_path):
    env = {**relay.env, "COVE_HOME": str(tmp_path / "home"), "COVE_SERVER": relay.url}
    env.pop("COVE_PICKLE_KEY", None)
    phone = "+14155550161"
    assert cove(env, "register", phone, "--profile", "carol").returncode == 0
    verified = cove(env, "verify", await code_inbox.code_for(phone), "--profile", "carol")
    assert verified.returncode == 0, verified.stderr
    folder = tmp_path / "home" / "profiles" / "carol"
    assert (folder / "state.db").exists()

    declined = cove(env, "delete-account", "--profile", "carol", stdin="n\n")
    assert declined.returncode == 1 and "cannot be undone" in declined.stdout
    assert (await rows_about(relay.database_url, "-", phone)).get(("accounts", "phone_number")) == 1

    deleted = cove(env, "delete-account", "--profile", "carol", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert "Deleted the account" in deleted.stdout
    assert not folder.exists()
    assert await rows_about(relay.database_url, "-", phone) == {}
    assert os.listdir(tmp_path / "home" / "profiles") == []
