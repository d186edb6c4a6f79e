"""Server secrets kept as files in the data directory, and the keys derived from them by label.

One random secret per capability (``sharing.key``, ``business.key``), mode 0600: one file to back up, and every
key it needs derived, so nothing per recipient or per business can be lost.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path


def read_or_create(path: Path) -> bytes:
    """The 32-byte secret at ``path``, created on first use; safe when two processes race to create it."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process (the relay, an operator command) made it first
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def write_secret(path: Path, data: bytes, *, replace: bool = False) -> None:
    """Write ``data`` to ``path``, readable by its owner only (0600); an existing file is an error unless ``replace``.

    Raises FileExistsError rather than overwrite: a secret handed out once must not change behind its holder's back.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    target = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp") if replace else path
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    if replace:
        os.replace(target, path)


def derive(secret: bytes, label: str) -> bytes:
    return hmac.new(secret, label.encode(), hashlib.sha256).digest()
