"""How the command line shows a business's interactive messages, reactions, locations and contacts.

Each is checked again against the shared formats (:mod:`cove.protocol.business_content`) before it is shown: the
user's client does not trust the business's gateway, so a CTA button that is not a web link, or an oversized
contact card, is reported, not shown.
"""

from __future__ import annotations

import json
from typing import Any

from cove.protocol.business_content import describe as describe_message
from cove.protocol.business_content import parse_business_message

#: The payload types of a business's messages this module shows.
SHOWN = frozenset({"interactive", "reaction", "location", "contacts"})


def history_text(payload: dict[str, Any]) -> str:
    """What ``cove inbox`` and ``cove listen`` show, and the history keeps, of a business's message."""
    try:
        message = parse_business_message(json.dumps(payload).encode())
    except ValueError:
        return f"a {payload.get('type')} message that does not pass Cove's checks was not shown"
    return describe_message(message)
