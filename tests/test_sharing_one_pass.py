"""One pass over the consent state selects what each purpose's own predicate selects, purpose by purpose.

An export reads ``consent_accounts`` and ``consent_purposes`` once and evaluates every purpose's permitted clause
in one DuckDB statement (:func:`cove.sharing.selection.flags_sql`). Whatever the policies (several versions, every
legal basis, defaults, windows, minors, recipients) and the consent state, each column of that pass must hold
exactly the accounts that :func:`cove.consent.predicate.permitted_accounts` selects in the relay's database for
that purpose and version, and that the pure decision :func:`cove.consent.decision.permitted` permits, though it
reads only the choice rows :func:`cove.consent.predicate.rows_read` keeps. The same one-pass statement run in the
relay's database, over every row, must agree too.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import duckdb
import pyarrow as pa
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select

from consent_rows import account_rows, purpose_rows
from cove.consent.decision import DAY_MS, AccountConsent, AgeBracket, PurposeState, permitted
from cove.consent.policy import Choice, Policy, parse_policy
from cove.consent.predicate import permitted_accounts, permitted_flags, rows_read
from cove.consent.storage import consent_accounts, consent_purposes
from cove.db import create_engine
from cove.sharing.plan import PlanError, plan_purposes
from cove.sharing.selection import flag, flag_versions, flags_sql

RECIPIENT = "parent"
PURPOSE_IDS = ["p_one", "p_two", "p_three"]
EFFECTIVE = {"v1": datetime(2026, 1, 1, tzinfo=UTC), "v2": datetime(2026, 3, 1, tzinfo=UTC)}
T0 = int(EFFECTIVE["v1"].timestamp() * 1000)
times = st.integers(T0 - 20 * DAY_MS, T0 + 120 * DAY_MS)

BASES = {
    "consent": {"legal_basis": "consent"},
    "interest": {"legal_basis": "legitimate_interest", "objectable": True},
    "interest_fixed": {"legal_basis": "legitimate_interest", "objectable": False},
    "contract": {"legal_basis": "contract"},
    "none": {"legal_basis": None},
}


@st.composite
def purposes(draw: st.DrawFn, purpose_id: str) -> dict:
    return {
        "id": purpose_id,
        "title": purpose_id,
        "description": "for tests",
        "use": "analytics",
        "data_categories": ["device.model"],
        "recipients": draw(st.sampled_from([["parent"], ["other"], ["parent", "other"]])),
        "default": draw(st.sampled_from(["in", "out"])),
        "window_days": draw(st.sampled_from([None, 1, 30])),
        "closed_to_minors": draw(st.booleans()),
    } | BASES[draw(st.sampled_from(sorted(BASES)))]


@st.composite
def policies(draw: st.DrawFn, version: str) -> Policy:
    chosen = draw(st.lists(st.sampled_from(PURPOSE_IDS), min_size=1, unique=True))
    return parse_policy(
        {
            "version": version,
            "effective": EFFECTIVE[version],
            "title": "t",
            "summary": "s",
            "text": "x",
            "recipients": [{"id": "parent", "name": "Parent"}, {"id": "other", "name": "Other"}],
            "purposes": [draw(purposes(p)) for p in chosen],
            "rollout": {"waves": [{"name": "all", "start": EFFECTIVE[version]}]},
        }
    )


# A choice time only with a choice, as the consent service writes them.
states = st.builds(
    lambda choice, objected_at_ms: PurposeState(choice, T0 if choice else None, objected_at_ms),
    st.sampled_from([None, Choice.IN, Choice.OUT]),
    st.one_of(st.none(), times),
)
population = st.lists(
    st.builds(
        AccountConsent,
        account_id=st.uuids().map(str),
        policy_version=st.sampled_from([None, "v1", "v2", "v0"]),
        accepted_at_ms=times,
        age_bracket=st.sampled_from(list(AgeBracket)),
        purposes=st.dictionaries(st.sampled_from(PURPOSE_IDS), states, max_size=len(PURPOSE_IDS)),
    ),
    max_size=30,
    unique_by=lambda c: c.account_id,
)

ACCOUNTS_SCHEMA = pa.schema(
    [("account_id", pa.string()), ("policy_version", pa.string()), ("accepted_at_ms", pa.int64())]
    + [("age_bracket", pa.string())]
)
PURPOSES_SCHEMA = pa.schema(
    [("account_id", pa.string()), ("policy_version", pa.string()), ("purpose_id", pa.string())]
    + [("choice", pa.string()), ("objected_at_ms", pa.int64())]
)


async def store(engine, people: list[AccountConsent]) -> None:  # noqa: ANN001
    async with engine.begin() as conn:
        await conn.execute(delete(consent_purposes))
        await conn.execute(delete(consent_accounts))
        accepted = [c for c in people if c.policy_version is not None]
        if accepted:
            await conn.execute(insert(consent_accounts), account_rows(accepted))
        rows = purpose_rows(accepted)
        # Rows left from a version the account no longer holds (chose in, objected): no clause may read them.
        rows += [
            {
                "account_id": c.account_id,
                "policy_version": "v2" if c.policy_version == "v1" else "v1",
                "purpose_id": purpose_id,
                "choice": "in",
                "chosen_at_ms": T0,
                "objected_at_ms": T0,
            }
            for c in accepted
            for purpose_id in PURPOSE_IDS
        ]
        if rows:
            await conn.execute(insert(consent_purposes), rows)


async def evaluate(engine, policies_: list[Policy], at_ms: int) -> tuple[dict, dict, dict]:  # noqa: ANN001
    """Per flag: what each purpose's own predicate selects, the one pass in DuckDB, and in the relay's database."""
    plans = plan_purposes(policies_, RECIPIENT)
    versions = flag_versions(plans)
    async with engine.connect() as conn:
        own = {
            label: {
                r.account_id for r in await conn.execute(permitted_accounts([policy], pid, RECIPIENT), {"at_ms": at_ms})
            }
            for label, policy, pid in versions
        }
        in_database = {label: set() for label, _, _ in versions}
        for row in (await conn.execute(permitted_flags(versions, RECIPIENT), {"at_ms": at_ms})).mappings():
            for label in in_database:
                if row[label]:
                    in_database[label].add(row["account_id"])
        # As the export reads them: only the rows the one pass can tell from no row.
        read_rows = select(*consent_purposes.c[*PURPOSES_SCHEMA.names]).where(rows_read(versions, RECIPIENT))
        stored = {
            "consent_accounts": pa.Table.from_pylist(
                [dict(r) for r in (await conn.execute(select(*consent_accounts.c[*ACCOUNTS_SCHEMA.names]))).mappings()],
                ACCOUNTS_SCHEMA,
            ),
            "consent_purposes": pa.Table.from_pylist(
                [dict(r) for r in (await conn.execute(read_rows)).mappings()],
                PURPOSES_SCHEMA,
            ),
        }
    duck = duckdb.connect()
    for name, table in stored.items():
        duck.register(name, table)
    one_pass = {label: set() for label, _, _ in versions}
    result = duck.sql(flags_sql(plans, RECIPIENT, at_ms)).to_arrow_table().to_pylist()
    for row in result:
        for label in one_pass:
            if row[label]:
                one_pass[label].add(row["account_id"])
    duck.close()
    return own, one_pass, in_database


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(v1=policies("v1"), v2=policies("v2"), people=population, at_ms=times)
def test_one_pass_selects_what_each_purpose_predicate_and_the_decision_select(
    database_url: str, v1: Policy, v2: Policy, people: list[AccountConsent], at_ms: int
) -> None:
    try:
        plans = plan_purposes([v1, v2], RECIPIENT)
    except PlanError:
        assume(False)  # neither version names the recipient: nothing to export

    async def run() -> tuple[dict, dict, dict]:
        engine = create_engine(database_url)
        try:
            await store(engine, people)
            return await evaluate(engine, [v1, v2], at_ms)
        finally:
            await engine.dispose()

    own, one_pass, in_database = asyncio.run(run())
    assert one_pass == own
    assert in_database == own
    for plan in plans:
        for n, (policy, _) in enumerate(plan.versions):
            decided = {
                c.account_id
                for c in people
                if c.policy_version == policy.version and permitted(policy, c, plan.id, RECIPIENT, at_ms)
            }
            assert own[flag(plan, n)] == decided, (plan.id, policy.version)


def test_an_objection_reaches_the_one_pass(database_url: str) -> None:
    """The rarest case of the property above, pinned: an objectable legitimate interest reads objection rows."""
    policy = parse_policy(
        {
            "version": "v1",
            "effective": EFFECTIVE["v1"],
            "title": "t",
            "summary": "s",
            "text": "x",
            "recipients": [{"id": "parent", "name": "Parent"}],
            "purposes": [
                {
                    "id": "p_one",
                    "title": "p",
                    "description": "d",
                    "use": "analytics",
                    "data_categories": ["device.model"],
                    "recipients": ["parent"],
                    "closed_to_minors": False,
                }
                | BASES["interest"]
            ],
            "rollout": {"waves": [{"name": "all", "start": EFFECTIVE["v1"]}]},
        }
    )
    objected = AccountConsent("a-objected", "v1", T0, AgeBracket.ADULT, {"p_one": PurposeState(objected_at_ms=T0)})
    silent = AccountConsent("a-silent", "v1", T0, AgeBracket.ADULT, {"p_one": PurposeState(Choice.IN, T0)})

    async def run() -> tuple[dict, dict, dict]:
        engine = create_engine(database_url)
        try:
            await store(engine, [objected, silent])
            return await evaluate(engine, [policy], T0 + DAY_MS)
        finally:
            await engine.dispose()

    own, one_pass, in_database = asyncio.run(run())
    assert own == one_pass == in_database == {"permitted_p_one_0": {"a-silent"}}
