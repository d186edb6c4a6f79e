"""The read side of an export: which accounts each purpose permits now, and their declared fields.

Everything is read from one :class:`~cove.sharing.snapshot.Snapshot` as Arrow, then joined in an in-process
DuckDB: the relay's database does what it is good at (the consent predicate over its indexes, sequential scans)
and no per-row Python runs before the pseudonyms are computed.

The *scope* is the set of accounts whose permission or data may have changed: every account for a full batch,
or, for an incremental one, the accounts touched since the previous batch (consent acts, bans, device changes,
usage, choice windows closing). Outside the scope nothing can have changed, so an incremental batch costs what
the changes cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
from sqlalchemy import Select, String, column, or_, select, table, union_all

from cove.consent.categories import DataCategory
from cove.consent.decision import DAY_MS, effective_ms
from cove.consent.policy import Policy
from cove.consent.predicate import permitted_accounts
from cove.consent.storage import consent_accounts, consent_policies, consent_purposes
from cove.sharing import catalogue, wire
from cove.sharing.catalogue import Transform
from cove.sharing.keys import SharingKeys
from cove.sharing.plan import PurposePlan
from cove.sharing.snapshot import Snapshot
from cove.sharing.storage import sharing_subjects

SCOPE_TABLE = "sharing_scope"
scope_accounts = table(SCOPE_TABLE, column("account_id", String))

accounts, devices, usage, verdicts = (
    catalogue.accounts,
    catalogue.devices,
    catalogue.usage_daily,
    catalogue.safety_verdicts,
)


@dataclass
class Selected:
    plan: PurposePlan
    permitted: np.ndarray  # ordinals in scope that the purpose permits now
    profile: pa.Table  # ordinal, account_id, subject, then the wire's profile columns (already pseudonymised)
    usage: pa.Table | None  # ordinal, account_id, subject, day, counters, updated_at_ms


def unique(values: np.ndarray) -> np.ndarray:
    # np.unique hashes in recent numpy releases, several times slower than sorting for plain integers.
    values = np.sort(values.astype(np.int64, copy=False))
    return values[np.concatenate(([True], values[1:] != values[:-1]))] if values.size else values


def scope_changes(policies: list[Policy], plans: list[PurposePlan], since_ms: int, at_ms: int) -> Select | None:
    """Accounts whose permission or shared data may have changed in ``(since_ms, at_ms]``; ``None`` if any
    account's may have (a policy was published or took effect), so everything must be re-evaluated."""
    if any(since_ms < effective_ms(p) <= at_ms for p in policies):
        return None
    queries: list[Select] = [
        select(consent_accounts.c.account_id).where(consent_accounts.c.accepted_at_ms > since_ms),
        select(consent_purposes.c.account_id).where(
            or_(consent_purposes.c.chosen_at_ms > since_ms, consent_purposes.c.objected_at_ms > since_ms)
        ),
        select(verdicts.c.account_id).where(verdicts.c.updated_at_ms > since_ms),
        select(devices.c.account_id).where(
            devices.c.device_id == catalogue.PRIMARY_DEVICE_ID, devices.c.updated_at_ms > since_ms
        ),
        select(usage.c.account_id).where(usage.c.updated_at_ms > since_ms),
    ]
    # A default that applies once a choice window closes changes permission without any act.
    for window in sorted({p.window_days for plan in plans for _, p in plan.versions if p.window_days}):
        span = window * DAY_MS
        queries.append(
            select(consent_accounts.c.account_id).where(
                consent_accounts.c.accepted_at_ms > since_ms - span, consent_accounts.c.accepted_at_ms <= at_ms - span
            )
        )
    # UNION ALL: with UNION, SQLite merges sorted scans of whole primary keys instead of using each index.
    return union_all(*queries)


def policies_published_since(since_ms: int) -> Select:
    return select(consent_policies.c.version).where(consent_policies.c.published_at_ms > since_ms)


class Reader:
    """Reads what one export needs in one snapshot, then answers per purpose from an in-process DuckDB."""

    def __init__(
        self,
        snapshot: Snapshot,
        keys: SharingKeys,
        recipient: str,
        plans: list[PurposePlan],
        at_ms: int,
        scope: Select | None,
    ) -> None:
        self.recipient, self.at_ms, self.scoped = recipient, at_ms, scope is not None
        # Pseudonyms are computed in DuckDB, in parallel C++, with keys that never leave this process.
        self.subject = f"left({wire.hmac_sql(keys.subject_key(recipient), 'p.account_id')}, 32)"
        self.phone_key = keys.phone_key(recipient)
        if scope is not None:
            snapshot.create_temporary(SCOPE_TABLE, scope)
        read = self._in_scope
        snapshot.query("subjects", read(select(sharing_subjects), sharing_subjects.c.account_id))
        snapshot.query(
            "verdicts",
            read(
                select(
                    verdicts.c.account_id, verdicts.c.reason_code, verdicts.c.banned_at_ms, verdicts.c.updated_at_ms
                ).where(verdicts.c.lifted_at_ms.is_(None)),
                verdicts.c.account_id,
            ),
        )
        snapshot.query("accounts", read(select(accounts), accounts.c.id))
        self.has_devices = any(plan.categories & catalogue.DEVICE_READS for plan in plans)
        if self.has_devices:
            primary = select(devices).where(devices.c.device_id == catalogue.PRIMARY_DEVICE_ID)
            snapshot.query("devices", read(primary, devices.c.account_id))
        if any(DataCategory.USAGE_COUNTERS in plan.categories for plan in plans):
            snapshot.query("usage", read(select(usage), usage.c.account_id))
        for plan in plans:
            for n, (policy, _) in enumerate(plan.versions):
                query = permitted_accounts([policy], plan.id, recipient)
                snapshot.query(_permitted(plan, n), read(query, consent_accounts.c.account_id), at_ms=at_ms)
        self.duck = duckdb.connect()
        for name, arrow in snapshot.read().items():
            self.duck.register(name, arrow)

    def close(self) -> None:
        self.duck.close()

    def _in_scope(self, query: Select, account_column) -> Select:  # noqa: ANN001 - a column clause
        return query.where(account_column.in_(select(scope_accounts.c.account_id))) if self.scoped else query

    def select(self, plan: PurposePlan) -> Selected:
        schema = wire.profile_schema(plan.manifest_categories(), plan.pseudonymised)
        wanted = [name for name in schema.names if name != "subject"]
        profiles, usages = [], []
        for n, (_, purpose) in enumerate(plan.versions):
            permitted = _permitted(plan, n)
            ban_rule = (
                "p.account_id IN (SELECT account_id FROM verdicts)"
                if plan.only_banned
                else "TRUE"
                if plan.safety
                else "p.account_id NOT IN (SELECT account_id FROM verdicts)"
            )
            declared = {}
            for f in catalogue.fields_for(list(purpose.data_categories)):
                name = f.wire_name
                if f.transform == Transform.PHONE:
                    name = "phone_hash" if plan.pseudonymised else "phone_number"
                expression = _duck_column(f)
                if f.transform == Transform.PHONE and plan.pseudonymised:
                    expression = wire.hmac_sql(self.phone_key, expression)
                elif f.transform == Transform.DAY:
                    expression = f"CAST(epoch_ms({expression}) AS DATE)"
                declared[name] = expression
            columns = ", ".join(
                f"{declared[name]} AS {name}"
                if name in declared
                else f"CAST(NULL AS {_duck_type(schema, name)}) AS {name}"
                for name in wanted
            )
            joins = "JOIN accounts a ON a.id = p.account_id"
            if self.has_devices:
                joins += " LEFT JOIN devices d ON d.account_id = p.account_id"
            joins += " LEFT JOIN verdicts v ON v.account_id = p.account_id"
            profiles.append(
                self.duck.sql(
                    f"""SELECT s.ordinal, p.account_id, {self.subject} AS subject, {columns}
                        FROM {permitted} p JOIN subjects s ON s.account_id = p.account_id {joins}
                        WHERE {ban_rule}"""
                ).to_arrow_table()
            )
            if DataCategory.USAGE_COUNTERS in purpose.data_categories:
                usages.append(
                    self.duck.sql(
                        f"""SELECT s.ordinal, p.account_id, {self.subject} AS subject, CAST(u.day AS INTEGER) AS day,
                                   CAST(u.messages_sent AS INTEGER) AS messages_sent,
                                   CAST(u.messages_received AS INTEGER) AS messages_received,
                                   CAST(u.app_opens AS INTEGER) AS app_opens, u.updated_at_ms
                            FROM {permitted} p JOIN subjects s ON s.account_id = p.account_id
                            JOIN usage u ON u.account_id = p.account_id
                            WHERE {ban_rule}"""
                    ).to_arrow_table()
                )
        profile = pa.concat_tables(profiles) if len(profiles) > 1 else profiles[0]
        permitted_ordinals = unique(profile.column("ordinal").to_numpy())
        usage_table = None
        if DataCategory.USAGE_COUNTERS in plan.categories:
            usage_table = pa.concat_tables(usages) if usages else None
        return Selected(plan, permitted_ordinals, profile, usage_table)

    def changed_ordinals(self, since_ms: int, plan: PurposePlan) -> np.ndarray:
        """Ordinals whose profile fields this purpose carries changed after ``since_ms``."""
        found = []
        if plan.categories & catalogue.DEVICE_READS:
            found.append(self._ordinals("devices", since_ms))
        if plan.only_banned:
            found.append(self._ordinals("verdicts", since_ms))
        return unique(np.concatenate(found)) if found else np.empty(0, dtype=np.int64)

    def _ordinals(self, changed_table: str, since_ms: int) -> np.ndarray:
        query = (
            f"SELECT s.ordinal FROM {changed_table} c JOIN subjects s ON s.account_id = c.account_id "
            "WHERE c.updated_at_ms > $since"
        )
        return self.duck.sql(query, params={"since": since_ms}).to_arrow_table().column(0).to_numpy()


def _permitted(plan: PurposePlan, version: int) -> str:
    return f"permitted_{plan.id}_{version}"


def _duck_column(f: catalogue.Field) -> str:
    table_name, column_name = f.source.split(".")
    return {"accounts": "a", "devices": "d", "safety_verdicts": "v"}[table_name] + "." + column_name


def _duck_type(schema: pa.Schema, name: str) -> str:
    return "DATE" if pa.types.is_date32(schema.field(name).type) else "VARCHAR"
