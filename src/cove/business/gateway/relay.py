"""What the gateway may ask of the relay: the routes it uses, the syntax of every id it puts in their paths, and
the client that can reach nothing else.

A business's values (a template's name, a user id) end up in relay paths, and the gateway holds the business's
device token, so a path that reached another route would act as the business: ``DELETE /v1/devices/current``
logs its device out. Each value is therefore checked three times: against its own syntax at the gateway's edge
(a Graph error 100 otherwise), encoded as one segment when the path is built (:mod:`cove.client.paths`), and on
the way out, where the request must match one of :data:`ROUTES` with every placeholder in its syntax
(:mod:`cove.client.allowlist`), so a future mistake fails closed.
"""

from __future__ import annotations

from cove.business.keys import BSUID
from cove.client import paths
from cove.client.allowlist import Route, RouteAllowlist
from cove.client.core import ClientCore
from cove.client.transport import CoveClient
from cove.protocol.attachments import BLOB_ID
from cove.protocol.templates import NAME_MAX

UUID = paths.ACCOUNT_ID  # account and template ids: uuid4, as the relay issues both
TEMPLATE_NAME = rf"^[a-z0-9_]{{1,{NAME_MAX}}}$"  # cove.protocol.templates.NAME, with its length
SYNTAX = {
    "account_id": UUID,
    "template_id": UUID,
    "name": TEMPLATE_NAME,
    "user_id": BSUID,
    "attachment_id": BLOB_ID.pattern,
}

ROUTES = (
    Route("GET", "/v1/business/profile"),  # the profile and GET /{phone_number_id}
    Route("PUT", "/v1/business/profile"),
    Route("GET", "/v1/business/templates"),  # the list, and a send's template by name
    Route("POST", "/v1/business/templates"),
    Route("DELETE", paths.TEMPLATE),
    Route("POST", paths.TEMPLATE_EDIT),  # an edit, by id
    Route("GET", "/v1/business/template-key"),  # a template's signed text, verified before it is sealed
    Route("GET", paths.APPROVED_TEMPLATE),
    Route("DELETE", paths.CUSTOMER_OPT_IN),  # a STOP the user wrote
    Route("POST", "/v1/business/users/resolve"),  # user ids <-> the accounts messages are encrypted to
    Route("GET", "/v1/business/events"),  # becomes webhooks
    Route("POST", "/v1/business/blocks"),  # the Block Users API
    Route("DELETE", "/v1/business/blocks"),
    Route("GET", "/v1/business/blocks"),
    Route("POST", "/v1/directory/lookup"),  # ``to`` given as a phone number
    Route("GET", paths.KEYS_IDENTITY),  # end-to-end sessions with a user's devices
    Route("GET", paths.KEY_BUNDLES),
    Route("PUT", paths.MESSAGES),
    Route("POST", "/v1/attachments"),  # media the business sends, encrypted for the user's devices
    Route("PATCH", paths.ATTACHMENT),
    Route("GET", paths.ATTACHMENT_STATUS),  # where a broken upload resumes
    Route("GET", paths.ATTACHMENT),  # media a user sends the business
)


def relay_client(base_url: str, core: ClientCore) -> CoveClient:
    """The business's Cove client, restricted to :data:`ROUTES`."""
    return CoveClient(base_url, core, allowed=RouteAllowlist(base_url, ROUTES, SYNTAX))
