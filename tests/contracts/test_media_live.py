"""Media with a real relay and gateway, against Meta's reference: upload, retrieve, download and delete answer in
Meta's shapes, pywa 4.5.0's client does all four through the gateway and sends an uploaded image by id, and the
image reaches the user."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path

from contracts.harness import against, pywa_client
from contracts.reference import responses, sends
from cove.client.events import AttachmentReceived
from gateway_world import GatewayProcess, Receiver

# A 1x1 PNG and random bytes after it (the gateway may check a file's type from its first bytes).
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002"
    "0001e221bc330000000049454e44ae426082"
)


async def attachment(user, timeout: float = 20.0) -> AttachmentReceived:  # noqa: ANN001, ASYNC109
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in await user.inbox() if isinstance(e, AttachmentReceived)]
        if found:
            return found[0]
        await asyncio.sleep(0.1)
    raise AssertionError("the image never reached the user")


async def test_media_endpoints_answer_as_meta_and_pywa_uploads_sends_downloads_and_deletes(
    shop: tuple[GatewayProcess, Receiver], users, tmp_path: Path
) -> None:
    gateway, _ = shop
    biz = gateway.phone_number_id
    ivy = await users.register("ivy")
    await ivy.send_text(biz, "Show me the cake")
    image = PNG + os.urandom(2048)

    async with gateway.api() as api:
        form = {"messaging_product": "whatsapp", "type": "image/png"}
        uploaded = await api.post(f"/{biz}/media", data=form, files={"file": ("cake.png", image, "image/png")})
        assert uploaded.status_code == 200, uploaded.text
        assert against(responses.MediaUploaded, uploaded.json()) == []
        media_id = uploaded.json()["id"]
        info = await api.get(f"/{media_id}")
        assert info.status_code == 200, info.text
        assert against(responses.MediaInfo, info.json()) == []
        assert info.json()["sha256"] == hashlib.sha256(image).hexdigest()
        assert int(info.json()["file_size"]) == len(image)
        downloaded = await api.get(info.json()["url"])
        assert downloaded.status_code == 200 and downloaded.content == image
        sent = await api.post(f"/{biz}/messages", json=sends.media_by_id(ivy.core.phone_number, "image", media_id))
        assert sent.status_code == 200, sent.text
        assert against(responses.SendResponse, sent.json()) == []
        deleted = await api.delete(f"/{media_id}")
        assert deleted.status_code == 200 and against(responses.Success, deleted.json()) == []
        gone = await api.get(f"/{media_id}")
        assert gone.status_code >= 400 and against(responses.GraphError, gone.json()) == []
    assert (await attachment(ivy)).attachment["mime"] == "image/png"

    # pywa's client: upload, URL, download, send by id, delete, through the gateway.
    wa = pywa_client(gateway)
    path = tmp_path / "cake.png"
    path.write_bytes(image)
    uploaded_by_pywa = await asyncio.to_thread(wa.upload_media, path, mime_type="image/png")
    url = await asyncio.to_thread(wa.get_media_url, uploaded_by_pywa.id)
    assert url.sha256 == hashlib.sha256(image).hexdigest() and url.mime_type == "image/png"
    assert await asyncio.to_thread(wa.get_media_bytes, url.url) == image
    sent_by_pywa = await asyncio.to_thread(wa.send_image, ivy.core.phone_number, uploaded_by_pywa.id, caption="Cake")
    assert sent_by_pywa.id.startswith("wamid.")
    assert await asyncio.to_thread(wa.delete_media, uploaded_by_pywa.id)
