"""The registration code as a person types it: six digits, perhaps spaced or dashed as an SMS shows them."""

from __future__ import annotations

import re

CODE = re.compile(r"[0-9]{6}")


def registration_code(typed: str) -> str | None:
    """The six digits, or ``None`` when ``typed`` is not a code (checked before anything is sent)."""
    code = typed.replace(" ", "").replace("-", "")
    return code if CODE.fullmatch(code) else None
