"""The relay's business events about the account itself (a template's review, the tier, the quality rating) as
the Cloud API webhooks Meta sends for them, pure. Events about one user (preferences, ids, held sends) need
the gateway's records and stay with :class:`cove.business.gateway.service.Gateway`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cove.business.gateway import events
from cove.business.gateway.events import Event, QualityEvent
from cove.business.tiers import Tier
from cove.protocol.templates import ReviewStatus

if TYPE_CHECKING:
    from cove.business.gateway.graph import Identity

ACCOUNT_EVENTS = frozenset({"template_status", "tier", "quality"})


def account_webhook(identity: Identity, item: dict[str, Any]) -> Event | None:
    """The webhook for one event of :data:`ACCOUNT_EVENTS`, or None where Meta sends none."""
    i, body, at_s, kind = identity, item["body"], item["at"] // 1000, item["kind"]
    if kind == "template_status":
        status = ReviewStatus(body["event"])
        return events.template_status_update(
            i.waba_id, body["template_id"], body["name"], body["language"], status, body.get("reason"), at_s
        )
    if kind == "tier":
        event = QualityEvent.UPGRADE if body["event"] == "UPGRADE" else QualityEvent.DOWNGRADE
        return events.quality_update(i.waba_id, i.display_phone_number, event, Tier(body["tier"]), at_s)
    if kind == "quality":
        if body["current"] == "RED":
            event = QualityEvent.FLAGGED
        elif body["previous"] == "RED":
            event = QualityEvent.UNFLAGGED
        else:
            return None  # GREEN <-> YELLOW moves show in GET /{phone_number_id}; Meta sends no webhook either
        return events.quality_update(i.waba_id, i.display_phone_number, event, Tier(body["tier"]), at_s)
    raise ValueError(f"not an account event: {kind!r}")
