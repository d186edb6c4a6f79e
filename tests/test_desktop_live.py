"""The app's live hub (cove.desktop.live): each open page hears what changed after it subscribed, within bounds."""

from __future__ import annotations

from contextlib import aclosing

import pytest

from cove.desktop import live
from cove.desktop.live import CONNECTED, LiveHub


async def test_a_page_hears_it_is_subscribed_then_what_changed_and_a_slow_one_loses_the_oldest() -> None:
    hub = LiveHub()
    hub.publish("before")  # nobody listens yet: nobody hears it
    async with aclosing(hub.listen()) as page:
        assert await anext(page) == CONNECTED
        for i in range(live.QUEUE + 3):
            hub.publish(f"chat-{i}")
        heard = [await anext(page) for _ in range(live.QUEUE)]
    assert heard == [f"chat-{i}" for i in range(3, live.QUEUE + 3)]


async def test_past_the_page_limit_the_oldest_listener_is_dropped() -> None:
    hub = LiveHub()
    pages = [hub.listen() for _ in range(live.MAX_PAGES + 1)]
    for page in pages:
        assert await anext(page) == CONNECTED
    hub.publish("chats")
    with pytest.raises(StopAsyncIteration):  # the dropped page's stream ends
        await anext(pages[0])
    assert [await anext(page) for page in pages[1:]] == ["chats"] * live.MAX_PAGES
    for page in pages:
        await page.aclose()


async def test_closing_ends_every_listener_and_any_later_one() -> None:
    hub = LiveHub()
    page = hub.listen()
    assert await anext(page) == CONNECTED
    hub.publish("chats")
    hub.close()
    assert [what async for what in page] == ["chats"]
    assert [what async for what in hub.listen()] == []
