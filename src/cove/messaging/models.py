"""Request and response bodies of the messaging API."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from cove.messaging.envelope import QUEUE_ID_MAX, EnvelopeKind
from cove.protocol import forwarding

# More than one batch frame or backlog page carries (cove.messaging.routes), so one ack can answer either.
MAX_ACK_IDS = 1000

QueueId = Annotated[int, Field(strict=True, ge=1, le=QUEUE_ID_MAX)]
RequestId = Annotated[str, Field(max_length=64)] | Annotated[int, Field(strict=True, ge=0, le=QUEUE_ID_MAX)]


class OutgoingCiphertext(BaseModel):
    device_id: int = Field(ge=1)
    registration_id: int = Field(ge=1, description="The registration id the sender's session was made for")
    # A client sends ciphertexts only: delivery receipts (kind 5) are the relay's own.
    kind: Literal[EnvelopeKind.OLM_PREKEY, EnvelopeKind.OLM_MESSAGE] = Field(
        description="0: Olm pre-key message, 1: Olm message"
    )
    # Stated for the OpenAPI document; the relay decodes it itself and answers `malformed_base64`.
    body: str = Field(
        description="Base64 ciphertext for this one device, padded",
        json_schema_extra={"pattern": r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"},
    )


class BusinessHeader(BaseModel):
    """The visible header of a business's message: what the send rules need, and nothing of the content."""

    kind: Literal["text", "template"] = Field(description="`text`: a free-form message; `template`: an approved one")
    template_id: str | None = Field(None, max_length=36, description="Templates only: the approved template's id")
    template_version: int | None = Field(None, ge=1, description="Templates only: the approved version rendered")
    language: str | None = Field(None, max_length=16, description="Templates only: its language")
    category: Literal["MARKETING", "UTILITY", "AUTHENTICATION"] | None = Field(
        None, description="Templates only: its category, as approved"
    )

    @model_validator(mode="after")
    def _consistent(self) -> BusinessHeader:
        template_fields = (self.template_id, self.template_version, self.language, self.category)
        if self.kind == "template" and any(f is None for f in template_fields):
            raise ValueError("a template header names template_id, template_version, language and category")
        if self.kind == "text" and any(f is not None for f in template_fields):
            raise ValueError("a text header names no template")
        return self


FREE_FORM = BusinessHeader(kind="text")


class ForwardHeader(BaseModel):
    """The visible header of a forwarded message (cove.protocol.forwarding): a count and the forward action's id,
    never content. The relay limits the chats one action reaches and passes the count on to the recipients."""

    count: int = Field(
        ge=1,
        le=forwarding.MAX_COUNT,
        description="Times the message has been forwarded, this forward included (recipients see it)",
    )
    batch: str = Field(
        pattern=forwarding.BATCH_PATTERN,
        description="Chosen at random by the sender's client for one forward action, the same on every chat it "
        "reaches; never passed on",
    )

    @field_validator("count", mode="before")
    @classmethod
    def _a_number(cls, value: object) -> object:
        # JSON's integers, 3.0 among them (JSON Schema's "integer"), but not true or "3".
        if isinstance(value, bool | str):
            raise ValueError("a forward count is a number")
        return value


class SendRequest(BaseModel):
    client_message_id: str = Field(
        min_length=1, max_length=64, description="Chosen by the sender; a repeat is accepted once"
    )
    messages: list[OutgoingCiphertext] = Field(min_length=1, description="One ciphertext per recipient device")
    business: BusinessHeader | None = Field(
        None,
        description="Visible header of a business account's message (a business's send without one is free-form "
        "text); the business rules read it, the parameter values stay inside the ciphertext",
    )
    receipt: bool = Field(
        False,
        description="A read receipt, not a message: the user's client says so, and then it does not open a "
        "business's 24-hour service window (only the user's own message does)",
    )
    forward: ForwardHeader | None = Field(
        None,
        description="A forwarded message: at most 5 chats per forward action, 1 for a message forwarded 5 times "
        "or more (429 `forward_limit`). Not on a receipt or a message to one's own devices",
    )


class SendResult(BaseModel):
    duplicate: bool = Field(description="True when this client_message_id was already accepted")
    queued: int = Field(description="Envelopes queued now (0 for a duplicate)")
    held: int = Field(
        0,
        description="Envelopes held instead, delivered or dropped later (a business template's pacing: the "
        "business hears which from its events feed)",
    )
    server_ts: int


class AckFrame(BaseModel):
    """WebSocket ``{"type": "ack", "ids": [...]}``: validated whole before it joins a shared commit."""

    type: Literal["ack"]
    ids: list[QueueId] = Field(max_length=MAX_ACK_IDS)


class SendFrame(SendRequest):
    """WebSocket ``{"type": "send", "request_id", "to", ...}``: the HTTP send's body, its recipient and an id."""

    type: Literal["send"]
    request_id: RequestId | None = None
    to: str = Field(min_length=1, max_length=36, description="The recipient's account id")
