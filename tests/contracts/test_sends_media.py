"""Requests, one way, for media sends by link (image, video, audio, document, sticker), built as Meta's reference
and pywa 4.5.0 build them, are taken by the gateway's parser. Sends by id need an id the gateway issued: those are
in test_media_live.py."""

from __future__ import annotations

import pytest
from pywa import WhatsApp

from contracts.harness import pywa_requests, refusal
from contracts.reference import sends

TO = "+16505551234"


@pytest.mark.parametrize("kind", sends.MEDIA_TYPES)
def test_meta_examples_by_link_parse(kind: str) -> None:
    assert refusal(sends.media_by_link(TO, kind)) is None


def _calls(wa: WhatsApp) -> None:
    to, link = "16505551234", sends.LINK
    wa.send_image(to, f"{link}/photo.jpg", caption="The best succulent ever?")
    wa.send_video(to, f"{link}/clip.mp4", caption="A succulent eclipse!")
    wa.send_audio(to, f"{link}/note.ogg")
    wa.send_document(to, f"{link}/invoice.pdf", filename="invoice.pdf", caption="Your invoice")
    wa.send_sticker(to, f"{link}/s.webp")


def test_the_media_sends_pywa_builds_parse() -> None:
    bodies = pywa_requests(_calls)
    assert [b["type"] for b in bodies] == list(sends.MEDIA_TYPES)
    assert {b["type"]: refusal(b) for b in bodies} == dict.fromkeys(sends.MEDIA_TYPES)
