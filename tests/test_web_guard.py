"""The guard of a local page (cove.web.guard): only this machine, only its own origin, only with this run's key."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cove.web.guard import COOKIE, LocalGuard

KEY = "k" * 43


def _app(key: str | None = KEY, loopback: bool = True) -> FastAPI:
    app = FastAPI()

    @app.get("/")
    def home() -> dict[str, str]:
        return {"page": "home"}

    @app.post("/send")
    def send() -> dict[str, str]:
        return {"sent": "yes"}

    @app.get("/static/x.css")
    def style() -> dict[str, str]:
        return {"css": "yes"}

    app.add_middleware(LocalGuard, key=key, loopback=loopback)
    return app


def _client(key: str | None = KEY, client: tuple[str, int] = ("127.0.0.1", 50000)) -> TestClient:
    return TestClient(_app(key), base_url="http://127.0.0.1:8123", client=client)


def test_the_start_link_sets_the_key_and_every_page_needs_it() -> None:
    client = _client()
    assert client.get("/").status_code == 401
    assert client.get("/open", params={"key": "wrong"}).status_code == 401
    opened = client.get("/open", params={"key": KEY}, follow_redirects=False)
    assert opened.status_code == 303 and opened.headers["location"] == "/"
    cookie = opened.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert client.get("/").json() == {"page": "home"}
    client.cookies.clear()
    assert client.get("/static/x.css").status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1.evil.example", "[::2]:8123", "bad:port:x"])
def test_a_host_that_is_not_the_loopback_is_refused(host: str) -> None:
    client = _client()
    client.cookies.set(COOKIE, KEY)
    assert client.get("/", headers={"host": host}).status_code == 421


def test_another_machine_is_refused_even_with_the_key() -> None:
    client = _client(client=("192.0.2.7", 50000))
    client.cookies.set(COOKIE, KEY)
    assert client.get("/").status_code == 403


def test_a_post_from_another_site_is_refused() -> None:
    client = _client()
    client.cookies.set(COOKIE, KEY)
    assert client.post("/send", headers={"origin": "http://evil.example"}).status_code == 403
    assert client.post("/send", headers={"sec-fetch-site": "cross-site"}).status_code == 403
    assert client.post("/send", headers={"origin": "http://127.0.0.1:8123"}).json() == {"sent": "yes"}


def test_without_a_key_only_the_machine_and_origin_are_checked() -> None:
    client = _client(key=None)
    assert client.get("/").json() == {"page": "home"}
    assert client.post("/send", headers={"origin": "http://evil.example"}).status_code == 403


def test_served_on_another_address_only_the_origin_is_checked() -> None:
    """`cove console serve --host ADDRESS`: other machines reach it by its name; its login does the rest."""
    client = TestClient(_app(key=None, loopback=False), base_url="http://console.example", client=("192.0.2.7", 1))
    assert client.get("/").json() == {"page": "home"}
    assert client.post("/send", headers={"origin": "http://console.example"}).json() == {"sent": "yes"}
    assert client.post("/send", headers={"origin": "http://evil.example"}).status_code == 403
