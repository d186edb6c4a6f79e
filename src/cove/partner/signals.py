"""``cove partner signals``: tell the messenger which numbers the parent banned for spam, signed, hashed.

The parent signs with a key of its own (``keys`` makes it, once, and writes the public half for the messenger's
operator to register with ``cove share partner-key``). ``send`` reads ``+E164,reason[,banned_at_ms]`` lines,
hashes each number with the trust bundle's phone-hash key (the messenger never learns a number it does not
already know), signs the batch and posts it to the relay. The messenger weighs a signal; it bans no one for it.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import httpx
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import TypeAdapter, ValidationError

from cove.partner.terminal import TRUST, fail, now_ms, say, trust_or_fail
from cove.sharing import wire

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")

signals_app = typer.Typer(
    help="Signed abuse signals to the messenger: numbers the parent banned for spam, hashed.", no_args_is_help=True
)

KEY = typer.Option(
    None, "--key", help="The parent's signing key [default: COVE_PARTNER_SIGNALS_KEY or var/partner/signals.key]"
)


def _key_path(path: Path | None) -> Path:
    return path or Path(os.environ.get("COVE_PARTNER_SIGNALS_KEY", "var/partner/signals.key"))


def _load_or_create(path: Path) -> Ed25519PrivateKey:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        raw = Ed25519PrivateKey.generate().private_bytes_raw()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # a secret: its owner reads it, nobody else
        with os.fdopen(fd, "w") as f:
            f.write(raw.hex())
    try:
        return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(path.read_text().strip()))
    except ValueError:
        raise fail(f"{path} does not hold a signing key (64 hex digits)") from None


@signals_app.command()
def keys(
    key: Path = KEY,
    trust: Path = TRUST,
    out: Path = typer.Option(None, "--out", help="Where to write the public key [default: next to the key]"),
) -> None:
    """Make the parent's signing key (once) and write its public half for the messenger's operator."""
    bundle = trust_or_fail(trust)
    private = _load_or_create(_key_path(key))
    public = base64.b64encode(wire.public_key_bytes(private.public_key())).decode()
    handed = wire.PartnerKey(recipient=bundle.recipient, public_key=public)
    path = out or _key_path(key).with_name(f"{bundle.recipient}-partner-key.json")
    path.write_bytes(wire.canonical_json(handed.model_dump(mode="json")))
    say(
        f"public key of {bundle.recipient} (key id {wire.key_id(private.public_key())}) written to {path}: "
        "hand it to the messenger's operator, who runs `cove share partner-key` with it"
    )


def read_signals(path: Path, key: bytes, now: int) -> list[wire.SignalEntry]:
    """``+E164,reason[,banned_at_ms]`` lines (``#`` comments and blank lines skipped), hashed."""
    reason_of = TypeAdapter(wire.Identifier)
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) not in (2, 3) or not E164.match(fields[0]):
            raise fail(f"{path}:{number}: expected +E164,reason[,banned_at_ms], got {line!r}")
        try:
            reason = reason_of.validate_python(fields[1])
            at = int(fields[2]) if len(fields) == 3 else now
        except (ValidationError, ValueError):
            raise fail(f"{path}:{number}: a reason is a lower-case word (e.g. spam); an instant is ms") from None
        entries.append(wire.SignalEntry(number_hash=wire.phone_hash(key, fields[0]), reason=reason, at=at))
    if len(entries) > wire.MAX_SIGNALS:
        raise fail(f"{path} holds {len(entries)} signals; send at most {wire.MAX_SIGNALS} a batch")
    return entries


@signals_app.command()
def send(
    numbers: Path = typer.Argument(..., help="A file of +E164,reason[,banned_at_ms] lines"),
    relay: str = typer.Option(..., "--relay", help="The messenger's relay URL, e.g. https://relay.example"),
    key: Path = KEY,
    trust: Path = TRUST,
) -> None:
    """Sign the numbers the parent banned, hashed, and post them to the relay."""
    bundle = trust_or_fail(trust)
    if not numbers.is_file():
        raise fail(f"{numbers} is not a file")
    private = _load_or_create(_key_path(key))
    now = now_ms()
    batch = wire.SignalBatch(
        sender=bundle.recipient,
        batch_id=f"signals-{now}",
        sequence=now,
        created_at_ms=now,
        signing_key_id=wire.key_id(private.public_key()),
        entries=read_signals(numbers, bundle.phone_key(), now),
    )
    signed = wire.sign_signals(private, batch)
    try:
        answer = httpx.post(f"{relay.rstrip('/')}/v1/sharing/signals", json=signed.model_dump(), timeout=30)
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach the relay at {relay}: {exc}") from None
    if answer.status_code != 202:
        try:
            error = answer.json()["error"]
            raise fail(f"{error['code']}: {error['message']}")
        except (ValueError, KeyError, TypeError):
            raise fail(f"the relay answered HTTP {answer.status_code}") from None
    say(f"batch {batch.batch_id}: {len(batch.entries)} signal(s) taken by the relay")
