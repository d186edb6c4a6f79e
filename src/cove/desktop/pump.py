"""(skeleton: the chats helper owns the event pump)"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from cove.desktop.state import Desktop


@asynccontextmanager
async def running(desktop: Desktop) -> AsyncIterator[None]:
    yield
