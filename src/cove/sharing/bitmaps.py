"""Sets of account ordinals stored as compressed bitmap chunks of 65,536 ordinals (like Roaring's containers).

The disclosure log must answer "which accounts went out in batch B" and "was I in batch B" for a billion
accounts and a batch a day. One row per (batch, purpose, chunk) with a zlib-compressed bitset costs at most
8 KiB per 65,536 accounts disclosed (a few bytes when sparse), and looking one account up reads one chunk.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

import numpy as np

CHUNK_BITS = 16
CHUNK_SIZE = 1 << CHUNK_BITS


def encode(ordinals: np.ndarray) -> Iterator[tuple[int, bytes]]:
    """``(chunk, compressed bitset)`` for each chunk that holds at least one of ``ordinals``."""
    if ordinals.size == 0:
        return
    ordinals = np.unique(ordinals.astype(np.int64))
    chunks = ordinals >> CHUNK_BITS
    bounds = np.flatnonzero(np.diff(chunks)) + 1
    for part in np.split(ordinals, bounds):
        bits = np.zeros(CHUNK_SIZE, dtype=bool)
        bits[part & (CHUNK_SIZE - 1)] = True
        yield int(part[0] >> CHUNK_BITS), zlib.compress(np.packbits(bits).tobytes(), 6)


def decode(chunk: int, blob: bytes) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(zlib.decompress(blob), dtype=np.uint8))
    return np.flatnonzero(bits).astype(np.int64) + (chunk << CHUNK_BITS)


def decode_all(rows: Iterable[tuple[int, bytes]]) -> np.ndarray:
    parts = [decode(chunk, blob) for chunk, blob in rows]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def contains(blob: bytes, ordinal: int) -> bool:
    offset = ordinal & (CHUNK_SIZE - 1)
    return bool(zlib.decompress(blob)[offset >> 3] & (0x80 >> (offset & 7)))


def chunk_of(ordinal: int) -> int:
    return ordinal >> CHUNK_BITS
