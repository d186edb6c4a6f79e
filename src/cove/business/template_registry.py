"""A business's own templates on the relay: create, edit, list and delete (review is the operator's, in
:mod:`cove.business.service`).

The rules are Meta's template-management page ([M]
https://developers.facebook.com/documentation/business-messaging/whatsapp/templates/template-management):

- a business has at most 250 template names (each in any number of languages);
- a name is unique per language: creating one whose name and language exist is refused (409 ``template_exists``,
  which the gateway answers as Meta does, code 100 subcode 2388024), never a silent overwrite;
- an edit names the template by id and replaces its components (and may change the category, but not an
  approved template's); it goes back to review, as a new version once approved;
- a disabled template cannot be edited (the review machine refuses its move back to PENDING).

Every view carries what Meta's ``GET /{waba_id}/message_templates`` returns: ``components`` as they were
created (with their ``example``), ``parameter_format``, the category, the status and the template's quality.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, distinct, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from cove.business import standing
from cove.business.storage import business_by_id, business_templates
from cove.clock import now_ms
from cove.errors import ApiError
from cove.protocol.templates import (
    TEMPLATE_NAMES_MAX,
    Finding,
    IllegalTransition,
    ReviewState,
    ReviewStatus,
    Submit,
    Template,
    TemplateError,
    blocks_approval,
    canonical_json,
    lint,
    parse_template,
    transition,
)

#: What an edit may change (Meta: category, components, time-to-live; Cove has no TTL yet).
EDITABLE = frozenset({"components", "category", "parameter_format"})


def problems(found: Iterable[Any]) -> list[dict[str, str]]:
    return [{"path": p.path, "code": p.code, "message": p.message} for p in found]


def template_view(row: Any) -> dict[str, Any]:
    body = json.loads(row.body)
    return {
        "template_id": row.template_id,
        "name": row.name,
        "language": row.language,
        "category": row.category,
        "status": standing.effective_status(row, now_ms()).value,  # a quality pause ends by itself
        "reason": row.rejected_reason,
        "version": row.version,
        "warnings": json.loads(row.findings),
        "parameter_format": row.parameter_format,
        "components": body["components"],
        "quality": row.quality.upper(),
        "updated_at_ms": row.updated_at_ms,
    }


def review_state(row: Any) -> ReviewState:
    return ReviewState(status=ReviewStatus(row.status), reason=row.rejected_reason)


def move(state: ReviewState, event: Any) -> ReviewState:
    try:
        return transition(state, event)
    except IllegalTransition as exc:
        raise ApiError(409, "illegal_transition", str(exc), template_status=exc.status.value) from exc


def _checked(body: dict[str, Any]) -> tuple[Template, list[Finding]]:
    """The parsed template and its lint findings; a parse problem or a blocking finding is a 400."""
    try:
        template = parse_template(body)
    except TemplateError as exc:
        raise ApiError(400, "invalid_template", str(exc), problems=problems(exc.problems)) from exc
    findings = lint(template)
    if blocks_approval(findings):
        raise ApiError(
            400,
            "template_lint_errors",
            "; ".join(f"{f.path}: {f.message} [{f.code}]" for f in findings if f.severity == "error"),
            findings=[f.to_dict() for f in findings],
        )
    return template, findings


def _pending(template: Template, findings: list[Finding], now: int) -> dict[str, Any]:
    """The columns of a template going (back) to review."""
    return {
        "category": template.category.value,
        "body": canonical_json(template.model_dump(mode="json", exclude_none=True)).decode(),
        "parameter_format": template.parameter_format.value,
        "status": ReviewStatus.PENDING.value,
        "rejected_reason": None,
        "findings": json.dumps([f.to_dict() for f in findings]),
        "signature": None,
        "updated_at_ms": now,
    }


def _exists(name: str, language: str) -> ApiError:
    return ApiError(
        409,
        "template_exists",
        f"there is already {language} content for the template {name!r}; edit it by its id, or create a new template",
        name=name,
        language=language,
    )


async def submit_template(engine: AsyncEngine, business_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Parse and lint a Cloud API creation body and store it PENDING; the view of the new template."""
    template, findings = _checked(body)
    t = business_templates
    now = now_ms()
    async with engine.begin() as conn:
        if await business_by_id(conn, business_id) is None:
            raise ApiError(403, "not_a_business", "create the business profile first (PUT /v1/business/profile)")
        where = (t.c.business_id == business_id, t.c.name == template.name, t.c.language == template.language)
        if (await conn.execute(select(t.c.template_id).where(*where))).first() is not None:
            raise _exists(template.name, template.language)
        names = select(func.count(distinct(t.c.name))).where(t.c.business_id == business_id, t.c.name != template.name)
        if (await conn.execute(names)).scalar_one() >= TEMPLATE_NAMES_MAX:
            raise ApiError(409, "template_limit", f"a business has at most {TEMPLATE_NAMES_MAX} template names")
        template_id = str(uuid.uuid4())
        row = {"template_id": template_id, "business_id": business_id, "name": template.name}
        try:
            await conn.execute(
                insert(t).values(
                    **row, language=template.language, version=0, created_at_ms=now, **_pending(template, findings, now)
                )
            )
        except IntegrityError:  # a concurrent create of the same name and language won the unique constraint
            raise _exists(template.name, template.language) from None
        return template_view((await conn.execute(select(t).where(t.c.template_id == template_id))).one())


async def edit_template(
    engine: AsyncEngine, business_id: str, template_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    """Meta's ``POST /{template_id}``: replace the components (and the category, unless approved); back to review."""
    unknown = sorted(set(body) - EDITABLE)
    if unknown or not body:
        raise ApiError(400, "invalid_template", f"an edit changes only {', '.join(sorted(EDITABLE))}; got {unknown}")
    t = business_templates
    async with engine.begin() as conn:
        row = (
            await conn.execute(select(t).where(t.c.template_id == template_id, t.c.business_id == business_id))
        ).first()
        if row is None:
            raise ApiError(404, "unknown_template", f"no template of yours has the id {template_id}")
        current = json.loads(row.body)
        status = ReviewStatus(row.status)
        if "category" in body and status is ReviewStatus.APPROVED and str(body["category"]).lower() != row.category:
            raise ApiError(400, "category_locked", "the category of an approved template cannot be edited")
        template, findings = _checked({**current, **body, "name": row.name, "language": row.language})
        if status is not ReviewStatus.PENDING:  # an edit of a pending template needs no move
            move(review_state(row), Submit())
        changed = await conn.execute(
            update(t)
            .where(t.c.template_id == template_id, t.c.status == row.status, t.c.version == row.version)
            .values(**_pending(template, findings, now_ms()))
        )
        if changed.rowcount != 1:
            raise ApiError(409, "concurrent_change", "the template changed meanwhile; look again")
        return template_view((await conn.execute(select(t).where(t.c.template_id == template_id))).one())


async def own_templates(engine: AsyncEngine, business_id: str) -> list[dict[str, Any]]:
    t = business_templates
    async with engine.connect() as conn:
        rows = (
            await conn.execute(select(t).where(t.c.business_id == business_id).order_by(t.c.name, t.c.language))
        ).all()
    return [template_view(r) for r in rows]


async def delete_templates(engine: AsyncEngine, business_id: str, name: str, language: str | None) -> int:
    t = business_templates
    where = [t.c.business_id == business_id, t.c.name == name]
    if language is not None:
        where.append(t.c.language == language)
    async with engine.begin() as conn:
        deleted = (await conn.execute(delete(t).where(*where))).rowcount
    if not deleted:
        raise ApiError(404, "unknown_template", f"no template {name!r}" + (f" in {language}" if language else ""))
    return deleted
