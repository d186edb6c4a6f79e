"""Meta's webhook bodies (``POST`` to the business's endpoint), as strict pydantic models.

Sources (Meta's reference pages; the 2026 business-scoped user id changes are on the BSUID page):

- [W] https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages
  and one page per type under ``.../webhooks/reference/messages/`` (``text``, ``image``, ``video``, ``audio``,
  ``document``, ``sticker``, ``reaction``, ``location``, ``contacts``, ``interactive``, ``button``, ``system``,
  ``status``);
- [B] https://developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids
  (``contacts[].user_id``, ``messages[].from_user_id``, ``statuses[].recipient_user_id``, the ``contacts`` array on
  sent/delivered/read statuses and not on failed ones, ``system.type = user_changed_user_id``,
  ``user_preferences[].user_id``);
- [P] https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/user_preferences
- [T] https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/message_template_status_update
- [Q] https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/phone_number_quality_update

Every model forbids unknown fields: a misspelt or misplaced field fails, which is what "no wrong nesting" means.
Fields Meta marks optional are optional here; fields Meta always sends are required. Ids keep Meta's syntax:
``wa_id`` and ``from`` are phone numbers (digits, no ``+``); business-scoped user ids are the country code, a
period and digits (``US.13491208655302741918``), parent ids ``US.ENT.`` and digits.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: [B] the user's ISO 3166 alpha-2 country code, a period, then up to 128 characters: ``US.13491208655302741918``.
#: Meta's page says "alphanumeric" but every example is digits, and clients rely on that (pywa 4.5.0 tells an id
#: from a group id with ``^[A-Z]{2}\.\d+$``), so the digits are what the issue asks for and what is checked here.
BSUID = r"^[A-Z]{2}\.[0-9]{1,128}$"
PARENT_BSUID = r"^[A-Z]{2}\.(ENT\.)?[0-9]{1,128}$"  # Meta's examples show both forms
#: A user's phone number in webhooks: the digits, without ``+`` ([W] ``"wa_id": "16505551234"``).
WA_ID = r"^[0-9]{1,15}$"
DIGITS = r"^[0-9]+$"

UserId = Annotated[str, Field(pattern=BSUID)]
ParentUserId = Annotated[str, Field(pattern=PARENT_BSUID)]
PhoneId = Annotated[str, Field(pattern=WA_ID)]
Timestamp = Annotated[str, Field(pattern=DIGITS)]  # unix seconds, as a string in messages webhooks


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# common parts ---------------------------------------------------------------------------------------------------


class Metadata(Strict):
    display_phone_number: str
    phone_number_id: str


class Profile(Strict):
    name: str  # [B] in messages, statuses (sent, delivered, read) and user_preferences alike
    username: str | None = None  # [B] only when the user adopted a username
    country_code: str | None = None  # in an earlier version of [B]


class Contact(Strict):
    """[B] ``contacts[]``: ``user_id`` always; ``wa_id`` only when the phone number may be shared."""

    profile: Profile
    wa_id: PhoneId | None = None
    user_id: UserId
    parent_user_id: ParentUserId | None = None
    identity_key_hash: str | None = None


class ErrorData(Strict):
    details: str


class WebhookError(Strict):
    """[W] status ``errors[]`` and ``messages[].errors[]``."""

    code: int
    title: str
    message: str | None = None
    error_data: ErrorData | None = None
    href: str | None = None


# inbound message types ([W], one page each) -----------------------------------------------------------------------


class Text(Strict):
    body: str


class Media(Strict):
    """image, video, audio, document and sticker share these; the type adds its own fields."""

    id: str
    mime_type: str
    sha256: str
    url: str | None = None


class Image(Media):
    caption: str | None = None


class Video(Media):
    caption: str | None = None


class Audio(Media):
    voice: bool | None = None


class Document(Media):
    caption: str | None = None
    filename: str | None = None


class Sticker(Media):
    animated: bool | None = None


class Reaction(Strict):
    message_id: str
    emoji: str | None = None  # omitted when the user removes a reaction


class Location(Strict):
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None
    url: str | None = None


class ContactName(Strict):
    formatted_name: str
    first_name: str | None = None
    last_name: str | None = None
    middle_name: str | None = None
    suffix: str | None = None
    prefix: str | None = None


class ContactPhone(Strict):
    phone: str | None = None
    wa_id: str | None = None
    type: str | None = None


class ContactEmail(Strict):
    email: str | None = None
    type: str | None = None


class ContactAddress(Strict):
    street: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    country: str | None = None
    country_code: str | None = None
    type: str | None = None


class ContactOrg(Strict):
    company: str | None = None
    department: str | None = None
    title: str | None = None


class ContactUrl(Strict):
    url: str | None = None
    type: str | None = None


class SharedContact(Strict):
    """[W] contacts: one vCard-like entry, with ``name.formatted_name``; or, when the user shared their own number
    from a template's ``REQUEST_CONTACT_INFO`` button ([B] "Requesting phone numbers"), a ``vcard`` and ``phones``."""

    name: ContactName | None = None
    vcard: str | None = None
    phones: list[ContactPhone] | None = None
    emails: list[ContactEmail] | None = None
    addresses: list[ContactAddress] | None = None
    org: ContactOrg | None = None
    urls: list[ContactUrl] | None = None
    birthday: str | None = None

    @model_validator(mode="after")
    def _named(self) -> SharedContact:
        if self.name is None and self.vcard is None:
            raise ValueError("a shared contact has a name (or, shared from a contact request, a vcard)")
        return self


class Choice(Strict):
    id: str
    title: str
    description: str | None = None  # list rows only


class InteractiveReply(Strict):
    """[W] interactive: the user's choice in a business's reply-button or list message."""

    type: Literal["button_reply", "list_reply"]
    button_reply: Choice | None = None
    list_reply: Choice | None = None

    @model_validator(mode="after")
    def _one(self) -> InteractiveReply:
        if getattr(self, self.type) is None or sum(x is not None for x in (self.button_reply, self.list_reply)) != 1:
            raise ValueError(f"interactive.{self.type} must be there, and only it")
        return self


class QuickReply(Strict):
    """[W] button: a tap on a template's quick-reply button."""

    payload: str
    text: str


class System(Strict):
    """[W] system + [B]: the user changed their number (``user_changed_number``) or their business-scoped user id
    (``user_changed_user_id``). ``user_id`` is the new id; ``wa_id`` the new number, when it may be shared."""

    body: str
    type: Literal["user_changed_number", "user_changed_user_id"]
    wa_id: PhoneId | None = None
    user_id: UserId | None = None
    parent_user_id: ParentUserId | None = None
    new_wa_id: PhoneId | None = None  # the older name of ``wa_id`` for a changed number
    # Meta's changelog, Aug 11, 2026 (https://developers.facebook.com/documentation/business-messaging/whatsapp/changelog/):
    # both system types carry the previous ids beside the new ones.
    previous_user_id: UserId | None = None
    previous_parent_user_id: ParentUserId | None = None


class Context(Strict):
    from_: str | None = Field(None, alias="from")
    id: str | None = None
    forwarded: bool | None = None
    frequently_forwarded: bool | None = None


MESSAGE_TYPES = (
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "reaction",
    "location",
    "contacts",
    "interactive",
    "button",
    "system",
    "unsupported",
)


class Message(Strict):
    """[W] + [B] ``messages[]``: ``from`` (the phone number) only when it may be shared; ``from_user_id`` always."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: PhoneId | None = Field(None, alias="from")
    from_user_id: UserId | None = None
    from_parent_user_id: ParentUserId | None = None
    id: str
    timestamp: Timestamp
    type: Literal[MESSAGE_TYPES]  # type: ignore[valid-type]
    origin: str | None = None  # [B] "contact_request/other": the user shared their number from a contact request
    context: Context | None = None
    errors: list[WebhookError] | None = None
    text: Text | None = None
    image: Image | None = None
    video: Video | None = None
    audio: Audio | None = None
    document: Document | None = None
    sticker: Sticker | None = None
    reaction: Reaction | None = None
    location: Location | None = None
    contacts: list[SharedContact] | None = None
    interactive: InteractiveReply | None = None
    button: QuickReply | None = None
    system: System | None = None

    @model_validator(mode="after")
    def _payload_of_its_type(self) -> Message:
        present = [t for t in MESSAGE_TYPES if t != "unsupported" and getattr(self, t) is not None]
        expected = [] if self.type == "unsupported" else [self.type]
        if present != expected:
            raise ValueError(f"a {self.type!r} message carries {expected or 'no payload'}, not {present}")
        if self.type != "system" and self.from_user_id is None:
            raise ValueError("from_user_id is missing: [B] every user's message names its business-scoped id")
        if self.type == "system" and self.from_ is None and self.from_user_id is None:
            raise ValueError("a system message names the user (from or from_user_id)")
        return self


class Pricing(Strict):
    billable: bool
    pricing_model: Literal["PMP", "CBP"]
    type: str | None = None  # regular, free_customer_service, free_entry_point (PMP)
    category: str


class ConversationOrigin(Strict):
    type: str


class Conversation(Strict):
    id: str
    expiration_timestamp: str | None = None
    origin: ConversationOrigin | None = None


class Status(Strict):
    """[W] status + [B]: ``recipient_id`` (the number) when the message went to a number, ``recipient_user_id``
    when it went to a business-scoped id; ``errors`` with ``failed`` and only with it."""

    id: str
    status: Literal["sent", "delivered", "read", "failed", "played"]
    timestamp: Timestamp
    recipient_id: PhoneId | None = None
    recipient_user_id: UserId | None = None
    parent_recipient_user_id: ParentUserId | None = None
    recipient_type: Literal["individual"] | None = None
    biz_opaque_callback_data: str | None = None
    conversation: Conversation | None = None
    pricing: Pricing | None = None
    errors: list[WebhookError] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Status:
        if self.recipient_id is None and self.recipient_user_id is None:
            raise ValueError("a status names its recipient (recipient_id or recipient_user_id)")
        if (self.status == "failed") != bool(self.errors):
            raise ValueError("errors come with a failed status, and only with it")
        return self


class MessagesValue(Strict):
    """[W] the ``messages`` field's value: a user's message, or statuses of the business's messages."""

    messaging_product: Literal["whatsapp"]
    metadata: Metadata
    contacts: list[Contact] | None = None
    messages: list[Message] | None = None
    statuses: list[Status] | None = None
    errors: list[WebhookError] | None = None

    @model_validator(mode="after")
    def _shape(self) -> MessagesValue:
        if (self.messages is None) == (self.statuses is None):
            raise ValueError("a messages webhook carries either messages or statuses")
        user_ids = {c.user_id for c in self.contacts or []}
        for message in self.messages or []:
            if message.type == "system":
                continue
            if not self.contacts:
                raise ValueError("contacts is missing: [W] a user's message comes with the user's contact")
            if message.from_user_id not in user_ids:
                raise ValueError("messages[].from_user_id names no contacts[].user_id")
        for status in self.statuses or []:
            if status.status != "failed" and not self.contacts:
                raise ValueError("contacts is missing: [B] sent, delivered and read statuses carry the contact")
            if status.recipient_user_id is not None and self.contacts and status.recipient_user_id not in user_ids:
                raise ValueError("statuses[].recipient_user_id names no contacts[].user_id")
        return self


class Preference(Strict):
    """[P] + [B] one ``user_preferences[]`` entry."""

    wa_id: PhoneId | None = None
    user_id: UserId
    parent_user_id: ParentUserId | None = None
    detail: str
    category: Literal["marketing_messages"]
    value: Literal["stop", "resume"]
    timestamp: int


class UserPreferencesValue(Strict):
    messaging_product: Literal["whatsapp"]
    metadata: Metadata
    contacts: list[Contact] = Field(min_length=1)
    user_preferences: list[Preference] = Field(min_length=1)


class TemplateStatusValue(Strict):
    """[T]; ``message_template_id`` is a number at Meta, which clients read as text too."""

    event: Literal[
        "APPROVED",
        "ARCHIVED",
        "DELETED",
        "DISABLED",
        "FLAGGED",
        "IN_APPEAL",
        "LIMIT_EXCEEDED",
        "LOCKED",
        "PAUSED",
        "PENDING",
        "PENDING_DELETION",
        "REINSTATED",
        "REJECTED",
    ]
    message_template_id: int | str
    message_template_name: str
    message_template_language: str
    reason: str | None
    message_template_category: str | None = None
    disable_info: dict[str, Any] | None = None
    other_info: dict[str, Any] | None = None
    rejection_info: dict[str, Any] | None = None


TIERS = Literal["TIER_50", "TIER_250", "TIER_1K", "TIER_2K", "TIER_10K", "TIER_100K", "TIER_UNLIMITED"]


class QualityValue(Strict):
    """[Q]"""

    display_phone_number: str
    event: Literal["DOWNGRADE", "FLAGGED", "ONBOARDING", "UNFLAGGED", "UPGRADE"]
    current_limit: TIERS | None = None
    old_limit: TIERS | None = None
    max_daily_conversations_per_business: TIERS | None = None


# the envelope -----------------------------------------------------------------------------------------------------


class MessagesChange(Strict):
    field: Literal["messages"]
    value: MessagesValue


class PreferencesChange(Strict):
    field: Literal["user_preferences"]
    value: UserPreferencesValue


class TemplateStatusChange(Strict):
    field: Literal["message_template_status_update"]
    value: TemplateStatusValue


class QualityChange(Strict):
    field: Literal["phone_number_quality_update"]
    value: QualityValue


Change = Annotated[
    MessagesChange | PreferencesChange | TemplateStatusChange | QualityChange, Field(discriminator="field")
]


class Entry(Strict):
    id: str
    time: int | None = None
    changes: list[Change] = Field(min_length=1)

    @model_validator(mode="after")
    def _time(self) -> Entry:
        needs_time = {"message_template_status_update", "phone_number_quality_update"}
        if self.time is None and any(c.field in needs_time for c in self.changes):
            raise ValueError("entry.time is missing: [T], [Q] account-level webhooks carry it")
        return self


class Webhook(Strict):
    """[W] the body of every webhook POST."""

    object: Literal["whatsapp_business_account"]
    entry: list[Entry] = Field(min_length=1)


def check(body: dict[str, Any]) -> Webhook:
    """The body as Meta's shape, or pydantic's ``ValidationError`` naming each field that is wrong."""
    return Webhook.model_validate(body)


def is_bsuid(value: str) -> bool:
    return re.match(BSUID, value) is not None
