"""The parent's signed abuse signals: the partner signs hashed numbers it banned, the relay takes only a batch the
registered key verifies and has not seen, and weighs it (a challenge at registration, a signal to the detector, a
line in the person's privacy view); it never bans anyone for it.

The operator and partner commands run as real processes against a real relay, as an operator would run them.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from cove.activity import DeviceSignals, RegistrationAttempt
from cove.app import build_relay
from cove.config import Settings
from cove.db import create_engine
from cove.safety import parts, registration, signals
from cove.safety.registration_storage import safety_parent_signals, safety_registrations
from cove.safety.storage import safety_verdicts
from cove.sharing import partner_keys, wire
from cove.sharing.keys import SharingKeys
from cove.testing import run_cove
from helpers import insert_account

FLAGGED_USER = "+14155551001"  # has an account when the parent's signal arrives
FLAGGED_NEWCOMER = "+14155552002"  # registers after it
CLEAN = "+14155553003"


@pytest.fixture
def relay_env() -> dict[str, str]:
    return {"COVE_REGISTRATION_GATE_BITS": "10", "COVE_REGISTRATION_GATE_MAX_BITS": "12"}


def cove(relay, *args: str) -> subprocess.CompletedProcess:  # noqa: ANN001
    done = run_cove(list(args), relay.env)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
def partner(relay, tmp_path: Path) -> dict[str, Path]:  # noqa: ANN001
    """The parent, set up as the docs say: trust bundle in, its own key out, registered by the operator."""
    files = {"trust": tmp_path / "trust.json", "key": tmp_path / "signals.key", "public": tmp_path / "parent.json"}
    cove(relay, "share", "keys", "--recipient", "parent", "--out", str(files["trust"]))
    made = cove(
        relay, "partner", "signals", "keys", "--trust", str(files["trust"]), "--key", str(files["key"]),
        "--out", str(files["public"]),
    )  # fmt: skip
    assert "key id" in made.stdout and files["key"].stat().st_mode & 0o077 == 0
    assert "never a ban" in cove(relay, "share", "partner-key", str(files["public"])).stdout
    return files


def send(relay, partner: dict[str, Path], lines: str) -> subprocess.CompletedProcess:  # noqa: ANN001
    numbers = partner["key"].with_name("banned.csv")
    numbers.write_text(lines)
    args = ["partner", "signals", "send", str(numbers), "--relay", relay.url]
    return run_cove([*args, "--trust", str(partner["trust"]), "--key", str(partner["key"])], relay.env)


def signed(private: Ed25519PrivateKey, sequence: int, number_hash: str = "a" * 64, sender: str = "parent") -> dict:
    batch = wire.SignalBatch(
        sender=sender,
        batch_id=f"b{sequence}",
        sequence=sequence,
        created_at_ms=sequence,
        signing_key_id=wire.key_id(private.public_key()),
        entries=[wire.SignalEntry(number_hash=number_hash, reason="spam", at=1)],
    )
    return wire.sign_signals(private, batch).model_dump()


async def post(relay, body: dict) -> httpx.Response:  # noqa: ANN001
    async with httpx.AsyncClient(base_url=relay.url) as http:
        return await http.post("/v1/sharing/signals", json=body)


async def ask_code(relay, phone: str) -> httpx.Response:  # noqa: ANN001
    async with httpx.AsyncClient(base_url=relay.url) as http:
        return await http.post("/v1/verification/code", json={"phone_number": phone})


async def rows(database_url: str, table) -> list:  # noqa: ANN001
    engine = create_engine(database_url)
    async with engine.connect() as conn:
        found = (await conn.execute(select(table))).all()
    await engine.dispose()
    return found


async def test_a_signed_batch_is_taken_weighed_and_shown_but_bans_nobody(relay, users, partner, database_url):
    flagged = await users.register("flagged", FLAGGED_USER)
    sent = send(relay, partner, f"# banned by the parent\n{FLAGGED_USER},spam\n{FLAGGED_NEWCOMER},spam,1700000000000\n")
    assert sent.returncode == 0 and "2 signal(s) taken" in sent.stdout, sent.stderr

    stored = await rows(database_url, safety_parent_signals)
    assert len(stored) == 2 and {r.reason for r in stored} == {"spam"}
    assert not any(FLAGGED_USER in str(r) or FLAGGED_NEWCOMER in str(r) for r in stored)  # hashes, never numbers
    assert "disclosure received: parent signed batch" in relay.log() and "1 naming an account here" in relay.log()

    # never a ban: the account works, has no verdict, and its person sees what was received about them
    view = await flagged.privacy()
    assert [(s["from"], s["reason"]) for s in view["signals_received"]] == [("parent", "spam")]
    assert await rows(database_url, safety_verdicts) == []
    clean = await users.register("clean", CLEAN)
    assert (await clean.privacy())["signals_received"] == []

    # the score moves: the flagged number must prove work to get a code, a clean one need not; both register
    challenged = await ask_code(relay, FLAGGED_NEWCOMER)
    assert challenged.status_code == 428 and "reported" in challenged.json()["error"]["message"]
    assert (await ask_code(relay, "+14155554004")).status_code == 202
    newcomer = await users.register("newcomer", FLAGGED_NEWCOMER)
    scores = {r.account_id: (r.number_score, r.challenged) for r in await rows(database_url, safety_registrations)}
    assert scores[newcomer.core.account_id][0] >= 0.5 and scores[newcomer.core.account_id][1] is True
    assert scores[clean.core.account_id][0] < 0.2 and scores[clean.core.account_id][1] is False  # its own request


async def test_forged_unsigned_unknown_and_replayed_batches_are_refused(relay, partner, database_url):
    private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(partner["key"].read_text()))
    first = signed(private, 10)
    taken = await post(relay, first)
    assert taken.status_code == 202 and taken.json() == {"batch_id": "b10", "sequence": 10, "entries": 1}

    replayed = await post(relay, first)
    older = await post(relay, signed(private, 9))
    assert [(r.status_code, r.json()["error"]["code"]) for r in (replayed, older)] == [(409, "replayed_batch")] * 2

    forger = Ed25519PrivateKey.generate()
    forged = await post(relay, signed(forger, 11))
    assert (forged.status_code, forged.json()["error"]["code"]) == (403, "bad_signature")
    tampered = dict(signed(private, 12))
    tampered["batch"] = tampered["batch"].replace("a" * 64, "b" * 64)
    unsigned = signed(private, 13) | {"signature": base64.b64encode(b"\0" * 64).decode()}
    for refused in (tampered, unsigned):
        answer = await post(relay, refused)
        assert (answer.status_code, answer.json()["error"]["code"]) == (403, "bad_signature")
    stranger = await post(relay, signed(forger, 14, sender="someone"))
    assert (stranger.status_code, stranger.json()["error"]["code"]) == (403, "unknown_partner")
    junk = await post(relay, {"batch": "{not json", "signature": "x"})
    assert (junk.status_code, junk.json()["error"]["code"]) == (400, "bad_batch")

    stored = await rows(database_url, safety_parent_signals)
    assert [(r.number_hash, r.batch_id) for r in stored] == [("a" * 64, "b10")]  # only the genuine batch


async def test_the_partner_command_says_why_the_relay_refused(relay, partner):
    partner["public"].write_text(
        json.dumps({"schema_version": 1, "recipient": "parent", "public_key": _other_public_key()})
    )
    cove(relay, "share", "partner-key", str(partner["public"]))  # the operator now trusts another key
    refused = send(relay, partner, f"{CLEAN},spam\n")
    assert refused.returncode == 1 and refused.stderr.strip().startswith("error: bad_signature")
    bad = send(relay, partner, "4155551001,spam\n")
    assert bad.returncode == 1 and "expected +E164,reason" in bad.stderr and "Traceback" not in bad.stderr


def _other_public_key() -> str:
    return base64.b64encode(wire.public_key_bytes(Ed25519PrivateKey.generate().public_key())).decode()


async def test_the_detector_hears_each_registration_and_each_account_the_parent_flags(database_url, tmp_path):
    engine = create_engine(database_url)
    relay = build_relay(Settings(data_dir=tmp_path, database_url=database_url, secret_key="test"), engine)
    heard: list = []
    parts.of(relay).observers.append(heard.append)
    device = DeviceSignals("Pixel 9", "Android", "15", "0.1.0", "vendor-1")
    await registration.registered(relay, RegistrationAttempt(FLAGGED_USER, "127.0.0.1", device, 1_000), "acc-1")
    await insert_account(engine, "acc-1", FLAGGED_USER)

    private = Ed25519PrivateKey.generate()
    public = base64.b64encode(wire.public_key_bytes(private.public_key())).decode()
    await partner_keys.register_key(engine, wire.PartnerKey(recipient="parent", public_key=public))
    phone_key = SharingKeys.load_or_create(tmp_path).phone_key("parent")
    for number in (FLAGGED_USER, CLEAN):  # CLEAN has no account here: nobody to tell the detector about
        body = signed(private, 20 if number == CLEAN else 10, wire.phone_hash(phone_key, number))
        await partner_keys.receive(relay, wire.SignedSignals(**body))
    await engine.dispose()

    registered, flagged = heard
    assert isinstance(registered, signals.Registered) and registered.account_id == "acc-1"
    assert registered.client_version == "0.1.0" and not registered.challenged
    assert registered.source_score == registered.device_score == 0  # no history: no code request was recorded
    assert flagged == signals.ParentFlagged("acc-1", "spam", flagged.at_ms)
