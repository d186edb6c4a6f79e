"""The gateway's users: who a ``to`` names, the id the business knows an account by, and what the business may
see of each user (:mod:`.identity`), cached in the gateway's store from the relay's answers and event feed."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cove.business.gateway import cloud, events, identity
from cove.business.gateway.events import Event
from cove.business.gateway.identity import Contact
from cove.business.gateway.store import GatewayStore, MessageRecord
from cove.client.core import Request
from cove.client.transport import CoveClient, RelayError

if TYPE_CHECKING:
    from cove.business.gateway.graph import Identity


@dataclass(frozen=True)
class Recipient:
    account_id: str | None  # None: no Cove user answers to ``to``
    wa_id: str


class Users:
    def __init__(self, client: CoveClient, store: GatewayStore) -> None:
        self.client = client
        self.store = store

    def contact(self, account_id: str) -> Contact:
        """The user as the business may see them now (:mod:`.identity`): their id, the name they show it, and the
        number they share with it or that the business itself sent to."""
        name, shared, sent = self.store.shown(account_id)
        return Contact(self.store.wa_id_of(account_id), shared or sent, name)

    def recipient_contact(self, record: MessageRecord, failed: bool) -> Contact:
        """The recipient of a status webhook: the number when the business sent to one (Meta's ``wa_id`` is then
        always there), else the user's id with the number only if the business may see it."""
        to_number = re.match(cloud.PHONE, record.wa_id) is not None
        number = record.wa_id.lstrip("+") if to_number else None
        if not record.account_id:
            return Contact(None if to_number else record.wa_id, number, None)
        known = self.contact(record.account_id)
        user_id = known.user_id or (None if to_number else record.wa_id)
        return Contact(user_id, number or known.wa_id, known.name, id_in_status=not (failed and to_number))

    async def recipient(self, to: str) -> Recipient:
        """``to`` is a phone number (E.164, with or without +) or a per-business user id (``wa_id``), as
        :data:`cloud.PHONE` and :data:`BSUID` say (:func:`cloud.parse_send` checked it)."""
        account = self.store.account_of(to)
        if account is not None:
            return Recipient(account, to)
        if re.match(cloud.PHONE, to):
            try:
                account = await self.client.resolve(to if to.startswith("+") else "+" + to)
            except RelayError as exc:
                if exc.status not in (400, 404):
                    raise
                return Recipient(None, to)
            if self.store.shown(account)[2] != to.lstrip("+"):  # a write only when it is news
                self.store.set_sent_number(account, to.lstrip("+"))  # it knew the number: webhooks may show it
            return Recipient(account, await self.wa_id_of(account) or to)
        pairs = await self.client.call(Request("POST", "/v1/business/users/resolve", {"user_ids": [to]}))
        for pair in pairs:
            self.remember(pair)
            return Recipient(pair["account_id"], pair["user_id"])
        return Recipient(None, to)

    def remember(self, pair: dict[str, Any]) -> None:
        """Cache a pair the relay resolved, with the name and number the user shows the business."""
        self.store.pair(pair["account_id"], pair["user_id"])
        self.store.set_shown(pair["account_id"], pair.get("name"), pair.get("wa_id"))

    async def wa_id_of(self, account_id: str) -> str | None:
        """The user id the business knows this account by (None once the account is deleted)."""
        known = self.store.wa_id_of(account_id)
        if known is not None:
            return known
        pairs = await self.client.call(Request("POST", "/v1/business/users/resolve", {"account_ids": [account_id]}))
        if not pairs:
            return None
        self.remember(pairs[0])
        return pairs[0]["user_id"]

    def identity_event(self, i: Identity, item: dict[str, Any]) -> Event | None:
        """A user's name, number sharing or id changed (:mod:`cove.business.identity_service`): update what the
        gateway shows of them, and tell the business as Meta does (a shared contact, a system message)."""
        body, at_s = item["body"], item["at"] // 1000
        if item["kind"] == "user_identity":
            account = self.store.account_of(body["user_id"])
            if account is None:
                return None
            self.store.set_shown(account, body["name"], body["wa_id"])
            if not (body.get("shared") and body["wa_id"]):
                return None
            message = identity.contact_shared(self.contact(account), _event_message_id(i, item), at_s)
            return events.user_contact_message(
                i.waba_id, i.phone_number_id, i.display_phone_number, self.contact(account), message
            )
        if item["kind"] == "user_id_changed":
            account = self.store.account_of(body["previous_user_id"])
            if account is None:  # never cached: the next resolve gives the new id
                previous = Contact(body["previous_user_id"], None, None)
            else:
                previous = self.contact(account)
                self.store.repair(account, body["user_id"])
                name, _, _ = self.store.shown(account)
                self.store.set_shown(account, name, body["wa_id"])
            message = identity.id_changed(previous, body["user_id"], body["wa_id"], _event_message_id(i, item), at_s)
            return events.user_system_message(i.waba_id, i.phone_number_id, i.display_phone_number, message)
        return None


def _event_message_id(identity: Identity, item: dict[str, Any]) -> str:
    """The Cloud API id of a message the relay's feed reports (an id change, a shared number): from the feed's
    sequence number, so a replay of the feed gives the same id."""
    digest = hashlib.sha256(f"{identity.account_id}\nevent\n{item['seq']}".encode()).digest()[:24]
    return "wamid." + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
