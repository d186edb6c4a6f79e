"""Formats the relay and the SDK (cove.client) share, so that neither imports the other: pure, no capability."""
