"""The pure rules of attachment transfers: what an upload request may add, and which bytes a Range asks for."""

from __future__ import annotations

import re

_RANGE = re.compile(r"^bytes=([0-9]{1,15})-([0-9]{1,15})?$")


class RangeNotSatisfiable(ValueError):
    """A Range that starts at or beyond the end of the blob, or ends before it starts."""


class WrongOffset(ValueError):
    def __init__(self, expected: int) -> None:
        super().__init__(f"the upload continues at byte {expected}")
        self.expected = expected


def upload_room(size: int, received: int, offset: int, max_request_bytes: int) -> int:
    """The bytes one upload request starting at ``offset`` may carry, when the blob holds ``received`` of ``size``
    bytes; raises :class:`WrongOffset` unless the request continues exactly where the blob ends."""
    if offset != received or received >= size:
        raise WrongOffset(received)
    return min(max_request_bytes, size - received)


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive ``(first, last)`` bytes of one ``bytes=first-[last]`` range, ``None`` for the whole blob:
    without a Range, or with one of another form, which a server may ignore (RFC 9110, 14.2). A last byte beyond
    the end means the end (14.1.2)."""
    match = _RANGE.fullmatch(header) if header is not None else None
    if match is None:
        return None
    first = int(match[1])
    last = min(int(match[2]), size - 1) if match[2] else size - 1
    if first >= size or last < first:
        raise RangeNotSatisfiable(f"the blob has {size} bytes: bytes {first}-{last} are not in it")
    return first, last
