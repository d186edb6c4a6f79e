"""The Cloud API send endpoint, ``POST /{version}/{phone_number_id}/messages``, as pure shapes.

A business switches to Cove by changing its Cloud API client library's base URL, so :func:`parse_send` accepts
the bodies those libraries send and answers like Meta: ``(#100) Invalid parameter`` with details naming the
field, or ``131051`` for a message type Cove does not carry yet (interactive types other than reply buttons,
lists, CTA URL buttons and location requests). Unknown fields are refused (100) rather than dropped, so
a misspelt optional field is not silently lost. The limits are Meta's (the Cloud API's send-messages
and interactive-messages pages; list bodies per [M] mirror https://support.chatarchitect.com/books/meta-whatsapp/page/interactive-list-messages-developer-documentation;
``biz_opaque_callback_data`` per Meta's send reference as restated in
https://secreto31126.github.io/whatsapp-api-js/5.0.0/types/types.ClientMessageRequest.html).

What the gateway puts inside the end-to-end ciphertext, and the interactive shapes it shares with the user's
client, are :mod:`cove.protocol.business_messages`.
"""

from __future__ import annotations

import base64
import re
import secrets
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from cove.business.errors import MESSAGING_PRODUCT, CloudApiError
from cove.business.gateway.media_rules import CaptionedMedia, DocumentMedia, MediaKind, MediaObject
from cove.business.keys import BSUID
from cove.protocol.business_content import (
    Contacts,
    Emoji,
    Location,
    contacts_plaintext,
    location_plaintext,
    reaction_plaintext,
)
from cove.protocol.business_messages import (
    INTERACTIVE_TYPES,
    TEXT_MAX,
    BusinessInteractive,
    BusinessText,
    Interactive,
    Shape,
    TextOnly,
    bounded_text,
    first_repeat,
    shape_error,
)
from cove.protocol.payload import PAYLOAD_VERSION
from cove.protocol.templates import BUTTONS_MAX, LANGUAGE, NAME_MAX, Parameters
from cove.protocol.templates import NAME as TEMPLATE_NAME
from cove.protocol.templates.rendering import QUICK_REPLY_PAYLOAD_MAX
from cove.protocol.templates.signing import canonical_json

CALLBACK_DATA_MAX = 512
MESSAGE_ID_BYTES = 24

NAMED_KEY = r"^[a-z_][a-z0-9_]*$"  # a named template variable, as in cove.protocol.templates.components
PHONE = r"^\+?[0-9]{1,15}$"  # E.164's at most 15 digits, with or without the +, as the Cloud API takes ``to``
MESSAGE_ID = r"^wamid\.[A-Za-z0-9+/=_-]{1,128}$"  # ``wamid.`` and base64: the gateway's ids and Meta's


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _syntax(pattern: str, what: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if compiled.match(value) is None:
            raise PydanticCustomError("syntax", "must be {what}", {"what": what})
        return value

    return AfterValidator(check)


#: Whom to send to: a phone number, or the user id (``user_id``, Meta's BSUID) the gateway gave the business.
RecipientId = Annotated[
    str, _syntax(f"{PHONE}|{BSUID}", "a phone number (digits, with or without +) or a user_id (BSUID)")
]
UserId = Annotated[str, _syntax(BSUID, "a user_id (BSUID, as the webhooks give it)")]
MessageId = Annotated[str, _syntax(MESSAGE_ID, "a message id (wamid. and base64)")]


# The common part of every send.


class Context(Shape):
    """A reply: the message replied to."""

    message_id: MessageId


class _Send(Shape):
    messaging_product: Literal["whatsapp"]
    recipient_type: Literal["individual"] = "individual"
    to: RecipientId
    recipient: UserId | None = None  # Meta's field for a user known only by their BSUID; read as ``to``
    context: Context | None = None
    biz_opaque_callback_data: str | None = Field(None, max_length=CALLBACK_DATA_MAX)

    @model_validator(mode="before")
    @classmethod
    def _recipient_is_to(cls, data: Any) -> Any:
        """A BSUID may come in ``recipient`` (client libraries put it there) instead of ``to``; either names the
        user, so ``to`` holds it from here on and every check below applies to it. Given both, ``to`` wins, as at
        Meta (https://developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids/);
        ``recipient`` must still be an id in Meta's syntax."""
        if isinstance(data, dict) and data.get("recipient") is not None and data.get("to") is None:
            return {**data, "to": data["recipient"]}
        return data

    @property
    def user(self) -> str:
        """Whom the send is for, as the business named them."""
        return self.to


# text


class TextBody(Shape):
    body: str = bounded_text(TEXT_MAX)
    preview_url: bool = False  # accepted; a Cove client decides about link previews itself


class SendText(_Send):
    type: Literal["text"] = "text"  # Meta's default when ``type`` is left out
    text: TextBody
    preview_url: bool | None = None  # where Meta's older examples put it; accepted as above


# template


class Language(Shape):
    code: str = Field(pattern=LANGUAGE)
    policy: Literal["deterministic"] | None = None


class TextParameter(Shape):
    type: TextOnly
    text: str
    parameter_name: str | None = Field(None, pattern=NAMED_KEY)


class PayloadParameter(Shape):
    """A quick-reply button's payload: what comes back in the ``button`` webhook when the user taps it."""

    type: Literal["payload"]
    payload: str = Field(min_length=1, max_length=QUICK_REPLY_PAYLOAD_MAX)


def _parameter_kind(value: object) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return "payload" if kind == "payload" else "text"  # anything else is checked (and refused) as a text value


Parameter = Annotated[
    Annotated[TextParameter, Tag("text")] | Annotated[PayloadParameter, Tag("payload")], Discriminator(_parameter_kind)
]


class TemplateComponent(Shape):
    """The values for one component: text values, a URL button's suffix, or a quick-reply button's payload.
    ``index`` is the button's position in the template; Meta's examples send it as a string (``"0"``)."""

    type: Annotated[Literal["header", "body", "button"], BeforeValidator(_lower)]
    sub_type: Annotated[Literal["url", "quick_reply"], BeforeValidator(_lower)] | None = None
    index: int | None = Field(None, ge=0, lt=BUTTONS_MAX)
    parameters: list[Parameter] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> TemplateComponent:
        payloads = [i for i, p in enumerate(self.parameters) if isinstance(p, PayloadParameter)]
        if payloads and not (self.type == "button" and self.sub_type == "quick_reply"):
            raise shape_error(f"parameters.{payloads[0]}.type", "a payload is only for a quick_reply button")
        names = [getattr(p, "parameter_name", None) for p in self.parameters]
        if any(n is None for n in names) and any(n is not None for n in names):
            raise shape_error("parameters", "either every parameter has a parameter_name or none has")
        repeat = first_repeat([n for n in names if n is not None])
        if repeat is not None:
            raise shape_error(f"parameters.{repeat}.parameter_name", f"{names[repeat]!r} is given twice")
        if self.type == "button":
            for field in ("sub_type", "index"):
                if getattr(self, field) is None:
                    raise shape_error(field, "required parameter is missing for a button component")
            if self.sub_type == "quick_reply":
                if len(self.parameters) != 1 or not payloads:
                    raise shape_error("parameters", "a quick_reply button takes exactly one parameter, its payload")
            elif len(self.parameters) != 1:
                raise shape_error("parameters", "a URL button takes exactly one parameter, the URL's suffix")
            elif names[0] is not None:
                raise shape_error("parameters.0.parameter_name", "a URL button's parameter has no name")
        elif self.sub_type is not None or self.index is not None:
            raise shape_error("sub_type" if self.sub_type is not None else "index", f"not for a {self.type}")
        return self


class TemplateSend(Shape):
    name: str = Field(min_length=1, max_length=NAME_MAX, pattern=TEMPLATE_NAME)
    language: Language
    components: list[TemplateComponent] = Field(default_factory=list)

    @model_validator(mode="after")
    def _once(self) -> TemplateSend:
        keys = [f"{c.type} {c.index}" if c.type == "button" else c.type for c in self.components]
        repeat = first_repeat(keys)
        if repeat is not None:
            raise shape_error(f"components.{repeat}", f"a second {keys[repeat]} component")
        return self


class SendTemplate(_Send):
    type: Literal["template"]
    template: TemplateSend


def _values(parameters: list[Parameter]) -> list[str] | dict[str, str]:
    texts = [p for p in parameters if isinstance(p, TextParameter)]  # a header's or body's: text only (checked)
    if texts and texts[0].parameter_name is not None:
        return {p.parameter_name: p.text for p in texts if p.parameter_name is not None}
    return [p.text for p in texts]


def _button_value(component: TemplateComponent) -> str:
    parameter = component.parameters[0]
    return parameter.payload if isinstance(parameter, PayloadParameter) else parameter.text


def template_parameters(send: SendTemplate) -> Parameters:
    """The values in Cove's form, to check with ``render`` and seal with ``split_template_message``: a header or
    body component's values by position (``{"1": ...}``) or by ``parameter_name``; a URL button's suffix and a
    quick reply's payload keyed by its ``index``. Whether they fit the template is ``render``'s question, not this
    one's."""
    components = send.template.components
    return Parameters.model_validate(
        {
            "header": next((_values(c.parameters) for c in components if c.type == "header"), {}),
            "body": next((_values(c.parameters) for c in components if c.type == "body"), {}),
            "buttons": {c.index: _button_value(c) for c in components if c.sub_type == "url"},
            "payloads": {c.index: _button_value(c) for c in components if c.sub_type == "quick_reply"},
        }
    )


class SendInteractive(_Send):
    type: Literal["interactive"]
    interactive: Interactive


# reaction, location, contacts: the content objects are shared with the user's client


class CloudReaction(Shape):
    message_id: MessageId  # the Cloud API id of the message reacted to, the user's or the business's
    emoji: Emoji  # "" takes the reaction back


class SendReaction(_Send):
    type: Literal["reaction"]
    reaction: CloudReaction


class SendLocation(_Send):
    type: Literal["location"]
    location: Location


class SendContacts(_Send):
    type: Literal["contacts"]
    contacts: Contacts


# media: a file uploaded (``id``) or fetched (``link``), sent as a Cove attachment (cove.business.gateway.media)


class SendImage(_Send):
    type: Literal["image"]
    image: CaptionedMedia


class SendVideo(_Send):
    type: Literal["video"]
    video: CaptionedMedia


class SendAudio(_Send):
    type: Literal["audio"]
    audio: MediaObject


class SendDocument(_Send):
    type: Literal["document"]
    document: DocumentMedia


class SendSticker(_Send):
    type: Literal["sticker"]
    sticker: MediaObject


MediaSend = SendImage | SendVideo | SendAudio | SendDocument | SendSticker


def media_of(send: MediaSend) -> tuple[MediaKind, MediaObject]:
    """The message type and its media object."""
    return send.type, getattr(send, send.type)


# mark as read


class TypingIndicator(Shape):
    type: Literal["text"]


class MarkRead(Shape):
    """Marks the user's message (and the ones before it) read; the typing indicator clears on reply or after 25 s."""

    messaging_product: Literal["whatsapp"]
    status: Literal["read"]
    message_id: MessageId
    typing_indicator: TypingIndicator | None = None


# parsing a request

#: The sends that are not templates: service messages, free-form inside the customer service window.
Free = SendText | SendInteractive | SendReaction | SendLocation | SendContacts
Send = SendText | SendTemplate | SendInteractive | SendReaction | SendLocation | SendContacts | MediaSend
_SENDS: dict[str, type[Send]] = {
    "text": SendText,
    "template": SendTemplate,
    "interactive": SendInteractive,
    "reaction": SendReaction,
    "location": SendLocation,
    "contacts": SendContacts,
    "image": SendImage,
    "video": SendVideo,
    "audio": SendAudio,
    "document": SendDocument,
    "sticker": SendSticker,
}
_M = TypeVar("_M", bound=BaseModel)


def _path(loc: tuple[int | str, ...]) -> str:
    """The JSON path of an error, without the tag pydantic inserts after ``interactive`` (its union's branch)."""
    parts = [str(part) for part in loc]
    if len(parts) > 1 and parts[0] == "interactive" and parts[1] in INTERACTIVE_TYPES:
        del parts[1]
    # A template parameter's branch (text or payload) follows its index: not part of the JSON path either.
    for i in range(len(parts) - 2, 0, -1):
        if parts[i - 1] == "parameters" and parts[i].isdigit() and parts[i + 1] in ("text", "payload"):
            del parts[i + 1]
    return ".".join(parts)


def _join(path: str, rest: str) -> str:
    return f"{path}.{rest}" if path else rest


def _describe(error: Any) -> str:
    path, kind = _path(error["loc"]), error["type"]
    if kind == "shape":
        return f"{_join(path, error['ctx']['at'])}: {error['ctx']['message']}"
    if kind == "missing":
        return f"{path}: required parameter is missing"
    if kind == "union_tag_not_found":
        return f"{_join(path, 'type')}: required parameter is missing"
    if kind == "extra_forbidden":
        return f"{path}: unknown parameter"
    return f"{path}: {error['msg']}"


def _refusal(exc: ValidationError) -> CloudApiError:
    """131051 if any part is a type Cove does not carry (what the business must change first), else 100 with
    every problem. Meta has 131008 for a missing parameter; Cove's catalogue does not, so that is 100 too."""
    errors = exc.errors()
    for error in errors:
        if error["type"] == "unsupported":
            return CloudApiError(131051, f"{_path(error['loc'])}: {error['msg']}.")
        if error["type"] == "union_tag_invalid":  # the only tagged union: ``interactive``
            tag = error["ctx"]["tag"]
            return CloudApiError(
                131051,
                f"{_join(_path(error['loc']), 'type')}: {tag!r} is not supported by this gateway yet; it sends"
                f" {', '.join(repr(t) for t in INTERACTIVE_TYPES)} interactive messages.",
            )
    return CloudApiError(100, "; ".join(_describe(error) for error in errors))


def _validated(model: type[_M], body: dict[str, Any]) -> _M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise _refusal(exc) from None


def _not_carried(kind: str) -> CloudApiError:
    return CloudApiError(131051, f"type: {kind!r} is not a Cloud API message type.")


def parse_send(body: object) -> Send | MarkRead:
    """The request as a typed send, or the :class:`CloudApiError` to answer with (100 or 131051).

    A body with ``status`` is a mark-as-read; otherwise ``type`` (default ``"text"``, as in the Cloud API)
    picks the shape.
    """
    if not isinstance(body, dict):
        raise CloudApiError(100, "The request body must be a JSON object.")
    if "status" in body:
        return _validated(MarkRead, body)
    kind = body.get("type", "text")
    if not isinstance(kind, str):
        raise CloudApiError(100, "type: must be a string")
    if kind not in _SENDS:
        raise _not_carried(kind)
    return _validated(_SENDS[kind], body)


# answers


def new_message_id() -> str:
    """A fresh id that looks like Meta's (``wamid.`` and base64), so integrations that check the prefix or store
    it in a column sized for Meta's ids keep working; random, so it reveals nothing."""
    raw = base64.urlsafe_b64encode(secrets.token_bytes(MESSAGE_ID_BYTES)).rstrip(b"=")
    return "wamid." + raw.decode()


# A send the relay held for template pacing: Meta's ``message_status`` for it, instead of "accepted"
# ([M] https://developers.facebook.com/documentation/business-messaging/whatsapp/templates/template-pacing).
HELD_FOR_QUALITY_ASSESSMENT = "held_for_quality_assessment"


def accepted(to: str, ids: dict[str, str], message_id: str, message_status: str = "accepted") -> dict[str, Any]:
    """The 200 answer to a send. ``message_status: "accepted"`` (Meta sets it for templates) is set for every
    send: accepted, not delivered; what happens next comes by webhook. A held send says so instead. ``ids`` are
    the user's ``wa_id`` and ``user_id`` as the business may see them
    (:meth:`cove.business.gateway.identity.Contact.ids`)."""
    return {
        "messaging_product": MESSAGING_PRODUCT,
        "contacts": [{"input": to, **ids}],
        "messages": [{"id": message_id, "message_status": message_status}],
    }


def read_ok() -> dict[str, Any]:
    """The 200 answer to a mark-as-read."""
    return {"success": True}


# inside the ciphertext


def business_plaintext(send: Free, message_id: str, ts_ms: int, reacted_to: str | None = None) -> bytes:
    """The plaintext of a business's free-form message (formats in :mod:`cove.protocol.business_messages` and
    :mod:`cove.protocol.business_content`). A reaction names the message reacted to by its Cove client message
    id, ``reacted_to``, which the caller looked up: the user's client knows no Cloud API ids."""
    context_id = send.context.message_id if send.context else None
    if isinstance(send, SendReaction):
        if reacted_to is None:
            raise ValueError("a reaction needs the client message id of the message reacted to")
        return reaction_plaintext(message_id, ts_ms, reacted_to, send.reaction.emoji)
    if isinstance(send, SendLocation):
        return location_plaintext(message_id, ts_ms, send.location, context_id)
    if isinstance(send, SendContacts):
        return contacts_plaintext(message_id, ts_ms, send.contacts, context_id)
    common = {
        "v": PAYLOAD_VERSION,
        "id": message_id,
        "ts": ts_ms,
        "context_id": send.context.message_id if send.context else None,
    }
    message: BusinessText | BusinessInteractive
    if isinstance(send, SendText):
        message = BusinessText(type="text", text=send.text.body, **common)
    else:
        message = BusinessInteractive(type="interactive", interactive=send.interactive, **common)
    return canonical_json(message.model_dump(mode="json", exclude_none=True))
