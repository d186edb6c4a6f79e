"""The answers of the Cloud API endpoints the gateway serves, as strict pydantic models written from Meta's pages:

- [S] send: https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/send-messages and the
  business-scoped user id page (``contacts[].input``, ``wa_id`` only for a number, ``user_id`` for an id):
  https://developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids
- [M] media upload, URL, delete:
  https://developers.facebook.com/documentation/business-messaging/whatsapp/business-phone-numbers/media/
- [L] templates list and one template:
  https://developers.facebook.com/documentation/business-messaging/whatsapp/templates/overview and
  https://developers.facebook.com/docs/graph-api/reference/whats-app-business-account/message_templates/
- [K] block users: https://developers.facebook.com/documentation/business-messaging/whatsapp/block-users
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .webhooks import BSUID, DIGITS, ParentUserId, PhoneId, UserId


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SendContact(Strict):
    input: str
    wa_id: PhoneId | None = None
    user_id: UserId | ParentUserId | None = None

    @model_validator(mode="after")
    def _ids(self) -> SendContact:
        if self.wa_id is None and self.user_id is None:
            raise ValueError("contacts[] names the user: wa_id (sent to a number) or user_id (sent to an id)")
        # [S] leaves wa_id out of an answer to a send by id; the gateway may give the number the business already
        # knows (as Meta's webhooks do within 30 days), which breaks no client, so only the id is checked.
        if re.match(BSUID, self.input) and self.user_id != self.input:
            raise ValueError("[S] sent to a business-scoped id: user_id is that id")
        return self


class SentMessage(Strict):
    id: Annotated[str, Field(pattern=r"^wamid\.")]
    message_status: Literal["accepted", "held_for_quality_assessment", "paused"] | None = None


class SendResponse(Strict):
    """[S] the 200 answer to a send."""

    messaging_product: Literal["whatsapp"]
    contacts: list[SendContact] = Field(min_length=1, max_length=1)
    messages: list[SentMessage] = Field(min_length=1, max_length=1)


class Success(Strict):
    """[S] mark as read, [M] delete media."""

    success: Literal[True]


class MediaUploaded(Strict):
    """[M] ``POST /{phone_number_id}/media``."""

    id: str


class MediaInfo(Strict):
    """[M] ``GET /{media_id}``: ``file_size`` is a number in bytes (some examples print it as a string)."""

    messaging_product: Literal["whatsapp"]
    url: str
    mime_type: str
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    file_size: int | Annotated[str, Field(pattern=DIGITS)]
    id: str


class Cursors(Strict):
    before: str | None = None
    after: str | None = None


class Paging(Strict):
    cursors: Cursors
    next: str | None = None
    previous: str | None = None


class TemplateComponent(BaseModel):
    """[L] a component as listed: ``HEADER``/``BODY``/``FOOTER``/``BUTTONS``, upper case (its fields vary by type,
    so only the type is fixed here)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    type: Literal["HEADER", "BODY", "FOOTER", "BUTTONS"]


class Template(Strict):
    """[L] one template, as the list and ``GET /{template_id}`` return it."""

    id: str
    name: str
    language: str
    status: Literal[
        "APPROVED",
        "IN_APPEAL",
        "PENDING",
        "REJECTED",
        "PENDING_DELETION",
        "DELETED",
        "DISABLED",
        "PAUSED",
        "LIMIT_EXCEEDED",
        "ARCHIVED",
    ]
    category: Literal["MARKETING", "UTILITY", "AUTHENTICATION"]
    components: list[TemplateComponent]
    parameter_format: Literal["POSITIONAL", "NAMED"] | None = None
    sub_category: str | None = None
    previous_category: str | None = None
    rejected_reason: str | None = None
    quality_score: dict[str, Any] | None = None
    correct_category: str | None = None
    message_send_ttl_seconds: int | None = None


class TemplateList(Strict):
    """[L] ``GET /{waba_id}/message_templates``."""

    data: list[Template]
    paging: Paging | None = None  # Meta leaves it out when there is nothing to page


class BlockedEntry(Strict):
    input: str
    wa_id: PhoneId | None = None
    user_id: UserId | None = None
    errors: list[dict[str, Any]] | None = None


class BlockResult(Strict):
    added_users: list[BlockedEntry] | None = None
    removed_users: list[BlockedEntry] | None = None
    failed_users: list[BlockedEntry] | None = None


class BlockResponse(Strict):
    """[K] ``POST`` (``added_users``) and ``DELETE`` (``removed_users``) ``/{phone_number_id}/block_users``."""

    messaging_product: Literal["whatsapp"]
    block_users: BlockResult


class BlockedUser(Strict):
    messaging_product: Literal["whatsapp"]
    wa_id: PhoneId | None = None
    user_id: UserId | None = None
    # Not Meta's: the gateway adds it because pywa 4.5.0 reads ``input`` from every listed user (docs/business.md).
    input: str | None = None

    @model_validator(mode="after")
    def _named(self) -> BlockedUser:
        if self.wa_id is None and self.user_id is None:
            raise ValueError("a blocked user is named by wa_id or user_id")
        return self


class BlockedList(Strict):
    """[K] ``GET /{phone_number_id}/block_users``."""

    data: list[BlockedUser]
    paging: Paging | None = None


class GraphErrorBody(Strict):
    message: str
    type: str
    code: int
    error_subcode: int | None = None
    error_user_title: str | None = None  # Graph API's user-facing title and message, when Meta has them
    error_user_msg: str | None = None
    is_transient: bool | None = None
    error_data: dict[str, Any] | None = None
    fbtrace_id: str


class GraphError(Strict):
    """Every error answer: ``{"error": {message, type, code, error_data, fbtrace_id}}`` and, where Meta has
    them, ``error_subcode``, ``error_user_title``, ``error_user_msg``, ``is_transient``
    (https://developers.facebook.com/docs/graph-api/guides/error-handling/)."""

    error: GraphErrorBody
