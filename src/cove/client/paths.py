"""The relay's paths that carry a value (an account id, a template's id or name, a user id, a purpose): built here
and nowhere else, each value percent-encoded as exactly one segment (RFC 3986 §3.3).

httpx resolves ``.`` and ``..`` segments and reads ``?`` and ``#``, so a value pasted into a path can reach
another route: ``/v1/business/templates/{name}`` with ``../../devices/current`` is ``DELETE
/v1/devices/current``. Here ``/``, ``?``, ``#`` and ``%`` are encoded, and a value that would still be a dot
segment, empty, or anything but printable text is refused with :class:`InvalidPathValue`. Whether a value has
its kind's own syntax (a UUID, a per-business user id) is for the caller that knows the kind: the business
gateway checks it at its edge and again on every request it sends (:mod:`cove.business.gateway.relay`).
"""

from __future__ import annotations

from urllib.parse import quote

SEGMENT_MAX = 512  # the longest id or name the relay has (a template name)
ACCOUNT_ID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"  # as the relay issues them (uuid4)


class InvalidPathValue(ValueError):
    """A value that cannot be one path segment; ``kind`` names what it was meant to be."""

    def __init__(self, kind: str, value: str) -> None:
        self.kind = kind
        super().__init__(f"{kind}: {value[:40]!r} cannot be part of a relay path")


def segment(kind: str, value: str) -> str:
    """``value`` as one percent-encoded path segment."""
    if (
        value in ("", ".", "..")
        or len(value) > SEGMENT_MAX
        or not value.isprintable()
        or any(c.isspace() for c in value)
    ):
        raise InvalidPathValue(kind, value)
    return quote(value, safe="")


def build(template: str, **values: str) -> str:
    """A path from one of the templates below, each ``{name}`` replaced by its value as one segment."""
    return template.format_map({name: segment(name, value) for name, value in values.items()})


KEYS_IDENTITY = "/v1/keys/{account_id}/identity"
KEY_BUNDLES = "/v1/keys/{account_id}"
MESSAGES = "/v1/messages/{account_id}"
APPROVED_TEMPLATE = "/v1/business/templates/{template_id}/approved"
TEMPLATE = "/v1/business/templates/{name}"
TEMPLATE_EDIT = "/v1/business/templates/{template_id}/edit"
CUSTOMER_OPT_IN = "/v1/business/customers/{user_id}/opt-in"
PRIVACY_CHOICE = "/v1/privacy/choices/{purpose_id}"
OBJECTION = "/v1/privacy/objections/{purpose_id}"
ERASURE = "/v1/erasures/{event_id}"
PROVISIONING = "/v1/provisioning/{address}"
PROVISIONING_REPLY = "/v1/provisioning/{address}/reply"
DEVICE = "/v1/devices/{device_id}"
BUSINESS = "/v1/business/{business_id}/{action}"  # profile, preferences, opt-in, block, report...
ATTACHMENT = "/v1/attachments/{attachment_id}"
ATTACHMENT_STATUS = "/v1/attachments/{attachment_id}/status"
ATTACHMENT_RECIPIENTS = "/v1/attachments/{attachment_id}/recipients"
GROUP = "/v1/groups/{group_id}"
GROUP_MEMBERS = "/v1/groups/{group_id}/members"
GROUP_MEMBER = "/v1/groups/{group_id}/members/{account_id}"
GROUP_ROLE = "/v1/groups/{group_id}/members/{account_id}/role"
GROUP_INVITES = "/v1/groups/{group_id}/invites"
GROUP_INVITE = "/v1/groups/{group_id}/invites/{code}"
GROUP_MESSAGES = "/v1/groups/{group_id}/messages"
SAFETY_BLOCK = "/v1/safety/blocks/{account_id}"
SAFETY_REQUEST = "/v1/safety/requests/{account_id}"
