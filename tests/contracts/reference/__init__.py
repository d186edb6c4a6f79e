"""Meta's published Cloud API shapes, written down as data and pydantic models, for the contract tests.

Nothing here is the gateway's code: each shape is written from Meta's reference page named in its docstring (the
field names, the nesting, which fields are required, for Graph API v21.0 and later, with the business-scoped user
id changes Meta published in 2026), so the tests measure the gateway against Meta rather than against itself.

- :mod:`.webhooks`: every webhook body the gateway posts, as strict models (an unknown or misplaced field fails).
- :mod:`.sends`: send requests built as Meta's examples build them, one per message type.
- :mod:`.responses`: the answers of the send, media, templates and block-users endpoints.
"""
