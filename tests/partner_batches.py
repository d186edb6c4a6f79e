"""A test-only messenger: signed batch chains in the wire format, from Python rows, using cove.sharing.wire only.

The real gateway (cove.sharing.gateway) writes the same format; this one stays small so partner tests can build
exactly the batch a case needs, including broken ones (:meth:`Messenger.resign` edits and re-signs a manifest).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cove.sharing import wire

NOW_MS = 1_760_000_000_000  # 2025-10-09 08:53 UTC
TODAY = dt.date(2025, 10, 9)
DAY_MS = 86_400_000

ADS_CATEGORIES = [wire.CATEGORY_DEVICE_MODEL, wire.CATEGORY_DEVICE_OS, wire.CATEGORY_LAST_SEEN]
LINKING_CATEGORIES = [wire.CATEGORY_PHONE, wire.CATEGORY_DEVICE_MODEL, wire.CATEGORY_VENDOR_DEVICE_ID]
SAFETY_CATEGORIES = [wire.CATEGORY_PHONE, wire.CATEGORY_SAFETY]


@dataclass
class Purpose:
    id: str
    use: wire.Use
    categories: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    usage: list[dict[str, Any]] | None = None
    pseudonymised: bool = True
    retention_days: int | None = None


@dataclass
class Revocation:
    subject: str
    reason: wire.RevocationReason
    purpose: str | None = None
    event_id: str | None = None  # default: derived from the other fields
    at_ms: int = NOW_MS

    def row(self) -> dict[str, Any]:
        event_id = self.event_id or f"ev-{self.reason}-{self.subject}-{self.purpose}"
        return {"event_id": event_id, "subject": self.subject, "purpose": self.purpose, "reason": str(self.reason)}


class Messenger:
    """One messenger key and one recipient's chain: each :meth:`write` is the next batch."""

    def __init__(self, recipient: str = "parent") -> None:
        self.recipient = recipient
        self.key = Ed25519PrivateKey.generate()
        self.phone_key = os.urandom(32)
        self.sequence = 0
        self.previous: str | None = None

    @property
    def trust(self) -> wire.TrustBundle:
        return wire.TrustBundle(
            recipient=self.recipient,
            messenger_public_key=_b64(wire.public_key_bytes(self.key.public_key())),
            phone_hash_key=self.phone_key.hex(),
        )

    def phone_hash(self, e164: str) -> str:
        return wire.phone_hash(self.phone_key, e164)

    def write(
        self,
        root: Path,
        purposes: Sequence[Purpose] = (),
        revocations: Sequence[Revocation] = (),
        *,
        kind: str = "incremental",
        as_of_ms: int = NOW_MS,
        tables: dict[str, pa.Table] | None = None,
    ) -> Path:
        """Write and sign the next batch under ``root/<batch_id>``; ``tables`` replaces a file's content by name."""
        self.sequence += 1
        batch_id = f"{self.recipient}-{self.sequence:06d}"
        batch_dir = root / batch_id
        batch_dir.mkdir(parents=True)
        tables = tables or {}

        def put(name: str, table: pa.Table) -> wire.FileEntry:
            table = tables.get(name, table)
            pq.write_table(table, batch_dir / name)
            return wire.FileEntry(name=name, rows=table.num_rows, sha256=wire.file_sha256(batch_dir / name))

        entries = []
        for purpose in purposes:
            schema = wire.profile_schema(purpose.categories, purpose.pseudonymised)
            usage = None
            if purpose.usage is not None:
                usage = put(wire.usage_file(purpose.id), pa.Table.from_pylist(purpose.usage, schema=wire.USAGE_SCHEMA))
            entries.append(
                wire.PurposeEntry(
                    id=purpose.id,
                    use=purpose.use,
                    legal_basis="consent",
                    retention_days=purpose.retention_days,
                    categories=purpose.categories,
                    pseudonymised=purpose.pseudonymised,
                    profile=put(wire.profile_file(purpose.id), pa.Table.from_pylist(purpose.rows, schema=schema)),
                    usage=usage,
                )
            )
        revoked = pa.Table.from_pylist(
            [r.row() | {"at_ms": r.at_ms} for r in revocations], schema=wire.REVOCATION_SCHEMA
        )
        manifest = wire.Manifest(
            batch_id=batch_id,
            sequence=self.sequence,
            previous_batch_id=self.previous,
            recipient=self.recipient,
            kind=kind,
            created_at_ms=as_of_ms,
            as_of_ms=as_of_ms,
            since_ms=None,
            policy_versions=["test-1"],
            purposes=entries,
            revocations=put(wire.REVOCATIONS_FILE, revoked),
            signing_key_id=wire.key_id(self.key.public_key()),
        )
        self._sign(batch_dir, wire.manifest_bytes(manifest))
        self.previous = batch_id
        return batch_dir

    def resign(self, batch_dir: Path, edit: Callable[[dict[str, Any]], None]) -> None:
        """Edit the manifest as JSON (it may become invalid on purpose) and sign it again with the messenger key."""
        raw = json.loads((batch_dir / wire.MANIFEST_FILE).read_bytes())
        edit(raw)
        self._sign(batch_dir, wire.canonical_json(raw))

    def _sign(self, batch_dir: Path, data: bytes) -> None:
        (batch_dir / wire.MANIFEST_FILE).write_bytes(data)
        (batch_dir / wire.SIGNATURE_FILE).write_text(wire.sign(self.key, data))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def ads_row(subject: str, os_name: str = "Android", model: str = "Pixel 8", last_seen: dt.date = TODAY) -> dict:
    return {
        "subject": subject,
        "device_model": model,
        "os_name": os_name,
        "os_version": "14",
        "last_seen_day": last_seen,
    }


def store_snapshot(conn: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    """Every row of every table of the store, sorted, to compare a store before and after."""
    tables = conn.execute("SELECT table_name FROM duckdb_tables() WHERE NOT temporary ORDER BY 1").fetchall()
    return {name: sorted(conn.execute(f"SELECT * FROM {name}").fetchall(), key=repr) for (name,) in tables}
