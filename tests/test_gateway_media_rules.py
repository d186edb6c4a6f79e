"""The gateway's media rules without processes: the send shapes, Meta's types and limits, the store's bounds, and
what a media link may reach (hypothesis: no address that is not public is ever requested)."""

from __future__ import annotations

import base64
import ipaddress
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cove.business.errors import CloudApiError
from cove.business.gateway import media as media_mod
from cove.business.gateway import media_fetch, media_rules
from cove.business.gateway.cloud import SendAudio, SendDocument, SendImage, media_of, parse_send
from cove.business.gateway.media import MediaService
from cove.business.gateway.media_store import Media, MediaStore, PendingFile
from cove.client.events import AttachmentReceived
from cove.client.store import ClientStore
from cove.client.transport import RelayError

TO = "16505551234"
PUBLIC = "93.184.216.34"
ANIMATED_WEBP = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\x02"


def body(kind: str, media: dict[str, Any]) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "to": TO, "type": kind, kind: media}


def refusal(value: dict[str, Any]) -> CloudApiError:
    with pytest.raises(CloudApiError) as caught:
        parse_send(value)
    return caught.value


# send shapes -----------------------------------------------------------------------------------------------------


def test_every_media_type_parses_by_id_or_link_with_metas_optional_fields():
    image = parse_send(body("image", {"id": "1234567890123456", "caption": "Lemon cake"}))
    assert isinstance(image, SendImage) and media_of(image)[1].caption == "Lemon cake"
    document = parse_send(body("document", {"link": "https://example.com/menu.pdf", "filename": "Menu.pdf"}))
    assert isinstance(document, SendDocument) and media_of(document)[1].filename == "Menu.pdf"
    assert isinstance(parse_send(body("audio", {"id": "1234567890123456"})), SendAudio)
    for kind in ("video", "sticker"):
        assert media_of(parse_send(body(kind, {"link": "http://example.com/x"})))[0] == kind  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "media", "field"),
    [
        ("image", {"id": "1234567890123456", "link": "https://example.com/a.jpg"}, "image.id"),
        ("image", {}, "image.id"),
        ("image", {"id": "12ab"}, "image.id"),
        ("image", {"link": "ftp://example.com/a.jpg"}, "image.link"),
        ("image", {"link": "file:///etc/passwd"}, "image.link"),
        ("audio", {"id": "1234567890123456", "caption": "x"}, "audio.caption"),  # Meta: no caption on audio
        ("sticker", {"id": "1234567890123456", "caption": "x"}, "sticker.caption"),
        ("image", {"id": "1234567890123456", "filename": "a.jpg"}, "image.filename"),  # documents only
        ("image", {"id": "1234567890123456", "caption": "x" * 1025}, "image.caption"),
    ],
)
def test_a_malformed_media_object_is_100_naming_the_field(kind, media, field):
    error = refusal(body(kind, media))
    assert error.code == 100 and field in error.details


# types and limits ------------------------------------------------------------------------------------------------


def test_metas_limits_per_type():
    media_rules.check_file("image/jpeg", 5 * media_rules.MB, b"")
    media_rules.check_file("application/pdf", 100 * media_rules.MB, b"")
    media_rules.check_file("image/webp", 500_000, ANIMATED_WEBP)
    media_rules.check_file("image/webp", 100_000, b"RIFF\0\0\0\0WEBPVP8 ")
    for mime, size, head in [
        ("image/jpeg", 5 * media_rules.MB + 1, b""),
        ("video/mp4", 16 * media_rules.MB + 1, b""),
        ("audio/ogg", 16 * media_rules.MB + 1, b""),
        ("application/pdf", 100 * media_rules.MB + 1, b""),
        ("image/webp", 100_001, b"RIFF\0\0\0\0WEBPVP8 "),  # a static sticker
        ("image/webp", 500_001, ANIMATED_WEBP),
        ("image/gif", 10, b""),  # not a type Meta takes
        ("application/pdf", 0, b""),
    ]:
        with pytest.raises(CloudApiError) as caught:
            media_rules.check_file(mime, size, head)
        assert caught.value.code == 131053, (mime, size)


def test_a_message_type_takes_only_its_own_files():
    media_rules.check_kind("image", "image/png")
    media_rules.check_kind("sticker", "image/webp")
    for kind, mime in [("image", "application/pdf"), ("sticker", "image/png"), ("audio", "video/mp4")]:
        with pytest.raises(CloudApiError) as caught:
            media_rules.check_kind(kind, mime)  # type: ignore[arg-type]
        assert caught.value.code == 131053


def test_media_ids_are_digits_and_file_names_never_paths():
    ids = {media_rules.new_media_id() for _ in range(100)}
    assert len(ids) == 100 and all(media_rules.is_media_id(i) for i in ids)
    assert not media_rules.is_media_id("../1234567890123") and not media_rules.is_media_id("12345")
    assert media_rules.file_name("1234567890123456", "image/png", None) == "1234567890123456.png"


# the store -------------------------------------------------------------------------------------------------------


def make_store(tmp_path: Path, quota: int) -> MediaStore:
    return MediaStore(ClientStore(tmp_path / "state.db"), tmp_path / "media", quota)


def kept(store: MediaStore, size: int, expires: int) -> str:
    part = store.part()
    part.write_bytes(b"x" * size)
    media_id = media_rules.new_media_id()
    store.add(part, Media(media_id, "image/png", "0" * 64, size, None, "upload", expires), 0)
    return media_id


def test_the_store_is_bounded_and_forgets_expired_files(tmp_path):
    store = make_store(tmp_path, quota=1000)
    first = kept(store, 600, expires=100)
    with pytest.raises(CloudApiError) as caught:
        kept(store, 500, expires=100)
    assert caught.value.code == 131053 and store.used_bytes() == 600
    assert store.get(first, now_ms=99) is not None and store.get(first, now_ms=100) is None
    orphan = store.folder / media_rules.new_media_id()
    orphan.write_bytes(b"left by a crash")
    store.prune(now_ms=100)
    assert store.used_bytes() == 0 and list(store.folder.iterdir()) == []
    second = kept(store, 900, expires=10_000)
    assert store.delete(second) and not store.path(second).exists() and not store.delete(second)
    with pytest.raises(ValueError):
        store.path("../state.db")


# links -----------------------------------------------------------------------------------------------------------


class Recorder:
    """A web server in the test: answers each request from ``answer`` and records what was asked."""

    def __init__(self, answer: Any) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))


def jpeg(size: int, **headers: str) -> Any:
    return lambda _: httpx.Response(200, headers={"Content-Type": "image/jpeg", **headers}, content=b"j" * size)


NOT_PUBLIC = st.one_of(
    st.ip_addresses(v=4, network="127.0.0.0/8"),
    st.ip_addresses(v=4, network="10.0.0.0/8"),
    st.ip_addresses(v=4, network="172.16.0.0/12"),
    st.ip_addresses(v=4, network="192.168.0.0/16"),
    st.ip_addresses(v=4, network="169.254.0.0/16"),  # the cloud metadata address is here
    st.ip_addresses(v=4, network="100.64.0.0/10"),
    st.ip_addresses(v=4, network="224.0.0.0/4"),
    st.ip_addresses(v=6, network="::1/128"),
    st.ip_addresses(v=6, network="fc00::/7"),
    st.ip_addresses(v=6, network="fe80::/10"),
    st.ip_addresses(v=4, network="10.0.0.0/8").map(lambda a: ipaddress.IPv6Address(f"::ffff:{a}")),
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(address=NOT_PUBLIC, through_name=st.booleans())
async def test_no_link_reaches_an_address_that_is_not_public(address, through_name, tmp_path, monkeypatch):
    """Whether the link names the address or a host that resolves to it, nothing is requested."""

    async def resolve(host: str, port: int) -> list[str]:
        return [PUBLIC, str(address)] if through_name else [host.strip("[]")]

    monkeypatch.setattr(media_fetch, "resolve", resolve)
    server = Recorder(jpeg(10))
    host = "cdn.example.com" if through_name else (f"[{address}]" if address.version == 6 else str(address))
    out = tmp_path / f"{media_rules.new_media_id()}.part"
    async with server.client() as http:
        with pytest.raises(CloudApiError) as caught:
            await media_fetch.fetch(http, f"https://{host}/cake.jpg", out)
    assert caught.value.code == 131053 and "not a public address" in caught.value.details
    assert server.requests == [] and not out.exists()


async def test_a_link_is_requested_at_the_address_that_was_checked(tmp_path, monkeypatch):
    async def resolve(host: str, port: int) -> list[str]:
        return [PUBLIC]

    monkeypatch.setattr(media_fetch, "resolve", resolve)
    server = Recorder(jpeg(1000))
    async with server.client() as http:
        fetched = await media_fetch.fetch(http, "https://cdn.example.com/cakes/lemon.jpg?v=2", tmp_path / "out")
    assert (fetched.mime, fetched.size) == ("image/jpeg", 1000)
    [request] = server.requests
    assert (request.url.scheme, request.url.host, request.url.raw_path) == ("https", PUBLIC, b"/cakes/lemon.jpg?v=2")
    assert request.headers["host"] == "cdn.example.com"
    assert request.extensions["sni_hostname"] == "cdn.example.com"  # TLS checks the name, not the address


async def test_a_redirect_to_a_private_address_is_refused(tmp_path):
    server = Recorder(lambda r: httpx.Response(302, headers={"Location": "http://169.254.169.254/latest/meta-data"}))
    async with server.client() as http:
        with pytest.raises(CloudApiError) as caught:
            await media_fetch.fetch(http, f"http://{PUBLIC}/a.jpg", tmp_path / "out")
    assert "not a public address" in caught.value.details and len(server.requests) == 1


async def test_a_body_past_the_limit_is_cut_off_while_it_streams(tmp_path):
    async def endless(_: httpx.Request) -> httpx.Response:
        async def stream() -> Any:
            for _ in range(100):
                yield b"x" * 100_000

        return httpx.Response(200, headers={"Content-Type": "image/png"}, content=stream())  # no Content-Length

    async with httpx.AsyncClient(transport=httpx.MockTransport(endless)) as http:
        with pytest.raises(CloudApiError) as caught:
            await media_fetch.fetch(http, f"http://{PUBLIC}/a.png", tmp_path / "out")
    assert caught.value.code == 131053 and "limit" in caught.value.details and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("link", "answer", "why"),
    [
        (f"http://{PUBLIC}/a.jpg", jpeg(6_000_000), "limit"),  # announced too large: not read at all
        (f"http://{PUBLIC}/a.gif", lambda _: httpx.Response(200, headers={"Content-Type": "image/gif"}), "gif"),
        (f"http://{PUBLIC}/a.jpg", lambda _: httpx.Response(404), "HTTP 404"),
        (f"http://user:pw@{PUBLIC}/a.jpg", jpeg(10), "credentials"),
        (f"http://{PUBLIC}:99999/a.jpg", jpeg(10), "port"),
    ],
)
async def test_unusable_links_are_131053_saying_why(link, answer, why, tmp_path):
    server = Recorder(answer)
    async with server.client() as http:
        with pytest.raises(CloudApiError) as caught:
            await media_fetch.fetch(http, link, tmp_path / "out")
    assert caught.value.code == 131053 and why in caught.value.details


async def test_an_untyped_answer_is_typed_by_the_links_extension(tmp_path):
    server = Recorder(
        lambda _: httpx.Response(200, headers={"Content-Type": "application/octet-stream"}, content=b"%PDF")
    )
    async with server.client() as http:
        fetched = await media_fetch.fetch(http, f"http://{PUBLIC}/menu.pdf", tmp_path / "out")
    assert fetched.mime == "application/pdf"


async def test_private_addresses_are_fetched_only_when_the_setting_allows(tmp_path):
    server = Recorder(jpeg(10))
    async with server.client() as http:
        fetched = await media_fetch.fetch(http, "http://127.0.0.1:8000/a.jpg", tmp_path / "out", allow_private=True)
    assert fetched.size == 10


# the service, with a relay that refuses ---------------------------------------------------------------------------


class RefusingRelay:
    """The parts of CoveClient the media service uses, answering as a relay under load or missing a blob."""

    def __init__(self, refusal: Exception) -> None:
        self.refusal = refusal
        self.downloads = 0

    async def fetching_devices(self, *accounts: str) -> int:
        return 1

    async def upload_attachment(self, path: Path, recipients: int, name: str, mime: str) -> dict[str, Any]:
        raise self.refusal

    async def download_attachment(self, pointer: dict[str, Any], destination: Path) -> Path:
        self.downloads += 1
        raise self.refusal


def service(tmp_path: Path, refusal: Exception) -> tuple[MediaService, list[tuple[PendingFile, dict[str, Any]]]]:
    store = make_store(tmp_path, quota=10**9)
    media = MediaService(RefusingRelay(refusal), store, httpx.AsyncClient(), lambda: 1_000)  # type: ignore[arg-type]
    heard: list[tuple[PendingFile, dict[str, Any]]] = []
    media.on_received = lambda pending, content: heard.append((pending, content))
    return media, heard


async def test_the_relays_upload_limit_is_a_throttle_the_business_retries(tmp_path):
    refusal = RelayError(429, {"error": {"code": "rate_limited", "message": "slow down", "retry_after": 3}})
    media, _ = service(tmp_path, refusal)
    part = media.store.part()
    part.write_bytes(b"\x89PNG" + b"x" * 100)
    media_id = await media.keep_upload(part, "image/png", None)
    send = parse_send(body("image", {"id": media_id}))
    with pytest.raises(CloudApiError) as caught:
        await media.attachment(send, "account", "wamid.x", 1_000)  # type: ignore[arg-type]
    assert (caught.value.code, caught.value.retry_after_ms) == (130429, 3000)


POINTER = {"id": "a" * 32, "key": base64.b64encode(bytes(32)).decode(), "digest": "0" * 64, "size": 10}


def arrived(media: MediaService) -> None:
    event = AttachmentReceived("account", 1, "cmid-1", POINTER, "a caption", 500)
    media.hold(event, "US.1234", 500)


async def test_a_users_file_the_relay_no_longer_has_is_reported_at_once_with_131052(tmp_path):
    media, heard = service(tmp_path, RelayError(404, {"error": {"code": "not_found", "message": "expired"}}))
    arrived(media)
    for pending in media.store.pending():
        await media._fetch_one(pending)
    [(pending, content)] = heard
    assert pending.client_message_id == "cmid-1" and content["type"] == "unsupported"
    assert content["errors"][0]["code"] == 131052


async def test_a_users_file_is_retried_while_the_relay_cannot_be_reached_then_given_up(tmp_path):
    media, heard = service(tmp_path, httpx.ConnectError("the relay is down"))
    arrived(media)
    for attempt in range(media_mod.ATTEMPTS):
        assert heard == [], attempt
        [pending] = media.store.pending()
        assert pending.attempts == attempt
        await media._fetch_one(pending)
    [(_, content)] = heard
    assert content["errors"][0]["code"] == 131052 and "after 5 tries" in content["errors"][0]["error_data"]["details"]
