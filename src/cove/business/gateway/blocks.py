"""Meta's Block Users API on the gateway: ``POST``, ``DELETE`` and ``GET /{version}/{phone_number_id}/block_users``.

Shapes from Meta's page ([M] https://developers.facebook.com/documentation/business-messaging/whatsapp/block-users/):
a request names up to 1,000 users as ``{"user": <phone number or wa_id>}`` (pywa 4.5 also sends
``{"user_id": <business-scoped id>}``); the answer lists ``added_users`` (``removed_users`` for DELETE) as
``{"input", "wa_id"?, "user_id"}`` (``wa_id``, the number, only for a user named by number) and ``failed_users``
with their ``errors``, and a request with a failed user is answered
400 with the Graph error 139100 beside that list. The list (GET) is ``data[{messaging_product, wa_id}]`` with
cursor ``paging``.

The blocklist itself, its rules and what a block does live on the relay (cove.business.blocks): this module
turns the numbers and ids a business sends into the ids the relay knows, and the relay's answer into Meta's.
A number that is not one of the business's users fails as the relay fails an unknown id (131047), so the
answer says nothing about numbers the business never dealt with.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import JSONResponse

from cove.business import blocks as rules
from cove.business.errors import MESSAGING_PRODUCT, CloudApiError
from cove.business.gateway.cloud import PHONE
from cove.business.gateway.graph import GraphError
from cove.business.gateway.service import Gateway
from cove.business.keys import BSUID
from cove.client.core import Request as RelayRequest

PATH = "/v1/business/blocks"
RESOLVE = "/v1/business/users/resolve"
INPUT_MAX = 64  # longer than any number or id; an input is echoed back, so it is bounded
EXAMPLE = {"messaging_product": MESSAGING_PRODUCT, "block_users": [{"user": "+14155550100"}]}


def parse_users(body: Any) -> list[str]:
    """The users a block or unblock request names, in order; a Graph error 100 for a malformed request."""
    if not isinstance(body, dict) or body.get("messaging_product") != MESSAGING_PRODUCT:
        raise GraphError(CloudApiError(100, 'messaging_product must be "whatsapp".'))
    entries = body.get("block_users")
    if not isinstance(entries, list) or not 1 <= len(entries) <= rules.MAX_PER_REQUEST:
        raise GraphError(CloudApiError(100, f"block_users must list 1 to {rules.MAX_PER_REQUEST} users."))
    users = []
    for i, entry in enumerate(entries):
        value = None
        if isinstance(entry, dict) and len(entry) == 1:
            value = entry.get("user", entry.get("user_id"))
        if not isinstance(value, str) or not value or len(value) > INPUT_MAX:
            raise GraphError(CloudApiError(100, f'block_users[{i}] must be {{"user": <phone number or wa_id>}}.'))
        users.append(value)
    return users


def _failed(user: str, error: CloudApiError, wa_id: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"input": user}
    if wa_id is not None:
        entry["wa_id"] = wa_id
    entry["errors"] = [{"message": error.spec.title, "code": error.code, "error_data": {"details": error.details}}]
    return entry


def _number(user: str) -> str | None:
    """Meta's ``wa_id`` in a block answer: the number's digits, only when the business named the user by number
    (a business-scoped id reveals no number)."""
    return user.lstrip("+") if re.match(PHONE, user) else None


def _done(user: str, user_id: str) -> dict[str, Any]:
    entry = {"input": user}
    if (number := _number(user)) is not None:
        entry["wa_id"] = number
    return entry | {"user_id": user_id}


async def resolve(gateway: Gateway, users: list[str]) -> dict[str, str | None]:
    """Each input's business-scoped id, or None (malformed, not on Cove, or not one of the business's users).
    Two relay calls at most, whatever the number of inputs: one directory lookup, one pairing."""
    found: dict[str, str | None] = {}
    phones: dict[str, str] = {}  # input -> E.164
    for user in users:
        if re.match(BSUID, user):
            found[user] = user
        elif re.match(PHONE, user):
            phones[user] = user if user.startswith("+") else "+" + user
        else:
            found[user] = None
    if phones:
        accounts = gateway.core.looked_up(await gateway.client.call(gateway.core.lookup(sorted(set(phones.values())))))
        ids: dict[str, str] = {}
        wanted = sorted(set(accounts.values()))
        if wanted:
            pairs = await gateway.client.call(RelayRequest("POST", RESOLVE, {"account_ids": wanted}))
            ids = {pair["account_id"]: pair["user_id"] for pair in pairs}
        for user, phone in phones.items():
            account = accounts.get(phone)
            found[user] = ids.get(account) if account is not None else None
    return found


def encode_cursor(user_id: str) -> str:
    return base64.urlsafe_b64encode(user_id.encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> str:
    """A cursor this module gave, back as the user id; a Graph error 100 for anything else."""
    try:
        value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, ValueError):
        value = ""
    if not re.match(BSUID, value):
        raise GraphError(CloudApiError(100, "Invalid cursor: pass paging.cursors.before or after unchanged."))
    return value


def add_routes(api: APIRouter, gateway: Gateway, own: Callable[[str], None], version_pattern: str) -> None:
    async def change(method: str, body: Any) -> tuple[list[str], dict[str, str | None], dict[str, Any]]:
        users = list(dict.fromkeys(parse_users(body)))  # one answer per distinct input
        ids = await resolve(gateway, users)
        known = sorted({i for i in ids.values() if i is not None})
        answer = await gateway.client.call(RelayRequest(method, PATH, {"user_ids": known})) if known else {}
        return users, ids, answer

    def answered(result: dict[str, Any], failed: list[dict[str, Any]]) -> Any:
        if failed:
            result["failed_users"] = failed
            error = CloudApiError(139100).to_graph_error(uuid.uuid4().hex)
            return JSONResponse({"messaging_product": MESSAGING_PRODUCT, "block_users": result, **error}, 400)
        return {"messaging_product": MESSAGING_PRODUCT, "block_users": result}

    @api.post(
        "/{version}/{phone_number_id}/block_users",
        summary="Block users who wrote to the business in the last 24 hours",
        description="At most 1,000 users a request, by phone number or wa_id. A blocked user's messages are not "
        "delivered to the business, and its sends to them fail with 131026, until they are unblocked. Each user "
        "is blocked or failed on its own; with a failed user the answer is 400 (139100) and lists both.",
    )
    async def block_users(
        version: str = Path(pattern=version_pattern),
        phone_number_id: str = Path(),
        body: dict[str, Any] = Body(..., examples=[EXAMPLE]),
    ) -> Any:
        own(phone_number_id)
        users, ids, answer = await change("POST", body)
        added = set(answer.get("added", []))
        refused = {f["user_id"]: f["cloud_api"] for f in answer.get("failed", [])}
        done, failed = [], []
        for user in users:
            user_id = ids[user]
            if user_id is not None and user_id in added:
                done.append(_done(user, user_id))
            elif user_id is not None and user_id in refused:
                code = int(refused[user_id]["code"])
                failed.append(_failed(user, CloudApiError(code, refused[user_id]["error_data"]["details"])))
            else:
                failed.append(_failed(user, CloudApiError(131047, rules.NOT_RECENT)))
        return answered({"added_users": done}, failed)

    @api.delete(
        "/{version}/{phone_number_id}/block_users",
        summary="Unblock users",
        description="At most 1,000 users a request, by phone number or wa_id. Unblocking a user who is not "
        "blocked succeeds; a number or id that is not one of the business's users fails (400, 139100).",
    )
    async def unblock_users(
        version: str = Path(pattern=version_pattern),
        phone_number_id: str = Path(),
        body: dict[str, Any] = Body(..., examples=[EXAMPLE]),
    ) -> Any:
        own(phone_number_id)
        users, ids, answer = await change("DELETE", body)
        removed = set(answer.get("removed", []))
        done, failed = [], []
        for user in users:
            user_id = ids[user]
            if user_id is not None and user_id in removed:
                done.append(_done(user, user_id))
            else:
                failed.append(_failed(user, CloudApiError(100, "Not one of this business's users.")))
        return answered({"removed_users": done}, failed)

    @api.get(
        "/{version}/{phone_number_id}/block_users",
        summary="The blocked users, a page at a time",
        description="`data[{messaging_product, wa_id}]` and `paging` with `cursors` (`before`, `after`) and the "
        "`next` / `previous` URLs when there is such a page.",
    )
    async def blocked_users(
        request: Request,
        version: str = Path(pattern=version_pattern),
        phone_number_id: str = Path(),
        limit: int = Query(100, ge=1, le=1000),
        after: str | None = Query(None, max_length=INPUT_MAX * 2),
        before: str | None = Query(None, max_length=INPUT_MAX * 2),
    ) -> Any:
        own(phone_number_id)
        params: dict[str, Any] = {"limit": limit}
        if after is not None:
            params["after"] = decode_cursor(after)
        if before is not None:
            params["before"] = decode_cursor(before)
        page = await gateway.client.call(RelayRequest("GET", PATH, params=params))
        ids = page["user_ids"]
        # Meta lists ``user_id`` (the relay keeps ids, not how each user was blocked, so no ``wa_id``); ``input`` is
        # the gateway's addition: pywa 4.5.0 reads it from every entry and fails without it.
        data = [{"messaging_product": MESSAGING_PRODUCT, "user_id": i, "input": i} for i in ids]
        paging: dict[str, Any] = {}
        if ids:
            paging["cursors"] = {"before": encode_cursor(ids[0]), "after": encode_cursor(ids[-1])}
        base = request.url.remove_query_params(["after", "before"])
        if page["after"] is not None:
            paging["next"] = str(base.include_query_params(after=encode_cursor(page["after"])))
        if page["before"] is not None:
            paging["previous"] = str(base.include_query_params(before=encode_cursor(page["before"])))
        return {"data": data, "paging": paging}
