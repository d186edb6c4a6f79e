"""`cove console`: the operator's dashboard, a page with its own login over the relay's database.

It runs where the operator commands run (cove.operator finds the relay's database the way `cove serve` does) and
shows rollout, consent, sharing, business, safety and relay health as charts over time, with the operator's
actions (run the ledger's verification, approve or reject a template, review a safety action) one click away.
"""
