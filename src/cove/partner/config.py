"""Where the partner service keeps its store and the messenger's trust bundle (environment, then defaults)."""

from __future__ import annotations

import os
from pathlib import Path

from cove.sharing.wire import TrustBundle


def store_path() -> Path:
    return Path(os.environ.get("COVE_PARTNER_STORE", "var/partner/partner.duckdb"))


def trust_path() -> Path:
    return Path(os.environ.get("COVE_PARTNER_TRUST", "var/partner/trust.json"))


def load_trust(path: Path | None = None) -> TrustBundle:
    """The bundle ``cove share keys`` wrote; FileNotFoundError or a pydantic ValidationError when unusable."""
    return TrustBundle.model_validate_json((path or trust_path()).read_text())
