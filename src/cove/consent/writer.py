"""Group commit (cove.batching) for choices, withdrawals and objections, with their ledger entries.

Like the message queue writer: every act waiting at one moment is judged and written in one transaction
(one thread hop on SQLite), acts of one account in the order they arrived, each caller answered when its
act is durable. One writer per process also means two acts of one account never race for a ledger seq
within a process; across processes (PostgreSQL) a batch locks its accounts' rows first.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from cove.batching import GroupCommit, new_future
from cove.clock import now_ms
from cove.consent import acts, ledger, ledger_storage
from cove.consent.decision import AccountConsent, AgeBracket, PurposeState
from cove.consent.policy import Choice, Policy
from cove.consent.storage import consent_accounts, consent_purposes
from cove.db import TransactionRunner
from cove.errors import ApiError

log = logging.getLogger("cove.consent")
MAX_BATCH = 500


@dataclass
class _Job:
    act: acts.Act
    future: asyncio.Future[None] = field(default_factory=new_future)


class ConsentWriter:
    def __init__(self, engine: AsyncEngine, policies: Any) -> None:  # policies: cove.consent.service.PolicyBook
        self._runner = TransactionRunner(engine)
        self._policies = policies
        self._batches: GroupCommit[_Job] = GroupCommit("cove-consent-writer", self._write, MAX_BATCH)

    def start(self) -> None:
        self._batches.start()

    async def stop(self) -> None:
        await self._batches.stop()
        self._runner.close()

    async def submit(self, act: acts.Act) -> None:
        await self._batches.submit(_Job(act))

    async def _write(self, batch: list[_Job]) -> None:
        # Loaded here, on the event loop, never inside the transaction: a reload needs a connection.
        policies = {p.version: p for p in await self._policies.all()}
        outcomes = await self._commit(functools.partial(_apply, batch=batch, policies=policies), len(batch))
        for job, outcome in zip(batch, outcomes, strict=True):
            if job.future.done():
                continue
            if outcome is None:
                job.future.set_result(None)
            else:
                job.future.set_exception(outcome)

    async def _commit(self, apply: functools.partial, size: int) -> list[ApiError | None]:
        for _ in range(3):
            try:
                return await self._runner.run(apply)
            except IntegrityError:
                continue  # terms or a served notice took the account's next ledger seq meanwhile: re-read
            except Exception:
                log.exception("consent write failed")
                break
        return [ApiError(503, "unavailable", "your choice could not be saved; retry")] * size


def _apply(conn: Connection, batch: list[_Job], policies: dict[str, Policy]) -> list[ApiError | None]:
    now = now_ms()
    account_ids = sorted({job.act.account_id for job in batch})
    if conn.dialect.name == "postgresql":
        # Several relay processes: one account's acts can reach two writers at once. Each would read the same
        # ledger head and one would fail at commit, taking its whole batch with it. Locking the accounts'
        # rows (in one order, so two batches cannot deadlock) makes the later writer wait and read the new head.
        conn.execute(
            select(consent_accounts.c.account_id)
            .where(consent_accounts.c.account_id.in_(account_ids))
            .order_by(consent_accounts.c.account_id)
            .with_for_update()
        )
    consents = _load(conn, account_ids)
    heads = ledger_storage.heads_of(conn, account_ids)
    existing = {(a, p) for a, c in consents.items() for p in c.purposes}
    changed: dict[tuple[str, str], tuple[str, PurposeState, str]] = {}
    entries: list[ledger.Entry] = []
    outcomes: list[ApiError | None] = []
    for job in batch:
        act = job.act
        consent = consents.get(act.account_id, AccountConsent(act.account_id))
        policy = policies.get(consent.policy_version or "")
        try:
            state = acts.apply(policy, consent, act, now)
        except ApiError as refused:
            outcomes.append(refused)
            continue
        consents[act.account_id] = AccountConsent(
            consent.account_id,
            consent.policy_version,
            consent.accepted_at_ms,
            consent.age_bracket,
            {**consent.purposes, act.purpose_id: state},
        )
        changed[(act.account_id, act.purpose_id)] = (consent.policy_version, state, act.method)
        value = "objected" if act.kind == acts.OBJECTION else state.choice.value
        payload = {"policy_version": consent.policy_version, "purpose": act.purpose_id, "value": value}
        entry = ledger.next_entry(
            heads.get(act.account_id), act.account_id, act.kind, payload | {"method": act.method} | act.context, now
        )
        heads[act.account_id] = ledger.Head(act.account_id, entry.seq, entry.hash)
        entries.append(entry)
        outcomes.append(None)

    updates, inserts = [], []
    for (account_id, purpose_id), (version, state, method) in changed.items():
        row = {
            "account_id": account_id,
            "policy_version": version,
            "purpose_id": purpose_id,
            "choice": state.choice.value if state.choice else None,
            "chosen_at_ms": state.chosen_at_ms,
            "method": method if state.choice else None,
            "objected_at_ms": state.objected_at_ms,
        }
        (updates if (account_id, purpose_id) in existing else inserts).append(row)
    if updates:
        p = consent_purposes
        key = ("account_id", "policy_version", "purpose_id")
        conn.execute(
            update(p)
            .where(*(p.c[k] == bindparam(f"key_{k}") for k in key))
            .values({k: bindparam(k) for k in ("choice", "chosen_at_ms", "method", "objected_at_ms")}),
            [{(f"key_{k}" if k in key else k): v for k, v in row.items()} for row in updates],
        )
    if inserts:
        conn.execute(insert(consent_purposes), inserts)
    ledger_storage.insert_entries(conn, entries)
    return outcomes


def _load(conn: Connection, account_ids: list[str]) -> dict[str, AccountConsent]:
    a, p = consent_accounts, consent_purposes
    accounts = {r.account_id: r for r in conn.execute(select(a).where(a.c.account_id.in_(account_ids)))}
    purposes: dict[str, dict[str, PurposeState]] = {}
    if accounts:
        # A plain IN on the key's first column: SQLite does not use the primary key for a row-value IN and
        # would scan every choice row of every account.
        for r in conn.execute(select(p).where(p.c.account_id.in_(list(accounts)))):
            if r.policy_version != accounts[r.account_id].policy_version:
                continue
            purposes.setdefault(r.account_id, {})[r.purpose_id] = PurposeState(
                Choice(r.choice) if r.choice else None, r.chosen_at_ms, r.objected_at_ms
            )
    return {
        account_id: AccountConsent(
            account_id, r.policy_version, r.accepted_at_ms, AgeBracket(r.age_bracket), purposes.get(account_id, {})
        )
        for account_id, r in accounts.items()
    }
