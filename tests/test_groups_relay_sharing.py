"""Property-based: group membership never leaves through the sharing gateway. Whatever the population, its
choices and the groups its members are in (roles, invites, queued group messages), a batch exported with the
groups in the database is, row for row, the batch exported without them, and names no group.

Each example runs the real gateway twice on copies of one SQLite relay database that differ only in groups.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cove.consent.decision import DAY_MS
from cove.db import create_engine
from cove.groups import storage as groups
from cove.messaging import storage as queues
from cove.sharing import gateway
from cove.sharing.keys import SharingKeys
from sharing_world import World, read_batch

RECIPIENT = "parent"
PURPOSES = ["account_linking", "friend_suggestions", "ads"]


people = st.lists(
    st.fixed_dictionaries(
        {
            "age": st.sampled_from(["adult", "adult", "minor"]),
            "choices": st.dictionaries(st.sampled_from(PURPOSES), st.sampled_from(["in", "out"])),
        }
    ),
    min_size=1,
    max_size=8,
)
# Each group: its members (indexes into the population; the first is its admin), admins beyond the first, and
# how many messages wait in its members' queues.
memberships = st.lists(
    st.tuples(
        st.lists(st.integers(0, 7), min_size=1, max_size=8, unique=True),
        st.lists(st.integers(0, 7), max_size=3),
        st.integers(0, 2),
    ),
    min_size=1,
    max_size=4,
)


async def _add_groups(url: str, accounts: list[str], spec: list, at_ms: int) -> list[str]:
    engine = create_engine(url)
    ids = []
    try:
        async with engine.begin() as conn:
            for n, (members, admins, messages) in enumerate(spec):
                group_id = f"{n:02x}" * 16
                chosen = [accounts[i % len(accounts)] for i in members]
                chosen = list(dict.fromkeys(chosen))
                promoted = {accounts[i % len(accounts)] for i in admins} | {chosen[0]}
                roles = [(a, "admin" if a in promoted else "member") for a in chosen]
                await groups.create(conn, group_id, roles, at_ms)
                await groups.add_invite(conn, f"{n:064x}", group_id, chosen[0], at_ms)
                for m in range(messages):
                    await conn.run_sync(lambda sync, g=group_id, c=chosen, m=m: _queue(sync, g, c, m, at_ms))
                ids.append(group_id)
    finally:
        await engine.dispose()
    return ids


def _queue(conn, group_id: str, members: list[str], m: int, at_ms: int) -> None:  # noqa: ANN001
    message = queues.insert_group_message(
        conn,
        {
            "group_id": group_id,
            "sender_account_id": members[0],
            "sender_device_id": 1,
            "client_message_id": f"{group_id}-{m}",
            "body": b"megolm",
            "server_ts_ms": at_ms,
            "expires_at_ms": at_ms + 30 * DAY_MS,
            "remaining": len(members),
        },
    )
    shared = {
        "kind": 2,
        "sender_account_id": members[0],
        "sender_device_id": 1,
        "client_message_id": f"{group_id}-{m}",
        "body": b"",
        "server_ts_ms": at_ms,
        "expires_at_ms": at_ms + 30 * DAY_MS,
        "group_message_id": message,
    }
    queues.insert_fan_out(conn, shared, [(a, 1) for a in members])


async def _export(url: str, keys: SharingKeys, outbox: Path, at_ms: int) -> dict[str, list[dict]]:
    engine = create_engine(url)
    try:
        result = await gateway.export(engine, keys, RECIPIENT, outbox, at_ms=at_ms)
    finally:
        await engine.dispose()
    return read_batch(outbox / result.manifest.batch_id)


async def scenario(folder: Path, template: Path, population: list[dict], spec: list) -> None:
    plain, grouped = folder / "plain.db", folder / "grouped.db"
    shutil.copy(template, plain)
    engine = create_engine(f"sqlite+aiosqlite:///{plain}")
    try:
        world = World(engine)
        await world.publish()
        for person in population:
            await world.add(person["choices"], age=person["age"])
    finally:
        await engine.dispose()
    shutil.copy(plain, grouped)
    accounts = [p.account_id for p in world.people]
    group_ids = await _add_groups(f"sqlite+aiosqlite:///{grouped}", accounts, spec, world.t0)

    keys = SharingKeys.load_or_create(folder)
    at = world.t0 + DAY_MS
    without = await _export(f"sqlite+aiosqlite:///{plain}", keys, folder / "out-plain", at)
    with_groups = await _export(f"sqlite+aiosqlite:///{grouped}", keys, folder / "out-grouped", at)
    assert with_groups == without
    exported = repr(with_groups)
    assert not [g for g in group_ids if g in exported]
    assert "group" not in exported.lower()


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(population=people, spec=memberships)
def test_group_membership_never_leaves_through_the_sharing_gateway(
    tmp_path_factory: pytest.TempPathFactory, _migrated_sqlite: Path, population: list, spec: list
) -> None:
    # _migrated_sqlite (tests/conftest.py): one migrated database for the session, copied for each example.
    asyncio.run(scenario(tmp_path_factory.mktemp("example"), _migrated_sqlite, population, spec))
