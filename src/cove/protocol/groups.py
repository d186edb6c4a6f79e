"""The payloads of a group chat inside ciphertexts, and the syntax of a group id.

A member's device sends its Megolm session key to every other member device over pairwise Olm as
``{"v": 1, "type": "sender_key", "group_id", "session_id", "session_key"}``; texts are Megolm plaintexts
``{"v": 1, "type": "text", "group", "id", "text", "ts"}``; the group's name, description and avatar are
``{"v": 1, "type": "group_info", "group", "name", "description", "avatar"?}``, sent as a group message and 1:1 to
members who join later. The relay sees none of them. Parsers take JSON a peer or the relay wrote: every field is
checked and bounded, and anything else raises :class:`GroupPayloadError`.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from cove.protocol.payload import PAYLOAD_VERSION

GROUP_ID = re.compile(r"[0-9a-f]{32}")
INVITE_CODE = re.compile(r"[0-9a-f]{32}")  # random, chosen by the relay, which keeps only its hash
SESSION_ID = re.compile(r"[A-Za-z0-9+/]{43}")  # a Megolm session id: an Ed25519 key, unpadded base64
MAX_SESSION_KEY = 512  # a Megolm session key is 229 bytes, 306 characters of base64
MAX_NAME = 100
MAX_DESCRIPTION = 2000
MAX_AVATAR_BYTES = 48 * 1024  # small enough that the group_info message fits the relay's message size limit
MAX_TEXT = 64 * 1024


class GroupPayloadError(ValueError):
    pass


def valid_group_id(value: object) -> str:
    if not isinstance(value, str) or not GROUP_ID.fullmatch(value):
        raise GroupPayloadError("a group id is 32 lowercase hex characters")
    return value


def valid_invite_code(value: str) -> str:
    if not INVITE_CODE.fullmatch(value):
        raise GroupPayloadError("an invite code is 32 lowercase hex characters")
    return value


@dataclass(frozen=True)
class SenderKey:
    group_id: str
    session_id: str
    session_key: str

    def payload(self) -> dict[str, Any]:
        return {
            "v": PAYLOAD_VERSION,
            "type": "sender_key",
            "group_id": self.group_id,
            "session_id": self.session_id,
            "session_key": self.session_key,
        }


@dataclass(frozen=True)
class GroupInfo:
    name: str
    description: str = ""
    avatar: bytes | None = None

    def __post_init__(self) -> None:
        if len(self.name) > MAX_NAME:
            raise GroupPayloadError(f"a group name has at most {MAX_NAME} characters")
        if len(self.description) > MAX_DESCRIPTION:
            raise GroupPayloadError(f"a group description has at most {MAX_DESCRIPTION} characters")
        if self.avatar is not None and len(self.avatar) > MAX_AVATAR_BYTES:
            raise GroupPayloadError(f"a group avatar has at most {MAX_AVATAR_BYTES // 1024} KiB")

    def payload(self, group_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "v": PAYLOAD_VERSION,
            "type": "group_info",
            "group": group_id,
            "name": self.name,
            "description": self.description,
        }
        if self.avatar is not None:
            body["avatar"] = base64.b64encode(self.avatar).decode()
        return body


def text_payload(group_id: str, client_message_id: str, text: str, ts: int) -> dict[str, Any]:
    if len(text) > MAX_TEXT:
        raise GroupPayloadError(f"a group text has at most {MAX_TEXT} characters")
    return {"v": PAYLOAD_VERSION, "type": "text", "group": group_id, "id": client_message_id, "text": text, "ts": ts}


def parse_sender_key(payload: dict[str, Any]) -> SenderKey:
    session_id, session_key = payload.get("session_id"), payload.get("session_key")
    if not isinstance(session_id, str) or not SESSION_ID.fullmatch(session_id):
        raise GroupPayloadError("sender_key: session_id is not a Megolm session id")
    if not isinstance(session_key, str) or not 0 < len(session_key) <= MAX_SESSION_KEY:
        raise GroupPayloadError("sender_key: session_key is missing or too long")
    return SenderKey(valid_group_id(payload.get("group_id")), session_id, session_key)


def parse_group_info(payload: dict[str, Any]) -> GroupInfo:
    name, description, avatar = payload.get("name"), payload.get("description", ""), payload.get("avatar")
    if not isinstance(name, str) or not isinstance(description, str):
        raise GroupPayloadError("group_info: name and description are text")
    if avatar is not None:
        if not isinstance(avatar, str) or len(avatar) > (MAX_AVATAR_BYTES * 4) // 3 + 4:
            raise GroupPayloadError("group_info: the avatar is too large")
        try:
            avatar = base64.b64decode(avatar, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise GroupPayloadError("group_info: the avatar is not base64") from exc
    return GroupInfo(name, description, avatar)


def group_of(payload: dict[str, Any]) -> str:
    """The group a Megolm plaintext says it belongs to (checked against the envelope's, so the relay cannot
    move a message from one group into another)."""
    return valid_group_id(payload.get("group"))
