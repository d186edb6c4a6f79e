"""What the console's action forms share: reading a text field, naming a case, and the answer to a POST.

A form posts, then the browser is sent back to the section (303) with the result in the session, shown once in
the page's ``#flash`` region; that works without JavaScript, and htmx (``hx-boost``) does the same without a page
load. A refusal is the section itself answered with the refusal's 4xx status, its message in ``#flash`` and its
machine-readable code on the message (``data-code``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cove.console.pages import render
from cove.errors import ApiError

FLASH = "flash"
MAX_TEXT = 1000  # a note or a reason: what safety stores at most (MAX_APPEAL_CHARS), and plenty for a template
_CASE = re.compile(r"[1-9][0-9]{0,9}")


class Refusal(Exception):
    """An action refused: the section is shown again with this status and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    @classmethod
    def of(cls, error: ApiError) -> Refusal:
        return cls(error.status, error.code, error.message)


def done(request: Request, section: str, message: str) -> RedirectResponse:
    request.session[FLASH] = message
    return RedirectResponse(section, status_code=303)


def flash_of(request: Request) -> str | None:
    """The result of the last action, once: a reload does not show it again."""
    message = request.session.pop(FLASH, None)
    return message if isinstance(message, str) else None


async def text(request: Request, name: str, what: str, required: bool) -> str | None:
    """The form's ``name`` field, trimmed; None when empty and not required."""
    value = (await request.form()).get(name)
    value = value.strip() if isinstance(value, str) else ""
    if not value:
        if required:
            raise Refusal(400, f"{name}_required", f"Give {what}.")
        return None
    if len(value) > MAX_TEXT:
        raise Refusal(400, f"{name}_too_long", f"{what.capitalize()} has {MAX_TEXT} characters at most.")
    return value


async def choice(request: Request, name: str, allowed: tuple[str, ...]) -> str:
    value = (await request.form()).get(name)
    if value not in allowed:
        raise Refusal(400, f"{name}_invalid", f"Choose one of: {', '.join(allowed)}.")
    return str(value)


def case_number(raw: str, kind: str) -> int:
    """A case number from the URL: digits only, so nothing else reaches a query."""
    if not _CASE.fullmatch(raw):
        raise Refusal(404, "unknown_case", f"There is no {kind} {raw[:40]!r}: open the queue again.")
    return int(raw)


def section(request: Request, template: str, refusal: Refusal | None, **context: Any) -> HTMLResponse:
    """A section's page: with the refusal being answered (its status, message and code), or else with the
    result of the last action."""
    if refusal is not None:
        return render(request, template, refusal.status, flash=refusal.message, flash_code=refusal.code, **context)
    return render(request, template, flash=flash_of(request), flash_code=None, **context)


Page = Callable[[Request, Refusal], Awaitable[Response]]


async def answer(request: Request, section: str, action: Callable[[], Awaitable[str]], page: Page) -> Response:
    """Run a form's action: its result back on the section, or the section again with the refusal."""
    try:
        message = await action()
    except ApiError as exc:
        return await page(request, Refusal.of(exc))
    except Refusal as refusal:
        return await page(request, refusal)
    return done(request, section, message)
