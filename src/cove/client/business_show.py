"""How the command line shows a business's interactive messages, reactions, locations and contacts.

Each is checked again against the shared formats (:mod:`cove.protocol.business_content`) before it is shown: the
user's client does not trust the business's gateway, so a CTA button that is not a web link, or an oversized
contact card, is reported, not shown.
"""

from __future__ import annotations

import json

from cove.client.events import PayloadReceived
from cove.protocol.business_content import describe as describe_message
from cove.protocol.business_content import parse_business_message

#: The payload types of a business's messages this module shows.
SHOWN = frozenset({"interactive", "reaction", "location", "contacts"})
#: The ones a user can answer by id: a location request (`cove businesses location --reply-to`) and any message
#: (`cove businesses react`).
ANSWERABLE = frozenset({"interactive", "location", "contacts"})


def business_line(event: PayloadReceived) -> str:
    """The text to show for ``event``, with the message's id for answering or reacting to it."""
    try:
        message = parse_business_message(json.dumps(event.payload).encode())
    except ValueError:
        return f"a {event.payload.get('type')} message that does not pass Cove's checks was not shown"
    shown = describe_message(message)
    if event.payload.get("type") in ANSWERABLE:
        shown += f"\n  (id {event.client_message_id})"
    return shown
