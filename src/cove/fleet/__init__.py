"""Running the relay as a fleet of equal processes: the bus between them and the events that cross it.

The database is the only source of truth. NATS carries wake-ups (an envelope was queued for a device that
another process holds) and events (an account was deleted, devices logged out, a policy published); each
process also re-reads the database, so a lost bus message delays, and never loses, what it carried.

Each process also writes its health figures to the database (``health_recorder``), where the operator reads
the fleet's sums (``health``, ``cove relay health``).
"""
