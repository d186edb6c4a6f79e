"""The key directory: identity keys, signed one-time and fallback keys, bundles per device."""
