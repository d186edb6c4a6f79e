"""Property-based: whatever the population, policy, choice history and batch sequence, the partner's store holds
for each purpose exactly the accounts that purpose permits at the batch's time, and replaying changes nothing.

Each example runs the real gateway on a SQLite relay database and the real partner ingest on a DuckDB store.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cove.consent.decision import DAY_MS, permitted
from cove.consent.policy import Choice, LegalBasis, Policy, load_policy
from cove.consent.storage import load_consent
from cove.db import create_engine, migrate
from cove.partner.ingest import ingest_directory
from cove.partner.store import open_store
from cove.sharing import gateway
from cove.sharing.keys import SharingKeys
from cove.sharing.plan import plan_purposes
from sharing_world import DEFAULT_POLICY, World, ban

RECIPIENT = "parent"
CONSENT_PURPOSES = ["account_linking", "friend_suggestions", "ads"]


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated database, copied for each example: migrations are the slow part of a fresh database."""
    path = tmp_path_factory.mktemp("template") / "relay.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    asyncio.run(migrate(engine))
    asyncio.run(engine.dispose())
    return path


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    """The default policy with each consent purpose's default and window drawn, and linking sometimes an
    objectable legitimate interest instead of consent."""
    base = load_policy(DEFAULT_POLICY)
    purposes = []
    for purpose in base.purposes:
        if purpose.id in CONSENT_PURPOSES:
            update = {"default": draw(st.sampled_from(Choice)), "window_days": draw(st.sampled_from([None, 1, 30]))}
            if purpose.id == "account_linking" and draw(st.booleans()):
                update |= {"legal_basis": LegalBasis.LEGITIMATE_INTEREST, "objectable": True, "window_days": None}
            purpose = purpose.model_copy(update=update)
        purposes.append(purpose)
    return base.model_copy(update={"purposes": purposes})


people = st.lists(
    st.fixed_dictionaries(
        {
            "age": st.sampled_from(["adult", "adult", "minor", "unknown"]),
            "accepted": st.booleans(),
            "choices": st.dictionaries(st.sampled_from(CONSENT_PURPOSES), st.sampled_from(["in", "out"])),
            "banned": st.sampled_from([None, None, None, "spam"]),
        }
    ),
    min_size=1,
    max_size=8,
)
action = st.one_of(
    st.tuples(st.just("choose"), st.integers(0, 7), st.sampled_from(CONSENT_PURPOSES), st.sampled_from(["in", "out"])),
    st.tuples(st.just("device"), st.integers(0, 7)),
    st.tuples(st.just("ban"), st.integers(0, 7)),
    st.tuples(st.just("delete"), st.integers(0, 7)),
    st.tuples(st.just("export"), st.sampled_from([False, False, False, True])),  # mostly incremental
)


def shared(store: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    held: dict[str, set[str]] = {}
    for purpose, subject in store.execute("SELECT purpose, subject FROM shared_profiles").fetchall():
        held.setdefault(purpose, set()).add(subject)
    return held


def snapshot(store: duckdb.DuckDBPyConnection) -> dict[str, list]:
    tables = ["shared_purposes", "shared_profiles", "shared_usage", "applied_batches", "applied_erasures", "links"]
    return {t: sorted(map(repr, store.execute(f"SELECT * FROM {t}").fetchall())) for t in tables}


async def expected(world: World, keys: SharingKeys, policy: Policy, at_ms: int) -> dict[str, set[str]]:
    """The pure decision, account by account: what the recipient should hold after a batch as of ``at_ms``."""
    want: dict[str, set[str]] = {}
    async with world.engine.connect() as conn:
        for plan in plan_purposes([policy], RECIPIENT):
            for person in world.people:
                consent = await load_consent(conn, person.account_id)
                ok = permitted(policy, consent, plan.id, RECIPIENT, at_ms)
                ok = ok and (bool(person.banned) if plan.only_banned else (plan.safety or not person.banned))
                if ok:
                    want.setdefault(plan.id, set()).add(keys.subject(RECIPIENT, person.account_id))
    return want


async def scenario(folder: Path, template: Path, policy: Policy, population: list[dict], actions: list) -> None:
    shutil.copy(template, folder / "relay.db")
    engine = create_engine(f"sqlite+aiosqlite:///{folder / 'relay.db'}")
    keys = SharingKeys.load_or_create(folder)
    trust = keys.trust_bundle(RECIPIENT)
    store = open_store(":memory:")
    outbox = folder / "outbox"
    try:
        world = World(engine, policy)
        await world.publish()
        for spec in population:
            await world.add(spec["choices"], age=spec["age"], banned=spec["banned"], accepted=spec["accepted"])
        t = world.t0
        previous = None
        for step in [*actions, ("export", False)]:
            t += DAY_MS // 2
            kind, *args = step
            live = world.people
            if kind == "export":
                full = args[0] or previous is None
                result = await gateway.export(
                    engine, keys, RECIPIENT, outbox, since_batch=None if full else previous, at_ms=t
                )
                previous = result.manifest.batch_id
                ingest_directory(store, outbox, trust, t)
                held = shared(store)
                want = await expected(world, keys, policy, t)
                for purpose in {*held, *want}:
                    assert held.get(purpose, set()) == want.get(purpose, set()), (purpose, result.manifest.kind)
            elif live and kind == "choose":
                await world.choose(live[args[0] % len(live)], args[1], args[2], t)
            elif live and kind == "device":
                await world.update_device(live[args[0] % len(live)], f"Model {t}", t)
            elif live and kind == "ban":
                await ban(engine, live[args[0] % len(live)], "abuse", t)
            elif live and kind == "delete":
                await world.delete(live[args[0] % len(live)], t)
        before = snapshot(store)
        for batch in sorted(p for p in outbox.iterdir() if (p / "manifest.json").exists()):
            ingest_directory(store, batch, trust, t)  # replay every batch: each was applied already
        assert snapshot(store) == before
    finally:
        store.close()
        await engine.dispose()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(policy=policies(), population=people, actions=st.lists(action, max_size=10))
def test_the_partner_holds_exactly_what_each_purpose_permits(
    tmp_path_factory: pytest.TempPathFactory, template_db: Path, policy: Policy, population: list, actions: list
) -> None:
    asyncio.run(scenario(tmp_path_factory.mktemp("example"), template_db, policy, population, actions))
