"""A business's conversation's own controls, as `cove businesses block|unblock|report` has them: blocking and
reporting a business go to its routes with a reason, which counts in its quality rating (a person's block and
report are `cove.client.safety_client`'s)."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from cove.client import paths
from cove.client.request import Request as RelayRequest
from cove.desktop import conversation
from cove.desktop.appstore import AppStore
from cove.desktop.pages import client_of
from cove.protocol.business import BlockReason

router = APIRouter()
DONE = {
    "block": "Blocked: the business can no longer write to you.",
    "unblock": "Unblocked: the business may write to you again.",
    "report": "Reported to Cove. Thank you.",
}


@router.post("/chats/{key}/business")
async def business_action(
    request: Request,
    key: str,
    action: str = Form(..., max_length=10),
    reason: str = Form(BlockReason.SPAM.value, max_length=32),
    also: bool = Form(False),
) -> Response:
    key = conversation.chat_key(key)
    client = client_of(request)
    if AppStore(client.core.store).business(key) is None:
        return await conversation.page(request, key, 400, "this conversation is not with a business")
    if action not in DONE or reason not in {r.value for r in BlockReason}:
        return await conversation.page(request, key, 400, "choose block, unblock or report, with one of the reasons")
    path = paths.build(paths.BUSINESS, business_id=key, action=action if action != "unblock" else "block")
    if action == "unblock":
        await client.call(RelayRequest("DELETE", path))
    else:
        body = {"reason": reason, "block": also} if action == "report" else {"reason": reason}
        await client.call(RelayRequest("POST", path, body))
    return await conversation.page(request, key, flash=DONE[action])
