"""The Cloud API error catalogue as data, and the two shapes an error travels in.

A business integration written against the WhatsApp Cloud API branches on the numeric ``code`` (Meta asks
integrators to do so and not to rely on titles), so Cove refuses a send with the same code, in the same JSON
shapes: the synchronous Graph error and the asynchronous webhook ``errors[]`` entry. Titles and details follow
Meta's error-codes table [M] https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes
and by
[3P] https://niswey.com/knowledge-base/error-codes-meta (130429, 131048, 100 wording),
https://heltar.com/blogs/how-to-resolve-whatsapp-business-api-error-code-131056-pair-rate-limit-hit-cm3kmbksu000xvnqr4ql87km1
(131056), https://dualhook.com/docs/whatsapp-error-131056 (131056 answered with HTTP 429),
[M] https://developers.facebook.com/documentation/business-messaging/whatsapp/block-users/ (139100, 139101),
https://dualhook.com/docs/whatsapp-error-131050 (131050 details), https://docs.quickreply.ai (131049),
https://heltar.com/blogs/understanding-whatsapp-api-error-132015-template-is-paused-cm5fdzwy8000wkg77nbib14aq (132015),
https://msg91.com/help/whatsapp/error-codes-for-whatsapp (130472), https://developers.aivo.co/engage/ (Graph shape,
throttling answered with 429). Where Meta's text names WhatsApp or Meta, Cove's says Cove.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any

ERROR_CODES_HREF = "https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes"
GRAPH_ERROR_TYPE = "OAuthException"  # every Cloud API error carries this Graph type
MESSAGING_PRODUCT = "whatsapp"  # kept verbatim so Cloud API client libraries parse Cove's answers


class Retry(StrEnum):
    """What the business should do next; the catalogue's "retryable or terminal", with the time scale."""

    BACKOFF = "backoff"  # retryable in seconds: slow down and send the same message again
    LATER = "later"  # retryable in hours, once the cause clears (a window slides, quality recovers, a pause ends)
    NEVER = "never"  # terminal for this message: change it (template, parameters, type) or do not send it


@dataclass(frozen=True)
class ErrorSpec:
    code: int
    title: str
    details: str
    retry: Retry
    http_status: int  # answered synchronously with this status

    @property
    def retryable(self) -> bool:
        return self.retry is not Retry.NEVER


def _catalogue(*specs: ErrorSpec) -> Mapping[int, ErrorSpec]:
    return MappingProxyType({spec.code: spec for spec in specs})


# HTTP statuses: Meta's table lists 400 for most send errors, 404 for a missing template, 401 for tokens, 500 for
# the generic failure, and 429 for its throttling group (130429, 131048, 131056).
CATALOGUE: Mapping[int, ErrorSpec] = _catalogue(
    ErrorSpec(
        100,
        "Invalid parameter",
        "The request included one or more unsupported or misspelled parameters.",
        Retry.NEVER,
        400,
    ),
    ErrorSpec(2, "API Service", "Temporary due to downtime or due to being overloaded.", Retry.BACKOFF, 503),
    ErrorSpec(190, "Access token has expired", "Your access token has expired.", Retry.NEVER, 401),
    ErrorSpec(
        130429,
        "Rate limit hit",
        "Cloud API message throughput has been reached.",
        Retry.BACKOFF,
        429,
    ),
    ErrorSpec(
        130472,
        "User's number is part of an experiment",
        "Message was not sent as part of an experiment.",
        Retry.NEVER,
        400,
    ),
    ErrorSpec(131000, "Something went wrong", "Message failed to send due to an unknown error.", Retry.BACKOFF, 500),
    ErrorSpec(
        131026,
        "Message Undeliverable",
        "Unable to deliver message.",
        Retry.NEVER,
        400,
    ),
    ErrorSpec(
        131047,
        "Re-engagement message",
        "More than 24 hours have passed since the recipient last replied to the sender number.",
        Retry.NEVER,
        400,
    ),
    ErrorSpec(
        131048,
        "Spam rate limit hit",
        "Message failed to send because there are restrictions on how many messages can be sent from this phone"
        " number. This may be because too many previous messages were blocked or flagged as spam.",
        Retry.LATER,
        429,
    ),
    ErrorSpec(
        131049,
        "This message was not delivered to maintain healthy ecosystem engagement.",
        "In order to maintain a healthy ecosystem engagement, the message failed to be delivered.",
        Retry.LATER,
        400,
    ),
    ErrorSpec(
        131050,
        "User stopped marketing messages",
        "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on Cove from"
        " your business.",
        Retry.NEVER,
        400,
    ),
    ErrorSpec(131051, "Unsupported message type", "Unsupported message type.", Retry.NEVER, 400),
    ErrorSpec(131052, "Media download error", "Unable to download the media sent by the user.", Retry.NEVER, 400),
    ErrorSpec(131053, "Media upload error", "Unable to upload the media used in the message.", Retry.NEVER, 400),
    ErrorSpec(
        131056,
        "(Business Account, Consumer Account) pair rate limit hit",
        "Too many messages sent from the sender phone number to the same recipient phone number in a short period"
        " of time.",
        Retry.BACKOFF,
        429,
    ),
    ErrorSpec(
        132000,
        "Template Param Count Mismatch",
        "The number of variable parameter values included in the request did not match the number of variable"
        " parameters defined in the template.",
        Retry.NEVER,
        400,
    ),
    ErrorSpec(
        132001,
        "Template does not exist",
        "The template does not exist in the specified language or the template has not been approved.",
        Retry.NEVER,
        404,
    ),
    ErrorSpec(
        132015,
        "Template is Paused",
        "Template is paused due to low quality so it cannot be sent in a template message.",
        Retry.LATER,
        400,
    ),
    ErrorSpec(
        132016,
        "Template is disabled",
        "Template has been paused too many times due to low quality and is now permanently disabled.",
        Retry.NEVER,
        400,
    ),
    # The Block Users API's own codes (its page, above): a request with a failed user answers 139100 with the
    # per-user list; a full blocklist fails each new user with 139101.
    ErrorSpec(
        139100,
        "Failed to block/unblock users",
        "Failed to block some users, see the block_users response list for details.",
        Retry.NEVER,
        400,
    ),
    ErrorSpec(
        139101,
        "Blocklist limit reached",
        "The blocklist holds 64,000 users: unblock some first.",
        Retry.NEVER,
        400,
    ),
)


class CloudApiError(Exception):
    """A refusal with its catalogue entry; ``details`` may say more than the catalogue's generic sentence.

    ``retry_after_ms`` is set when Cove knows when the same send would pass (a bucket refills, the oldest
    counted user leaves the 24 h window); a route turns it into ``Retry-After``.
    """

    def __init__(
        self,
        code: int,
        details: str | None = None,
        retry_after_ms: int | None = None,
        subcode: int | None = None,
        user_title: str | None = None,
        user_msg: str | None = None,
    ) -> None:
        self.spec = CATALOGUE[code]
        self.details = details or self.spec.details
        self.retry_after_ms = retry_after_ms
        # Graph's finer grain for some refusals (``error_subcode``, and the title and text meant for a person),
        # which client libraries branch on: 100 with subcode 2388024 is a template that already exists.
        self.subcode = subcode
        self.user_title = user_title
        self.user_msg = user_msg
        super().__init__(f"(#{code}) {self.spec.title}: {self.details}")

    @property
    def code(self) -> int:
        return self.spec.code

    def to_graph_error(self, fbtrace_id: str) -> dict[str, Any]:
        """The synchronous body, answered with ``spec.http_status``; ``fbtrace_id`` is the caller's request id."""
        error: dict[str, Any] = {
            "message": f"(#{self.code}) {self.spec.title}",
            "type": GRAPH_ERROR_TYPE,
            "code": self.code,
            "error_data": {"messaging_product": MESSAGING_PRODUCT, "details": self.details},
            "fbtrace_id": fbtrace_id,
        }
        extra = {"error_subcode": self.subcode, "error_user_title": self.user_title, "error_user_msg": self.user_msg}
        return {"error": error | {k: v for k, v in extra.items() if v is not None}}

    def to_webhook_error(self) -> dict[str, Any]:
        """One entry of a webhook's ``errors[]`` (a failed status, or ``value.errors``)."""
        return {
            "code": self.code,
            "title": self.spec.title,
            "message": self.spec.title,
            "error_data": {"details": self.details},
            "href": ERROR_CODES_HREF,
        }
