"""The pure decision and the SQL predicate compiled from the same policy agree on every account."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert

from consent_rows import account_rows, purpose_rows
from cove.consent.decision import (
    ALLOWING,
    DAY_MS,
    AccountConsent,
    AgeBracket,
    PurposeState,
    Why,
    effective_ms,
    permitted,
    why,
)
from cove.consent.policy import Choice, Policy, parse_policy
from cove.consent.predicate import permitted_accounts
from cove.consent.storage import consent_accounts, consent_purposes
from cove.db import create_engine, migrate

EFFECTIVE = datetime(2026, 1, 1, tzinfo=UTC)
T0 = int(EFFECTIVE.timestamp() * 1000)


def purpose(pid: str, **fields) -> dict:
    base = {
        "id": pid,
        "title": pid,
        "description": f"{pid} for tests",
        "use": "analytics",
        "legal_basis": "consent",
        "data_categories": ["device.model"],
        "recipients": ["parent"],
        "closed_to_minors": False,
    }
    return base | fields


def make_policy(version: str, effective: datetime = EFFECTIVE) -> Policy:
    return parse_policy(
        {
            "version": version,
            "effective": effective,
            "title": "t",
            "summary": "s",
            "text": "x",
            "recipients": [
                {"id": "parent", "name": "Parent", "role": "independent_controller"},
                {"id": "other", "name": "Other"},
            ],
            "purposes": [
                purpose("opt_in"),
                purpose("pre_ticked", default="in"),
                purpose("windowed", default="in", window_days=30),
                purpose("minors_closed", closed_to_minors=True),
                purpose("interest", legal_basis="legitimate_interest", objectable=True, recipients=["parent", "other"]),
                purpose("interest_fixed", legal_basis="legitimate_interest", objectable=False),
                purpose("contractual", legal_basis="contract"),
                purpose("no_basis", legal_basis=None, default="in"),
            ],
            "rollout": {"waves": [{"name": "all", "start": effective}]},
        }
    )


POLICIES = [make_policy("v1"), make_policy("v2", datetime(2026, 3, 1, tzinfo=UTC))]
PURPOSES = [p.id for p in POLICIES[0].purposes] + ["unknown"]
RECIPIENTS = ["parent", "other", "nobody"]

times = st.integers(min_value=T0 - 40 * DAY_MS, max_value=T0 + 120 * DAY_MS)
purpose_states = st.builds(
    PurposeState,
    choice=st.sampled_from([None, Choice.IN, Choice.OUT]),
    chosen_at_ms=times,
    objected_at_ms=st.one_of(st.none(), times),
)
accounts = st.builds(
    AccountConsent,
    account_id=st.uuids().map(str),
    policy_version=st.sampled_from([None, "v1", "v2", "v0"]),
    accepted_at_ms=times,
    age_bracket=st.sampled_from(list(AgeBracket)),
    purposes=st.dictionaries(st.sampled_from(PURPOSES[:-1]), purpose_states, max_size=len(PURPOSES) - 1),
)


@pytest.fixture
def runner():
    with asyncio.Runner() as r:
        yield r


@pytest.fixture
def engine(database_url, runner):
    engine = create_engine(database_url)
    runner.run(migrate(engine))
    yield engine
    runner.run(engine.dispose())


async def store(engine, population: list[AccountConsent]) -> None:
    async with engine.begin() as conn:
        await conn.execute(delete(consent_purposes))
        await conn.execute(delete(consent_accounts))
        rows = account_rows(population)
        if rows:
            await conn.execute(insert(consent_accounts), rows)
        states = purpose_rows(population)
        if states:
            await conn.execute(insert(consent_purposes), states)


async def selected(engine, purpose_id: str, recipient_id: str, at_ms: int) -> set[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(permitted_accounts(POLICIES, purpose_id, recipient_id), {"at_ms": at_ms})
        return {row.account_id for row in rows}


def by_policy(consent: AccountConsent) -> Policy | None:
    return next((p for p in POLICIES if p.version == consent.policy_version), None)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(population=st.lists(accounts, max_size=25, unique_by=lambda c: c.account_id), at_ms=times)
def test_the_sql_predicate_selects_exactly_the_accounts_the_decision_permits(engine, runner, population, at_ms):
    # Rows store the choice time only with a choice, as the service writes them.
    population = [
        AccountConsent(
            c.account_id,
            c.policy_version,
            c.accepted_at_ms,
            c.age_bracket,
            {
                k: PurposeState(s.choice, s.chosen_at_ms if s.choice else None, s.objected_at_ms)
                for k, s in c.purposes.items()
            },
        )
        for c in population
    ]
    runner.run(store(engine, population))
    for purpose_id in PURPOSES:
        for recipient_id in RECIPIENTS:
            expected = {
                c.account_id
                for c in population
                if (policy := by_policy(c)) and permitted(policy, c, purpose_id, recipient_id, at_ms)
            }
            assert runner.run(selected(engine, purpose_id, recipient_id, at_ms)) == expected, (purpose_id, recipient_id)


# The rules themselves, one by one ----------------------------------------------------------------------
ADULT = AgeBracket.ADULT
V1 = POLICIES[0]
LATER = T0 + DAY_MS


def consent(**states: PurposeState) -> AccountConsent:
    return AccountConsent("a", "v1", T0, ADULT, states)


def test_nothing_is_permitted_before_the_terms_of_that_version_are_accepted():
    assert not permitted(V1, AccountConsent("a"), "contractual", "parent", LATER)
    assert not permitted(V1, AccountConsent("a", "v2", T0, ADULT), "contractual", "parent", LATER)
    assert permitted(V1, consent(), "contractual", "parent", LATER)
    assert not permitted(V1, consent(), "contractual", "parent", T0 - 1)


def test_consent_purposes_need_an_affirmative_act_and_withdrawal_wins():
    assert not permitted(V1, consent(), "opt_in", "parent", LATER)
    assert permitted(V1, consent(opt_in=PurposeState(Choice.IN, T0)), "opt_in", "parent", LATER)
    assert not permitted(V1, consent(opt_in=PurposeState(Choice.OUT, T0)), "opt_in", "parent", LATER)


def test_a_pre_ticked_purpose_waits_for_its_window_to_close():
    assert permitted(V1, consent(), "pre_ticked", "parent", LATER)
    assert not permitted(V1, consent(), "windowed", "parent", T0 + 29 * DAY_MS)
    assert permitted(V1, consent(), "windowed", "parent", T0 + 30 * DAY_MS)
    assert not permitted(V1, consent(windowed=PurposeState(Choice.OUT, T0)), "windowed", "parent", T0 + 31 * DAY_MS)


def test_objection_stops_an_objectable_legitimate_interest_only():
    objected = PurposeState(objected_at_ms=T0)
    assert permitted(V1, consent(), "interest", "parent", LATER)
    assert not permitted(V1, consent(interest=objected), "interest", "parent", LATER)
    assert permitted(V1, consent(interest_fixed=objected), "interest_fixed", "parent", LATER)


def test_minors_and_undeclared_ages_are_never_permitted_closed_purposes():
    chose = PurposeState(Choice.IN, T0)
    for bracket in (AgeBracket.MINOR, AgeBracket.UNKNOWN):
        assert not permitted(
            V1, AccountConsent("a", "v1", T0, bracket, {"minors_closed": chose}), "minors_closed", "parent", LATER
        )
    assert permitted(V1, consent(minors_closed=chose), "minors_closed", "parent", LATER)


def test_only_declared_recipients_and_purposes():
    chose = PurposeState(Choice.IN, T0)
    assert not permitted(V1, consent(opt_in=chose), "opt_in", "other", LATER)
    assert permitted(V1, consent(), "interest", "other", LATER)
    assert not permitted(V1, consent(), "unknown", "parent", LATER)
    assert effective_ms(V1) == T0


@given(consent=accounts, at_ms=times)
def test_why_a_purpose_is_on_agrees_with_the_decision_for_every_recipient(consent, at_ms):
    policy = by_policy(consent) or V1
    for purpose in policy.purposes:
        on = why(policy, consent, purpose.id, at_ms) in ALLOWING
        assert all(permitted(policy, consent, purpose.id, r, at_ms) == on for r in purpose.recipients)


def test_each_reason_names_the_rule_that_decided():
    objected = PurposeState(objected_at_ms=T0)
    minor = AccountConsent("a", "v1", T0, AgeBracket.MINOR, {"minors_closed": PurposeState(Choice.IN, T0)})
    cases = {
        Why.NOT_ACCEPTED: (AccountConsent("a"), "opt_in", LATER),
        Why.NOT_YET: (consent(), "opt_in", T0 - 1),
        Why.UNKNOWN_PURPOSE: (consent(), "unknown", LATER),
        Why.CLOSED_TO_MINORS: (minor, "minors_closed", LATER),
        Why.CONTRACT: (consent(), "contractual", LATER),
        Why.LEGITIMATE_INTEREST: (consent(interest_fixed=objected), "interest_fixed", LATER),
        Why.OBJECTED: (consent(interest=objected), "interest", LATER),
        Why.CHOSE_IN: (consent(opt_in=PurposeState(Choice.IN, T0)), "opt_in", LATER),
        Why.CHOSE_OUT: (consent(opt_in=PurposeState(Choice.OUT, T0)), "opt_in", LATER),
        Why.OFF_BY_DEFAULT: (consent(), "opt_in", LATER),
        Why.WINDOW_OPEN: (consent(), "windowed", LATER),
        Why.ON_BY_DEFAULT: (consent(), "pre_ticked", LATER),
    }
    for reason, (state, purpose_id, at_ms) in cases.items():
        assert why(V1, state, purpose_id, at_ms) == reason, reason
