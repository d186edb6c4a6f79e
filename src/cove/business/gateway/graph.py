"""The gateway's Cloud API terms that its routes and its work share: who the business is, the synchronous Graph
error, and the clock."""

from __future__ import annotations

import time
from dataclasses import dataclass

from cove.business.errors import CloudApiError


def now_ms() -> int:
    return int(time.time() * 1000)


class GraphError(Exception):
    """A synchronous Cloud API error: HTTP status, the Graph body, and ``Retry-After`` seconds if any."""

    def __init__(self, error: CloudApiError, status: int | None = None) -> None:
        self.error = error
        self.status = status or error.spec.http_status
        super().__init__(str(error))


@dataclass(frozen=True)
class Identity:
    """Who the business is in Cloud API terms: Cove has one number per business account, so the account id is
    both the WABA id and the phone number id."""

    account_id: str
    display_phone_number: str

    @property
    def waba_id(self) -> str:
        return self.account_id

    @property
    def phone_number_id(self) -> str:
        return self.account_id
