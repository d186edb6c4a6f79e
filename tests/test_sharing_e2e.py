"""Sharing end to end, with real processes: a relay, its users' SDK clients, the `cove share` gateway and the
partner service's `cove partner` commands on their own store.

Two users chat, the default policy is published, each makes their choices (bob opts out of ads, carol keeps
account linking off), the gateway exports, the partner ingests, links, suggests and builds audiences. Then a
withdrawal travels through an incremental batch.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from cove.sharing.keys import SharingKeys
from cove.testing import run_cove
from helpers import server_rows, texts

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "policies" / "cove-default.toml"
SECRET = "meet me by the harbour at nine"


@pytest.fixture
def relay_env() -> dict[str, str]:
    return {"COVE_NOTICE_INTERVAL_SECONDS": "0.3", "COVE_FLEET_POLL_SECONDS": "0.3"}


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    done = run_cove(list(args), env, timeout=300)
    assert done.returncode == 0, f"cove {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


def query(store: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(store), read_only=True) as conn:
        return conn.execute(sql).fetchall()


async def onboard(client, choices: dict[str, str]) -> None:
    for _ in range(50):
        notice = await client.pending_notice()
        if notice:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("no privacy notice became due")
    await client.accept_terms(notice, "adult")
    for purpose, choice in choices.items():
        await client.choose(purpose, choice)


async def test_from_chat_to_partner_audiences_with_choices_honoured(relay, users, tmp_path: Path) -> None:
    alice = await users.register("alice", "+4915100000001")
    bob = await users.register("bob", "+4915100000002")
    carol = await users.register("carol", "+4915100000003")
    await alice.send_text(bob.core.account_id, SECRET)
    ciphertexts = [row["body"] for table, row in await server_rows(relay.database_url) if table == "envelopes"]
    assert ciphertexts, "the relay should hold the envelope until bob reads it"
    assert texts(await bob.inbox()) == [SECRET]

    run(relay.env, "policy", "publish", str(DEFAULT))
    everything = {"account_linking": "in", "friend_suggestions": "in", "ads": "in", "analytics": "in"}
    await onboard(alice, everything)
    await onboard(bob, everything | {"ads": "out"})
    await onboard(carol, everything | {"account_linking": "out"})

    partner_env = {
        **relay.env,
        "COVE_PARTNER_STORE": str(tmp_path / "partner" / "partner.duckdb"),
        "COVE_PARTNER_TRUST": str(tmp_path / "partner" / "trust.json"),
    }
    outbox = tmp_path / "outbox"
    run(relay.env, "share", "keys", "--recipient", "parent", "--out", partner_env["COVE_PARTNER_TRUST"])
    run(relay.env, "share", "export", "--recipient", "parent", "--outbox", str(outbox))

    # The parent's own population includes the same three people, as they also use its service.
    people = tmp_path / "people.jsonl"
    people.write_text(
        "\n".join(
            json.dumps(
                {
                    "name": name,
                    "phone": phone,
                    "device_model": "Pixel 9",
                    "os_name": "Android",
                    "os_version": "15",
                    "vendor_device_id": f"vendor-{name}",
                }
            )
            for name, phone in (("alice", "+4915100000001"), ("bob", "+4915100000002"), ("carol", "+4915100000003"))
        )
    )
    run(partner_env, "partner", "seed", "--users", "300", "--people", str(people))
    run(partner_env, "partner", "ingest", str(outbox))
    run(partner_env, "partner", "link")
    run(partner_env, "partner", "suggest")
    run(partner_env, "partner", "audiences")

    keys = SharingKeys.load_or_create(relay.data_dir)
    subject = {
        name: keys.subject("parent", c.core.account_id)
        for name, c in (("alice", alice), ("bob", bob), ("carol", carol))
    }
    store = Path(partner_env["COVE_PARTNER_STORE"])
    linked = {s for (s,) in query(store, "SELECT subject FROM links")}
    assert subject["alice"] in linked and subject["bob"] in linked
    assert subject["carol"] not in linked  # account linking is off for carol
    in_audiences = {s for (s,) in query(store, "SELECT DISTINCT subject FROM audiences")}
    assert subject["alice"] in in_audiences
    assert subject["bob"] not in in_audiences  # bob opted out of ads
    assert query(store, "SELECT count(*) FROM shared_usage") == [(0,)]  # analytics goes to the processor only

    # Nothing the gateway wrote holds a message, in plaintext or as ciphertext.
    written = [p for p in outbox.rglob("*") if p.is_file()]
    assert written
    needles = [SECRET.encode()]
    for ciphertext in ciphertexts:
        piece = bytes(ciphertext)[-24:]
        needles += [piece, base64.b64encode(piece)[:24], piece.hex().encode()]
    for path in written:
        # Parquet pages are compressed: search the decoded values as well as the raw bytes.
        blobs = [path.read_bytes()]
        if path.suffix == ".parquet":
            blobs.append(repr(pq.read_table(path).to_pylist()).encode())
        for blob in blobs:
            assert not any(needle in blob for needle in needles), path

    # Alice withdraws from ads: the next batch revokes it, and ingesting it empties her from every audience.
    await alice.withdraw("ads")
    run(relay.env, "share", "export", "--recipient", "parent", "--outbox", str(outbox), "--since", "last")
    run(partner_env, "partner", "ingest", str(outbox))
    assert subject["alice"] not in {s for (s,) in query(store, "SELECT DISTINCT subject FROM audiences")}
    assert query(
        store, f"SELECT count(*) FROM shared_profiles WHERE purpose = 'ads' AND subject = '{subject['alice']}'"
    ) == [(0,)]

    # And she can see what left, when, to whom and why.
    view = await alice.privacy()
    purposes = {(d["recipient"], d["purpose"]) for d in view["disclosures"]}
    assert ("parent", "ads") in purposes and ("parent", "account_linking") in purposes
    assert all(d["batch_id"].startswith("parent-") for d in view["disclosures"])
