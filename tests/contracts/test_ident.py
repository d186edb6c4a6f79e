"""Users' ids, both ways: sends address a user by number in ``to`` or by business-scoped id (Meta's format,
``US.13491208655302741918``) in ``to`` or in Meta's ``recipient`` field, as Meta's reference and pywa 4.5.0 build
them; and with a real gateway, pywa's client reaches a user by number and then by the id the webhook gave, and every
answer names the user as Meta's do (``wa_id`` for a number, ``user_id`` for an id)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from contracts.harness import against, pywa_client, pywa_requests, refusal, webhook_problems
from contracts.reference import responses, sends
from contracts.reference.webhooks import is_bsuid
from cove.client.events import MessageReceived
from gateway_world import GatewayProcess, Receiver

BSUID = "US.13491208655302741918"
TEXT = {"body": "Your order is ready."}


def test_a_business_scoped_id_in_recipient_parses() -> None:
    assert refusal(sends.to_recipient(sends.addressed("+16505551234", "text", TEXT), BSUID)) is None


def test_a_business_scoped_id_in_to_parses() -> None:
    assert refusal(sends.addressed(BSUID, "text", TEXT)) is None


def test_to_and_recipient_together_parse_as_meta_takes_them() -> None:
    """Meta: both may be given; the number in ``to`` takes precedence."""
    assert refusal(sends.addressed("+16505551234", "text", TEXT) | {"recipient": BSUID}) is None


def test_neither_to_nor_recipient_is_refused() -> None:
    body = {"messaging_product": "whatsapp", "type": "text", "text": TEXT}
    refused = refusal(body)
    assert refused is not None and refused.startswith("100:"), refused


@pytest.mark.parametrize("bad", ["CC.TDPKOFMGQ3VW7X2RLNHA5J4ZKEBYS6CT", "us.1349", "US.", "US.12a4", "USA.1234"])
def test_a_recipient_not_in_metas_id_syntax_is_refused(bad: str) -> None:
    refused = refusal(sends.to_recipient(sends.addressed("+16505551234", "text", TEXT), bad))
    assert refused is not None and refused.startswith("100:"), refused


def test_pywa_addresses_a_business_scoped_id_with_recipient_and_that_parses() -> None:
    (body,) = pywa_requests(lambda wa: wa.send_message(BSUID, "Your order is ready."))
    assert body.get("recipient") == BSUID and "to" not in body and body["recipient_type"] == "individual"
    assert refusal(body) is None


async def inbox_texts(user, count: int, timeout: float = 20.0) -> list[str]:  # noqa: ANN001, ASYNC109
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while len(seen) < count and time.monotonic() < deadline:
        seen += [e.text for e in await user.inbox() if isinstance(e, MessageReceived)]
        await asyncio.sleep(0.1)
    return seen


async def test_pywa_reaches_a_user_by_number_and_by_the_id_the_webhook_gave(
    shop: tuple[GatewayProcess, Receiver], users
) -> None:
    gateway, receiver = shop
    biz = gateway.phone_number_id
    ivy = await users.register("ivy")
    await ivy.send_text(biz, "Is my order ready?")
    change = (await receiver.wait_for(lambda r: r.changes("messages")))[0]
    contact = change["value"]["contacts"][0]
    user_id = contact.get("user_id", "")
    assert is_bsuid(user_id), contact
    assert contact.get("wa_id") is None  # Ivy shared no number with the shop

    wa = pywa_client(gateway)
    by_id = await asyncio.to_thread(wa.send_message, user_id, "Yes, it is.")
    by_number = await asyncio.to_thread(wa.send_message, ivy.core.phone_number, "Come by at 5.")
    assert by_id.id.startswith("wamid.") and by_number.id.startswith("wamid.")
    assert await inbox_texts(ivy, 2) == ["Yes, it is.", "Come by at 5."]

    # The same sends in plain HTTP: the answers name the user as Meta's do.
    answers: list[dict[str, Any]] = []
    async with gateway.api() as api:
        for body in (
            sends.to_recipient(sends.addressed("+10000000000", "text", TEXT), user_id),
            sends.addressed(user_id, "text", TEXT),
            sends.addressed(ivy.core.phone_number, "text", TEXT),
        ):
            answer = await api.post(f"/{biz}/messages", json=body)
            assert answer.status_code == 200, answer.text
            answers.append(answer.json())
    assert [against(responses.SendResponse, a) for a in answers] == [[], [], []]
    assert [a["contacts"][0].get("user_id") for a in answers[:2]] == [user_id, user_id]
    assert answers[2]["contacts"][0]["wa_id"] == ivy.core.phone_number.lstrip("+")


async def user_call(relay, user, method: str, path: str, **kw: Any) -> httpx.Response:  # noqa: ANN001
    async with httpx.AsyncClient(base_url=relay.url, headers={"Authorization": f"Bearer {user.core.token}"}) as api:
        return await api.request(method, path, **kw)


async def test_a_shown_name_a_shared_number_and_a_new_number_reach_the_business_in_metas_shapes(
    shop: tuple[GatewayProcess, Receiver], users, relay
) -> None:
    """The user's own choices (a name to show, their number shared, then a new number) as the webhooks Meta sends
    for them: ``profile.name``, a contacts message with the number, ``wa_id``/``from`` once shared, and a
    ``user_changed_number`` system message."""
    gateway, receiver = shop
    biz = gateway.phone_number_id
    bo = await users.register("bo")
    await bo.send_text(biz, "Hi")
    await receiver.wait_for(lambda r: r.changes("messages"))
    named = await user_call(relay, bo, "PUT", f"/v1/business/{biz}/name", json={"name": "Bo"})
    assert named.status_code == 200, named.text
    shared = await user_call(relay, bo, "PUT", f"/v1/business/{biz}/number-sharing")
    assert shared.status_code == 200, shared.text
    await receiver.wait_for(
        lambda r: [m for c in r.changes("messages") for m in c["value"].get("messages", []) if m["type"] == "contacts"]
    )
    await bo.send_text(biz, "Shared")
    digits = bo.core.phone_number.lstrip("+")
    last = await receiver.wait_for(
        lambda r: [c for c in r.changes("messages") if c["value"].get("messages", [{}])[0].get("from") == digits]
    )
    assert last[0]["value"]["contacts"][0]["profile"]["name"] == "Bo"

    new_number = "+447400123456"
    asked = await user_call(
        relay, bo, "POST", "/v1/verification/code", json={"phone_number": new_number, "purpose": "change_number"}
    )
    assert asked.status_code == 202, asked.text
    code = users.inbox.latest(new_number)
    moved = await user_call(relay, bo, "PUT", "/v1/accounts/me/number", json={"phone_number": new_number, "code": code})
    assert moved.status_code == 200, moved.text
    system = await receiver.wait_for(
        lambda r: [m for c in r.changes("messages") for m in c["value"].get("messages", []) if m["type"] == "system"]
    )
    assert system[0]["system"]["type"] == "user_changed_number"
    problems = webhook_problems([event["body"] for event in receiver.events()])
    assert not problems, json.dumps(problems, indent=1)
