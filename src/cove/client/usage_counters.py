"""Usage counters, per UTC day: messages sent, received and decrypted, app opens; and their report to the relay.

Composed into :class:`cove.client.core.ClientCore` as ``core.usage``; sending and receiving count into the same
store table as they go.
"""

from __future__ import annotations

from cove.client.clock import today
from cove.client.request import Request
from cove.client.store import ClientStore, UsageDay
from cove.protocol import usage


class UsageCounters:
    def __init__(self, store: ClientStore) -> None:
        self.store = store

    def app_opened(self) -> None:
        self.store.count_usage(today(), opens=1)

    def report(self) -> Request | None:
        """The days counted since they were last reported (the relay takes the last 30 days); ``None``: none."""
        oldest = today() - usage.PAST_DAYS
        self.store.forget_usage_before(oldest)
        days = self.store.unreported_usage(oldest)
        if not days:
            return None
        body = [
            {
                "day": usage.day_text(d.day),
                "messages_sent": d.messages_sent,
                "messages_received": d.messages_received,
                "app_opens": d.app_opens,
            }
            for d in days
        ]
        return Request("PUT", "/v1/me/usage", {"days": body})

    def reported(self, request: Request) -> None:
        assert request.json is not None
        self.store.usage_reported(
            [
                UsageDay(usage.parse_day(d["day"]), d["messages_sent"], d["messages_received"], d["app_opens"])
                for d in request.json["days"]
            ]
        )
