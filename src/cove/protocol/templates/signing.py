"""Signing: the server signs the text it approved; the user's client renders only what verifies.

The relay never sees what a business writes, template or not, so it cannot check the wording of a template
message. Instead the server signs an approved template's text (:func:`approved_payload`, :func:`sign_approved`)
and the user's client verifies that signature (:func:`verify_approved`) before it renders, so neither the
relay nor the business can change approved wording after review. The signed payload names the business that
owns the template, so one business cannot send another's approved text.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import Field

from cove.protocol.templates.components import IDENTIFIER, _Strict
from cove.protocol.templates.model import Problem, Template, TemplateError, _validated

APPROVED_TYPE = "cove.business.template.approved.v1"


class ApprovedTemplate(_Strict):
    """An approved text as signed: the template, its id and version, and the business allowed to send it.

    ``type`` keeps the server's signature over it from meaning anything else; ``business_id`` stops one business
    from sending another's approved text (a bank's, say) in its own chat.
    """

    type: Literal["cove.business.template.approved.v1"] = APPROVED_TYPE
    template_id: str = Field(pattern=IDENTIFIER)
    business_id: str = Field(pattern=IDENTIFIER)
    version: int = Field(ge=1)
    template: Template


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8, no NaN: one byte string for one value, so signatures are reproducible."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def approved_payload(template: Template, template_id: str, version: int, *, business_id: str) -> bytes:
    """The bytes the server signs when it approves ``version`` of a template."""
    approved = ApprovedTemplate(template_id=template_id, business_id=business_id, version=version, template=template)
    return canonical_json(approved.model_dump(mode="json", exclude_none=True))


def sign_approved(private_key: Ed25519PrivateKey, payload: bytes) -> str:
    """The server's Ed25519 signature over an :func:`approved_payload`, base64."""
    return base64.b64encode(private_key.sign(payload)).decode()


def verify_approved(public_key: Ed25519PublicKey, payload: bytes, signature: str) -> ApprovedTemplate:
    """The approved template in ``payload`` if the server signed exactly these bytes; else :class:`TemplateError`."""
    try:
        public_key.verify(base64.b64decode(signature, validate=True), payload)
    except (InvalidSignature, ValueError):
        raise TemplateError([Problem("(signature)", "bad_signature", "not signed by the server's key")]) from None
    return _validated(ApprovedTemplate, payload)
