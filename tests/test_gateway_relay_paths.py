"""The business gateway reaches only the relay routes it needs, whatever a business puts in an id or a name.

The gateway holds the business's device token, so a value that slipped into a relay path as ``../`` would act as
the business elsewhere (``DELETE /v1/devices/current`` logs its device out). Here every gateway endpoint that
takes an id or a name gets traversal attempts (``../``, encoded slashes, ``%00``, control characters, ``?``,
``#``, very long values, unicode) and generated values. A recording proxy between the gateway and the relay
shows every request that reached the relay: each must be one of the routes the endpoint needs, every refusal
a Graph error body with a 4xx status, and the business's device still works afterwards.
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cove.business.gateway.app import create_app
from cove.business.gateway.graph import Identity
from cove.business.gateway.outbox import Outbox
from cove.business.gateway.relay import relay_client
from cove.business.gateway.service import Gateway
from cove.business.gateway.store import GatewayStore
from cove.client import paths
from cove.client.allowlist import Route, RouteAllowlist, RouteNotAllowed
from cove.client.core import ClientCore, Request
from cove.client.profile import open_profile
from cove.client.store import ClientStore
from cove.client.transport import CoveClient
from gateway_world import API, GatewayProcess, register_profile

SHOP_PHONE = "+14155550180"
UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
SOME_USER = "US." + "1" * 20  # a user id's syntax (Meta's BSUID), nobody's
NASTY = [
    "../../devices/current",
    "../../accounts/me",
    "..%2f..%2fdevices%2fcurrent",
    "..%2F..%2Faccounts%2Fme",
    "%2e%2e/%2e%2e/accounts/me",
    "..",
    ".",
    "a/b",
    "a%2Fb",
    "%00",
    "\x00",
    "a\nb",
    "\r\nX-Injected: 1",
    "\t",
    "name?x=1",
    "name#frag",
    "x" * 5_000,
    "+" + "9" * 16,  # one digit more than E.164 has
    "ünïcødé",
    "١٢٣٤٥",  # digits, but not ASCII ones
    "\u202eevil",
    "CC.AAAA/../../devices/current",
    "http://127.0.0.1:1/v1/accounts/me",
]
# What the gateway's background work may ask at any time: the relay's business events, and its WebSocket.
BACKGROUND = [("GET", r"/v1/business/events\?.*"), ("GET", r"/v1/websocket")]
SENDING = [
    ("POST", r"/v1/directory/lookup"),
    ("POST", r"/v1/business/users/resolve"),
    ("GET", r"/v1/business/templates"),
    ("GET", r"/v1/business/template-key"),
    ("GET", rf"/v1/business/templates/{UUID}/approved(\?version=\d+)?"),
    ("GET", rf"/v1/keys/{UUID}/identity"),
    ("GET", rf"/v1/keys/{UUID}\?device_id=\d+(&device_id=\d+)*"),
    ("PUT", rf"/v1/messages/{UUID}"),
]
DELETE_TEMPLATE = [("DELETE", r"/v1/business/templates/[a-z0-9_]+(\?language=[a-z]{2,3}(_[A-Z]{2})?)?")]
OPT_OUT = [("DELETE", r"/v1/business/customers/[A-Z]{2}\.[0-9]{20}/opt-in(\?(&?category=[a-z]+)+)?")]
LIST_TEMPLATES = [("GET", r"/v1/business/templates")]
CREATE_TEMPLATE = [("POST", r"/v1/business/templates")]
EDIT_TEMPLATE = [("POST", rf"/v1/business/templates/{UUID}/edit")]
PROFILE = [("GET", r"/v1/business/profile")]
BLOCK = [
    ("POST", r"/v1/directory/lookup"),
    ("POST", r"/v1/business/users/resolve"),
    ("POST", r"/v1/business/blocks"),
    ("DELETE", r"/v1/business/blocks"),
]
BLOCK_LIST = [("GET", r"/v1/business/blocks\?limit=\d+(&(after|before)=[A-Za-z0-9.]+)?")]


class RecordingProxy:
    """Stands between the gateway and the relay: records each request's method and raw target, then forwards it."""

    HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host", "upgrade"}

    def __init__(self, relay_url: str) -> None:
        self.seen: list[tuple[str, str]] = []
        self._http = httpx.Client(timeout=30)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                proxy.seen.append((self.command, self.path))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Upgrade"):  # the gateway's WebSocket is not carried: it reconnects, harmlessly
                    status, content, headers = 404, b"", {}
                else:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in proxy.HOP}
                    url = httpx.URL(relay_url).copy_with(raw_path=self.path.encode())
                    answer = proxy._http.request(self.command, url, headers=headers, content=body)
                    status, content = answer.status_code, answer.content
                    headers = {k: v for k, v in answer.headers.items() if k.lower() not in proxy.HOP}
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward  # noqa: N815 - the http.server API

            def log_message(self, *_: object) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def take(self) -> list[tuple[str, str]]:
        taken, self.seen = self.seen, []
        return taken

    def close(self) -> None:
        self._server.shutdown()
        self._http.close()


def is_graph_error(answer: httpx.Response) -> bool:
    error = answer.json().get("error") if answer.headers.get("content-type") == "application/json" else None
    return (
        isinstance(error, dict)
        and {"message", "type", "code", "fbtrace_id"} <= error.keys()
        and isinstance(error["code"], int)
    )


def text(to: str, **more: Any) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": "Hello"}, **more}


def template(name: str, language: str = "en") -> dict[str, Any]:
    body = {"name": name, "language": {"code": language}, "components": []}
    return {"messaging_product": "whatsapp", "to": SOME_USER, "type": "template", "template": body}


def q(value: str) -> str:
    return quote(value, safe="")


def requests(s: str, v: str) -> dict[str, tuple[str, str, dict[str, Any], list[tuple[str, str]]]]:
    """Each endpoint that takes an id or a name, with the value ``v`` in each place it can go: method, path, request
    options, and the relay routes it may reach. ``s`` is the business's phone number id (and WABA id)."""
    root, read = f"/{API}/{s}", {"messaging_product": "whatsapp", "status": "read", "message_id": v}
    creation = {"name": v, "language": "en", "category": "UTILITY"}
    return {
        "delete template ?name=": ("DELETE", f"{root}/message_templates", {"params": {"name": v}}, DELETE_TEMPLATE),
        "delete template ?language=": (
            "DELETE", f"{root}/message_templates", {"params": {"name": "order_ready", "language": v}}, DELETE_TEMPLATE
        ),
        "list templates ?name=": ("GET", f"{root}/message_templates", {"params": {"name": v}}, LIST_TEMPLATES),
        "create template, name": ("POST", f"{root}/message_templates", {"json": creation}, CREATE_TEMPLATE),
        "opt-out /{wa_id}": ("DELETE", f"{root}/opt_ins/{q(v)}", {}, OPT_OUT),
        "opt-out ?category=": ("DELETE", f"{root}/opt_ins/{SOME_USER}", {"params": {"category": v}}, OPT_OUT),
        "send, to": ("POST", f"{root}/messages", {"json": text(v)}, SENDING),
        "send, context.message_id": (
            "POST", f"{root}/messages", {"json": text(SOME_USER, context={"message_id": v})}, SENDING
        ),
        "send, template.name": ("POST", f"{root}/messages", {"json": template(v)}, SENDING),
        "send, template.language": ("POST", f"{root}/messages", {"json": template("order_ready", v)}, SENDING),
        "mark read, message_id": ("POST", f"{root}/messages", {"json": read}, SENDING),
        "list templates ?after=": ("GET", f"{root}/message_templates", {"params": {"after": v}}, LIST_TEMPLATES),
        "list templates ?fields=": ("GET", f"{root}/message_templates", {"params": {"fields": v}}, LIST_TEMPLATES),
        "delete template ?hsm_id=": (
            "DELETE", f"{root}/message_templates", {"params": {"name": "x", "hsm_id": v}},
            LIST_TEMPLATES + DELETE_TEMPLATE,
        ),
        "edit template /{template_id}": ("POST", f"/{API}/{q(v)}", {"json": {"category": "UTILITY"}}, EDIT_TEMPLATE),
        "/{phone_number_id}": ("GET", f"/{API}/{q(v)}", {}, PROFILE + LIST_TEMPLATES),  # or a template, by its id
        "/{phone_number_id}/messages": ("POST", f"/{API}/{q(v)}/messages", {"json": text(SOME_USER)}, SENDING),
        "/{phone_number_id}/profile": ("GET", f"/{API}/{q(v)}/whatsapp_business_profile", {}, PROFILE),
        "/{waba_id}/message_templates": (
            "DELETE", f"/{API}/{q(v)}/message_templates", {"params": {"name": "x"}}, DELETE_TEMPLATE
        ),
        "/{version}": ("GET", f"/{q(v)}/{s}", {}, PROFILE),
        "block users, user": ("POST", f"{root}/block_users", {"json": blocking(v)}, BLOCK),
        "unblock users, user": ("DELETE", f"{root}/block_users", {"json": blocking(v)}, BLOCK),
        "blocked users ?after=": ("GET", f"{root}/block_users", {"params": {"after": v}}, BLOCK_LIST),
        "blocked users ?before=": ("GET", f"{root}/block_users", {"params": {"before": v}}, BLOCK_LIST),
    }  # fmt: skip


def blocking(user: str) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "block_users": [{"user": user}]}


ENDPOINTS = sorted(requests("s", "v"))


def attempt(
    gateway: httpx.Client, proxy: RecordingProxy, shop: str, endpoint: str, value: str, nasty: bool
) -> list[str]:
    """One request; what went wrong: a relay route the endpoint does not need, a 5xx, or a refusal that is not a
    Graph error body with a 4xx status (and any answer but that for a nasty value, which no field accepts)."""
    method, path, options, intended = requests(shop, value)[endpoint]
    proxy.take()
    where = f"{endpoint} with {value[:40]!r}"
    try:
        answer = gateway.request(method, path, **options)
    except httpx.TransportError as exc:
        return [f"{where}: no answer ({exc!r})", *(f"{where} reached {m} {t[:120]}" for m, t in proxy.take())]
    problems = [
        f"{where} reached {seen_method} {target[:120]}"
        for seen_method, target in proxy.take()
        if not any(seen_method == m and re.fullmatch(pattern, target) for m, pattern in intended + BACKGROUND)
    ]
    refused = nasty or answer.status_code >= 400
    if answer.status_code >= 500 or (refused and not (answer.status_code < 500 and is_graph_error(answer))):
        problems.append(f"{where} answered {answer.status_code} {answer.text[:120]!r}")
    return problems


VALUES = st.one_of(
    st.sampled_from(NASTY),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=60),
    st.builds(
        str.__add__,
        st.sampled_from(["../", "..%2f", "%2e%2e/", "/", "?", "#", "%00", "CC.", "wamid.", "+1", "order_"]),
        st.text(st.characters(exclude_categories=("Cs",)), max_size=40),
    ),
)


def barrage(gateway_url: str, token: str, proxy: RecordingProxy, shop: str) -> None:
    """Every nasty value through every endpoint, then generated ones; the gateway still answers for the shop."""
    with httpx.Client(base_url=gateway_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as gateway:
        problems = [p for e in ENDPOINTS for value in NASTY for p in attempt(gateway, proxy, shop, e, value, True)]
        assert not problems, "\n".join(problems)

        @settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(endpoint=st.sampled_from(ENDPOINTS), value=VALUES)
        def generated(endpoint: str, value: str) -> None:
            assert attempt(gateway, proxy, shop, endpoint, value, nasty=False) == []

        generated()
        assert gateway.get(f"/{API}/{shop}").status_code == 200


async def test_no_id_or_name_reaches_another_relay_route(relay, code_inbox, tmp_path: Path):
    home = tmp_path / "business-home"
    home.mkdir()
    shop = await register_profile(relay, code_inbox, home, "shop", SHOP_PHONE, {"display_name": "Corner Bakery"})
    proxy = RecordingProxy(relay.url)
    gateway = GatewayProcess(relay, home, "shop", None, server=proxy.url)
    gateway.start()
    try:
        barrage(gateway.url, gateway.token, proxy, shop)
    finally:
        gateway.stop()
        proxy.close()

    # The business's device and account still work on the relay, with the gateway's own token.
    core = open_profile("shop", home)
    async with httpx.AsyncClient(base_url=relay.url, headers={"Authorization": f"Bearer {core.token}"}) as api:
        assert (await api.get("/v1/keys/count")).status_code == 200
        assert (await api.get("/v1/business/profile")).status_code == 200
    core.store.close()


# The two layers below the gateway's edge, on their own.


@given(st.text(max_size=80))
def test_a_built_path_has_the_value_as_exactly_one_segment(value):
    try:
        path = paths.build(paths.TEMPLATE, name=value)
    except paths.InvalidPathValue:
        return
    url = httpx.URL("http://relay.test" + path)  # as httpx sends it: dot segments resolved, ? and # read
    segments = url.raw_path.decode("ascii").split("/")
    assert segments[:4] == ["", "v1", "business", "templates"] and len(segments) == 5
    assert unquote(segments[4]) == value and not url.query and not url.fragment


ALLOWLIST = RouteAllowlist(
    "http://relay.test/cove",
    [Route("GET", paths.KEYS_IDENTITY), Route("DELETE", paths.TEMPLATE)],
    {"account_id": f"^{UUID}$", "name": "^[a-z0-9_]+$"},
)
ACCOUNT = "0b5e1f2a-3c4d-4e5f-8a9b-0c1d2e3f4a5b"


@pytest.mark.parametrize(
    ("method", "url", "allowed"),
    [
        ("GET", f"http://relay.test/cove/v1/keys/{ACCOUNT}/identity", True),
        ("DELETE", "http://relay.test/cove/v1/business/templates/order_ready?language=en", True),
        ("DELETE", f"http://relay.test/cove/v1/keys/{ACCOUNT}/identity", False),  # another method
        ("GET", "http://relay.test/cove/v1/keys/count/identity", False),  # not an account id's syntax
        ("DELETE", "http://relay.test/cove/v1/devices/current", False),
        ("DELETE", "http://relay.test/cove/v1/business/templates/../../devices/current", False),
        ("DELETE", "http://relay.test/cove/v1/business/templates/a%2Fb", False),
        ("DELETE", "http://relay.test/cove/v1/business/templates/%2e%2e", False),
        ("DELETE", "http://relay.test/v1/business/templates/order_ready", False),  # outside the relay's base
        ("DELETE", "http://elsewhere.test/cove/v1/business/templates/order_ready", False),
        ("DELETE", "https://relay.test/cove/v1/business/templates/order_ready", False),
    ],
)
def test_the_allowlist_lets_through_only_its_routes(method, url, allowed):
    assert ALLOWLIST.allows(method, httpx.URL(url)) is allowed


@pytest.mark.parametrize("value", ["", ".", "..", "a\x00", "a\nb", "a b", "x" * (paths.SEGMENT_MAX + 1)])
def test_a_value_that_cannot_be_one_segment_is_refused(value):
    with pytest.raises(paths.InvalidPathValue):
        paths.build(paths.TEMPLATE, name=value)


@pytest.fixture
def core(tmp_path: Path) -> ClientCore:
    made = ClientCore(ClientStore(tmp_path / "gateway.db"), bytes(32), {})
    yield made
    made.store.close()


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/v1/business/profile", True),
        ("GET", f"/v1/keys/{ACCOUNT}?device_id=1", True),
        ("PUT", f"/v1/messages/{ACCOUNT}", True),
        ("DELETE", "/v1/business/templates/order_ready", True),
        ("DELETE", "/v1/devices/current", False),
        ("DELETE", "/v1/accounts/me", False),
        ("GET", "/v1/keys/count", False),
        ("PUT", "/v1/keys", False),
        ("GET", "/v1/me/privacy", False),
        ("DELETE", "/v1/business/templates/../../accounts/me", False),
        ("DELETE", "/v1/business/customers/CC.A/opt-in", False),  # not a user id's syntax
        ("GET", "http://127.0.0.1:1/v1/business/profile", False),
    ],
)
async def test_the_gateways_relay_client_reaches_only_its_routes(core, method, path, allowed):
    """An allowed request goes out (and finds nothing listening); any other is stopped before it leaves."""
    async with relay_client("http://127.0.0.1:9", core) as client:
        with pytest.raises(httpx.ConnectError if allowed else RouteNotAllowed):
            await client.call(Request(method, path))


async def test_no_gateway_error_is_plain_text(core):
    """The relay unreachable is 503 with code 2; anything unexpected is 500 with code 131000: Graph bodies both."""
    store = GatewayStore(core.store)
    gateway = Gateway(CoveClient("http://127.0.0.1:9", core), store, Outbox(store.db), None, Identity(ACCOUNT, "+1"))
    app = create_app(gateway, run_background=False)
    headers = {"Authorization": f"Bearer {store.create_token('test', 0)}"}
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway", headers=headers) as api:
        unreachable = await api.get(f"/{API}/{ACCOUNT}")
        assert unreachable.status_code == 503 and is_graph_error(unreachable)
        assert unreachable.json()["error"]["code"] == 2

        async def broken(_: Request) -> dict[str, Any]:
            raise RuntimeError("a bug")

        gateway.client.call = broken  # type: ignore[method-assign]
        unexpected = await api.get(f"/{API}/{ACCOUNT}/whatsapp_business_profile")
        assert unexpected.status_code == 500 and is_graph_error(unexpected)
        assert "a bug" not in unexpected.text
