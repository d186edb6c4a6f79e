"""A profile: one local identity (store, pickle key, relay URL) in its own folder, so several users can
run from one shell with ``--profile``."""

from __future__ import annotations

import os
import platform
import secrets
import shutil
import uuid
from pathlib import Path
from typing import Any

from cove import __version__
from cove.client.core import ClientCore
from cove.client.store import ClientStore

DEFAULT_SERVER = "http://127.0.0.1:8080"


def cove_home() -> Path:
    return Path(os.environ.get("COVE_HOME", Path.home() / ".cove"))


def _secret_file(path: Path, make: Any) -> str:
    """Read a secret file, creating it with owner-only permissions the first time."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(make())
    return path.read_text().strip()


def pickle_key(folder: Path) -> bytes:
    """The 32-byte key that encrypts this profile's Olm pickles: COVE_PICKLE_KEY (hex) or a 0600 key file."""
    configured = os.environ.get("COVE_PICKLE_KEY")
    raw = configured or _secret_file(folder / "pickle.key", lambda: secrets.token_hex(32))
    key = bytes.fromhex(raw)
    if len(key) != 32:
        raise ValueError("the pickle key must be 32 bytes (64 hex digits)")
    return key


def vendor_device_id(home: Path) -> str:
    """One id shared by every Cove profile on this machine, as one vendor's apps share an id on a phone."""
    return _secret_file(home / "vendor_device_id", lambda: str(uuid.uuid4()))


def device_info(home: Path) -> dict[str, str]:
    return {
        "model": f"{platform.machine() or 'unknown'} computer",
        "os_name": platform.system() or "unknown",
        "os_version": platform.release() or "unknown",
        "app_version": f"cove-cli {__version__}",
        "vendor_device_id": vendor_device_id(home),
    }


def profile_folder(name: str, home: Path | None = None) -> Path:
    return (home or cove_home()) / "profiles" / name


def open_profile(name: str, home: Path | None = None) -> ClientCore:
    home = home or cove_home()
    folder = profile_folder(name, home)
    folder.mkdir(parents=True, exist_ok=True)
    return ClientCore(ClientStore(folder / "state.db"), pickle_key(folder), device_info(home))


def remove_profile(core: ClientCore, name: str, home: Path | None = None) -> None:
    """Close the profile's store and delete its folder: the store, its key file, everything."""
    core.store.close()
    shutil.rmtree(profile_folder(name, home), ignore_errors=True)
