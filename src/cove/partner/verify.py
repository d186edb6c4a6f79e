"""Checking a batch before anything is applied: its signature, manifest, files and place in the chain.

A batch is checked completely before the store is touched: the signature, schema, recipient and key, every file's
hash, row count, Parquet schema and contents, then its place in the chain. Every refusal is a
:class:`wire.BadBatch` with a machine-readable code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from cove.partner.lineage import PER_PURPOSE_REASONS, sql_strings
from cove.sharing import wire
from cove.sharing.wire import BadBatch


def read_manifest(batch_dir: Path, trust: wire.TrustBundle) -> wire.Manifest:
    """The batch's manifest once its signature, schema, recipient, signing key and file names check out.

    File names are checked here, before any file is fetched or opened, so a manifest can never make the partner
    read or write outside the batch directory.
    """
    try:
        data = (batch_dir / wire.MANIFEST_FILE).read_bytes()
        signature = (batch_dir / wire.SIGNATURE_FILE).read_text().strip()
    except FileNotFoundError as exc:
        raise BadBatch("bad_manifest", f"{batch_dir}: missing {Path(exc.filename).name}") from None
    manifest = wire.verify_manifest(trust.public_key(), data, signature)
    if manifest.recipient != trust.recipient:
        raise BadBatch(
            "wrong_recipient", f"batch {manifest.batch_id} is for {manifest.recipient!r}, this is {trust.recipient!r}"
        )
    expected_key = wire.key_id(trust.public_key())
    if manifest.signing_key_id != expected_key:
        raise BadBatch(
            "unknown_key",
            f"batch {manifest.batch_id} names signing key {manifest.signing_key_id}, "
            f"the trust bundle's key is {expected_key}",
        )
    ids = [purpose.id for purpose in manifest.purposes]
    if len(set(ids)) != len(ids):
        raise BadBatch("bad_manifest", f"batch {manifest.batch_id} lists a purpose twice: {sorted(ids)}")
    for purpose in manifest.purposes:
        if purpose.usage is not None and wire.CATEGORY_USAGE not in purpose.categories:
            raise BadBatch(
                "unknown_schema", f"purpose {purpose.id} carries usage counters but does not declare the category"
            )
    for entry, expected in _expected_files(manifest):
        if entry.name != expected:
            raise BadBatch("bad_file", f"the manifest names file {entry.name!r} where {expected!r} belongs")
    return manifest


def _expected_files(manifest: wire.Manifest) -> Iterator[tuple[wire.FileEntry, str]]:
    yield manifest.revocations, wire.REVOCATIONS_FILE
    for purpose in manifest.purposes:
        yield purpose.profile, wire.profile_file(purpose.id)
        if purpose.usage is not None:
            yield purpose.usage, wire.usage_file(purpose.id)


def _expected_schemas(manifest: wire.Manifest) -> Iterator[tuple[str, pa.Schema]]:
    yield wire.REVOCATIONS_FILE, wire.REVOCATION_SCHEMA
    for purpose in manifest.purposes:
        yield purpose.profile.name, wire.profile_schema(purpose.categories, purpose.pseudonymised)
        if purpose.usage is not None:
            yield purpose.usage.name, wire.USAGE_SCHEMA


def verify_files(batch_dir: Path, manifest: wire.Manifest) -> None:
    """Every file's hash and row count (the signature covers the data through them), then every Parquet schema."""
    for entry in manifest.files():
        path = batch_dir / entry.name
        if not path.is_file():
            raise BadBatch("bad_file", f"{entry.name}: missing")
        if wire.file_sha256(path) != entry.sha256:
            raise BadBatch("bad_file", f"{entry.name}: SHA-256 does not match the manifest")
        try:
            rows = pq.ParquetFile(path).metadata.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise BadBatch("bad_file", f"{entry.name}: not a Parquet file ({exc})") from None
        if rows != entry.rows:
            raise BadBatch("bad_file", f"{entry.name}: {rows} rows, the manifest says {entry.rows}")
    for name, expected in _expected_schemas(manifest):
        actual = pq.read_schema(batch_dir / name)
        if _columns(actual) != _columns(expected):
            raise BadBatch(
                "unknown_schema",
                f"{name}: columns {_columns(actual)} are not schema {wire.SCHEMA_VERSION}'s {_columns(expected)}",
            )


def _columns(schema: pa.Schema) -> list[tuple[str, str]]:
    """Names and types in order; nullability and metadata are the writer's business."""
    return [(field.name, str(field.type)) for field in schema]


def verify_contents(conn: duckdb.DuckDBPyConnection, batch_dir: Path, manifest: wire.Manifest) -> None:
    """What a schema cannot say: keys present and unique, revocation reasons known and complete."""
    _refuse_if(
        conn,
        f"""SELECT count(*) FROM read_parquet($path)
            WHERE event_id IS NULL OR subject IS NULL OR reason IS NULL
               OR reason NOT IN ({sql_strings(wire.RevocationReason)})
               OR (reason IN ({sql_strings(PER_PURPOSE_REASONS)}) AND purpose IS NULL)""",
        str(batch_dir / wire.REVOCATIONS_FILE),
        "revocations without an event id, subject or known reason, or withdrawals without a purpose",
    )
    for purpose in manifest.purposes:
        _refuse_if(
            conn,
            """SELECT count(*) - count(DISTINCT subject) + count(*) FILTER (WHERE subject IS NULL)
               FROM read_parquet($path)""",
            str(batch_dir / purpose.profile.name),
            "rows without a subject or a subject twice",
        )
        if purpose.usage is not None:
            _refuse_if(
                conn,
                """SELECT count(*) - count(DISTINCT (subject, day))
                        + count(*) FILTER (WHERE subject IS NULL OR day IS NULL OR messages_sent IS NULL
                                           OR messages_received IS NULL OR app_opens IS NULL)
                   FROM read_parquet($path)""",
                str(batch_dir / purpose.usage.name),
                "counters without a subject, day or value, or a (subject, day) twice",
            )


def _refuse_if(conn: duckdb.DuckDBPyConnection, count_sql: str, path: str, problem: str) -> None:
    (count,) = conn.execute(count_sql, {"path": path}).fetchone()
    if count:
        raise BadBatch("bad_file", f"{Path(path).name}: {problem} ({count})")


def manifest_sha256(batch_dir: Path) -> str:
    return hashlib.sha256((batch_dir / wire.MANIFEST_FILE).read_bytes()).hexdigest()


def erasure_ids(conn: duckdb.DuckDBPyConnection, batch_dir: Path) -> list[str]:
    rows = conn.execute(
        "SELECT DISTINCT event_id FROM read_parquet($path) WHERE reason = 'erased' ORDER BY event_id",
        {"path": str(batch_dir / wire.REVOCATIONS_FILE)},
    ).fetchall()
    return [event_id for (event_id,) in rows]


def check_chain(conn: duckdb.DuckDBPyConnection, manifest: wire.Manifest) -> None:
    last = conn.execute("SELECT batch_id, sequence FROM applied_batches ORDER BY sequence DESC LIMIT 1").fetchone()
    expected_sequence, expected_previous = (1, None) if last is None else (last[1] + 1, last[0])
    if manifest.sequence != expected_sequence or manifest.previous_batch_id != expected_previous:
        raise BadBatch(
            "chain_gap",
            f"batch {manifest.batch_id} is #{manifest.sequence} after {manifest.previous_batch_id!r}; "
            f"the store expects #{expected_sequence} after {expected_previous!r}",
        )
