"""Cove: an end-to-end encrypted messenger whose privacy promises are enforced by code."""

__version__ = "0.1.0"
