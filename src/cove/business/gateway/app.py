"""The gateway's HTTP surface: the WhatsApp Cloud API's endpoints and shapes, so a business's existing client
library works with only its base URL changed (Meta's Cloud API reference).

- ``POST /{version}/{phone_number_id}/messages``: text, template, interactive (reply buttons, lists), mark as
  read. 200 means accepted (the relay holds it); the final state comes by webhook. ``Idempotency-Key`` makes a
  retried send one message.
- ``GET|POST|DELETE /{version}/{waba_id}/message_templates``, ``GET|POST /{version}/{template_id}``: the
  template registry on the relay (:mod:`.templates_api`).
- ``GET|POST /{version}/{phone_number_id}/whatsapp_business_profile``: the profile users see.
- ``GET /{version}/{phone_number_id}``: the number, its quality rating and messaging limit.
- ``DELETE /{version}/{phone_number_id}/opt_ins/{wa_id}``: Cove's addition, to honour a STOP a user wrote.
- ``POST|DELETE|GET /{version}/{phone_number_id}/block_users``: the business's blocklist (:mod:`.blocks`).
- ``POST /{version}/{phone_number_id}/media``, ``GET|DELETE /{version}/{media_id}``: media
  (:mod:`.media_routes`).

Every request needs ``Authorization: Bearer <token>`` (``cove business gateway token``); errors are Graph errors
(``{"error": {message, type, code, error_data, fbtrace_id}}``), as Cloud API libraries expect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import APIRouter, Body, Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cove.business.errors import MESSAGING_PRODUCT, CloudApiError
from cove.business.gateway import blocks, templates_api
from cove.business.gateway.cloud import new_message_id
from cove.business.gateway.events import TIER_NAMES
from cove.business.gateway.graph import GraphError, now_ms
from cove.business.gateway.media_routes import add_media_routes, retrieve
from cove.business.gateway.media_rules import is_media_id
from cove.business.gateway.service import Gateway
from cove.business.gateway.store import request_hash
from cove.business.keys import BSUID
from cove.business.tiers import LIMITS, Tier
from cove.client import paths
from cove.client.allowlist import RouteNotAllowed
from cove.client.core import Request as RelayRequest
from cove.client.transport import RelayError
from cove.errors import http_error_headers
from cove.protocol.business import Category

log = logging.getLogger("cove.gateway")

VERSION = r"^v\d+\.\d+$"
GRAPH_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": 'A Graph error: `{"error": {message, type, code, error_data, fbtrace_id}}`'},
    401: {"description": "Missing or unknown access token (code 190)"},
}
PROFILE_FIELDS = ("about", "address", "description", "email", "websites", "vertical")
OBJECT_ID = Path(description="The phone number id, a template id or a media id (digits): Graph objects share this path")


def graph_response(error: CloudApiError, status: int | None = None) -> JSONResponse:
    headers = {}
    if error.retry_after_ms is not None:
        headers["Retry-After"] = str(max(1, -(-error.retry_after_ms // 1000)))
    return JSONResponse(
        error.to_graph_error(uuid.uuid4().hex), status_code=status or error.spec.http_status, headers=headers
    )


def _relay_refusal(exc: RelayError) -> CloudApiError:
    """A relay answer to a management call, as the Graph error a Cloud API library understands."""
    return CloudApiError(100, f"{exc.details.get('message', exc)} ({exc.code})")


def _category(value: str) -> str:
    """A template category, in either case (Cloud API libraries send MARKETING)."""
    try:
        return Category(value.lower()).value
    except ValueError:
        known = ", ".join(c.value for c in Category)
        raise GraphError(CloudApiError(100, f"category: {value[:40]!r} is not one of {known}")) from None


def tier_of(limit: int | None) -> Tier:
    return next(tier for tier, value in LIMITS.items() if value == limit)


def create_app(gateway: Gateway, run_background: bool = True) -> FastAPI:
    store = gateway.store
    key_locks: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(gateway.run()) if run_background else None
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(
        title="Cove business gateway",
        summary="The WhatsApp Cloud API, end-to-end encrypted over Cove",
        lifespan=lifespan,
    )

    @app.exception_handler(GraphError)
    async def _graph(_: Request, exc: GraphError) -> JSONResponse:
        return graph_response(exc.error, exc.status)

    @app.exception_handler(RelayError)
    async def _relay(_: Request, exc: RelayError) -> JSONResponse:
        return graph_response(_relay_refusal(exc), 400 if exc.status < 500 else 503)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return graph_response(CloudApiError(100, f"{where}: {first.get('msg')}"))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = graph_response(CloudApiError(100, f"Unsupported request: {exc.detail}"), exc.status_code)
        response.headers.update(http_error_headers(request, exc) or {})
        return response

    # A value that cannot be part of a relay URL; the edge checks each one's syntax first, so these are the
    # fail-closed net, answered as the invalid parameter they are.
    @app.exception_handler(paths.InvalidPathValue)
    @app.exception_handler(httpx.InvalidURL)
    async def _invalid_value(_: Request, exc: Exception) -> JSONResponse:
        return graph_response(CloudApiError(100, str(exc)))

    @app.exception_handler(RouteNotAllowed)
    async def _not_allowed(_: Request, exc: RouteNotAllowed) -> JSONResponse:
        log.error("refused to send a relay request: %s", exc)
        return graph_response(CloudApiError(100, "The request would reach a relay route this gateway does not use."))

    @app.exception_handler(httpx.TransportError)
    async def _unreachable(_: Request, exc: httpx.TransportError) -> JSONResponse:
        return graph_response(CloudApiError(2, f"The relay cannot be reached ({type(exc).__name__})."))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        """Anything else is still a Graph error, never a plain-text 500 (the exception is logged)."""
        log.error("unexpected error", exc_info=exc)
        return graph_response(CloudApiError(131000, "An unexpected error occurred in the gateway; try again."))

    async def authorised(authorization: str = Header("", description="Bearer <token>")) -> None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token or not store.token_valid(token.strip()):
            raise GraphError(CloudApiError(190, "Invalid OAuth access token."), 401)

    # Every Cloud API route takes the token and answers Graph errors.
    api = APIRouter(dependencies=[Depends(authorised)], responses=GRAPH_ERRORS)

    def own(object_id: str) -> None:
        if object_id != gateway.identity.account_id:
            raise GraphError(
                CloudApiError(100, f"Unsupported request: object with ID '{object_id}' does not exist on this gateway.")
            )

    @api.post(
        "/{version}/{phone_number_id}/messages",
        summary="Send a message or mark one as read (Cloud API shapes)",
        responses={429: {"description": "Throttled (130429, 131056): retry after Retry-After seconds"}},
    )
    async def messages(
        request: Request,
        version: str = Path(pattern=VERSION),
        phone_number_id: str = Path(),
        body: dict[str, Any] = Body(
            ...,
            examples=[
                {
                    "messaging_product": "whatsapp",
                    "to": "+14155550100",
                    "type": "text",
                    "text": {"body": "Your order is ready"},
                }
            ],
        ),
        idempotency_key: str | None = Header(None, max_length=255, description="Makes a retried send one message"),
    ) -> Any:
        own(phone_number_id)
        if idempotency_key is None:
            return await gateway.send(body)
        digest = request_hash(json.dumps(body, sort_keys=True).encode())
        async with key_locks.setdefault(idempotency_key, asyncio.Lock()):
            remembered = store.remembered(idempotency_key, now_ms())
            if remembered is not None and remembered[0] != digest:
                raise GraphError(CloudApiError(100, "This Idempotency-Key was used with a different request."), 422)
            if remembered is not None and remembered[1] == 200:
                return JSONResponse(json.loads(remembered[2]))
            # Pending (a crash or a throttle came between): send again under the message id chosen the first time.
            message_id = json.loads(remembered[2])["message_id"] if remembered is not None else None
            if message_id is None:
                message_id = new_message_id()
                store.remember(idempotency_key, digest, 0, json.dumps({"message_id": message_id}), now_ms())
            answer = await gateway.send(body, message_id)
            store.remember(idempotency_key, digest, 200, json.dumps(answer), now_ms())
        key_locks.pop(idempotency_key, None)
        return answer

    templates_api.add_routes(api, gateway, own)

    @api.delete(
        "/{version}/{phone_number_id}/opt_ins/{wa_id}",
        summary="Record that a user opted out (Cove's addition: for a STOP written in the chat)",
    )
    async def opt_out(
        version: str = Path(pattern=VERSION),
        phone_number_id: str = Path(),
        wa_id: str = Path(pattern=BSUID, description="The user id the business knows the user by"),
        category: list[str] | None = Query(None, description="marketing, utility, authentication [default: all]"),
    ) -> Any:
        own(phone_number_id)
        params = {"category": [_category(c) for c in category]} if category else None
        await gateway.client.call(
            RelayRequest("DELETE", paths.build(paths.CUSTOMER_OPT_IN, user_id=wa_id), params=params)
        )
        return {"success": True}

    @api.get(
        "/{version}/{phone_number_id}/whatsapp_business_profile",
        summary="The business profile",
    )
    async def get_profile(version: str = Path(pattern=VERSION), phone_number_id: str = Path()) -> Any:
        own(phone_number_id)
        profile = await gateway.client.call(RelayRequest("GET", "/v1/business/profile"))
        return {"data": [{"messaging_product": MESSAGING_PRODUCT, **{k: profile[k] for k in PROFILE_FIELDS}}]}

    @api.post(
        "/{version}/{phone_number_id}/whatsapp_business_profile",
        summary="Update the business profile",
    )
    async def update_profile(
        version: str = Path(pattern=VERSION), phone_number_id: str = Path(), body: dict[str, Any] = Body(...)
    ) -> Any:
        own(phone_number_id)
        current = await gateway.client.call(RelayRequest("GET", "/v1/business/profile"))
        changed = {k: body[k] for k in PROFILE_FIELDS if k in body}
        merged = {"display_name": current["display_name"], **{k: current[k] for k in PROFILE_FIELDS}, **changed}
        await gateway.client.call(RelayRequest("PUT", "/v1/business/profile", merged))
        return {"success": True}

    @api.get(
        "/{version}/{object_id}",
        summary="The phone number, a template by its id, or a media file's URL and facts",
        description="With the business's id (GET /{phone_number_id}): the number, its quality rating and "
        "messaging limit. With a template's id: that template in Meta's shape (`fields` as in the template "
        "list). With a media id (digits): the file's URL, MIME type, sha256 and size.",
    )
    async def phone_number(
        request: Request,
        version: str = Path(pattern=VERSION),
        object_id: str = OBJECT_ID,
        fields: str | None = Query(None, max_length=1000, description="For a template: the fields to return"),
    ) -> Any:
        if is_media_id(object_id):  # GET /{media_id} shares this path; media ids are digits, accounts uuids
            return retrieve(gateway.media, request, object_id)
        if object_id != gateway.identity.account_id:  # the same path names a template by its id
            template = await templates_api.lookup(gateway, object_id, fields)
            if template is not None:
                return template
        own(object_id)
        profile = await gateway.client.call(RelayRequest("GET", "/v1/business/profile"))
        limit = profile["messaging_limit"]
        return {
            "id": gateway.identity.phone_number_id,
            "display_phone_number": gateway.identity.display_phone_number,
            "verified_name": profile["display_name"],
            "code_verification_status": "VERIFIED" if profile["verified"] else "NOT_VERIFIED",
            "quality_rating": profile["quality"],
            "messaging_limit_tier": TIER_NAMES[tier_of(limit)],
            "throughput": {"level": "HIGH" if profile["throughput_mps"] >= 1000 else "STANDARD"},
        }

    blocks.add_routes(api, gateway, own, VERSION)
    add_media_routes(api, gateway.media, own, VERSION)
    app.include_router(api)
    return app
