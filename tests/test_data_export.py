"""Download my data (``GET /v1/me/export``): on a real relay, each capability's section holds what its user did,
another account's data never appears in it, the lists are capped with a marker, and the export is rate-limited.
The CLI writes it owner-only and never over a file unless told to."""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import DBAPIError

from cli_helpers import cli_env, cove, register, said
from cove.accounts.export import listed, snapshot
from cove.accounts.usage_storage import usage_daily
from cove.client.group_client import Groups
from cove.client.safety_client import Safety
from cove.client.transport import CoveClient
from cove.db import create_engine, migrate
from cove.sharing import erasure, gateway, wire
from cove.sharing.keys import SharingKeys
from privacy_world import RELAY_ENV, onboard, publish

ACKED = 1_800_000_000_000  # when the parent says it applied the revoking batch
SHOP = {"display_name": "Corner Bakery", "websites": ["https://bakery.example"], "vertical": "RESTAURANT"}


@pytest.fixture
def relay_env() -> dict[str, str]:
    return RELAY_ENV


def http(relay, client: CoveClient) -> httpx.AsyncClient:  # noqa: ANN001
    return httpx.AsyncClient(base_url=relay.url, headers={"Authorization": f"Bearer {client.core.token}"})


@dataclass
class World:
    alice: CoveClient
    bob: CoveClient
    carol: CoveClient
    shop: CoveClient
    group_id: str
    report_id: str
    attachment_id: str
    revoking_batch: str


async def build(relay, users, tmp_path: Path) -> World:  # noqa: ANN001
    """Alice does something in every capability; bob and carol are the people she deals with, shop a business."""
    alice = await users.register("alice")
    bob = await users.register("bob")
    carol = await users.register("carol")
    shop = await users.register("shop")
    a = alice.core.account_id
    await alice.set_pin("731946")
    await bob.send_text(a, "for alice, queued until she reads it")
    group_id = await Groups(alice).create([bob.core.account_id])
    await Safety(alice).block(carol.core.account_id)
    report = await Safety(alice).report("person", account_id=carol.core.account_id)
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8 not much of a photo" * 40)
    pointer = await alice.upload_attachment(photo, recipients=1)
    assert await alice.report_usage() >= 1
    async with http(relay, shop) as owner, http(relay, alice) as user:
        assert (await owner.put("/v1/business/profile", json=SHOP)).status_code == 200
        s = shop.core.account_id
        opted = await user.put(f"/v1/business/{s}/opt-in", json={"categories": ["utility"], "source": "web"})
        assert opted.status_code < 300, opted.text
        assert (await user.post(f"/v1/business/{s}/stop-promotions")).status_code < 300

    await publish(relay.database_url)
    engine = create_engine(relay.database_url)
    try:
        everything = {"account_linking": "in", "friend_suggestions": "in", "ads": "in", "analytics": "in"}
        await onboard(alice, everything)
        await onboard(bob, everything)
        keys = SharingKeys.load_or_create(relay.data_dir)
        outbox = tmp_path / "outbox"
        first = await gateway.export(engine, keys, "parent", outbox)
        await alice.withdraw("ads")
        second = await gateway.export(engine, keys, "parent", outbox, since_batch=first.manifest.batch_id)
        ack = wire.Ack(recipient="parent", batch_id=second.manifest.batch_id, applied_at_ms=ACKED, erasures=[])
        await erasure.apply_acks(engine, [ack])
    finally:
        await engine.dispose()
    return World(alice, bob, carol, shop, group_id, report["report_id"], pointer["id"], second.manifest.batch_id)


def items(part: dict[str, Any]) -> list[dict[str, Any]]:
    assert part["truncated"] is False
    return part["items"]


async def test_each_section_holds_what_the_account_did(relay, users, tmp_path: Path) -> None:
    w = await build(relay, users, tmp_path)
    a = w.alice.core.account_id
    doc = await w.alice.export_my_data()
    assert (doc["format"], doc["account_id"]) == ("cove.export/1", a)
    s = doc["sections"]

    assert s["account"]["phone_number"] == w.alice.core.phone_number
    assert s["account"]["registration_lock_set"] is True
    assert not any("hash" in key or "salt" in key for key in s["account"])
    (device,) = items(s["devices"])
    assert (device["device_id"], device["model"], device["vendor_device_id"]) == (1, "Pixel 9", "vendor-alice")
    assert device["identity_ed25519"] == w.alice.core.require_olm().identity_keys()["ed25519"]
    assert sum(day["app_opens"] for day in items(s["usage"])) >= 1
    assert [k["device_id"] for k in items(s["keys"]["one_time"])] == [1] and items(s["keys"]["one_time"])[0]["count"]
    assert s["device_list"]["open_link_codes"] == 0

    queued = s["messaging"]
    envelopes = items(queued["queued"])  # bob's message, and the group's creation notice
    assert queued["queued_count"] == len(envelopes) == 2
    (from_bob,) = [e for e in envelopes if e["sender_account_id"] == w.bob.core.account_id]
    assert from_bob["size"] > 0 and "body" not in from_bob
    (upload,) = items(s["attachments"]["uploaded"])
    assert (upload["id"], upload["recipients"]) == (w.attachment_id, 1)
    (membership,) = items(s["groups"]["memberships"])
    assert (membership["group_id"], membership["role"]) == (w.group_id, "admin")

    safety = s["safety"]
    assert [b["account_id"] for b in items(safety["blocks"])] == [w.carol.core.account_id]
    (report,) = items(safety["reports"])
    assert (report["report_id"], report["kind"], report["subject_account_id"]) == (
        w.report_id,
        "person",
        w.carol.core.account_id,
    )
    assert safety["ban"] is None and items(safety["appeals"]) == []

    consent = s["consent"]
    assert consent["terms"]["age_bracket"] == "adult"
    choices = {c["purpose_id"]: c["choice"] for c in items(consent["choices"])}
    assert choices["ads"] == "out" and choices["analytics"] == "in"  # the withdrawal is the choice in force
    receipts = s["consent_receipts"]
    assert receipts["pii_principal_id"] == a and receipts["verification"]["chain_intact"] is True
    events = [r["event"]["event_type"] for r in receipts["records"]]
    assert "given" in events and "withdrawn" in events and receipts["truncated"] is False

    sharing = s["sharing"]
    assert {d["purpose"] for d in items(sharing["disclosures"])} >= {"ads", "account_linking"}
    (revoked,) = items(sharing["revocations"])
    assert (revoked["purpose"], revoked["reason"], revoked["batch_id"]) == ("ads", "withdrawn", w.revoking_batch)
    assert revoked["acknowledged_at"] == ACKED

    business = s["business"]
    (opt_in,) = items(business["opt_ins"])
    assert (opt_in["business_id"], opt_in["category"], opt_in["business_name"]) == (
        w.shop.core.account_id,
        "utility",
        "Corner Bakery",
    )
    (preference,) = items(business["preferences"])
    assert preference["promotions_stopped_at"] is not None and business["profile"] is None

    # The privacy view lists the same revocation, with its acknowledgement.
    view = await w.alice.privacy()
    assert [(r["purpose"], r["acknowledged_at"]) for r in view["revocations"]] == [("ads", ACKED)]


async def test_another_accounts_data_never_appears(relay, users, tmp_path: Path) -> None:
    w = await build(relay, users, tmp_path)
    alice = w.alice.core
    hers = [
        alice.phone_number,
        alice.require_olm().identity_keys()["ed25519"],
        alice.require_olm().identity_keys()["curve25519"],
        w.report_id,
        w.attachment_id,
        "vendor-alice",
    ]
    # Bob has her id in his own records (her group's notice queued for him, his acceptance of her), never her data.
    # Carol, whom she blocked and reported, and the shop, which knows her by a per-business id, never see her id.
    for other, also in ((w.bob, []), (w.carol, [alice.account_id]), (w.shop, [alice.account_id])):
        doc = json.dumps(await other.export_my_data())
        assert other.core.account_id in doc
        for value in hers + also:
            assert value not in doc, (other.core.phone_number, value)
    shop = (await w.shop.export_my_data())["sections"]["business"]
    assert shop["profile"]["display_name"] == "Corner Bakery" and items(shop["opt_ins"]) == []


async def test_the_export_is_rate_limited_per_account(relay, users) -> None:
    alice = await users.register("alice")
    bob = await users.register("bob")
    async with http(relay, alice) as api:
        answers = [await api.get("/v1/me/export") for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert answers[-1].json()["error"]["code"] == "rate_limited" and int(answers[-1].headers["Retry-After"]) > 0
    assert (await bob.export_my_data())["account_id"] == bob.core.account_id  # another account's budget
    async with httpx.AsyncClient(base_url=relay.url) as anonymous:
        assert (await anonymous.get("/v1/me/export")).status_code == 401


@pytest.mark.parametrize("rows,limit", [(0, 2), (2, 2), (3, 2), (5, 1)])
async def test_a_list_is_capped_and_says_so(database_url: str, rows: int, limit: int) -> None:
    engine = create_engine(database_url)
    try:
        await migrate(engine)
        async with engine.begin() as conn:
            for day in range(rows):
                values = {"messages_sent": day, "messages_received": 0, "app_opens": 1, "updated_at_ms": 0}
                await conn.execute(insert(usage_daily).values(account_id="acc", day=day, **values))
            got = await listed(conn, select(usage_daily.c.day).order_by(usage_daily.c.day), limit=limit)
    finally:
        await engine.dispose()
    assert got == {"items": [{"day": d} for d in range(min(rows, limit))], "truncated": rows > limit}


async def test_the_export_reads_one_instant_and_writes_nothing(database_url: str) -> None:
    engine = create_engine(database_url)
    day = {"account_id": "acc", "messages_sent": 1, "messages_received": 0, "app_opens": 1, "updated_at_ms": 0}
    count = select(func.count()).select_from(usage_daily)
    try:
        await migrate(engine)
        async with snapshot(engine) as reading:
            assert (await reading.execute(count)).scalar_one() == 0
            async with engine.begin() as writer:  # commits while the export is half read
                await writer.execute(insert(usage_daily).values(day=1, **day))
            assert (await reading.execute(count)).scalar_one() == 0
            if engine.dialect.name == "postgresql":
                with pytest.raises(DBAPIError, match="read-only"):
                    await reading.execute(insert(usage_daily).values(day=2, **day))
        async with engine.connect() as after:
            assert (await after.execute(count)).scalar_one() == 1
    finally:
        await engine.dispose()


async def test_the_cli_writes_the_export_for_its_owner_only_and_never_over_a_file(
    relay, code_inbox, tmp_path: Path
) -> None:
    env = cli_env(relay, tmp_path / "home")
    await register(env, code_inbox, "dana", "+14155550188")
    out = tmp_path / "mine.json"
    done = cove(env, "privacy", "export", "--out", str(out), "--profile", "dana")
    assert done.returncode == 0, said(done)
    document = json.loads(out.read_text())
    assert document["format"] == "cove.export/1" and document["sections"]["account"]["phone_number"] == "+14155550188"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600

    out.write_text("keep me")
    again = cove(env, "privacy", "export", "--out", str(out), "--profile", "dana")
    assert again.returncode == 1 and "--force" in said(again) and "Traceback" not in said(again)
    assert out.read_text() == "keep me"
    assert not list(tmp_path.glob("*.partial"))  # noqa: ASYNC240 - the test's own folder
    forced = cove(env, "privacy", "export", "--out", str(out), "--force", "--profile", "dana")
    assert forced.returncode == 0 and json.loads(out.read_text())["format"] == "cove.export/1"

    nowhere = cove(env, "privacy", "export", "--out", str(tmp_path / "no" / "such.json"), "--profile", "dana")
    assert nowhere.returncode == 1 and len(said(nowhere).splitlines()) == 1
