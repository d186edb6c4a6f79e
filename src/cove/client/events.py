"""The events a user of the SDK sees, and how the ones an envelope produces are kept until the app takes them.

An envelope's events are written to the local store's outbox in the transaction that stores the envelope's
effects, and leave it only when the app has taken them (:meth:`cove.client.core.ClientCore.pending_events`):
a connection that dies between the save and the ack, or a process that stops before the app saw them, loses
nothing, and the relay's redelivery of an envelope already stored produces no second event. ``QueueEmpty`` and
``NoticeReceived`` describe the live connection, not an envelope: they are never stored.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class MessageReceived:
    sender: str
    sender_device: int
    client_message_id: str
    text: str
    sent_at: int
    business: dict[str, Any] | None = None  # a business's message: its visible header (show the business label)


@dataclass(frozen=True)
class RequestReceived:
    """A message request: the one-to-one message that follows (same ``client_message_id``) is from someone who is not
    a contact (:mod:`cove.client.message_requests`). Show the request, not the message (its text only when the user
    asks), and send no read receipt for it until the user accepts the sender (``Safety.accept``), replies, or adds
    them as a contact. The message's own event still comes, unchanged: an app that ignores this one shows it as
    before."""

    sender: str
    client_message_id: str
    sent_at: int


@dataclass(frozen=True)
class TemplateReceived:
    """A business's template message: render it with ``CoveClient.render_template``, which verifies the server's
    signature on the approved text and checks the values against it before anything is shown."""

    sender: str
    sender_device: int
    client_message_id: str
    header: dict[str, Any]  # the envelope's visible header
    sealed: bytes  # the parameter values with the header they were written for (inside the ciphertext)
    sent_at: int


@dataclass(frozen=True)
class PayloadReceived:
    """A payload of another type (interactive messages and the replies to them): the app or the business gateway
    interprets ``payload``."""

    sender: str
    sender_device: int
    client_message_id: str
    payload: dict[str, Any]
    sent_at: int
    business: dict[str, Any] | None = None


@dataclass(frozen=True)
class AttachmentReceived:
    """A file: fetch, check and decrypt it with ``CoveClient.save_attachment``. ``attachment`` is the pointer
    (``{"id", "key", "digest", "size", "mime", "name"}``, the name already reduced to one safe file name);
    ``group`` the group it was sent in, ``None`` for a one-to-one message."""

    sender: str
    sender_device: int
    client_message_id: str
    attachment: dict[str, Any]
    text: str | None
    sent_at: int
    group: str | None = None
    business: dict[str, Any] | None = None  # a business's file: its visible header (show the business label)


@dataclass(frozen=True)
class Delivered:
    peer: str
    client_message_id: str


@dataclass(frozen=True)
class Read:
    peer: str
    client_message_ids: list[str]


@dataclass(frozen=True)
class IdentityChanged:
    """The peer registered their number on a new phone: verify their safety number again."""

    peer: str
    generation: int


@dataclass(frozen=True)
class VerifiedKeyChanged:
    """A contact the user verified shows another primary identity key: they are unverified until compared again."""

    peer: str


@dataclass(frozen=True)
class DevicesChanged:
    """A contact (or you) linked or unlinked a device: their newly signed device list names these ids. Show it as a
    security notice: messages now go to the added devices too."""

    peer: str
    added: list[int]
    removed: list[int]


@dataclass(frozen=True)
class DeviceListRefused:
    """The relay served a device list for this account that does not verify (a bad signature, an older version, a
    key that is not the pinned one): it was ignored and the last verified list stays in force."""

    peer: str
    reason: str


@dataclass(frozen=True)
class SentElsewhere:
    """Another of your devices sent this to ``peer``: it is in this device's history too (``text`` for a text)."""

    peer: str
    sender_device: int
    client_message_id: str
    text: str | None
    sent_at: int
    payload: dict[str, Any]


@dataclass(frozen=True)
class ReadElsewhere:
    """Another of your devices showed these messages of ``peer``: they are marked read here too."""

    peer: str
    client_message_ids: list[str]


@dataclass(frozen=True)
class HistoryImported:
    """Part ``part`` of ``parts`` of the history your primary sent this newly linked device: ``count`` messages."""

    count: int
    part: int
    parts: int


@dataclass(frozen=True)
class Undecryptable:
    sender: str
    sender_device: int
    envelope_id: int
    reason: str


@dataclass(frozen=True)
class GroupMessageReceived:
    group_id: str
    sender: str
    sender_device: int
    client_message_id: str
    text: str
    sent_at: int


@dataclass(frozen=True)
class GroupChanged:
    """The relay changed the group's membership (``action``: create, add, remove, leave, promote, demote, join)."""

    group_id: str
    actor: str
    action: str
    accounts: list[str]
    revision: int


@dataclass(frozen=True)
class GroupInfoChanged:
    """A member set the group's name, description or avatar (read them from the store)."""

    group_id: str
    sender: str
    name: str


@dataclass(frozen=True)
class GroupDelivered:
    group_id: str
    client_message_id: str
    peer: str
    device_id: int


@dataclass(frozen=True)
class GroupRead:
    group_id: str
    peer: str
    client_message_ids: list[str]


@dataclass(frozen=True)
class QueueEmpty:
    pass


@dataclass(frozen=True)
class NoticeReceived:
    """A privacy notice is due: show it (its summary and purposes first), then let the user decide."""

    notice: dict[str, Any]


Event = (
    MessageReceived
    | RequestReceived
    | TemplateReceived
    | PayloadReceived
    | AttachmentReceived
    | Delivered
    | Read
    | IdentityChanged
    | VerifiedKeyChanged
    | SentElsewhere
    | ReadElsewhere
    | HistoryImported
    | DevicesChanged
    | DeviceListRefused
    | Undecryptable
    | GroupMessageReceived
    | GroupChanged
    | GroupInfoChanged
    | GroupDelivered
    | GroupRead
    | QueueEmpty
    | NoticeReceived
)


@dataclass(frozen=True)
class PendingEvent:
    """An event in the outbox: ``seq`` orders them and is what the app reports as taken."""

    seq: int
    event: Event


_STORED: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        MessageReceived,
        RequestReceived,
        TemplateReceived,
        PayloadReceived,
        AttachmentReceived,
        Delivered,
        Read,
        IdentityChanged,
        VerifiedKeyChanged,
        SentElsewhere,
        ReadElsewhere,
        HistoryImported,
        DevicesChanged,
        DeviceListRefused,
        Undecryptable,
        GroupMessageReceived,
        GroupChanged,
        GroupInfoChanged,
        GroupDelivered,
        GroupRead,
    )
}


def is_stored(event: Event) -> bool:
    return type(event).__name__ in _STORED


def dump(event: Event) -> str:
    """JSON for the outbox; ``bytes`` fields as base64."""
    body = {
        name: base64.b64encode(value).decode() if isinstance(value, bytes) else value
        for name, value in asdict(event).items()
    }
    return json.dumps({"type": type(event).__name__, "event": body})


def load(text: str) -> Event:
    stored = json.loads(text)
    cls = _STORED[stored["type"]]
    body = stored["event"]
    for f in fields(cls):
        if f.type == "bytes":
            body[f.name] = base64.b64decode(body[f.name])
    return cls(**body)
