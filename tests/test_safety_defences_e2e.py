"""Users' defences on a real relay over HTTP, with the real SDK sending and receiving, on SQLite and PostgreSQL:
blocks, message requests (read receipts withheld until accepted), reports with and without attached messages,
report and block, report and leave, the rows an account's deletion takes, and refusals of bad input."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import httpx
import pytest
import websockets

from conftest import Users
from cove.client.events import Delivered, Read
from cove.testing import RelayProcess, run_cove
from groups_world import api, wait_for
from helpers import server_rows, texts


@pytest.fixture
def relay_env() -> dict[str, str]:
    return {"COVE_FLEET_POLL_SECONDS": "0.3"}


async def _rows(relay, table: str) -> list[dict[str, Any]]:  # noqa: ANN001
    return [r for t, r in await server_rows(relay.database_url) if t == table]


async def _send_over_websocket(relay, sender, to: str) -> dict[str, Any]:  # noqa: ANN001
    """A send frame as a client makes it (the ciphertext is opaque to the relay), and the relay's response."""
    async with api(relay, sender) as as_sender:
        devices = (await as_sender.get(f"/v1/keys/{to}/identity")).json()["devices"]
    body = base64.b64encode(b"opaque ciphertext").decode()
    messages = [
        {"device_id": d["device_id"], "registration_id": d["registration_id"], "kind": 1, "body": body} for d in devices
    ]
    frame = {"type": "send", "request_id": "r1", "to": to, "client_message_id": uuid.uuid4().hex, "messages": messages}
    url = relay.url.replace("http", "ws", 1) + "/v1/websocket"
    async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {sender.core.token}"}) as ws:
        await ws.send(json.dumps(frame))
        while (answer := json.loads(await ws.recv()))["type"] != "response":
            pass
    return answer


def _refused(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code, answer.text


async def test_a_block_withholds_the_blocked_persons_messages_without_telling_them(users, relay):
    alice, bob = await users.register("alice"), await users.register("bob")
    a, b = alice.core.account_id, bob.core.account_id
    async with api(relay, bob) as as_bob:
        assert (await as_bob.put(f"/v1/safety/blocks/{a}")).status_code == 204
        assert (await as_bob.put(f"/v1/safety/blocks/{a}")).status_code == 204  # idempotent
        listed = (await as_bob.get("/v1/safety/blocks")).json()["blocked"]
        assert [x["account_id"] for x in listed] == [a] and listed[0]["since"] > 0

        await alice.send_text(b, "are you there?")  # accepted, as any send: Alice is not told
        answer = await _send_over_websocket(relay, alice, b)
        assert answer["status"] == 200 and answer["body"]["queued"] == 1  # as a queued send's
        assert [r for r in await _rows(relay, "envelopes") if r["account_id"] == b] == []
        assert texts(await bob.inbox()) == []

        assert (await as_bob.delete(f"/v1/safety/blocks/{a}")).status_code == 204
        assert (await as_bob.get("/v1/safety/blocks")).json() == {"blocked": []}
        _refused(await as_bob.delete(f"/v1/safety/blocks/{a}"), 404, "not_blocked")
    await alice.send_text(b, "hello again")
    assert texts(await bob.inbox()) == ["hello again"]


async def test_a_message_request_gets_no_read_receipt_until_accepted(users, relay):
    alice, bob = await users.register("alice"), await users.register("bob")
    a, b = alice.core.account_id, bob.core.account_id
    first = await alice.send_text(b, "hi, we met at the conference")
    assert texts(await bob.inbox()) == ["hi, we met at the conference"]
    await bob.mark_read(a, [first])  # the SDK sends the receipt; the relay keeps it from Alice
    events = await alice.inbox()
    assert [e for e in events if isinstance(e, Delivered)] and not [e for e in events if isinstance(e, Read)]

    async with api(relay, bob) as as_bob, api(relay, alice) as as_alice:
        assert (await as_alice.get("/v1/safety/accepted")).json() == {"accepted": [b], "next": None}
        assert (await as_bob.get("/v1/safety/accepted")).json() == {"accepted": [], "next": None}
        assert (await as_bob.put(f"/v1/safety/requests/{a}")).status_code == 204
        assert (await as_bob.get("/v1/safety/accepted")).json() == {"accepted": [a], "next": None}

    second = await alice.send_text(b, "shall we talk tomorrow?")
    await bob.inbox()
    await bob.mark_read(a, [second])
    assert Read(b, [second]) in await alice.inbox()


async def test_reports_with_and_without_messages_and_report_and_block(users, relay):
    alice, bob, carol = [await users.register(n) for n in ("alice", "bob", "carol")]
    a, b, c = (u.core.account_id for u in (alice, bob, carol))
    spam = await alice.send_text(b, "you won a prize, send your card number")
    async with api(relay, bob) as as_bob:
        plain = await as_bob.post("/v1/safety/reports", json={"kind": "person", "account_id": a})
        assert plain.status_code == 201, plain.text
        assert plain.json() | {"report_id": ""} == {
            "report_id": "",
            "attached": 0,
            "blocked": False,
            "left_group": False,
        }

        with_messages = {
            "kind": "message",
            "account_id": a,
            "client_message_ids": [spam],
            "messages": [
                {"sender": a, "client_message_id": spam, "sent_at": 1_765_000_000_000, "text": "you won a prize"},
                {"sender": b, "client_message_id": "reply-1", "sent_at": 1_765_000_001_000, "text": "who is this?"},
            ],
            "block": True,
        }
        made = await as_bob.post("/v1/safety/reports", json=with_messages)
        assert made.status_code == 201, made.text
        assert made.json()["attached"] == 2 and made.json()["blocked"] is True
        assert [x["account_id"] for x in (await as_bob.get("/v1/safety/blocks")).json()["blocked"]] == [a]

        foreign = {**with_messages, "messages": [{**with_messages["messages"][0], "sender": c}]}
        _refused(await as_bob.post("/v1/safety/reports", json=foreign), 400, "foreign_message")

    reports = sorted(await _rows(relay, "safety_reports"), key=lambda r: r["attached"])
    assert [(r["kind"], r["subject_account_id"], r["attached"], r["blocked"]) for r in reports] == [
        ("person", a, 0, False),
        ("message", a, 2, True),
    ]
    assert reports[1]["report_id"] == made.json()["report_id"]
    kept = sorted((m["position"], m["text"]) for m in await _rows(relay, "safety_report_messages"))
    assert kept == [(0, "you won a prize"), (1, "who is this?")]
    await alice.send_text(b, "why don't you answer?")
    assert texts(await bob.inbox()) == ["you won a prize, send your card number"]

    # The operator reviewing Alice reads both reports, the attached messages under the one that has them.
    shown = run_cove(["safety", "reports", alice.core.phone_number], {**relay.env, "COLUMNS": "250"})
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count(f"report by {b}") == 2 and "messages " + spam[:8] in shown.stdout
    assert "you won a prize" in shown.stdout and "who is this?" in shown.stdout
    assert "no message attached" in shown.stdout
    unknown = run_cove(["safety", "reports", "+14155550999"], relay.env)
    assert unknown.returncode == 1 and "no account and no report" in unknown.stderr


async def test_report_a_group_and_leave_it_and_its_admin_cannot_add_you_back(users, relay):
    alice, bob, carol = [await users.register(n) for n in ("alice", "bob", "carol")]
    a, b, c = (u.core.account_id for u in (alice, bob, carol))
    async with api(relay, alice) as as_alice, api(relay, bob) as as_bob, api(relay, carol) as as_carol:
        gid = (await as_alice.post("/v1/groups", json={"members": [b, c]})).json()["group_id"]
        report = {
            "kind": "group",
            "group_id": gid,
            "account_id": a,
            "messages": [{"sender": a, "client_message_id": f"{gid}.9", "sent_at": 1, "text": "crypto tips"}],
            "block": True,
            "leave": True,
        }
        _refused(await as_bob.post("/v1/safety/reports", json={**report, "group_id": "0" * 32}), 404, "unknown_group")
        made = await as_bob.post("/v1/safety/reports", json=report)
        assert made.status_code == 201, made.text
        assert made.json() | {"report_id": ""} == {"report_id": "", "attached": 1, "blocked": True, "left_group": True}
        assert (await as_bob.get("/v1/groups")).json() == {"groups": []}

        refused = await as_alice.post(f"/v1/groups/{gid}/members", json={"accounts": [b]})
        _refused(refused, 403, "cannot_add")
        assert refused.json()["error"]["message"] == "this person cannot be added"
        _refused(await as_alice.post("/v1/groups", json={"members": [b, c]}), 403, "cannot_add")

        # A group reported as a whole, by a member who stays.
        whole = await as_carol.post("/v1/safety/reports", json={"kind": "group", "group_id": gid})
        assert whole.status_code == 201 and whole.json()["left_group"] is False
    stored = {r["reporter_account_id"]: r for r in await _rows(relay, "safety_reports")}
    assert stored[b]["left_group"] is True and stored[b]["group_id"] == gid
    assert stored[c]["subject_account_id"] is None and stored[c]["kind"] == "group"


async def test_deleting_an_account_takes_its_blocks_and_acceptances_and_leaves_reports(users, relay):
    alice, bob, carol = [await users.register(n) for n in ("alice", "bob", "carol")]
    a, b, c = (u.core.account_id for u in (alice, bob, carol))
    await alice.send_text(b, "hello")
    await carol.send_text(a, "hello alice")
    async with api(relay, bob) as as_bob, api(relay, carol) as as_carol:
        assert (await as_bob.put(f"/v1/safety/requests/{c}")).status_code == 204
        assert (await as_carol.put(f"/v1/safety/blocks/{b}")).status_code == 204
        await as_bob.post("/v1/safety/reports", json={"kind": "person", "account_id": a, "block": True})
    await alice.delete_account()

    blocks = [(r["owner_account_id"], r["blocked_account_id"]) for r in await _rows(relay, "safety_blocks")]
    accepted = [(r["owner_account_id"], r["peer_account_id"]) for r in await _rows(relay, "safety_acceptances")]
    assert blocks == [(c, b)] and accepted == [(b, c)]
    assert [r["subject_account_id"] for r in await _rows(relay, "safety_reports")] == [a]


async def test_bad_input_is_refused_with_a_code(users, relay):
    alice, bob = await users.register("alice"), await users.register("bob")
    a, b = alice.core.account_id, bob.core.account_id
    nobody = str(uuid.uuid4())
    async with api(relay, alice) as as_alice, httpx.AsyncClient(base_url=relay.url) as anonymous:
        _refused(await anonymous.get("/v1/safety/blocks"), 401, "unauthenticated")
        _refused(await anonymous.put(f"/v1/safety/blocks/{b}"), 401, "unauthenticated")
        _refused(await as_alice.put("/v1/safety/blocks/not-an-account"), 400, "invalid_request")
        _refused(await as_alice.put(f"/v1/safety/blocks/{a}"), 400, "cannot_block_self")
        _refused(await as_alice.put(f"/v1/safety/blocks/{nobody}"), 404, "unknown_account")
        _refused(await as_alice.put(f"/v1/safety/requests/{a}"), 400, "cannot_accept_self")
        _refused(await as_alice.put(f"/v1/safety/requests/{nobody}"), 404, "unknown_account")
        _refused(await as_alice.get("/v1/safety/accepted", params={"after": "' OR 1=1"}), 400, "invalid_request")

        message = {"sender": b, "client_message_id": "m", "sent_at": 1, "text": "x"}
        for body in (
            {"kind": "spam", "account_id": b},
            {"kind": "person"},  # no one reported
            {"kind": "message", "account_id": b},  # no message named
            {"kind": "message", "account_id": b, "client_message_ids": [str(i) for i in range(11)]},
            {"kind": "person", "account_id": b, "leave": True},  # only a group can be left
            {"kind": "person", "account_id": b, "group_id": "0" * 32},
            {"kind": "group", "account_id": b},  # which group?
            {"kind": "person", "account_id": b, "messages": [message] * 6},
            {"kind": "person", "account_id": b, "messages": [{**message, "text": "x" * 4097}]},
            {"kind": "person", "account_id": b, "messages": [{**message, "text": "nul \x00"}]},
            {"kind": "person", "account_id": b, "messages": [{**message, "sent_at": -1}]},
        ):
            _refused(await as_alice.post("/v1/safety/reports", json=body), 400, "invalid_request")
        _refused(
            await as_alice.post("/v1/safety/reports", json={"kind": "person", "account_id": a}),
            400,
            "cannot_report_self",
        )
        missing = await as_alice.post("/v1/safety/reports", json={"kind": "person", "account_id": nobody})
        _refused(missing, 404, "unknown_account")

        # 20 reports an hour, and the blocks and acceptances above spent nothing (they were refused).
        for _ in range(20):
            assert (
                await as_alice.post("/v1/safety/reports", json={"kind": "person", "account_id": b})
            ).status_code == 201
        limited = await as_alice.post("/v1/safety/reports", json={"kind": "person", "account_id": b})
        _refused(limited, 429, "rate_limited")
        assert int(limited.headers["retry-after"]) > 0


async def test_a_block_made_on_one_relay_process_is_kept_by_another_whose_cache_said_otherwise(
    users, relay, code_inbox, tmp_path
):
    if relay.database_url.startswith("sqlite"):
        pytest.skip("a fleet of relay processes shares PostgreSQL")
    # The second process trusts what it cached for an hour: only the fleet event can tell it of the block.
    env = {"COVE_FLEET_POLL_SECONDS": "0.3", "COVE_SAFETY_CONTACTS_TTL_SECONDS": "3600"}
    (tmp_path / "second").mkdir()
    second = RelayProcess(relay.database_url, tmp_path / "second", code_inbox.url, env, preloaded=True)
    second.start()
    try:
        alice, bob = await users.register("alice"), await users.register("bob")
        b = bob.core.account_id
        alice_there = Users(second, code_inbox, tmp_path / "clients").client("alice")  # her phone, via the other
        await alice_there.send_text(b, "first")  # the second process now holds "Bob does not block Alice"

        async def queued_for_bob() -> int:
            return len([r for r in await _rows(relay, "envelopes") if r["account_id"] == b])

        async with api(relay, bob) as as_bob:
            assert (await as_bob.put(f"/v1/safety/blocks/{alice.core.account_id}")).status_code == 204

        async def withheld() -> bool:
            before = await queued_for_bob()
            await alice_there.send_text(b, "still there?")
            return await queued_for_bob() == before

        await wait_for(withheld, "the second process withholds Alice's messages")
        await alice_there.aclose()
        alice_there.core.store.close()
    finally:
        second.stop()
