"""The published wire format between the messenger's sharing gateway and a recipient (schema version 1).

This module is the whole contract. The partner service imports it and nothing else of the messenger, so it
depends only on the standard library, pyarrow, pydantic and cryptography.

A *batch* is a directory (or the same files in a NATS object store):

- ``manifest.json``: the :class:`Manifest`, as canonical JSON (sorted keys, no spaces, UTF-8);
- ``manifest.sig``: the messenger's Ed25519 signature over those exact bytes, base64;
- ``{purpose}.parquet``: one row per subject with the fields the purpose declares (:data:`PROFILE_FIELDS`);
- ``{purpose}.usage.parquet``: daily counters, for a purpose that declares usage counters (:data:`USAGE_SCHEMA`);
- ``revocations.parquet``: what the recipient must delete (:data:`REVOCATION_SCHEMA`).

Every file's SHA-256 is in the manifest, so the signature covers the data. Batches form a chain per recipient:
``sequence`` counts up from 1 and ``previous_batch_id`` names the batch before, so a gap is detectable.

A subject is a per-recipient pseudonym of a messenger account: stable across batches so that updates and
revocations can name it, useless for joining with another recipient's data. Phone numbers leave as
:func:`phone_hash` under a key the messenger hands to this recipient alone (so it can hash the numbers it already
knows and match them), unless the purpose is not pseudonymised and needs the number itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import pyarrow as pa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.sig"
REVOCATIONS_FILE = "revocations.parquet"
ACKS_DIR = "acks"

# NATS JetStream: manifests on a stream (deduplicated by batch id), files in an object store, acks back.
NATS_STREAM = "COVE_SHARE"
NATS_ACK_STREAM = "COVE_SHARE_ACKS"


NATS_STREAM_SUBJECTS = {NATS_STREAM: ["cove.share.>"], NATS_ACK_STREAM: ["cove.share-acks.>"]}


async def ensure_nats_streams(js: Any) -> None:
    """Create the batch and ack streams if nobody has yet (either side may start first); an existing stream's
    configuration is left alone. ``js`` is a nats-py JetStream context."""
    from nats.js.api import StreamConfig
    from nats.js.errors import NotFoundError

    for name, subjects in NATS_STREAM_SUBJECTS.items():
        try:
            await js.stream_info(name)
        except NotFoundError:
            await js.add_stream(StreamConfig(name=name, subjects=subjects))


def nats_batch_subject(recipient: str) -> str:
    return f"cove.share.{recipient}.batches"


def nats_ack_subject(recipient: str) -> str:
    return f"cove.share-acks.{recipient}"


def nats_object_bucket(recipient: str) -> str:
    return f"cove-share-{recipient}"


def profile_file(purpose: str) -> str:
    return f"{purpose}.parquet"


def usage_file(purpose: str) -> str:
    return f"{purpose}.usage.parquet"


class Use(StrEnum):
    """What a purpose is for; the recipient may use a purpose's rows only for its use."""

    ADVERTISING = "advertising"
    FRIEND_SUGGESTIONS = "friend_suggestions"
    ACCOUNT_LINKING = "account_linking"
    SAFETY = "safety"
    ANALYTICS = "analytics"
    SERVICE = "service"


class RevocationReason(StrEnum):
    WITHDRAWN = "withdrawn"  # the user withdrew consent for the purpose
    OBJECTED = "objected"  # the user objected to a legitimate-interest purpose
    ERASED = "erased"  # the account was deleted: every purpose, and an acknowledgement is owed
    BANNED = "banned"  # banned for safety: every purpose except safety verdicts
    NOT_PERMITTED = "not_permitted"  # no longer permitted for another reason (terms not accepted, age, policy)


# The data categories of the catalogue (../shared/VISION.md), as they appear on the wire.
CATEGORY_PHONE = "contact.phone_number"
CATEGORY_ACCOUNT_CREATED = "behaviour.account_created"
CATEGORY_LAST_SEEN = "behaviour.last_seen_day"
CATEGORY_DEVICE_MODEL = "device.model"
CATEGORY_DEVICE_OS = "device.os"
CATEGORY_APP_VERSION = "device.app_version"
CATEGORY_VENDOR_DEVICE_ID = "device.vendor_device_id"
CATEGORY_USAGE = "analytics.usage_counters"
CATEGORY_SAFETY = "safety.verdicts"

# Columns of a purpose's profile file, by the category that brings them. ``subject`` is always present.
# The phone category brings ``phone_hash`` when the purpose is pseudonymised, ``phone_number`` otherwise.
PROFILE_FIELDS: dict[str, dict[str, pa.DataType]] = {
    CATEGORY_PHONE: {"phone_hash": pa.string(), "phone_number": pa.string()},
    CATEGORY_ACCOUNT_CREATED: {"account_created_day": pa.date32()},
    CATEGORY_LAST_SEEN: {"last_seen_day": pa.date32()},
    CATEGORY_DEVICE_MODEL: {"device_model": pa.string()},
    CATEGORY_DEVICE_OS: {"os_name": pa.string(), "os_version": pa.string()},
    CATEGORY_APP_VERSION: {"app_version": pa.string()},
    CATEGORY_VENDOR_DEVICE_ID: {"vendor_device_id": pa.string()},
    CATEGORY_SAFETY: {"reason_code": pa.string(), "banned_day": pa.date32()},
}
CATEGORIES = frozenset(PROFILE_FIELDS) | {CATEGORY_USAGE}

USAGE_SCHEMA = pa.schema(
    [
        ("subject", pa.string()),
        ("day", pa.date32()),
        ("messages_sent", pa.int32()),
        ("messages_received", pa.int32()),
        ("app_opens", pa.int32()),
    ]
)

REVOCATION_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),  # stable: an erasure is acknowledged by it
        ("subject", pa.string()),
        ("purpose", pa.string()),  # null: every purpose (erasure), or every purpose but safety (ban)
        ("reason", pa.string()),  # a RevocationReason
        ("at_ms", pa.int64()),
    ]
)


def profile_columns(categories: list[str], pseudonymised: bool) -> list[str]:
    """The profile file's columns for a purpose, in file order."""
    columns = ["subject"]
    for category in sorted(categories):
        if category == CATEGORY_USAGE:
            continue
        fields = list(PROFILE_FIELDS[category])
        if category == CATEGORY_PHONE:
            fields = ["phone_hash"] if pseudonymised else ["phone_number"]
        columns.extend(fields)
    return columns


def profile_schema(categories: list[str], pseudonymised: bool) -> pa.Schema:
    types = {"subject": pa.string()} | {name: t for fields in PROFILE_FIELDS.values() for name, t in fields.items()}
    return pa.schema([(name, types[name]) for name in profile_columns(categories, pseudonymised)])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


class FileEntry(_Strict):
    name: str
    rows: int = Field(ge=0)
    sha256: Sha256


class PurposeEntry(_Strict):
    id: Identifier
    use: Use
    legal_basis: str | None
    retention_days: int | None = Field(description="The recipient deletes a row this long after the batch's as_of")
    categories: list[str]
    pseudonymised: bool
    profile: FileEntry
    usage: FileEntry | None = None


class Manifest(_Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    batch_id: str = Field(min_length=1, max_length=80)
    sequence: int = Field(ge=1)
    previous_batch_id: str | None
    recipient: Identifier
    kind: Literal["full", "incremental"]
    created_at_ms: int
    as_of_ms: int = Field(description="Permissions were decided at this instant")
    since_ms: int | None = Field(description="Incremental: changes after this instant (the previous as_of)")
    policy_versions: list[str]
    purposes: list[PurposeEntry]
    revocations: FileEntry
    signing_key_id: str = Field(description="key_id() of the messenger key that signed this manifest")

    def files(self) -> list[FileEntry]:
        entries = [self.revocations]
        for purpose in self.purposes:
            entries.append(purpose.profile)
            if purpose.usage is not None:
                entries.append(purpose.usage)
        return entries


class Ack(_Strict):
    """A recipient's receipt for an applied batch; it acknowledges the erasures the batch carried."""

    schema_version: Literal[1] = SCHEMA_VERSION
    recipient: Identifier
    batch_id: str
    applied_at_ms: int
    erasures: list[str] = Field(description="event_id of every erasure revocation applied")


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def manifest_bytes(manifest: Manifest) -> bytes:
    return canonical_json(manifest.model_dump(mode="json"))


def key_id(public_key: Ed25519PublicKey) -> str:
    return hashlib.sha256(public_key_bytes(public_key)).hexdigest()[:16]


def public_key_bytes(public_key: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def load_public_key(b64: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(b64))


def sign(private_key: Ed25519PrivateKey, data: bytes) -> str:
    return base64.b64encode(private_key.sign(data)).decode()


class BadBatch(Exception):
    """A batch a recipient must reject; ``code`` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def verify_manifest(public_key: Ed25519PublicKey, data: bytes, signature_b64: str) -> Manifest:
    """Check the signature over the exact bytes, then parse. Raises :class:`BadBatch`."""
    try:
        public_key.verify(base64.b64decode(signature_b64, validate=True), data)
    except (InvalidSignature, ValueError):
        raise BadBatch("bad_signature", "the manifest's signature does not verify with the messenger's key") from None
    try:
        raw = json.loads(data)
    except ValueError:
        raise BadBatch("bad_manifest", "the manifest is not JSON") from None
    if not isinstance(raw, dict) or raw.get("schema_version") != SCHEMA_VERSION:
        version = raw.get("schema_version") if isinstance(raw, dict) else None
        raise BadBatch("unknown_schema", f"schema version {version!r} is not {SCHEMA_VERSION}")
    try:
        manifest = Manifest.model_validate(raw)
    except ValueError as exc:
        raise BadBatch("bad_manifest", f"the manifest does not match schema {SCHEMA_VERSION}: {exc}") from None
    for purpose in manifest.purposes:
        unknown = set(purpose.categories) - CATEGORIES
        if unknown:
            raise BadBatch("unknown_schema", f"purpose {purpose.id}: unknown categories {sorted(unknown)}")
    return manifest


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hmac_sql(key: bytes, column: str) -> str:
    """A DuckDB expression equal to ``hmac.new(key, column, sha256).hexdigest()``: :func:`phone_hash` in SQL.

    Hashing a million values in SQL takes under a second on all cores, against seconds in a Python loop. The HMAC
    pads are derived from the key and inlined, so the statement must stay in the process that holds the key.
    """
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    block = key.ljust(64, b"\0")
    inner = bytes(b ^ 0x36 for b in block).hex()
    outer = bytes(b ^ 0x5C for b in block).hex()
    return f"sha256(unhex('{outer}') || unhex(sha256(unhex('{inner}') || encode({column}))))"


def phone_hash(key: bytes, e164: str) -> str:
    """The keyed hash a pseudonymised purpose carries instead of the number; the recipient holds ``key``."""
    return hmac.new(key, e164.encode(), hashlib.sha256).hexdigest()


class TrustBundle(_Strict):
    """What the messenger hands a recipient once, out of band: ``cove share keys`` writes it."""

    schema_version: Literal[1] = SCHEMA_VERSION
    recipient: Identifier
    messenger_public_key: str = Field(description="Ed25519, raw 32 bytes, base64")
    phone_hash_key: str = Field(description="The key of phone_hash() for this recipient, hex")

    def public_key(self) -> Ed25519PublicKey:
        return load_public_key(self.messenger_public_key)

    def phone_key(self) -> bytes:
        return bytes.fromhex(self.phone_hash_key)


NATS_SIGNATURE_HEADER = "Cove-Signature"
"""A manifest message on NATS carries the manifest bytes as its data and the signature in this header; its
``Nats-Msg-Id`` is the batch id, so JetStream drops a re-published batch within its duplicate window."""


# Abuse signals, the other way: the partner tells the messenger which numbers it banned for spam. -----------------
# The partner signs with its own Ed25519 key, whose public half it hands the messenger's operator once, out of band
# (a :class:`PartnerKey` file, registered with ``cove share partner-key``), as the messenger hands it the trust
# bundle. A number travels only as :func:`phone_hash` under the key of the trust bundle, which the messenger can
# recompute for the numbers it knows. ``POST /v1/sharing/signals`` takes a :class:`SignedSignals`; a batch whose
# ``sequence`` is not above the last one taken from that partner is a replay and refused. The messenger weighs a
# signal in its registration gate and its detector; it never bans anyone for it alone.

MAX_SIGNALS = 10_000  # entries per batch: a day's bans of a large service, under a couple of megabytes


class PartnerKey(_Strict):
    """What a partner hands the messenger once, out of band: ``cove partner signals keys`` writes it."""

    schema_version: Literal[1] = SCHEMA_VERSION
    recipient: Identifier = Field(description="The id the messenger shares with this partner under")
    public_key: str = Field(max_length=64, description="Ed25519, raw 32 bytes, base64")

    def key(self) -> Ed25519PublicKey:
        return load_public_key(self.public_key)


class SignalEntry(_Strict):
    number_hash: Sha256 = Field(description="phone_hash() of the number, under the trust bundle's phone-hash key")
    reason: Identifier = Field(description="Why the partner banned it, e.g. spam")
    at: int = Field(ge=0, description="When the partner banned it, milliseconds since the epoch")


class SignalBatch(_Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    sender: Identifier = Field(description="The partner: the recipient id of its PartnerKey")
    batch_id: str = Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.:-]+$")
    sequence: int = Field(ge=1, le=2**62, description="Counts up per sender; the creation instant in ms will do")
    created_at_ms: int = Field(ge=0)
    signing_key_id: str = Field(description="key_id() of the partner key that signed this batch")
    entries: list[SignalEntry] = Field(max_length=MAX_SIGNALS)


class SignedSignals(_Strict):
    """The request body of ``POST /v1/sharing/signals``."""

    batch: str = Field(max_length=MAX_SIGNALS * 200, description="The SignalBatch as canonical JSON: the signed bytes")
    signature: str = Field(max_length=100, description="The partner's Ed25519 signature over `batch`, base64")


def sign_signals(private_key: Ed25519PrivateKey, batch: SignalBatch) -> SignedSignals:
    data = canonical_json(batch.model_dump(mode="json"))
    return SignedSignals(batch=data.decode(), signature=sign(private_key, data))


def signals_sender(signed: SignedSignals) -> str:
    """Who claims to have sent the batch, read before anything is trusted: only to find the key that must verify
    it. Raises :class:`BadBatch`."""
    try:
        raw = json.loads(signed.batch)
    except (ValueError, RecursionError):
        raise BadBatch("bad_batch", "the signal batch is not JSON") from None
    sender = raw.get("sender") if isinstance(raw, dict) else None
    if not isinstance(sender, str):
        raise BadBatch("bad_batch", "the signal batch names no sender")
    return sender


def verify_signals(public_key: Ed25519PublicKey, signed: SignedSignals) -> SignalBatch:
    """Check the signature over the exact bytes, then parse. Raises :class:`BadBatch`."""
    data = signed.batch.encode()
    try:
        public_key.verify(base64.b64decode(signed.signature, validate=True), data)
    except (InvalidSignature, ValueError):
        raise BadBatch("bad_signature", "the batch's signature does not verify with the partner's key") from None
    try:
        batch = SignalBatch.model_validate_json(data)
    except ValueError as exc:
        raise BadBatch("bad_batch", f"the signal batch does not match schema {SCHEMA_VERSION}: {exc}") from None
    if batch.signing_key_id != key_id(public_key):
        raise BadBatch("bad_signature", "the batch names another signing key than the partner's")
    return batch
