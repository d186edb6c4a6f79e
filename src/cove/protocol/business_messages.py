"""What a business's gateway puts inside the end-to-end ciphertext of its text and interactive messages, and
what a user's client answers when the user taps a choice: the formats both sides share (the gateway's Cloud API
shapes around them are cove.business.gateway.cloud's). The limits are Meta's, as that module says.

Plaintexts (JSON inside the ciphertext; templates have theirs in :mod:`cove.protocol.templates.message`):

- text: ``{"v":1,"type":"text","id","text","ts","context_id"?}``, the payload a normal Cove client already reads
  (:mod:`cove.client.core`), so a business's text shows as a text; ``context_id`` (the message replied to) is a
  key such a client ignores;
- interactive: ``{"v":1,"type":"interactive","id","ts","interactive":{...},"context_id"?}``, ``interactive``
  being the validated Cloud API object;
- a user's choice: ``{"v":1,"type":"interactive_reply","id","ts","context_id","reply":{"type":"button_reply"|
  "list_reply","id","title","description"?}}``.

``ts`` is in milliseconds, as in the client's payloads.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, model_validator
from pydantic_core import PydanticCustomError

from cove.protocol.payload import PAYLOAD_VERSION
from cove.protocol.templates.signing import canonical_json

TEXT_MAX = 4_096
INTERACTIVE_HEADER_MAX = 60
BUTTON_BODY_MAX = 1_024
LIST_BODY_MAX = 4_096
INTERACTIVE_FOOTER_MAX = 60
REPLY_BUTTONS_MAX = 3
REPLY_ID_MAX = 256
REPLY_TITLE_MAX = 20
LIST_BUTTON_MAX = 20
SECTIONS_MAX = 10
ROWS_MAX = 10  # all sections together
ROW_ID_MAX = 200
ROW_TITLE_MAX = 24
ROW_DESCRIPTION_MAX = 72
SECTION_TITLE_MAX = 24
CTA_DISPLAY_TEXT_MAX = 20
CTA_URL_MAX = 2_000  # Cove's: Meta states none; what browsers take
CTA_URL = re.compile(r"^https?://[^\s/?#]+\S*$", re.IGNORECASE)

#: The media types. Media messages travel as attachments (cove.business.gateway.media); a media header in an
#: interactive or template message is not carried yet.
MEDIA_TYPES = frozenset({"image", "video", "audio", "document", "sticker"})


class Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def shape_error(at: str, message: str) -> PydanticCustomError:
    """A cross-field problem, with the path below the model that found it (``buttons.1.reply.id``)."""
    return PydanticCustomError("shape", "{at}: {message}", {"at": at, "message": message})


def text_only(value: object) -> object:
    """A media header or parameter (of an interactive or template message) is valid Cloud API, just not carried
    yet: say so (131051), not "invalid"."""
    if isinstance(value, str) and value in MEDIA_TYPES:
        raise PydanticCustomError(
            "unsupported", "{kind}: media is not supported by this gateway yet", {"kind": repr(value)}
        )
    return value


TextOnly = Annotated[Literal["text"], BeforeValidator(text_only)]


def bounded_text(max_length: int) -> Any:
    return Field(min_length=1, max_length=max_length)


def first_repeat(values: list[str]) -> int | None:
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value in seen:
            return i
        seen.add(value)
    return None


# interactive


class InteractiveHeader(Shape):
    type: TextOnly
    text: str = bounded_text(INTERACTIVE_HEADER_MAX)


class ButtonBody(Shape):
    text: str = bounded_text(BUTTON_BODY_MAX)


class ListBody(Shape):
    text: str = bounded_text(LIST_BODY_MAX)


class Footer(Shape):
    text: str = bounded_text(INTERACTIVE_FOOTER_MAX)


class Reply(Shape):
    id: str = bounded_text(REPLY_ID_MAX)
    title: str = bounded_text(REPLY_TITLE_MAX)


class ReplyButton(Shape):
    type: Literal["reply"]
    reply: Reply


class ButtonAction(Shape):
    buttons: list[ReplyButton] = Field(min_length=1, max_length=REPLY_BUTTONS_MAX)

    @model_validator(mode="after")
    def _unique(self) -> ButtonAction:
        """The reply names the button by id, and the user tells buttons apart by title: both must be unique."""
        for field in ("id", "title"):
            values = [getattr(b.reply, field) for b in self.buttons]
            repeat = first_repeat(values)
            if repeat is not None:
                raise shape_error(f"buttons.{repeat}.reply.{field}", f"{values[repeat]!r} is used twice")
        return self


class ButtonMessage(Shape):
    type: Literal["button"]
    header: InteractiveHeader | None = None
    body: ButtonBody
    footer: Footer | None = None
    action: ButtonAction


class Row(Shape):
    id: str = bounded_text(ROW_ID_MAX)
    title: str = bounded_text(ROW_TITLE_MAX)
    description: str | None = Field(None, min_length=1, max_length=ROW_DESCRIPTION_MAX)


class Section(Shape):
    title: str | None = Field(None, min_length=1, max_length=SECTION_TITLE_MAX)
    rows: list[Row] = Field(min_length=1, max_length=ROWS_MAX)


class ListAction(Shape):
    button: str = bounded_text(LIST_BUTTON_MAX)
    sections: list[Section] = Field(min_length=1, max_length=SECTIONS_MAX)

    @model_validator(mode="after")
    def _rows(self) -> ListAction:
        total = sum(len(s.rows) for s in self.sections)
        if total > ROWS_MAX:
            raise shape_error("sections", f"{total} rows in all sections together, at most {ROWS_MAX}")
        if len(self.sections) > 1:
            for i, section in enumerate(self.sections):
                if section.title is None:
                    raise shape_error(f"sections.{i}.title", "required when there is more than one section")
        ids = [(i, j, row.id) for i, s in enumerate(self.sections) for j, row in enumerate(s.rows)]
        repeat = first_repeat([row_id for _, _, row_id in ids])
        if repeat is not None:
            i, j, row_id = ids[repeat]
            raise shape_error(f"sections.{i}.rows.{j}.id", f"{row_id!r} is used twice")
        return self


class ListMessage(Shape):
    type: Literal["list"]
    header: InteractiveHeader | None = None
    body: ListBody
    footer: Footer | None = None
    action: ListAction


class CtaUrlParameters(Shape):
    display_text: str = bounded_text(CTA_DISPLAY_TEXT_MAX)
    url: str = Field(min_length=1, max_length=CTA_URL_MAX)

    @model_validator(mode="after")
    def _web(self) -> CtaUrlParameters:
        """Only a web link: a button must not open ``javascript:``, a file or an app's intent on the phone."""
        if CTA_URL.match(self.url) is None:
            raise shape_error("url", "must be an http or https URL")
        return self


class CtaUrlAction(Shape):
    name: Literal["cta_url"]
    parameters: CtaUrlParameters


class CtaUrlMessage(Shape):
    """A button that opens a web page (Meta's interactive CTA URL messages); tapping it sends nothing back."""

    type: Literal["cta_url"]
    header: InteractiveHeader | None = None
    body: ButtonBody | None = None
    footer: Footer | None = None
    action: CtaUrlAction


class SendLocationAction(Shape):
    name: Literal["send_location"]


class LocationRequestMessage(Shape):
    """Asks the user for their location; the answer is a location message replying to it."""

    type: Literal["location_request_message"]
    body: ButtonBody
    action: SendLocationAction


class RequestContactInfoAction(Shape):
    name: Literal["request_contact_info"]


class RequestContactInfoMessage(Shape):
    """The business asks for the user's phone number (Meta's request-phone-number flow: the app shows a fixed
    "share" button; the user's answer goes through the relay, cove.business.identity_service, never in the chat)."""

    type: Literal["request_contact_info"]
    body: ButtonBody
    action: RequestContactInfoAction


AnyInteractive = ButtonMessage | ListMessage | CtaUrlMessage | LocationRequestMessage | RequestContactInfoMessage
Interactive = Annotated[AnyInteractive, Field(discriminator="type")]
INTERACTIVE_TYPES = ("button", "list", "cta_url", "location_request_message", "request_contact_info")


class BusinessText(Shape):
    v: Literal[1]
    type: Literal["text"]
    id: str = Field(min_length=1)
    text: str = bounded_text(TEXT_MAX)
    ts: int = Field(ge=0)
    context_id: str | None = Field(None, min_length=1)


class BusinessInteractive(Shape):
    v: Literal[1]
    type: Literal["interactive"]
    id: str = Field(min_length=1)
    ts: int = Field(ge=0)
    interactive: Interactive
    context_id: str | None = Field(None, min_length=1)


_BUSINESS_MESSAGE: TypeAdapter[BusinessText | BusinessInteractive] = TypeAdapter(
    Annotated[BusinessText | BusinessInteractive, Field(discriminator="type")]
)


def parse_business_plaintext(plaintext: bytes) -> BusinessText | BusinessInteractive:
    """The user's client's side: a business's message, with every limit checked again (the user's client does
    not trust the business's gateway). Raises pydantic's ``ValidationError`` (a ``ValueError``)."""
    return _BUSINESS_MESSAGE.validate_json(plaintext)


class ReplyChoice(Shape):
    """What the user chose: a button (id ≤256, title ≤20) or a list row (id ≤200, title ≤24, description)."""

    type: Literal["button_reply", "list_reply"]
    id: str = bounded_text(REPLY_ID_MAX)
    title: str = bounded_text(ROW_TITLE_MAX)
    description: str | None = Field(None, min_length=1, max_length=ROW_DESCRIPTION_MAX)

    @model_validator(mode="after")
    def _limits(self) -> ReplyChoice:
        if self.type == "button_reply":
            if len(self.title) > REPLY_TITLE_MAX:
                raise shape_error("title", f"at most {REPLY_TITLE_MAX} characters for a button")
            if self.description is not None:
                raise shape_error("description", "a button has no description")
        elif len(self.id) > ROW_ID_MAX:
            raise shape_error("id", f"at most {ROW_ID_MAX} characters for a list row")
        return self


class InteractiveReply(Shape):
    v: Literal[1]
    type: Literal["interactive_reply"]
    id: str = Field(min_length=1)
    ts: int = Field(ge=0)
    context_id: str = Field(min_length=1)
    reply: ReplyChoice


def offered_choices(interactive: AnyInteractive) -> list[ReplyChoice]:
    """Every choice the message offers, as the reply naming it must read (none for a CTA URL or a request)."""
    if isinstance(interactive, ButtonMessage):
        buttons = interactive.action.buttons
        return [ReplyChoice(type="button_reply", id=b.reply.id, title=b.reply.title) for b in buttons]
    if isinstance(interactive, ListMessage):
        return [
            ReplyChoice(type="list_reply", id=row.id, title=row.title, description=row.description)
            for section in interactive.action.sections
            for row in section.rows
        ]
    return []


def _choice(interactive: AnyInteractive, choice_id: str) -> ReplyChoice:
    for choice in offered_choices(interactive):
        if choice.id == choice_id:
            return choice
    raise ValueError(f"{choice_id!r} is not one of the message's choices")


def compose_interactive_reply(replying_to: BusinessInteractive, choice_id: str, message_id: str, ts_ms: int) -> bytes:
    """The user's client's side: the plaintext of tapping ``choice_id`` in ``replying_to``. Title and description
    are copied from the message, so a reply only ever names a choice the business offered; raises ``ValueError``
    for an id it did not offer."""
    reply = InteractiveReply(
        v=PAYLOAD_VERSION,
        type="interactive_reply",
        id=message_id,
        ts=ts_ms,
        context_id=replying_to.id,
        reply=_choice(replying_to.interactive, choice_id),
    )
    return canonical_json(reply.model_dump(mode="json", exclude_none=True))


def parse_interactive_reply(plaintext: bytes) -> InteractiveReply:
    """The gateway's side: a user's choice. Raises pydantic's ``ValidationError`` (a ``ValueError``). Whether the
    choice was offered in ``context_id`` is for the caller, who knows what it sent."""
    return InteractiveReply.model_validate_json(plaintext)
