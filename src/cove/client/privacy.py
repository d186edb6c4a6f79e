"""The privacy requests of one device: the notice, the terms, a choice per purpose, withdrawal and objection, the
export of everything the relay holds about the account, and how an erasure went after the account's deletion.

Composed into :class:`cove.client.core.ClientCore` as ``core.privacy``. Each request names the app version the
device reports (read from the core, which changes it after an update), and a shown notice is also logged locally.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from cove.client import paths
from cove.client.request import Request

if TYPE_CHECKING:
    from cove.client.core import ClientCore

# An erasure event's id as the relay issues it (a UUID4): checked before it goes into a path.
ERASURE_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def erasure_status(event_id: str) -> Request:
    """No token needed: the id, handed back by the account's deletion, is the right to ask."""
    if not ERASURE_ID.fullmatch(event_id):
        raise paths.InvalidPathValue("erasure event id", event_id)
    return Request("GET", paths.build(paths.ERASURE, event_id=event_id))


class PrivacyRequests:
    def __init__(self, core: ClientCore) -> None:
        self.core = core

    def view(self) -> Request:
        return Request("GET", "/v1/me/privacy")

    def export(self) -> Request:
        """Download my data: the whole ``cove.export/1`` document (``GET /v1/me/export``)."""
        return Request("GET", "/v1/me/export")

    def notice(self) -> Request:
        return Request("GET", "/v1/privacy/notice")

    def notice_shown(self, notice: dict[str, Any], surface: str = "notice") -> Request:
        """Log locally that this exact text was shown, and build the report of it for the relay's served log."""
        self.core.store.add_served(notice["version"], notice["text_hash"], surface)
        return Request("POST", "/v1/privacy/notice/served", self._about(notice, surface))

    def accept_terms(self, notice: dict[str, Any], age_bracket: str, surface: str = "notice") -> Request:
        return Request("POST", "/v1/privacy/terms", self._about(notice, surface) | {"age_bracket": age_bracket})

    def choose(self, purpose_id: str, choice: str, surface: str = "settings") -> Request:
        body = {"choice": choice, "surface": surface, "app_version": self._app_version()}
        return Request("PUT", paths.build(paths.PRIVACY_CHOICE, purpose_id=purpose_id), body)

    def withdraw(self, purpose_id: str) -> Request:
        return Request("DELETE", paths.build(paths.PRIVACY_CHOICE, purpose_id=purpose_id))

    def object_to(self, purpose_id: str) -> Request:
        return Request("POST", paths.build(paths.OBJECTION, purpose_id=purpose_id))

    def _app_version(self) -> Any:
        return self.core.device_info.get("app_version")

    def _about(self, notice: dict[str, Any], surface: str) -> dict[str, Any]:
        return {
            "version": notice["version"],
            "text_hash": notice["text_hash"],
            "surface": surface,
            "app_version": self._app_version(),
        }
