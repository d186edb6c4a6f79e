"""What the contract tests share: parsing a send as the gateway does, the requests pywa builds, a pywa bot process,
and the checks of a webhook or an answer against Meta's reference shapes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError
from pywa import WhatsApp

from contracts.pywa_bot import ToGateway
from contracts.reference import webhooks
from cove.business.errors import CloudApiError
from cove.business.gateway.cloud import parse_send
from cove.testing import free_port
from gateway_world import API, SECRET, VERIFY_TOKEN, GatewayProcess, _stop, _wait_until_up

BOT = Path(__file__).with_name("pywa_bot.py")
META_ANSWER = {
    "messaging_product": "whatsapp",
    "contacts": [{"input": "16505551234", "wa_id": "16505551234"}],
    "messages": [{"id": "wamid.HBgLMTY0NjcwNDM1OTUVAgASGBQzQTdCNTg5RjY1MEMyRjlGMjRGNgA="}],
    "success": True,
}


def refusal(body: dict[str, Any]) -> str | None:
    """None if the gateway's parser takes the send, else the Graph error it answers (code and details)."""
    try:
        parse_send(body)
    except CloudApiError as exc:
        return f"{exc.code}: {exc}"
    return None


def pywa_requests(calls: Callable[[WhatsApp], object]) -> list[dict[str, Any]]:
    """The JSON bodies pywa 4.5.0 builds for ``calls(wa)``, captured before they leave (answered as Meta would)."""
    bodies: list[dict[str, Any]] = []

    def meta(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=META_ANSWER)

    session = httpx.Client(transport=httpx.MockTransport(meta))
    calls(WhatsApp(phone_id="106540352242922", token="EAAtest", api_version="21.0", session=session))
    return bodies


def pywa_client(gateway: GatewayProcess) -> WhatsApp:
    """pywa's client as a business configures it, with the gateway's token and its requests sent to the gateway."""
    session = httpx.Client(transport=ToGateway(gateway.url), timeout=30)
    return WhatsApp(phone_id=gateway.phone_number_id, token=gateway.token, api_version=API[1:], session=session)


def against(model: type[BaseModel], body: Any) -> list[str]:
    """Every way ``body`` differs from the reference ``model`` (empty: it conforms)."""
    try:
        model.model_validate(body)
    except ValidationError as exc:
        return [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
    return []


def webhook_problems(bodies: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Why the received webhook bodies are not Meta's shape, by their first change's field (each reason once)."""
    found: dict[str, set[str]] = {}
    for body in bodies:
        problems = against(webhooks.Webhook, body)
        if problems:
            field = body.get("entry", [{}])[0].get("changes", [{}])[0].get("field", "?")
            found.setdefault(field, set()).update(problems)
    return {field: sorted(problems) for field, problems in found.items()}


class Bot:
    """tests/contracts/pywa_bot.py: a business's pywa bot, receiving the gateway's webhooks, answering through it."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.out = folder / "pywa-journal.jsonl"
        self.log = folder / "pywa-bot.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, gateway_url: str, token: str, phone_id: str) -> None:
        args = ["--port", str(self.port), "--secret", SECRET, "--verify-token", VERIFY_TOKEN, "--out", str(self.out)]
        args += ["--gateway", gateway_url, "--token", token, "--phone-id", phone_id]
        log = open(self.log, "ab")  # noqa: SIM115 - owned by the child process
        self._proc = subprocess.Popen([sys.executable, str(BOT), *args], stdout=log, stderr=log)
        _wait_until_up(self._proc, self.url, self.log, "pywa bot")

    def stop(self) -> None:
        _stop(self._proc)

    def journal(self, handler: str | None = None) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        lines = [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]
        return [line for line in lines if handler is None or line["handler"] == handler]

    def bodies(self) -> list[dict[str, Any]]:
        """Every webhook body pywa accepted (its raw-update handler fires for each, parsed or not)."""
        return [line["body"] for line in self.journal("raw")]

    async def wait_for(self, predicate: Callable[[Bot], Any], what: str, timeout: float = 20.0) -> Any:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = predicate(self)
            if found:
                return found
            await asyncio.sleep(0.05)
        fired = [line["handler"] for line in self.journal() if line["handler"] != "raw"]
        log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
        raise AssertionError(
            f"pywa never {what}: handlers fired so far {fired}, {len(self.bodies())} webhooks received;"
            f" pywa's log:\n{log}"
        )
