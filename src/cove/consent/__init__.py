"""Consent: privacy policies as code, the linter, rollout, per-purpose choices, decisions and the ledger."""
