"""Where verification codes go: the log (development) or a webhook in front of a real SMS gateway."""

from __future__ import annotations

import logging
from typing import Protocol

import httpx

from cove.config import Settings
from cove.errors import ApiError

log = logging.getLogger("cove.codes")


class CodeSender(Protocol):
    async def send(self, phone_number: str, code: str) -> None: ...

    async def aclose(self) -> None: ...


class ConsoleCodeSender:
    async def send(self, phone_number: str, code: str) -> None:
        log.warning("verification code for %s: %s", phone_number, code)

    async def aclose(self) -> None:
        return None


class WebhookCodeSender:
    """POSTs ``{"phone_number": ..., "code": ..., "purpose": "registration"}`` to the configured URL."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._http = httpx.AsyncClient(timeout=10.0)

    async def send(self, phone_number: str, code: str) -> None:
        try:
            response = await self._http.post(
                self._url, json={"phone_number": phone_number, "code": code, "purpose": "registration"}
            )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            log.error("code webhook %s failed: %s", self._url, exc)
            raise ApiError(502, "code_delivery_failed", "the verification code could not be sent") from exc

    async def aclose(self) -> None:
        await self._http.aclose()


def make_code_sender(settings: Settings) -> CodeSender:
    if settings.code_sender == "webhook":
        if not settings.code_webhook_url:
            raise ValueError("COVE_CODE_SENDER=webhook needs COVE_CODE_WEBHOOK_URL")
        return WebhookCodeSender(settings.code_webhook_url)
    return ConsoleCodeSender()
