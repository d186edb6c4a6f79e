"""Proof-of-work challenges, shared by the relay (which sets them) and the SDK (which solves them).

A suspicious registration, or an account the detector put at the ``challenge`` step, is asked to prove work
instead of being refused: find a ``nonce`` such that SHA-256 of ``seed:nonce`` starts with ``bits`` zero bits.
A person's device pays it once, in about a second at the default difficulty (2**20 hashes on average); a farm
registering thousands of numbers or a bot sending thousands of messages pays it thousands of times. The seed is
the relay's, bound to who is challenged and until when (cove.safety.challenges), so a solution cannot be reused
by anyone else or later.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from itertools import count

ALGORITHM = "sha256-leading-zero-bits"
MAX_BITS = 32  # beyond this a phone would work for hours: a relay that asks for more is broken, not strict
MAX_NONCE_LENGTH = 20  # decimal digits: more than any solver counts to


def _digest(seed: str, nonce: str) -> bytes:
    return hashlib.sha256(f"{seed}:{nonce}".encode()).digest()


def leading_zero_bits(digest: bytes) -> int:
    value = int.from_bytes(digest, "big")
    return len(digest) * 8 - value.bit_length()


def check(seed: str, bits: int, nonce: str) -> bool:
    """Whether ``nonce`` solves the challenge (a nonce is decimal digits, as :func:`solve` makes them)."""
    if not (0 < len(nonce) <= MAX_NONCE_LENGTH and nonce.isascii() and nonce.isdigit()):
        return False
    return leading_zero_bits(_digest(seed, nonce)) >= bits


def solve(seed: str, bits: int, progress: Callable[[int], None] | None = None) -> str:
    """Find a nonce; ``progress`` is told the hashes tried every 65,536 (for a progress bar)."""
    if not 0 < bits <= MAX_BITS:
        raise ValueError(f"a challenge of {bits} bits is out of range (1 to {MAX_BITS})")
    prefix = f"{seed}:".encode()
    for n in count():
        nonce = str(n).encode()
        digest = hashlib.sha256(prefix + nonce).digest()
        if leading_zero_bits(digest) >= bits:
            return nonce.decode()
        if progress is not None and n & 0xFFFF == 0xFFFF:
            progress(n + 1)
    raise AssertionError("unreachable")
