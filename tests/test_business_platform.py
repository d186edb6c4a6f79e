"""Business accounts and templates on a real relay: profiles and the verified badge, template submission,
operator review and the signed approved payload, users' controls, per-business user ids, account deletion."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select

from cove.business.keys import BSUID
from cove.business.storage import business_feedback, business_optins, business_preferences, business_user_ids
from cove.db import create_engine
from cove.protocol.templates import TemplateError, verify_approved
from cove.testing import run_cove
from test_business_templates import UTILITY_POSITIONAL

# tests/test_business_templates.py's utility template, in English and without its URL button.
UTILITY: dict[str, Any] = {**UTILITY_POSITIONAL, "language": "en", "components": UTILITY_POSITIONAL["components"][:3]}
# A warning (marketing wording in a UTILITY template) does not block review.
PROMOTIONAL_UTILITY: dict[str, Any] = {
    "name": "order_ready",
    "language": "en",
    "category": "UTILITY",
    "components": [
        {
            "type": "BODY",
            "text": "Your order {{1}} is ready for pickup. Buy now and get a discount on your next visit.",
            "example": {"body_text": [["A-17"]]},
        }
    ],
}
# A lint error (the body opens with a variable) does.
OPENS_WITH_VARIABLE: dict[str, Any] = {
    "name": "pickup",
    "language": "en",
    "category": "UTILITY",
    "components": [
        {"type": "BODY", "text": "{{1}} is ready for pickup at our store.", "example": {"body_text": [["A"]]}}
    ],
}
PROFILE = {
    "display_name": "Corner Bakery",
    "about": "Fresh bread every morning",
    "email": "hello@bakery.example",
    "websites": ["https://bakery.example"],
    "vertical": "RESTAURANT",
}


def cove(relay, *args: str) -> subprocess.CompletedProcess:  # noqa: ANN001
    return run_cove(list(args), relay.env)


def http(relay, client) -> httpx.AsyncClient:  # noqa: ANN001
    return httpx.AsyncClient(base_url=relay.url, headers={"Authorization": f"Bearer {client.core.token}"})


async def business(users, relay, name: str, phone: str, profile: dict[str, Any] = PROFILE):  # noqa: ANN001, ANN201
    client = await users.register(name, phone)
    async with http(relay, client) as api:
        made = await api.put("/v1/business/profile", json=profile)
        assert made.status_code == 200, made.text
    return client


async def test_a_business_profile_shows_the_badge_only_once_verified(users, relay):
    shop = await users.register("shop", "+14155550161")
    ana = await users.register("ana")
    async with http(relay, shop) as owner, http(relay, ana) as user:
        path = f"/v1/business/{shop.core.account_id}/profile"
        assert (await user.get(path)).json()["error"]["code"] == "unknown_business"
        not_yet = cove(relay, "business", "verify", "+14155550161")
        assert not_yet.returncode == 1 and "no business profile" in not_yet.stderr

        bad = await owner.put("/v1/business/profile", json={**PROFILE, "websites": ["https://a", "https://b", "c"]})
        assert bad.status_code == 400 and "websites" in bad.json()["error"]["message"]
        made = await owner.put("/v1/business/profile", json=PROFILE)
        assert made.status_code == 200 and made.json()["verified"] is False
        seen = (await user.get(path)).json()
        assert seen["display_name"] == "Corner Bakery" and seen["websites"] == ["https://bakery.example"]
        assert seen["verified"] is False and seen["business_id"] == shop.core.account_id

        verified = cove(relay, "business", "verify", "+1 415 555 0161")
        assert verified.returncode == 0, verified.stderr
        assert "Corner Bakery" in verified.stdout
        assert (await user.get(path)).json()["verified"] is True
        # The same name keeps the badge; a new name loses it until verified again.
        assert (await owner.put("/v1/business/profile", json={**PROFILE, "about": "Open 7-19"})).json()["verified"]
        renamed = await owner.put("/v1/business/profile", json={**PROFILE, "display_name": "Your Bank"})
        assert renamed.json()["verified"] is False and (await user.get(path)).json()["verified"] is False

    unknown = cove(relay, "business", "verify", "+14155550199")
    assert unknown.returncode == 1 and "no account" in unknown.stderr


async def test_templates_are_reviewed_and_the_approved_text_verifies_with_the_servers_key(users, relay):
    shop = await business(users, relay, "shop", "+14155550162")
    ana = await users.register("ana")
    async with http(relay, shop) as owner, http(relay, ana) as user:
        refused = await user.post("/v1/business/templates", json=UTILITY)  # Ana is no business
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "not_a_business")

        malformed = await owner.post(
            "/v1/business/templates", json={**UTILITY, "category": "PROMO", "components": [{"type": "FOOTER"}]}
        )
        assert malformed.status_code == 400
        error = malformed.json()["error"]
        assert error["code"] == "invalid_template"
        assert {p["path"] for p in error["problems"]} >= {"category", "components.0.text"}

        lint_error = await owner.post("/v1/business/templates", json=OPENS_WITH_VARIABLE)
        assert lint_error.status_code == 400
        assert lint_error.json()["error"]["code"] == "template_lint_errors"
        assert [f["code"] for f in lint_error.json()["error"]["findings"]] == ["variable_at_start"]

        submitted = await owner.post("/v1/business/templates", json=UTILITY)
        assert submitted.status_code == 201, submitted.text
        template_id = submitted.json()["template_id"]
        warned = (await owner.post("/v1/business/templates", json=PROMOTIONAL_UTILITY)).json()
        assert warned["status"] == "PENDING" and [w["code"] for w in warned["warnings"]] == ["utility_promotional"]

        listed = {t["name"]: t for t in (await owner.get("/v1/business/templates")).json()}
        assert set(listed) == {"order_shipped", "order_ready"}
        assert (listed["order_shipped"]["status"], listed["order_shipped"]["version"]) == ("PENDING", 0)
        approved_path = f"/v1/business/templates/{template_id}/approved"
        assert (await user.get(approved_path)).json()["error"]["code"] == "template_not_approved"

        pending = cove(relay, "business", "templates", "--status", "PENDING")
        assert pending.returncode == 0, pending.stderr
        lines = {line.split()[0]: line for line in pending.stdout.splitlines()}
        assert set(lines) == {template_id, warned["template_id"]}
        assert "'Corner Bakery'" in lines[template_id] and "order_shipped (en, utility)" in lines[template_id]
        assert "warnings: utility_promotional" in lines[warned["template_id"]]
        assert cove(relay, "business", "templates", "--status", "APPROVED").stdout.strip() == "no template is APPROVED"
        approved = cove(relay, "business", "approve", template_id)
        assert approved.returncode == 0, approved.stderr
        assert "version 1" in approved.stdout
        again = cove(relay, "business", "approve", template_id)
        assert again.returncode == 1 and "cannot approve a APPROVED template" in " ".join(again.stderr.split())
        assert "Traceback" not in again.stderr  # it was one, with a TypeError, before
        assert cove(relay, "business", "approve", "no-such-id").returncode == 1

        key = (await user.get("/v1/business/template-key")).json()
        public_key = Ed25519PublicKey.from_public_bytes(base64.b64decode(key["public_key"]))
        signed = (await user.get(approved_path)).json()
        assert signed["key_id"] == key["key_id"] and signed["version"] == 1
        payload = base64.b64decode(signed["payload"])
        template = verify_approved(public_key, payload, signed["signature"])
        assert (template.template_id, template.business_id, template.version) == (template_id, shop.core.account_id, 1)
        assert template.template.name == "order_shipped"
        tampered = payload.replace(b"warehouse", b"warehous3")
        with pytest.raises(TemplateError) as bad:
            verify_approved(public_key, tampered, signed["signature"])
        assert bad.value.problems[0].code == "bad_signature"

        # Rejection needs a reason and is shown to the business.
        ready_id = warned["template_id"]
        assert cove(relay, "business", "reject", ready_id, "--reason", " ").returncode == 2
        rejected = cove(relay, "business", "reject", ready_id, "--reason", "marketing wording: use MARKETING")
        assert rejected.returncode == 0, rejected.stderr
        listed = {t["name"]: t for t in (await owner.get("/v1/business/templates")).json()}
        assert listed["order_ready"]["status"] == "REJECTED"
        assert listed["order_ready"]["reason"] == "marketing wording: use MARKETING"
        assert listed["order_shipped"]["status"] == "APPROVED"

        # An edit goes back to review; the next approval is version 2, signed anew.
        edited = {**UTILITY, "components": [*UTILITY["components"][:2], {"type": "FOOTER", "text": "Reply any time."}]}
        # Creating the same name and language again is refused, as in Meta's API; an edit names the template.
        again = await owner.post("/v1/business/templates", json=edited)
        assert again.status_code == 409 and again.json()["error"]["code"] == "template_exists"
        edit = {"components": edited["components"]}
        resubmitted = await owner.post(f"/v1/business/templates/{template_id}/edit", json=edit)
        assert resubmitted.status_code == 200 and resubmitted.json()["template_id"] == template_id
        assert resubmitted.json()["status"] == "PENDING"
        assert (await user.get(approved_path)).status_code == 404
        assert cove(relay, "business", "approve", template_id).returncode == 0
        signed = (await user.get(approved_path)).json()
        assert verify_approved(public_key, base64.b64decode(signed["payload"]), signed["signature"]).version == 2
        # Messages sent with version 1 still render with the text they were sent with.
        first = (await user.get(approved_path, params={"version": 1})).json()
        old = verify_approved(public_key, base64.b64decode(first["payload"]), first["signature"])
        footers = [c.text for c in old.template.components if c.type == "FOOTER"]
        assert old.version == 1 and footers == ["Questions? Just reply."]
        assert (await user.get(approved_path, params={"version": 3})).status_code == 404

        assert (await owner.delete("/v1/business/templates/order_ready?language=de")).status_code == 404
        assert (await owner.delete("/v1/business/templates/order_ready")).status_code == 204
        assert [t["name"] for t in (await owner.get("/v1/business/templates")).json()] == ["order_shipped"]


async def pair_rows(relay, table) -> list:  # noqa: ANN001
    engine = create_engine(relay.database_url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(select(table))).mappings())
    finally:
        await engine.dispose()


async def test_users_opt_in_stop_resume_and_block_and_each_business_sees_its_own_user_id(users, relay):
    bakery = await business(users, relay, "bakery", "+14155550163")
    bank = await business(users, relay, "bank", "+14155550164", {"display_name": "Savings Bank"})
    ana = await users.register("ana", "+14155550165")
    b, k = bakery.core.account_id, bank.core.account_id
    async with http(relay, ana) as user, http(relay, bakery) as bakery_api, http(relay, bank) as bank_api:
        assert (await user.get(f"/v1/business/{ana.core.account_id}/preferences")).status_code == 404
        looked = (await user.get(f"/v1/business/{b}/preferences")).json()
        assert looked["opt_ins"] == [] and looked["sendable_categories"] == []
        assert (await bakery_api.get("/v1/business/customers")).json() == []  # looking tells the business nothing

        bad = await user.put(f"/v1/business/{b}/opt-in", json={"categories": ["newsletters"], "source": "web"})
        assert bad.status_code == 400
        opted = await user.put(
            f"/v1/business/{b}/opt-in", json={"categories": ["marketing", "utility"], "source": "qr"}
        )
        assert opted.status_code == 200, opted.text
        assert opted.json()["sendable_categories"] == ["marketing", "utility"]
        assert [o["source"] for o in opted.json()["opt_ins"]] == ["qr", "qr"]
        await user.put(f"/v1/business/{k}/opt-in", json={"categories": ["authentication"], "source": "in_thread"})

        stopped = (await user.post(f"/v1/business/{b}/stop-promotions")).json()
        assert stopped["promotions_stopped"] is True and stopped["sendable_categories"] == ["utility"]
        customers = (await bakery_api.get("/v1/business/customers")).json()
        assert customers == [
            {"user_id": stopped["user_id"], "opt_ins": ["marketing", "utility"], "promotions_stopped": True}
        ]
        resumed = (await user.post(f"/v1/business/{b}/resume-promotions")).json()
        assert resumed["promotions_stopped"] is False and resumed["sendable_categories"] == ["marketing", "utility"]
        withdrawn = (await user.delete(f"/v1/business/{b}/opt-in", params={"category": "marketing"})).json()
        assert withdrawn["sendable_categories"] == ["utility"]

        # Per-business user ids: one per business, stable, and never the number or the account id.
        bakery_id = resumed["user_id"]
        bank_id = (await bank_api.get("/v1/business/customers")).json()[0]["user_id"]
        # Meta's BSUID format: the number's country (+1 415: US), a period, 20 digits.
        assert bakery_id != bank_id and re.match(BSUID, bakery_id) and re.match(BSUID, bank_id)
        assert bakery_id.startswith("US.") and bank_id.startswith("US.")
        assert (await user.get(f"/v1/business/{b}/preferences")).json()["user_id"] == bakery_id
        for seen in (bakery_id, bank_id):
            assert "4155550165" not in seen and ana.core.account_id not in seen
        customer_views = json.dumps(
            [(await api.get("/v1/business/customers")).json() for api in (bakery_api, bank_api)]
        )
        assert "4155550165" not in customer_views and ana.core.account_id not in customer_views

        no_reason = await user.post(f"/v1/business/{b}/block", json={})
        assert no_reason.status_code == 400
        blocked = (await user.post(f"/v1/business/{b}/block", json={"reason": "spam"})).json()
        assert blocked["blocked"] is True and blocked["block_reason"] == "spam" and blocked["sendable_categories"] == []
        assert (await bakery_api.get("/v1/business/customers")).json() == []  # who blocked it stays hidden
        reported = await user.post(f"/v1/business/{k}/report", json={"reason": "offensive"})
        assert reported.json()["blocked"] is False
        assert (await user.delete(f"/v1/business/{b}/block")).json()["blocked"] is False
        not_a_business = await user.post(f"/v1/business/{ana.core.account_id}/block", json={"reason": "spam"})
        assert not_a_business.json()["error"]["code"] == "unknown_business"
        own = await bakery_api.post(f"/v1/business/{b}/stop-promotions")
        assert (own.status_code, own.json()["error"]["code"]) == (400, "own_business")

    feedback = await pair_rows(relay, business_feedback)
    assert sorted((f["business_id"], f["kind"], f["reason"]) for f in feedback) == sorted(
        [(b, "block", "spam"), (k, "report", "offensive")]
    )
    assert all(f["user_account_id"] == ana.core.account_id for f in feedback)

    # Ana leaves Cove: her ids, opt-ins and preferences go; her feedback stays, no longer naming her.
    await ana.delete_account()
    for table in (business_user_ids, business_optins, business_preferences):
        assert [r for r in await pair_rows(relay, table) if r["user_account_id"] == ana.core.account_id] == []
    feedback = await pair_rows(relay, business_feedback)
    assert len(feedback) == 2 and all(f["user_account_id"] is None for f in feedback)

    # The bakery leaves: its profile, and the feedback about it, go.
    await bakery.delete_account()
    assert [f["business_id"] for f in await pair_rows(relay, business_feedback)] == [k]


async def test_a_business_pairs_ids_only_for_its_own_users(users, relay):
    """`POST /v1/business/users/resolve` pairs user ids and account ids only for the business's users: those who
    wrote to it, opted in or set a preference with it. An account that never dealt with the business (even one
    that opted in to another business) stays unknown, and resolving it records nothing."""
    shop = await business(users, relay, "shop", "+14155550166")
    other = await business(users, relay, "other", "+14155550167", {"display_name": "Other Shop"})
    s = shop.core.account_id
    ana, bo, cy, dee, eve = [await users.register(name) for name in ("ana", "bo", "cy", "dee", "eve")]
    await bo.send_text(s, "Do you deliver?")  # wrote to it
    async with http(relay, ana) as api:  # opted in
        assert (await api.put(f"/v1/business/{s}/opt-in", json={"categories": ["utility"], "source": "web"})).is_success
    async with http(relay, cy) as api:  # stopped its promotions without ever opting in
        assert (await api.post(f"/v1/business/{s}/stop-promotions")).is_success
    async with http(relay, dee) as api:  # opted in, to the other business only
        other_id = other.core.account_id
        made = await api.put(f"/v1/business/{other_id}/opt-in", json={"categories": ["utility"], "source": "web"})
        dee_at_other = made.json()["user_id"]

    everyone = [c.core.account_id for c in (ana, bo, cy, dee, eve, shop, other)]
    async with http(relay, shop) as api:
        pairs = (await api.post("/v1/business/users/resolve", json={"account_ids": everyone})).json()
        assert {p["account_id"] for p in pairs} == {ana.core.account_id, bo.core.account_id, cy.core.account_id}
        by_user_id = await api.post("/v1/business/users/resolve", json={"user_ids": [p["user_id"] for p in pairs]})
        assert sorted(by_user_id.json(), key=str) == sorted(pairs, key=str)
        assert (await api.post("/v1/business/users/resolve", json={"user_ids": [dee_at_other]})).json() == []
    known = {r["user_account_id"] for r in await pair_rows(relay, business_user_ids) if r["business_id"] == s}
    assert dee.core.account_id not in known and eve.core.account_id not in known

    await eve.send_text(s, "Hello")  # now she has written: the shop may know her
    async with http(relay, shop) as api:
        pairs = (await api.post("/v1/business/users/resolve", json={"account_ids": [eve.core.account_id]})).json()
    assert [p["account_id"] for p in pairs] == [eve.core.account_id]
