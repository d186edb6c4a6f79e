"""Applying the messenger's signed batches to the partner store, and forgetting what the partner may no longer hold.

A batch is checked completely before the store is touched (signature, schema, recipient and key, every file's
hash, row count, Parquet schema and contents, then its place in the chain), and applied in one DuckDB
transaction, so a rejected or interrupted batch leaves the store exactly as it was. Re-applying a batch that is
already in ``applied_batches`` changes nothing, which makes at-least-once delivery (a re-run directory ingest,
a NATS redelivery) harmless.

Every deletion (a revocation, a ``full`` batch dropping a subject, the retention sweep) goes through
:func:`cove.partner.lineage.forget`, which also deletes, in the same transaction, every row the partner derived
from what it forgets.

Per-batch work is set-based: each file is read with DuckDB's ``read_parquet`` in a handful of statements, never
row by row in Python, because a batch can carry a million rows.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import nats
import pyarrow as pa
import pyarrow.parquet as pq
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig
from nats.js.errors import BucketNotFoundError, ObjectNotFoundError

from cove.partner.lineage import (
    PER_PURPOSE_REASONS,
    SweepReport,
    forget,
    forget_changed_uses,
    revoke,
    sql_strings,
    stash_links_of_banned,
    sweep,
)
from cove.partner.safety import SafetyReport, apply_safety_signals
from cove.sharing import wire
from cove.sharing.wire import BadBatch

log = logging.getLogger(__name__)

NATS_FETCH_TIMEOUT_S = 1.0
NATS_ACK_WAIT_S = 600.0  # a million-row batch must be applied before JetStream redelivers it

# Every data column of shared_profiles; a purpose fills the ones its categories declare, the rest are NULL.
_PROFILE_DATA_COLUMNS = [name for fields in wire.PROFILE_FIELDS.values() for name in fields]

OnReport = Callable[["IngestReport"], None]


@dataclass(frozen=True)
class IngestReport:
    """What one batch did; ``already_applied`` batches changed nothing and carry no sweep or safety result."""

    recipient: str
    batch_id: str
    sequence: int
    kind: str
    already_applied: bool
    applied_at_ms: int
    rows_applied: int
    revocations_applied: int
    erasures: list[str]
    sweep: SweepReport | None = None
    safety: SafetyReport | None = None

    def ack(self) -> wire.Ack:
        return wire.Ack(
            recipient=self.recipient,
            batch_id=self.batch_id,
            applied_at_ms=self.applied_at_ms,
            erasures=self.erasures,
        )


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """One DuckDB transaction: COMMIT on success, ROLLBACK on any error."""
    conn.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# --- verification ----------------------------------------------------------------------------------------


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


def _verify_files(batch_dir: Path, manifest: wire.Manifest) -> None:
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


def _verify_contents(conn: duckdb.DuckDBPyConnection, batch_dir: Path, manifest: wire.Manifest) -> None:
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


def _manifest_sha256(batch_dir: Path) -> str:
    return hashlib.sha256((batch_dir / wire.MANIFEST_FILE).read_bytes()).hexdigest()


def _erasure_ids(conn: duckdb.DuckDBPyConnection, batch_dir: Path) -> list[str]:
    rows = conn.execute(
        "SELECT DISTINCT event_id FROM read_parquet($path) WHERE reason = 'erased' ORDER BY event_id",
        {"path": str(batch_dir / wire.REVOCATIONS_FILE)},
    ).fetchall()
    return [event_id for (event_id,) in rows]


def _check_chain(conn: duckdb.DuckDBPyConnection, manifest: wire.Manifest) -> None:
    last = conn.execute("SELECT batch_id, sequence FROM applied_batches ORDER BY sequence DESC LIMIT 1").fetchone()
    expected_sequence, expected_previous = (1, None) if last is None else (last[1] + 1, last[0])
    if manifest.sequence != expected_sequence or manifest.previous_batch_id != expected_previous:
        raise BadBatch(
            "chain_gap",
            f"batch {manifest.batch_id} is #{manifest.sequence} after {manifest.previous_batch_id!r}; "
            f"the store expects #{expected_sequence} after {expected_previous!r}",
        )


# --- applying --------------------------------------------------------------------------------------------


def apply_batch(conn: duckdb.DuckDBPyConnection, batch_dir: Path, trust: wire.TrustBundle, now_ms: int) -> IngestReport:
    """Verify the batch in ``batch_dir`` and apply it in one transaction. Raises :class:`wire.BadBatch`."""
    manifest = read_manifest(batch_dir, trust)
    _verify_files(batch_dir, manifest)
    _verify_contents(conn, batch_dir, manifest)
    manifest_sha = _manifest_sha256(batch_dir)
    erasures = _erasure_ids(conn, batch_dir)
    applied = conn.execute(
        "SELECT manifest_sha256, applied_at_ms, rows_applied, revocations_applied FROM applied_batches "
        "WHERE batch_id = ?",
        [manifest.batch_id],
    ).fetchone()
    if applied is not None:
        if applied[0] != manifest_sha:
            raise BadBatch("chain_gap", f"batch {manifest.batch_id} was applied before with a different manifest")
        return _report(manifest, True, applied[1], applied[2], applied[3], erasures)
    _check_chain(conn, manifest)

    with transaction(conn):
        forget_changed_uses(conn, manifest)
        _record_purposes(conn, manifest)
        links_of_banned = stash_links_of_banned(conn, batch_dir)
        revocations = revoke(conn, batch_dir, manifest, now_ms)
        rows = sum(_apply_purpose(conn, batch_dir, manifest, purpose) for purpose in manifest.purposes)
        swept = sweep(conn, now_ms)
        safety = apply_safety_signals(conn, trust, extra_links=links_of_banned)
        conn.execute(f"DROP TABLE {links_of_banned}")
        conn.execute(
            "INSERT INTO applied_batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                manifest.batch_id,
                manifest.sequence,
                manifest.recipient,
                manifest.kind,
                manifest.as_of_ms,
                now_ms,
                manifest_sha,
                rows,
                revocations,
            ],
        )
    return _report(manifest, False, now_ms, rows, revocations, erasures, swept, safety)


def _report(
    manifest: wire.Manifest,
    already_applied: bool,
    applied_at_ms: int,
    rows: int,
    revocations: int,
    erasures: list[str],
    swept: SweepReport | None = None,
    safety: SafetyReport | None = None,
) -> IngestReport:
    return IngestReport(
        recipient=manifest.recipient,
        batch_id=manifest.batch_id,
        sequence=manifest.sequence,
        kind=manifest.kind,
        already_applied=already_applied,
        applied_at_ms=applied_at_ms,
        rows_applied=rows,
        revocations_applied=revocations,
        erasures=erasures,
        sweep=swept,
        safety=safety,
    )


def _record_purposes(conn: duckdb.DuckDBPyConnection, manifest: wire.Manifest) -> None:
    for purpose in manifest.purposes:
        conn.execute(
            "INSERT OR REPLACE INTO shared_purposes VALUES (?, ?, ?, ?, ?, ?)",
            [
                purpose.id,
                str(purpose.use),
                purpose.legal_basis,
                purpose.retention_days,
                purpose.categories,
                manifest.batch_id,
            ],
        )


def _apply_purpose(
    conn: duckdb.DuckDBPyConnection, batch_dir: Path, manifest: wire.Manifest, purpose: wire.PurposeEntry
) -> int:
    """Upsert a purpose's profile and usage rows (a ``full`` batch first forgets whoever it no longer carries).

    Subjects erased by this very batch are never written back: an erased account cannot come back. Other
    revocations were applied first, so a row the same batch carries again (consent given anew) stands.
    Returns the number of rows written.
    """
    profile = str(batch_dir / purpose.profile.name)
    params = {
        "purpose": purpose.id,
        "batch_id": manifest.batch_id,
        "as_of": manifest.as_of_ms,
        "revocations": str(batch_dir / wire.REVOCATIONS_FILE),
    }
    not_erased = "subject NOT IN (SELECT subject FROM read_parquet($revocations) WHERE reason = 'erased')"
    if manifest.kind == "full":
        forget(
            conn,
            """SELECT purpose, subject FROM shared_profiles
               WHERE purpose = $purpose AND subject NOT IN (SELECT subject FROM read_parquet($path))""",
            {"purpose": purpose.id, "path": profile},
        )
        _drop_absent_usage(conn, purpose.id, batch_dir / purpose.usage.name if purpose.usage else None)
    present = set(wire.profile_columns(purpose.categories, purpose.pseudonymised))
    selected = ", ".join(name if name in present else f"NULL AS {name}" for name in _PROFILE_DATA_COLUMNS)
    (rows,) = conn.execute(
        f"""INSERT OR REPLACE INTO shared_profiles
                (purpose, subject, {", ".join(_PROFILE_DATA_COLUMNS)}, batch_id, received_at_ms)
            SELECT $purpose, subject, {selected}, $batch_id, $as_of FROM read_parquet($path) WHERE {not_erased}""",
        params | {"path": profile},
    ).fetchone()
    if purpose.usage is not None:
        (usage_rows,) = conn.execute(
            f"""INSERT OR REPLACE INTO shared_usage
                SELECT $purpose, subject, day, messages_sent, messages_received, app_opens, $batch_id, $as_of
                FROM read_parquet($path) WHERE {not_erased}""",
            params | {"path": str(batch_dir / purpose.usage.name)},
        ).fetchone()
        rows += usage_rows
    return rows


def _drop_absent_usage(conn: duckdb.DuckDBPyConnection, purpose: str, usage: Path | None) -> None:
    """A full batch replaces a purpose's counters: delete those its usage file no longer carries, and only those.

    The rest is upserted after. Deleting everything first would be simpler but slow: DuckDB pays ~50 µs per row
    deleted from a table with a VARCHAR primary key, while upserting an unchanged row is cheap.
    """
    if usage is None:
        conn.execute("DELETE FROM shared_usage WHERE purpose = ?", [purpose])
        return
    conn.execute(
        """DELETE FROM shared_usage s WHERE purpose = $purpose
           AND NOT EXISTS (SELECT 1 FROM read_parquet($path) f WHERE f.subject = s.subject AND f.day = s.day)""",
        {"purpose": purpose, "path": str(usage)},
    )


# --- drivers ---------------------------------------------------------------------------------------------


def write_ack(sink: Path, ack: wire.Ack) -> Path:
    """Write ``<sink>/acks/<batch_id>.json`` atomically (the messenger may be polling for it)."""
    path = sink / wire.ACKS_DIR / f"{ack.batch_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_bytes(_ack_bytes(ack))
    partial.replace(path)
    return path


def _ack_bytes(ack: wire.Ack) -> bytes:
    return wire.canonical_json(ack.model_dump(mode="json"))


def ingest_directory(
    conn: duckdb.DuckDBPyConnection,
    path: Path,
    trust: wire.TrustBundle,
    now_ms: int,
    on_report: OnReport | None = None,
) -> list[IngestReport]:
    """Apply one batch directory, or every pending batch under a sink directory in sequence order, with acks.

    A batch already applied whose ack exists is skipped without re-reading its files; one whose ack is missing
    (the process stopped between commit and ack) is re-verified and acknowledged again. ``on_report`` hears of
    each batch as it is done, so a caller can show progress before a later batch fails.
    """
    if (path / wire.MANIFEST_FILE).exists():
        batches, sink = [path], path.parent
    else:
        batches, sink = _pending_batches(conn, path), path
    reports = []
    for batch_dir in batches:
        report = apply_batch(conn, batch_dir, trust, now_ms)
        write_ack(sink, report.ack())
        reports.append(report)
        if on_report is not None:
            on_report(report)
    return reports


def _pending_batches(conn: duckdb.DuckDBPyConnection, sink: Path) -> list[Path]:
    applied = {batch_id for (batch_id,) in conn.execute("SELECT batch_id FROM applied_batches").fetchall()}
    pending: list[tuple[int, Path]] = []
    for manifest_path in sink.glob(f"*/{wire.MANIFEST_FILE}"):
        try:  # unverified: only to order and skip; apply_batch verifies everything
            raw = json.loads(manifest_path.read_bytes())
            batch_id, sequence = str(raw["batch_id"]), int(raw["sequence"])
        except (ValueError, KeyError, TypeError):
            raise BadBatch("bad_manifest", f"{manifest_path}: not a readable manifest") from None
        if batch_id in applied and (sink / wire.ACKS_DIR / f"{batch_id}.json").exists():
            continue
        pending.append((sequence, manifest_path.parent))
    return [batch_dir for _, batch_dir in sorted(pending)]


async def ingest_nats(
    conn: duckdb.DuckDBPyConnection,
    trust: wire.TrustBundle,
    url: str,
    follow: bool = False,
    on_report: OnReport | None = None,
) -> list[IngestReport]:
    """Consume the recipient's batches from JetStream with a durable pull consumer, applying each in order.

    A message is acked only after its batch committed and its Ack was published: a crash redelivers it and
    :func:`apply_batch` skips it. A bad batch is terminated (it never becomes good) and raised: the chain stays
    broken until an operator acts. Any other failure naks the message so the next run starts with it. Without
    ``follow``, returns once no message arrives for about a second.
    """
    nc = await nats.connect(
        url,
        connect_timeout=5,
        # Following is a daemon's job: wait for NATS, and out its restarts, forever. A one-off run gives up soon
        # (nats-py reads 0 as "forever" too, so 1: one retry).
        allow_reconnect=follow,
        max_reconnect_attempts=-1 if follow else 1,
        error_cb=_log_nats_error,
    )
    try:
        js = nc.jetstream()
        await wire.ensure_nats_streams(js)
        subscription = await js.pull_subscribe(
            wire.nats_batch_subject(trust.recipient),
            durable=f"partner-{trust.recipient}",
            stream=wire.NATS_STREAM,
            config=ConsumerConfig(ack_wait=NATS_ACK_WAIT_S, max_ack_pending=1),
        )
        reports = []
        while True:
            try:
                (message,) = await subscription.fetch(1, timeout=NATS_FETCH_TIMEOUT_S)
            except TimeoutError:
                if follow:
                    continue
                return reports
            try:
                with tempfile.TemporaryDirectory(prefix="cove-batch-") as tmp:
                    await _download_batch(js, message, Path(tmp), trust)
                    report = await asyncio.to_thread(apply_batch, conn, Path(tmp), trust, time.time_ns() // 1_000_000)
            except BadBatch:
                await message.term()
                raise
            except Exception:
                await message.nak()
                raise
            await js.publish(
                wire.nats_ack_subject(trust.recipient),
                _ack_bytes(report.ack()),
                headers={"Nats-Msg-Id": report.batch_id},
            )
            await message.ack_sync()
            reports.append(report)
            if on_report is not None:
                on_report(report)
    finally:
        await nc.close()


async def _log_nats_error(exc: Exception) -> None:
    log.warning("nats: %s", exc)


async def _download_batch(js: JetStreamContext, message: Msg, batch_dir: Path, trust: wire.TrustBundle) -> None:
    """Write the manifest and signature from the message, then fetch the files it names from the object store.

    The manifest is verified first, so only files a signed manifest names (under their expected names) are fetched.
    """
    signature = (message.headers or {}).get(wire.NATS_SIGNATURE_HEADER)
    if not signature:
        raise BadBatch("bad_signature", f"the batch message carries no {wire.NATS_SIGNATURE_HEADER} header")
    (batch_dir / wire.MANIFEST_FILE).write_bytes(message.data)
    (batch_dir / wire.SIGNATURE_FILE).write_text(signature)
    manifest = read_manifest(batch_dir, trust)
    bucket = wire.nats_object_bucket(trust.recipient)
    try:
        store = await js.object_store(bucket)
        for entry in manifest.files():
            with (batch_dir / entry.name).open("wb") as f:
                await store.get(f"{manifest.batch_id}/{entry.name}", writeinto=f)
    except (BucketNotFoundError, ObjectNotFoundError):
        raise BadBatch("bad_file", f"batch {manifest.batch_id}: a file is missing from object store {bucket}") from None
