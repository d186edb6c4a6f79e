"""Media through the business gateway with real processes: a relay, the gateway, its webhook receiver, SDK users,
and a web server the business links files on. Both directions travel as Cove's end-to-end encrypted attachments:
the relay holds ciphertext under a random id, never a file's bytes, caption or key.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from cove.client.events import AttachmentReceived
from cove.testing import run_cove
from gateway_world import GatewayProcess, Receiver, register_profile
from helpers import assert_no_plaintext, server_rows

SHOP_PHONE = "+14155550191"
PROFILE = {"display_name": "Corner Bakery", "about": "Fresh bread", "vertical": "RESTAURANT"}
MARKER = b"the secret recipe nobody may read"
PDF = "application/pdf"
ANIMATED_WEBP = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\x02"  # the extended header, its animation flag set


def file_bytes(size: int, head: bytes = b"") -> bytes:
    body = head + MARKER + os.urandom(max(0, size - len(head) - len(MARKER)))
    return body[:size]


class Files:
    """A web server on this machine serving files the business links to (path -> (content type, bytes))."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[str, bytes]] = {}
        files = self.files

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                found = files.get(self.path)
                if found is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", found[0])
                self.send_header("Content-Length", str(len(found[1])))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the gateway stops at its limit
                    self.wfile.write(found[1])

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def files() -> Iterator[Files]:
    served = Files()
    yield served
    served.close()


@pytest.fixture
async def world(relay, code_inbox, tmp_path: Path):  # noqa: ANN001, ANN201
    """The relay, the business's gateway (fetching links on this machine, which its setting allows) and its
    webhook receiver."""
    home = tmp_path / "business-home"
    home.mkdir()
    receiver = Receiver(tmp_path)
    receiver.start()
    shop_id = await register_profile(relay, code_inbox, home, "shop", SHOP_PHONE, PROFILE)
    gateway = GatewayProcess(relay, home, "shop", receiver.url)
    gateway.env["COVE_GATEWAY_ALLOW_PRIVATE_LINKS"] = "1"
    gateway.start()
    gateway.phone_number_id = shop_id
    yield gateway, receiver
    gateway.stop()
    receiver.stop()


async def upload(gateway: GatewayProcess, content: bytes, mime: str, name: str = "file") -> httpx.Response:
    async with gateway.api() as api:
        return await api.post(
            f"/{gateway.phone_number_id}/media",
            data={"messaging_product": "whatsapp", "type": mime},
            files={"file": (name, content, mime)},
        )


async def send(gateway: GatewayProcess, to: str, kind: str, media: dict[str, Any]) -> httpx.Response:
    async with gateway.api() as api:
        body = {"messaging_product": "whatsapp", "to": to, "type": kind, kind: media}
        return await api.post(f"/{gateway.phone_number_id}/messages", json=body)


def error_code(answer: httpx.Response) -> int:
    assert answer.status_code >= 400, answer.text
    return int(answer.json()["error"]["code"])


async def user_messages(receiver: Receiver, kind: str | None = None) -> list[dict[str, Any]]:
    return await receiver.wait_for(
        lambda r: [
            m
            for c in r.changes("messages")
            for m in c["value"].get("messages", [])
            if kind is None or m["type"] == kind
        ]
    )


async def wa_id_of(user, receiver: Receiver, shop: str) -> str:  # noqa: ANN001
    """The user writes first (opening the service window a free-form message needs); their id, as the business
    sees it."""
    await user.send_text(shop, "Hello, do you have pictures of the cakes?")
    return (await user_messages(receiver, "text"))[0]["from_user_id"]


def blob_bytes(relay) -> bytes:  # noqa: ANN001
    return b"".join(p.read_bytes() for p in Path(relay.data_dir, "attachments").rglob("*") if p.is_file())


async def test_an_uploaded_image_reaches_the_user_encrypted_and_the_business_can_read_it_back(
    world, users, relay, tmp_path
):
    gateway, receiver = world
    shop = gateway.phone_number_id
    ivy = await users.register("ivy")
    wa_id = await wa_id_of(ivy, receiver, shop)
    picture = file_bytes(300_000, b"\x89PNG\r\n\x1a\n")

    uploaded = await upload(gateway, picture, "image/png", "cake.png")
    assert uploaded.status_code == 200, uploaded.text
    media_id = uploaded.json()["id"]
    assert media_id.isdigit()

    async with gateway.api() as api:
        info = (await api.get(f"/{media_id}")).json()
        assert info["messaging_product"] == "whatsapp" and info["id"] == media_id
        assert (info["mime_type"], info["file_size"]) == ("image/png", len(picture))
        assert info["sha256"] == hashlib.sha256(picture).hexdigest()
        got = await api.get(info["url"])  # Meta's download: the URL, with the bearer token
        assert got.status_code == 200 and got.content == picture
        assert got.headers["content-type"] == "image/png"
    async with httpx.AsyncClient() as anyone:
        assert (await anyone.get(info["url"])).status_code == 401  # the URL alone is not enough
    async with gateway.api() as api:
        forged = info["url"].replace("signature=", "signature=x")
        assert error_code(await api.get(forged)) == 100

    answer = await send(gateway, wa_id, "image", {"id": media_id, "caption": "Our lemon cake"})
    assert answer.status_code == 200, answer.text
    message_id = answer.json()["messages"][0]["id"]
    stored = blob_bytes(relay)  # what the relay holds while the file waits for the user's device
    assert len(stored) > len(picture) and MARKER not in stored

    [event] = [e for e in await ivy.inbox() if isinstance(e, AttachmentReceived)]
    assert event.client_message_id == message_id and event.business == {"kind": "text"}
    assert event.text == "Our lemon cake"
    assert (event.attachment["mime"], event.attachment["size"]) == ("image/png", len(picture))
    assert event.attachment["name"] == f"{media_id}.png"
    saved = await ivy.save_attachment(event, tmp_path / "ivy-files")
    assert saved.read_bytes() == picture  # noqa: ASYNC240 - the test's own check
    await receiver.wait_for(lambda r: (message_id, "delivered", []) in r.statuses())

    # The relay held ciphertext only: not the file, its caption, or its key.
    rows = await server_rows(relay.database_url)
    assert_no_plaintext(rows, [MARKER.decode(errors="ignore"), "Our lemon cake", event.attachment["key"]])
    assert MARKER.decode() not in relay.log()

    async with gateway.api() as api:
        assert (await api.delete(f"/{media_id}")).json() == {"success": True}
        assert error_code(await api.get(f"/{media_id}")) == 100
        assert error_code(await api.get(info["url"])) == 100
        assert error_code(await api.delete(f"/{media_id}")) == 100


async def test_a_document_by_link_is_fetched_by_the_gateway_and_arrives_with_its_filename(
    world, users, relay, files, tmp_path
):
    gateway, receiver = world
    ivy = await users.register("ivy")
    wa_id = await wa_id_of(ivy, receiver, gateway.phone_number_id)
    menu = file_bytes(2_000_000, b"%PDF-1.7\n")
    files.files["/menus/autumn.pdf"] = (PDF, menu)

    answer = await send(
        gateway, wa_id, "document", {"link": f"{files.url}/menus/autumn.pdf", "filename": "Menu.pdf", "caption": "Menu"}
    )
    assert answer.status_code == 200, answer.text

    [event] = [e for e in await ivy.inbox() if isinstance(e, AttachmentReceived)]
    assert (event.attachment["name"], event.attachment["mime"], event.text) == ("Menu.pdf", PDF, "Menu")
    saved = await ivy.save_attachment(event, tmp_path / "ivy-files")
    assert saved.read_bytes() == menu  # noqa: ASYNC240 - the test's own check
    assert MARKER not in blob_bytes(relay)


async def test_bad_media_is_refused_with_metas_codes(world, users, files):
    gateway, receiver = world
    ivy = await users.register("ivy")
    wa_id = await wa_id_of(ivy, receiver, gateway.phone_number_id)

    assert error_code(await upload(gateway, b"GIF89a" + MARKER, "image/gif")) == 131053  # not a type Meta takes
    assert error_code(await upload(gateway, file_bytes(5_000_001), "image/jpeg")) == 131053  # images: 5 MB
    assert error_code(await upload(gateway, file_bytes(100_001, b"RIFF\0\0\0\0WEBPVP8 "), "image/webp")) == 131053
    animated = file_bytes(300_000, ANIMATED_WEBP)  # an animated sticker may be 500 KB
    sticker = await upload(gateway, animated, "image/webp")
    assert sticker.status_code == 200, sticker.text
    async with gateway.api() as api:
        wrong = await api.post(
            f"/{gateway.phone_number_id}/media", data={"messaging_product": "sms", "type": PDF}, files={"file": b"x"}
        )
        assert error_code(wrong) == 100
        assert error_code(await api.post(f"/{gateway.phone_number_id}/media", json={"type": PDF})) == 100

    pdf = (await upload(gateway, file_bytes(1000, b"%PDF"), PDF)).json()["id"]
    assert error_code(await send(gateway, wa_id, "image", {"id": pdf})) == 131053  # an image message takes images
    assert error_code(await send(gateway, wa_id, "image", {"id": "1234567890123456"})) == 100  # no such media
    assert error_code(await send(gateway, wa_id, "image", {"id": pdf, "link": "https://example.com/a.jpg"})) == 100
    assert error_code(await send(gateway, wa_id, "audio", {"id": pdf, "caption": "no captions"})) == 100
    assert error_code(await send(gateway, wa_id, "image", {"link": "ftp://example.com/a.jpg"})) == 100

    # A link that cannot be used is Meta's failed status, 131053, as the fetch happens with the send.
    files.files["/big.jpg"] = ("image/jpeg", file_bytes(5_000_001))
    failures = []
    for link in (f"{files.url}/missing.jpg", f"{files.url}/big.jpg"):
        answer = await send(gateway, wa_id, "image", {"link": link})
        assert answer.status_code == 200, answer.text
        failures.append(answer.json()["messages"][0]["id"])

    def failed(r: Receiver) -> list[tuple[str, int]]:
        return sorted((m, e[0]["code"]) for m, s, e in r.statuses() if s == "failed" and m in failures)

    await receiver.wait_for(lambda r: len(failed(r)) == len(failures))
    assert failed(receiver) == sorted((m, 131053) for m in failures)
    assert [e for e in await ivy.inbox() if isinstance(e, AttachmentReceived)] == []


async def test_a_users_file_reaches_the_business_as_a_media_webhook_it_can_download(world, users, relay, tmp_path):
    gateway, receiver = world
    ivy = await users.register("ivy")
    receipt = tmp_path / "receipt.pdf"
    receipt.write_bytes(file_bytes(1_500_000, b"%PDF-1.4\n"))

    await ivy.send_file(gateway.phone_number_id, receipt, text="My receipt")

    [message] = await user_messages(receiver, "document")
    document = message["document"]
    assert document["mime_type"] == PDF and document["filename"] == "receipt.pdf"
    assert document["caption"] == "My receipt"
    assert document["sha256"] == hashlib.sha256(receipt.read_bytes()).hexdigest()  # noqa: ASYNC240
    async with gateway.api() as api:
        info = (await api.get(f"/{document['id']}")).json()
        assert info["file_size"] == receipt.stat().st_size  # noqa: ASYNC240
        assert (await api.get(info["url"])).content == receipt.read_bytes()  # noqa: ASYNC240

    rows = await server_rows(relay.database_url)
    assert_no_plaintext(rows, [MARKER.decode(errors="ignore"), "My receipt", "receipt.pdf"])
    assert MARKER not in blob_bytes(relay)
    # The gateway's database holds the webhook, not the file: the file is in its media folder.
    folder = gateway.home / "profiles" / "shop"
    database = b"".join(p.read_bytes() for p in folder.glob("*.db*"))
    assert database and MARKER not in database


async def test_the_command_line_sends_a_file_to_a_business_and_shows_its_media_with_the_business_label(
    world, relay, code_inbox, tmp_path
):
    gateway, receiver = world
    await register_profile(relay, code_inbox, gateway.home, "hal", "+14155550198")
    env = {**gateway.env, "COVE_PROFILE": "hal", "COLUMNS": "300"}  # one message, one line
    photo = tmp_path / "broken-cake.jpg"
    photo.write_bytes(file_bytes(50_000, b"\xff\xd8\xff"))

    sent = await asyncio.to_thread(run_cove, ["send", SHOP_PHONE, "It arrived like this", "--file", str(photo)], env)
    assert sent.returncode == 0, sent.stderr
    [message] = await user_messages(receiver, "image")
    assert message["image"]["caption"] == "It arrived like this" and message["image"]["mime_type"] == "image/jpeg"
    assert "filename" not in message["image"]  # Meta gives documents a filename, images none

    sorry = await upload(gateway, file_bytes(20_000, b"\x89PNG"), "image/png")
    answer = await send(gateway, message["from_user_id"], "image", {"id": sorry.json()["id"], "caption": "So sorry!"})
    assert answer.status_code == 200, answer.text
    shown = await asyncio.to_thread(run_cove, ["inbox"], env)
    assert shown.returncode == 0, shown.stderr
    line = next(x for x in shown.stdout.splitlines() if "So sorry!" in x)
    assert "[business]" in line and f"[file {sorry.json()['id']}.png, 20000 bytes]" in line
    saved = gateway.home / "profiles" / "hal" / "files" / f"{sorry.json()['id']}.png"
    assert saved.read_bytes()[:4] == b"\x89PNG"  # noqa: ASYNC240 - the test's own check


async def test_pywa_uploads_sends_and_downloads_media_through_the_gateway_unchanged(world, users, tmp_path):
    """The popular Python client (pywa 4.5, the issue's), with only its base URL changed."""
    pywa = pytest.importorskip("pywa")
    gateway, receiver = world
    ivy = await users.register("ivy")
    wa_id = await wa_id_of(ivy, receiver, gateway.phone_number_id)
    wa = pywa.WhatsApp(phone_id=gateway.phone_number_id, token=gateway.token, server=None)
    wa.api._session.base_url = f"{gateway.url}/v21.0"  # the one change a business makes
    photo = tmp_path / "cake.jpg"
    photo.write_bytes(file_bytes(40_000, b"\xff\xd8\xff"))

    media = await asyncio.to_thread(wa.upload_media, photo, mime_type="image/jpeg")
    # To her number: pywa reads today's wa_id format as a group's (helper ident's change fixes that).
    number = ivy.core.phone_number
    assert number and wa_id
    sent = await asyncio.to_thread(wa.send_image, number.lstrip("+"), media.id, caption="Fresh today")
    [event] = [e for e in await ivy.inbox() if isinstance(e, AttachmentReceived)]
    assert (event.client_message_id, event.text) == (sent.id, "Fresh today")

    receipt = tmp_path / "receipt.pdf"
    receipt.write_bytes(file_bytes(30_000, b"%PDF"))
    await ivy.send_file(gateway.phone_number_id, receipt)
    [message] = await user_messages(receiver, "document")
    url = await asyncio.to_thread(wa.get_media_url, message["document"]["id"])
    (tmp_path / "business").mkdir()
    saved = await asyncio.to_thread(url.download, path=tmp_path / "business", filename="receipt.pdf")
    assert saved.read_bytes() == receipt.read_bytes()  # noqa: ASYNC240 - the test's own check
