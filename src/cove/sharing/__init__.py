"""Sharing with a recipient: the catalogue of what may leave, the export gateway, disclosures, erasure."""
