"""Several devices per person: linking companions through a provisioning channel, the signed device list, unlinking."""
