"""Schemathesis against the OpenAPI documents of a real relay and a real business gateway, every check on.

Each operation gets its documented examples, the coverage phase's boundary and negative cases and a bounded
number of generated ones, authenticated as a real device (a business account, so the business routes are
reached too); then sequences of calls follow the links between operations. A failure names the check, the
operation and a curl command that reproduces it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from pydantic import BaseModel, ValidationError
from schemathesis import engine
from schemathesis.engine import events

from cove.accounts.models import UsageDay
from cove.business.routes import Profile
from cove.client.core import ClientCore, Request
from cove.client.store import ClientStore
from cove.client.transport import CoveClient
from cove.messaging.models import OutgoingCiphertext
from cove.testing import CodeInbox, RelayProcess
from gateway_world import API, GatewayProcess, register_profile

# Refusals that no JSON Schema can state, per operation: the only 400s a request the schema allows may get
# (the check below holds them to these codes; any other 400 to a valid request is a failure).
SEMANTIC_REFUSALS = {
    # whether a number is allocated in its country's numbering plan is known to the phone library only
    "POST /v1/verification/code": {"invalid_phone_number", "challenge_failed"},
    "POST /v1/registration": {"invalid_phone_number", "bad_signature"},
    # a key's signature by the device's identity key
    "PUT /v1/keys": {"bad_signature"},
    # the window of days is relative to today
    "PUT /v1/me/usage": {"usage_day_out_of_range"},
    # the business rules (opt-in, the 24-hour window, templates approved), the template's lint, and the relay's
    # setting of devices per message, and a forward header on a message to the sender's own devices (that the
    # path's account is the caller's is known from the token only) or on a receipt
    "PUT /v1/messages/{account_id}": {"business_rule", "too_many_devices", "invalid_forward_header"},
    "POST /v1/business/templates": {"template_lint_errors"},
    "POST /v1/business/templates/{template_id}/edit": {"template_lint_errors", "category_locked"},
    # a PIN that is one repeated character or a run of digits
    "PUT /v1/accounts/me/registration-lock": {"weak_pin"},
    # the caller may be that business itself
    "PUT /v1/business/{business_id}/opt-in": {"own_business"},
    "PUT /v1/business/{business_id}/name": {"own_business"},
    "DELETE /v1/business/{business_id}/name": {"own_business"},
    "PUT /v1/business/{business_id}/number-sharing": {"own_business"},
    "DELETE /v1/business/{business_id}/number-sharing": {"own_business"},
    # a companion's identity key signed by itself; a device list signed by the primary, naming registered devices
    "POST /v1/devices/link": {"bad_signature"},
    "PUT /v1/devices/list": {"invalid_device_list", "unknown_device"},
    # the primary is device 1, which only registering the number again replaces
    "DELETE /v1/devices/{device_id}": {"primary_device"},
    # whether a nonce solves a seed, and whether a partner's batch is a signed SignalBatch, take the relay's keys
    "POST /v1/sharing/signals": {"bad_batch"},
    # a challenge's answer is checked by its work and the relay's HMAC; an appeal's code by the one sent
    "PUT /v1/safety/challenge": {"wrong_answer"},
    # the caller's own account id is schema-valid, and no one accepts (or blocks, or reports) themselves
    "PUT /v1/safety/requests/{account_id}": {"cannot_accept_self"},
    "PUT /v1/safety/blocks/{account_id}": {"cannot_block_self"},
    "POST /v1/safety/appeals": {"invalid_phone_number", "no_code_requested", "wrong_code", "code_expired"},
    # the new number's code, as an appeal's
    "PUT /v1/accounts/me/number": {"invalid_phone_number", "no_code_requested", "wrong_code", "code_expired"},
}
# Not semantic, yet not stated by the schema either (left for later): a business header's fields by its kind, and
# the template body, which the schema gives as any object.
UNSTATED = {
    "PUT /v1/messages/{account_id}": {"invalid_request"},
    "POST /v1/business/templates": {"invalid_template"},
    "POST /v1/business/templates/{template_id}/edit": {"invalid_template"},
    # whether a name has a printable character is Unicode's judgement (categories, unassigned code points)
    "PUT /v1/business/{business_id}/name": {"invalid_name"},
}

# The budget: every check is on (as `st run --checks all`); fuzzing is bounded per operation.
CONFIG = """
seed = 20261206
continue-on-failure = true

[cache]
enabled = false

[checks]
enabled = true

[generation]
max-examples = 10
""" + "".join(
    f"""
[[operations]]
include-name = "{name}"
checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 401, 403, 404, 409, 428, 429]
"""
    for name in SEMANTIC_REFUSALS | UNSTATED
)


@schemathesis.check
def only_semantic_refusals(ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Any) -> None:
    """A valid request to an operation of SEMANTIC_REFUSALS is refused with 400 only for one of its reasons."""
    label = case.operation.label
    if label not in SEMANTIC_REFUSALS | UNSTATED or response.status_code != 400 or case.meta is None:
        return
    if not case.meta.generation.mode.is_positive:
        return
    allowed = SEMANTIC_REFUSALS.get(label, set()) | UNSTATED.get(label, set())
    code = response.json().get("error", {}).get("code")
    assert code in allowed, f"a request the schema allows was refused with 400 {code!r}; allowed: {allowed}"


DEVICE_INFO = {"model": "Pixel 9", "os_name": "Android", "os_version": "15", "app_version": "0.1.0"}
GATEWAY_PATHS = [
    "/{version}/{phone_number_id}/messages",
    "/{version}/{waba_id}/message_templates",
    "/{version}/{phone_number_id}/opt_ins/{wa_id}",
    "/{version}/{phone_number_id}/whatsapp_business_profile",
    "/{version}/{phone_number_id}/block_users",
    "/{version}/{object_id}",
    "/{version}/{phone_number_id}/media",
    "/media/download/{media_id}",
]
BUSINESS = {"display_name": "Fuzzing Bakery", "about": "Fresh bread", "vertical": "RESTAURANT"}


class Devices:
    """Registers the device the fuzzing calls as, a business account: again whenever the fuzzing itself logged
    the last one out (``DELETE /v1/accounts/me``, ``DELETE /v1/devices/current``)."""

    def __init__(self, relay: RelayProcess, inbox: CodeInbox, folder: Path) -> None:
        self.relay, self.inbox, self.folder = relay, inbox, folder
        self._numbers = (f"+1415555{n:04d}" for n in itertools.count(2000))

    def register(self) -> str:
        return asyncio.run(self._register(next(self._numbers)))

    async def _register(self, phone_number: str) -> str:
        core = ClientCore(ClientStore(self.folder / f"{phone_number}.db"), os.urandom(32), DEVICE_INFO)
        async with CoveClient(self.relay.url, core) as client:
            await client.request_code(phone_number)
            await client.register(phone_number, await self.inbox.code_for(phone_number))
            await client.call(Request("PUT", "/v1/business/profile", BUSINESS))
        token = core.token
        core.store.close()
        assert token is not None
        return token


def bearer_from(devices: Devices) -> type:
    class Bearer:
        def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str:
            return devices.register()

        def set(self, case: schemathesis.Case, data: str, context: schemathesis.AuthContext) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    return Bearer


@pytest.fixture(scope="module")
def fuzzed_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RelayProcess, CodeInbox, Path]]:
    folder = tmp_path_factory.mktemp("fuzzed-relay")
    inbox = CodeInbox()
    # The fuzzing asks for many codes from one address: the harness lifts the code limits, tested on their own.
    relay = RelayProcess(f"sqlite+aiosqlite:///{folder / 'relay.db'}", folder, inbox.url, {})
    relay.start()
    yield relay, inbox, folder
    relay.stop()
    inbox.close()


@pytest.fixture(scope="module")
def relay_api(fuzzed_relay: tuple[RelayProcess, CodeInbox, Path]) -> Any:
    relay, inbox, folder = fuzzed_relay
    schema = schemathesis.openapi.from_url(f"{relay.url}/openapi.json", config=schemathesis.Config.from_str(CONFIG))
    schema.auth()(bearer_from(Devices(relay, inbox, folder)))
    return schema


@dataclass
class Run:
    failures: set[str] = field(default_factory=set)
    statuses: dict[str, set[int]] = field(default_factory=dict)  # operation -> every status it answered

    def unreached(self) -> list[str]:
        """Operations that only ever refused the caller or the method: the fuzzing never got past them."""
        return sorted(op for op, seen in self.statuses.items() if seen <= {401, 405} and op != "Stateful tests")

    def report(self) -> str:
        return f"{len(self.failures)} failures:\n" + "\n".join(sorted(self.failures))


def run_every_phase(schema: Any) -> Run:
    """Run every phase, as ``st run`` does: each failed check and error, with a curl to reproduce it."""
    run = Run()
    for event in engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            for interaction in event.recorder.interactions.values():
                if interaction.response is not None:
                    run.statuses.setdefault(event.recorder.label, set()).add(interaction.response.status_code)
            for case_id, checks in event.recorder.checks.items():
                interaction = event.recorder.interactions.get(case_id)
                answer = interaction.response if interaction else None
                said = f"{answer.status_code} {answer.content[:300]!r}" if answer else "no answer"
                for check in checks:
                    if check.failure_info is not None:
                        failure = check.failure_info.failure
                        run.failures.add(
                            f"{failure.code} {failure.operation}: {failure.title}. {failure.message}\n"
                            f"    {check.failure_info.code_sample}\n    answered {said}"
                        )
        elif isinstance(event, events.NonFatalError | events.FatalError):
            run.failures.add(f"{getattr(event, 'label', 'run')}: {type(event.value).__name__}: {event.value}")
    return run


def test_the_relay_answers_as_its_openapi_document_says(relay_api: Any) -> None:
    run = run_every_phase(relay_api)
    assert not run.failures, run.report()
    assert not run.unreached(), f"only 401 or 405 from {run.unreached()}"


@pytest.fixture(scope="module")
def gateway_api(fuzzed_relay: tuple[RelayProcess, CodeInbox, Path]) -> Iterator[Any]:
    """A business's gateway on the fuzzed relay, and its schema with the business's token and ids filled in."""
    relay, inbox, folder = fuzzed_relay
    home = folder / "business-home"
    home.mkdir()
    business_id = asyncio.run(register_profile(relay, inbox, home, "shop", "+14155553000", BUSINESS))
    gateway = GatewayProcess(relay, home, "shop", None)
    gateway.start()
    ids = {"version": API, "phone_number_id": business_id, "waba_id": business_id, "object_id": business_id}
    # The Graph API answers every refusal 400 with an error code (Meta's Cloud API does the same), and the
    # message and template bodies are Cloud API bodies the schema gives as any object; an Idempotency-Key used
    # again with another body is 422, as Meta's.
    config = CONFIG + "".join(
        f"""
[[operations]]
include-path = "{path}"
checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 401, 403, 404, 409, 422, 429]
"""
        for path in GATEWAY_PATHS
    )
    config += "\n[parameters]\n" + "".join(f'"path.{k}" = "{v}"\n' for k, v in ids.items())
    config += f'"header.authorization" = "Bearer {gateway.token}"\n'
    yield schemathesis.openapi.from_url(f"{gateway.url}/openapi.json", config=schemathesis.Config.from_str(config))
    gateway.stop()


def test_the_gateway_answers_as_its_openapi_document_says(gateway_api: Any) -> None:
    run = run_every_phase(gateway_api)
    assert not run.failures, run.report()
    assert not run.unreached(), f"only 401 or 405 from {run.unreached()}"


def test_a_wrong_method_is_answered_405_with_every_method_the_path_takes(fuzzed_relay) -> None:  # noqa: ANN001
    relay, _, _ = fuzzed_relay
    answer = httpx.request("PATCH", f"{relay.url}/v1/accounts/me")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "DELETE, GET, HEAD"
    assert answer.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("model", "body"),
    [
        (UsageDay, {"day": "2026-11-25", "messages_sent": True}),  # the schema says integer; true was taken for 1
        (Profile, {"display_name": "Corner Bakery", "websites": [""]}),  # the schema says ^https?://
        (OutgoingCiphertext, {"device_id": 1, "registration_id": 1, "kind": 5, "body": ""}),  # receipts: the relay's
    ],
)
def test_what_the_schema_refuses_the_models_refuse(model: type[BaseModel], body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(body)
