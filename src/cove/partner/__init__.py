"""The parent company's service: ingests shared batches and uses them only as each purpose permits.

It imports nothing of the messenger but :mod:`cove.sharing.wire` (tests/test_partner_boundary.py checks that).
"""
