"""Groups on the relay: membership, roles, invites, and the fan-out of group messages stored once."""
