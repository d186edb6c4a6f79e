"""The gateway's template endpoints, in Meta's shapes: the registry on the relay, seen as the Cloud API shows it.

- ``GET /{version}/{waba_id}/message_templates``: the list, paged and filtered (:mod:`.template_listing`);
- ``POST /{version}/{waba_id}/message_templates``: create; a name that exists in that language is Meta's error
  100, subcode 2388024 ("Content in This Language Already Exists"), not an overwrite;
- ``DELETE /{version}/{waba_id}/message_templates?name=`` (``&language=``, or ``&hsm_id=``): delete;
- ``POST /{version}/{template_id}``: edit (new components, or a category), back to review (declared on the
  ``/{version}/{phone_number_id}`` path, which is the same path);
- ``GET /{version}/{template_id}``: one template. Its path is also ``GET /{phone_number_id}``'s (and other ids'),
  so that route asks :func:`lookup` first: whatever route owns ``GET /{id}`` calls it with the id.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from cove.business.errors import CloudApiError
from cove.business.gateway import template_listing as listing
from cove.business.gateway.graph import GraphError
from cove.business.gateway.relay import UUID
from cove.business.gateway.service import Gateway
from cove.client import paths
from cove.client.core import Request as RelayRequest
from cove.client.transport import RelayError
from cove.protocol.templates import LANGUAGE, NAME, NAME_MAX

VERSION = r"^v\d+\.\d+$"
#: Meta's subcode and words for "a template with this name and language exists" (template-management page).
EXISTS_SUBCODE = 2388024
EXISTS_TITLE = "Content in This Language Already Exists"


def _refusal(exc: RelayError) -> GraphError:
    """The relay's refusal of a template change as the Graph error a Cloud API library branches on."""
    message = str(exc.details.get("message", exc))
    if exc.code == "template_exists":
        language = exc.details.get("language", "")
        return GraphError(
            CloudApiError(
                100,
                message,
                subcode=EXISTS_SUBCODE,
                user_title=EXISTS_TITLE,
                user_msg=f"There is already {language} content for this template. You can create a new template "
                "and try again.",
            )
        )
    if exc.code == "unknown_template":
        return GraphError(CloudApiError(100, f"Unsupported request: {message}"), 404)
    return GraphError(CloudApiError(100, f"{message} ({exc.code})"), 400 if exc.status < 500 else 503)


async def _relay(gateway: Gateway, request: RelayRequest) -> Any:
    try:
        return await gateway.client.call(request)
    except RelayError as exc:
        raise _refusal(exc) from None


async def lookup(gateway: Gateway, object_id: str, fields: str | None = None) -> dict[str, Any] | None:
    """``GET /{template_id}``: the template with this id in Meta's shape, or None when no template of this
    business has it (the id may name something else). ``fields`` is checked before anything is read."""
    chosen = listing.fields_of(fields)
    if re.fullmatch(UUID, object_id) is None:
        return None
    found = next((t for t in await gateway.refresh_templates() if t["template_id"] == object_id), None)
    return listing.cloud_template(found, chosen) if found is not None else None


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value  # Cloud API enums are case-insensitive


class TemplateEdit(BaseModel):
    """What an edit may change (Meta: category, components, time-to-live; Cove has no time-to-live)."""

    model_config = ConfigDict(extra="forbid")
    components: list[dict[str, Any]] | None = Field(None, min_length=1, max_length=4)
    category: Annotated[Literal["MARKETING", "UTILITY", "AUTHENTICATION"], BeforeValidator(_upper)] | None = None
    parameter_format: Annotated[Literal["POSITIONAL", "NAMED"], BeforeValidator(_upper)] | None = None


def _created(view: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": view["template_id"],
        "status": view["status"],
        "category": view["category"].upper(),
        "warnings": view["warnings"],  # Cove's linter: what may get it rejected, said before review
    }


def add_routes(api: APIRouter, gateway: Gateway, own: Callable[[str], None]) -> None:
    """Register the template endpoints on the gateway's authorised router; ``own`` refuses another account's id."""

    @api.get(
        "/{version}/{waba_id}/message_templates",
        summary="List templates (Meta's shape, cursor paging)",
        description="`data` holds `name`, `parameter_format`, `components`, `language`, `status`, `category` and "
        "`id` (`fields` picks others: `rejected_reason`, `quality_score`, and Cove's `version`); `paging` has "
        "opaque `cursors` and `next`/`previous` links. Filters: `name` and `content` (parts), `name_or_content`, "
        "and comma-separated `status`, `category`, `language`, `quality_score`. `limit` is 25 by default, at most "
        "100. `summary` adds `total_count`, `message_template_count`, `message_template_limit`, "
        "`are_translations_complete`.",
    )
    async def list_templates(request: Request, version: str = Path(pattern=VERSION), waba_id: str = Path()) -> Any:
        own(waba_id)
        try:
            query = listing.parse_query(dict(request.query_params))
        except CloudApiError as exc:
            raise GraphError(exc) from None
        found = listing.page(await gateway.refresh_templates(), query)
        return listing.answer(found, query, str(request.url.replace(query="")))

    @api.post(
        "/{version}/{waba_id}/message_templates",
        summary="Create a template",
        description="A Cloud API creation body; it goes to the operator's review (PENDING). A name that exists in "
        "that language is error 100, subcode 2388024: edit it with `POST /{template_id}` instead.",
    )
    async def create_template(
        version: str = Path(pattern=VERSION), waba_id: str = Path(), body: dict[str, Any] = Body(...)
    ) -> Any:
        own(waba_id)
        created = await _relay(gateway, RelayRequest("POST", "/v1/business/templates", body))
        gateway.forget_templates()
        return _created(created)

    @api.delete(
        "/{version}/{waba_id}/message_templates",
        summary="Delete a template",
        responses={404: {"description": "No such template (code 100)"}},
        description="By `name`, in every language, or in one with `language`; `hsm_id` names one template "
        "by its id (with its `name`, as Meta asks).",
    )
    async def delete_template(
        version: str = Path(pattern=VERSION),
        waba_id: str = Path(),
        name: str = Query(..., max_length=NAME_MAX, pattern=NAME),
        language: str | None = Query(None, pattern=LANGUAGE),
        hsm_id: str | None = Query(None, pattern=UUID, description="The template's id"),
    ) -> Any:
        own(waba_id)
        if hsm_id is not None:
            found = next((t for t in await gateway.refresh_templates() if t["template_id"] == hsm_id), None)
            if found is None or found["name"] != name:
                raise GraphError(CloudApiError(100, f"Unsupported request: no template {name!r} has the id {hsm_id}"))
            language = found["language"]
        params = {"language": language} if language else None
        await _relay(gateway, RelayRequest("DELETE", paths.build(paths.TEMPLATE, name=name), params=params))
        gateway.forget_templates()
        return {"success": True}

    # Meta's ``POST /{template_id}``. The path is the one ``GET /{object_id}`` has (Graph names every object by its
    # id alone), so it is declared with that placeholder: one path, all its methods, in the OpenAPI document.
    @api.post(
        "/{version}/{object_id}",
        summary="Edit a template (by its id)",
        description="The id is a template's (Meta's `POST /{template_id}`). `components` replaces them all; "
        "`category` changes it (not an approved template's). The template goes back to review; its next approval "
        "is a new version.",
        responses={404: {"description": "No template of this business has the id (code 100)"}},
    )
    async def edit_template(
        edit: TemplateEdit,
        version: str = Path(pattern=VERSION),
        object_id: str = Path(pattern=UUID, description="The template's id"),
    ) -> Any:
        body = edit.model_dump(exclude_none=True)
        path = paths.build(paths.TEMPLATE_EDIT, template_id=object_id)
        await _relay(gateway, RelayRequest("POST", path, body))
        gateway.forget_templates()
        return {"success": True}
