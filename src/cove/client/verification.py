"""Verifying a contact, without I/O: the safety number and the SAS comparison's state machine.

Both prove the same thing: that the primary Ed25519 identity key this device holds for a contact is the one the
contact's own primary device holds, so that the relay (which serves every key) has not put its own in between.

**Safety number** (as Signal's numeric fingerprint): for each side, ``h = version(2 bytes) || key || account_id``,
then 5,200 times ``h = SHA-512(h || key)``; the first 30 bytes make six 5-byte big-endian numbers, each shown mod
100,000 as 5 digits. The two 30-digit halves are sorted, so both people see the same 60 digits. The QR payload
carries the first 32 bytes of both hashes, in the same order.

**SAS** (vodozemac ``Sas``, as Matrix's key verification), three payload types inside Olm 1:1 messages:

1. the initiator sends ``sas_start {txn, commitment}``, the commitment being SHA-256 of its SAS public key and
   the txn, so that it cannot choose its key after seeing the other's;
2. the responder answers ``sas_key {txn, key}``; the initiator then sends its own ``sas_key {txn, key}`` and the
   responder checks it against the commitment;
3. both show the same 7 emoji (or 3 numbers); when the user confirms they match, each side sends
   ``sas_mac {txn, mac}``, a MAC of its account's primary Ed25519 key under the shared secret, and checks the
   other's against the key it holds for the contact. Only then is the contact verified.

Either side may send ``sas_cancel {txn, reason}``. Anything out of order cancels the comparison.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import vodozemac as vz

from cove.protocol.payload import PAYLOAD_VERSION

FINGERPRINT_VERSION = 0
FINGERPRINT_ITERATIONS = 5200
QR_PREFIX = "cove-safety-number:1:"
PRIMARY_DEVICE = 1

SAS_START, SAS_KEY, SAS_MAC, SAS_CANCEL = "sas_start", "sas_key", "sas_mac", "sas_cancel"
SAS_TYPES = frozenset({SAS_START, SAS_KEY, SAS_MAC, SAS_CANCEL})
TXN_BYTES = 16

# The 64 SAS emoji of the Matrix specification (the same index gives the same picture in every client).
EMOJI = (
    ("🐶", "Dog"), ("🐱", "Cat"), ("🦁", "Lion"), ("🐎", "Horse"), ("🦄", "Unicorn"), ("🐷", "Pig"),
    ("🐘", "Elephant"), ("🐰", "Rabbit"), ("🐼", "Panda"), ("🐓", "Rooster"), ("🐧", "Penguin"), ("🐢", "Turtle"),
    ("🐟", "Fish"), ("🐙", "Octopus"), ("🦋", "Butterfly"), ("🌷", "Flower"), ("🌳", "Tree"), ("🌵", "Cactus"),
    ("🍄", "Mushroom"), ("🌏", "Globe"), ("🌙", "Moon"), ("☁️", "Cloud"), ("🔥", "Fire"), ("🍌", "Banana"),
    ("🍎", "Apple"), ("🍓", "Strawberry"), ("🌽", "Corn"), ("🍕", "Pizza"), ("🎂", "Cake"), ("❤️", "Heart"),
    ("😀", "Smiley"), ("🤖", "Robot"), ("🎩", "Hat"), ("👓", "Glasses"), ("🔧", "Spanner"), ("🎅", "Santa"),
    ("👍", "Thumbs Up"), ("☂️", "Umbrella"), ("⌛", "Hourglass"), ("⏰", "Clock"), ("🎁", "Gift"),
    ("💡", "Light Bulb"), ("📕", "Book"), ("✏️", "Pencil"), ("📎", "Paperclip"), ("✂️", "Scissors"), ("🔒", "Lock"),
    ("🔑", "Key"), ("🔨", "Hammer"), ("☎️", "Telephone"), ("🏁", "Flag"), ("🚂", "Train"), ("🚲", "Bicycle"),
    ("✈️", "Aeroplane"), ("🚀", "Rocket"), ("🏆", "Trophy"), ("⚽", "Ball"), ("🎸", "Guitar"), ("🎺", "Trumpet"),
    ("🔔", "Bell"), ("⚓", "Anchor"), ("🎧", "Headphones"), ("📁", "Folder"), ("📌", "Pin"),
)  # fmt: skip


class VerificationError(Exception):
    """A key or payload that cannot take part in a verification (malformed, out of order, or not matching)."""


# safety numbers -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SafetyNumber:
    digits: str  # 60 digits
    qr: str  # the payload a QR code carries; the other side compares it with :func:`qr_matches`

    def groups(self) -> list[str]:
        return [self.digits[i : i + 5] for i in range(0, 60, 5)]

    def lines(self) -> list[str]:
        """Three lines of four groups, as it is printed."""
        groups = self.groups()
        return [" ".join(groups[i : i + 4]) for i in range(0, 12, 4)]


def _key_bytes(ed25519: str) -> bytes:
    try:
        raw = base64.b64decode(ed25519 + "=" * (-len(ed25519) % 4), validate=True)
    except ValueError as exc:
        raise VerificationError("the identity key is not base64") from exc
    if len(raw) != 32:
        raise VerificationError("the identity key is not a 32-byte Ed25519 key")
    return raw


def _fingerprint(account_id: str, ed25519: str) -> bytes:
    key = _key_bytes(ed25519)
    digest = FINGERPRINT_VERSION.to_bytes(2, "big") + key + account_id.encode()
    for _ in range(FINGERPRINT_ITERATIONS):
        digest = hashlib.sha512(digest + key).digest()
    return digest


def _displayed(fingerprint: bytes) -> str:
    return "".join(f"{int.from_bytes(fingerprint[i : i + 5], 'big') % 100000:05d}" for i in range(0, 30, 5))


def safety_number(my_account: str, my_key: str, their_account: str, their_key: str) -> SafetyNumber:
    """The number both people see for their pair of primary identity keys (the same on both sides)."""
    halves = sorted(
        ((_displayed(f), f[:32]) for f in (_fingerprint(my_account, my_key), _fingerprint(their_account, their_key))),
        key=lambda half: half[0],
    )
    qr = QR_PREFIX + base64.urlsafe_b64encode(halves[0][1] + halves[1][1]).decode().rstrip("=")
    return SafetyNumber(halves[0][0] + halves[1][0], qr)


def qr_matches(scanned: str, mine: SafetyNumber) -> bool:
    """Whether a scanned QR payload is the one this device computed for the same pair of keys."""
    return hmac.compare_digest(scanned.strip().encode(), mine.qr.encode())


# the state kept for a contact -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verified:
    """What the user verified for a contact: ``changed`` once the contact's key is no longer that one."""

    account_id: str
    ed25519: str
    generation: int
    method: str  # "safety_number" (compared by eye), "qr" (scanned) or "sas"
    verified_at: int
    changed: bool = False


def key_changed(record: Verified | None, generation: int, primary_ed25519: str | None) -> bool:
    """Whether a verified contact now shows another primary key (or a new phone): it must be flagged."""
    if record is None or record.changed:
        return False
    return generation > record.generation or (primary_ed25519 is not None and primary_ed25519 != record.ed25519)


def primary_key(devices: list[dict[str, Any]]) -> str | None:
    """The primary device's Ed25519 key in a key directory answer's ``devices``."""
    return next((d["identity_ed25519"] for d in devices if d["device_id"] == PRIMARY_DEVICE), None)


# SAS ------------------------------------------------------------------------------------------------------
class SasState(enum.Enum):
    WAITING_FOR_KEY = "waiting_for_key"  # started, or answered: the other side's key has not come yet
    COMPARING = "comparing"  # both keys known: show the emoji and ask the user
    CONFIRMED = "confirmed"  # the user said they match; waiting for the other side's MAC
    DONE = "done"  # the other side's MAC verified its primary key: the contact is verified
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Party:
    account_id: str
    device_id: int


def new_txn() -> str:
    return secrets.token_hex(TXN_BYTES)


def _commitment(public_key: str, txn: str) -> str:
    return hashlib.sha256(f"{public_key}|{txn}".encode()).hexdigest()


def _payload(kind: str, txn: str, **fields: Any) -> dict[str, Any]:
    return {"v": PAYLOAD_VERSION, "type": kind, "txn": txn, **fields}


def cancel_payload(txn: str, reason: str) -> dict[str, Any]:
    return _payload(SAS_CANCEL, txn, reason=reason)


class SasVerification:
    """One comparison between this device and one device of the contact.

    Like h11, it only answers payloads with payloads; the caller sends them (encrypted, to the contact's
    account) and shows what :meth:`emoji` gives. Start with :meth:`start` or :meth:`accept`."""

    def __init__(self, me: Party, peer: Party | None, txn: str, initiator: bool) -> None:
        self.me, self.peer, self.txn, self.initiator = me, peer, txn, initiator
        self._peer_account = peer.account_id if peer else None
        self.state = SasState.WAITING_FOR_KEY
        self.cancel_reason: str | None = None
        self._sas: vz.Sas | None = vz.Sas()
        self._established: vz.EstablishedSas | None = None
        self._my_key = self._sas.public_key.to_base64()
        self._their_key: str | None = None
        self._commitment: str | None = None
        self._their_mac: str | None = None

    @classmethod
    def start(cls, me: Party, peer_account: str) -> tuple[SasVerification, dict[str, Any]]:
        """Begin a comparison; the first device of ``peer_account`` that answers is the one compared with."""
        sas = cls(me, None, new_txn(), initiator=True)
        sas._peer_account = peer_account
        return sas, _payload(SAS_START, sas.txn, commitment=_commitment(sas._my_key, sas.txn))

    @classmethod
    def accept(cls, me: Party, sender: Party, start: dict[str, Any]) -> tuple[SasVerification, dict[str, Any]]:
        """Answer another device's ``sas_start`` with this side's key."""
        txn, commitment = start.get("txn"), start.get("commitment")
        if not isinstance(txn, str) or len(txn) != 2 * TXN_BYTES or not isinstance(commitment, str):
            raise VerificationError("a sas_start without a txn or a commitment")
        sas = cls(me, sender, txn, initiator=False)
        sas._commitment = commitment
        return sas, _payload(SAS_KEY, txn, key=sas._my_key)

    # receiving ------------------------------------------------------------------------------------------
    def receive(self, sender: Party, payload: dict[str, Any]) -> list[dict[str, Any]]:
        """Take the other side's payload; returns what to send back. Payloads of another comparison (another txn,
        or a device other than the one compared with) are ignored."""
        if payload.get("txn") != self.txn or self.state in (SasState.DONE, SasState.CANCELLED):
            return []
        if self.peer is None and self.initiator and sender.account_id == self._peer_account:
            self.peer = sender  # the first of the contact's devices to answer
        if sender != self.peer:
            return []
        kind = payload.get("type")
        if kind == SAS_CANCEL:
            self._cancelled(f"the other side cancelled: {str(payload.get('reason', ''))[:200]}")
            return []
        if kind == SAS_KEY and self.state is SasState.WAITING_FOR_KEY:
            return self._key_received(payload.get("key"))
        if kind == SAS_MAC and self.state in (SasState.COMPARING, SasState.CONFIRMED) and self._their_mac is None:
            mac = payload.get("mac")
            if not isinstance(mac, str):
                return self._cancel("a sas_mac without a MAC")
            self._their_mac = mac
            return []
        return self._cancel(f"unexpected {str(kind)[:40]} in state {self.state.value}")

    def _key_received(self, key: Any) -> list[dict[str, Any]]:
        if not isinstance(key, str):
            return self._cancel("a sas_key without a key")
        if self._commitment is not None and not hmac.compare_digest(_commitment(key, self.txn), self._commitment):
            return self._cancel("the key does not match the commitment")
        assert self._sas is not None
        try:
            self._established = self._sas.diffie_hellman(vz.Curve25519PublicKey.from_base64(key))
        except (vz.KeyException, vz.SasException) as exc:
            return self._cancel(f"the key is not usable: {exc}")
        self._sas, self._their_key = None, key
        self.state = SasState.COMPARING
        return [_payload(SAS_KEY, self.txn, key=self._my_key)] if self.initiator else []

    # what the user compares ------------------------------------------------------------------------------
    def _bytes(self) -> vz.SasBytes:
        if self._established is None or self.peer is None:
            raise VerificationError("nothing to compare before both keys are known")
        first, second = (self.me, self.peer) if self.initiator else (self.peer, self.me)
        first_key, second_key = (self._my_key, self._their_key) if self.initiator else (self._their_key, self._my_key)
        info = (
            f"cove:v1:sas:{first.account_id}|{first.device_id}|{first_key}|"
            f"{second.account_id}|{second.device_id}|{second_key}|{self.txn}"
        )
        return self._established.bytes(info)

    def emoji(self) -> list[tuple[str, str]]:
        return [EMOJI[i] for i in self._bytes().emoji_indices]

    def decimals(self) -> tuple[int, int, int]:
        return tuple(self._bytes().decimals)

    # the user's answer -----------------------------------------------------------------------------------
    def confirm(self, my_primary_key: str) -> dict[str, Any]:
        """The user saw the same emoji: send a MAC of this account's primary key."""
        if self.state is not SasState.COMPARING or self._established is None or self.peer is None:
            raise VerificationError(f"cannot confirm in state {self.state.value}")
        self.state = SasState.CONFIRMED
        return _payload(SAS_MAC, self.txn, mac=self._established.calculate_mac(my_primary_key, self._mac_info(self.me)))

    def reject(self) -> dict[str, Any]:
        """The user saw different emoji: someone is in between. Cancel, and tell the other side."""
        return self._cancel("the emoji did not match")[0]

    def check(self, their_primary_key: str) -> bool:
        """After :meth:`confirm`: whether the other side's MAC (once it came) proves ``their_primary_key``, the key
        this device holds for the contact. ``False`` while the MAC has not come; a MAC that fails cancels."""
        if self.state is not SasState.CONFIRMED or self._their_mac is None or self._established is None:
            return False
        assert self.peer is not None
        try:
            self._established.verify_mac(their_primary_key, self._mac_info(self.peer), self._their_mac)
        except vz.SasException:
            self._cancel("the MAC of the contact's identity key does not verify")
            return False
        self.state = SasState.DONE
        return True

    def _mac_info(self, sender: Party) -> str:
        assert self.peer is not None
        receiver = self.peer if sender == self.me else self.me
        return (
            f"cove:v1:sas_mac:{sender.account_id}|{sender.device_id}|"
            f"{receiver.account_id}|{receiver.device_id}|{self.txn}"
        )

    def _cancel(self, reason: str) -> list[dict[str, Any]]:
        self._cancelled(reason)
        return [cancel_payload(self.txn, reason)]

    def _cancelled(self, reason: str) -> None:
        self.state = SasState.CANCELLED
        self.cancel_reason = reason
