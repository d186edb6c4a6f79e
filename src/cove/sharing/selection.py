"""The read side of an export: which accounts each purpose permits now, and their declared fields.

Everything is read from one :class:`~cove.sharing.snapshot.Snapshot` as Arrow, then joined in an in-process
DuckDB: the relay's database does what it is good at (scans, and index lookups for a small scope), DuckDB
evaluates every purpose's consent clause in one pass on all cores, and no per-row Python runs. Evaluating the
clauses in the relay's database instead took one statement per purpose, one after another (0.7 s each at a
million accounts on SQLite), and SQLite planned the scoped ones by walking a purpose's choice index.

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
from sqlalchemy import Select, String, TableClause, column, or_, select, table, union_all
from sqlalchemy.dialects import postgresql

from cove.consent.categories import DataCategory
from cove.consent.decision import DAY_MS, effective_ms
from cove.consent.policy import Policy
from cove.consent.predicate import permitted_flags, rows_read
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


def flag_versions(plans: list[PurposePlan]) -> list[tuple[str, Policy, str]]:
    """``(flag, policy, purpose id)`` for every purpose and policy version the recipient receives."""
    return [(flag(plan, n), policy, plan.id) for plan in plans for n, (policy, _) in enumerate(plan.versions)]


def flags_sql(plans: list[PurposePlan], recipient: str, at_ms: int) -> str:
    """DuckDB SQL over the tables ``consent_accounts`` and ``consent_purposes`` as stored: ``account_id`` and one
    boolean column per purpose and policy version (:func:`flag`), from the consent capability's compiled clauses."""
    flags = permitted_flags(flag_versions(plans), recipient)
    # DuckDB reads PostgreSQL's SQL; the values are the policy's own and the as-of time, an integer.
    return str(flags.params(at_ms=at_ms).compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


def policies_published_since(since_ms: int) -> Select:
    return select(consent_policies.c.version).where(consent_policies.c.published_at_ms > since_ms)


class Reader:
    """Reads what one export needs in one snapshot, then answers per purpose from an in-process DuckDB.

    The consent state is read once, as it is stored, and every purpose's permitted clause (the consent
    capability's, compiled from the policies) is evaluated over it in one DuckDB statement, one boolean column per
    purpose and policy version. The accounts, devices and verdicts are joined to the permitted accounts once, and
    each pseudonym is computed once per account whatever the number of purposes it goes out under.
    """

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
        if scope is not None:
            snapshot.create_temporary(SCOPE_TABLE, scope)
        read = self._in_scope
        # Listed biggest first: the reader connections take them in this order.
        snapshot.query(
            "consent_purposes",
            read(
                select(
                    consent_purposes.c.account_id,
                    consent_purposes.c.policy_version,
                    consent_purposes.c.purpose_id,
                    consent_purposes.c.choice,
                    consent_purposes.c.objected_at_ms,
                ).where(
                    # Within a scope, the few accounts' rows are found by the primary key; with the rows_read filter
                    # SQLite would walk each purpose's choice index instead (3 s at a million accounts).
                    consent_purposes.c.purpose_id.in_([plan.id for plan in plans])
                    if self.scoped
                    else rows_read(flag_versions(plans), recipient)
                ),
                consent_purposes.c.account_id,
            ),
        )
        # Only the columns some purpose declares: a column read is a million values converted.
        self.sources = {
            f.source
            for plan in plans
            for _, purpose in plan.versions
            for f in catalogue.fields_for(purpose.data_categories)
        }
        snapshot.query("accounts", read(select(accounts.c.id, *self._declared(accounts)), accounts.c.id))
        has_devices = any(plan.categories & catalogue.DEVICE_READS for plan in plans)
        if has_devices:
            primary = select(devices.c.account_id, devices.c.updated_at_ms, *self._declared(devices)).where(
                devices.c.device_id == catalogue.PRIMARY_DEVICE_ID
            )
            snapshot.query("devices", read(primary, devices.c.account_id))
        if any(DataCategory.USAGE_COUNTERS in plan.categories for plan in plans):
            snapshot.query("usage", read(select(usage), usage.c.account_id))
        snapshot.query(
            "consent_accounts",
            read(
                select(
                    consent_accounts.c.account_id,
                    consent_accounts.c.policy_version,
                    consent_accounts.c.accepted_at_ms,
                    consent_accounts.c.age_bracket,
                ),
                consent_accounts.c.account_id,
            ),
        )
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
        self.duck = duckdb.connect()
        for name, arrow in snapshot.read().items():
            self.duck.register(name, arrow)
        self._people(keys, plans, has_devices)

    def _people(self, keys: SharingKeys, plans: list[PurposePlan], has_devices: bool) -> None:
        """The table ``people``: every account some purpose sends, its flags, pseudonyms and declared fields."""
        compiled = flags_sql(plans, self.recipient, self.at_ms)
        columns = [
            f"{_SOURCE_ALIAS[s.split('.')[0]]}.{s.split('.')[1]} AS {_duck_column(s)}" for s in sorted(self.sources)
        ]
        if any(plan.pseudonymised and DataCategory.PHONE_NUMBER in plan.categories for plan in plans):
            columns.append(f"{wire.hmac_sql(keys.phone_key(self.recipient), 'a.phone_number')} AS phone_hash")
        # Pseudonyms are computed in DuckDB, in parallel C++, with keys that never leave this process.
        subject = f"left({wire.hmac_sql(keys.subject_key(self.recipient), 'p.account_id')}, 32)"
        joins = "JOIN accounts a ON a.id = p.account_id"
        if has_devices:
            joins += " LEFT JOIN devices d ON d.account_id = p.account_id"
        banned = "v.account_id IS NOT NULL"
        sent = " OR ".join(
            f"({flag(plan, n)} AND {_ban_rule(plan, banned)})" for plan in plans for n in range(len(plan.versions))
        )
        selected = ", ".join(["s.ordinal", "p.*", f"{banned} AS banned", f"{subject} AS subject", *columns])
        self.duck.execute(
            f"""CREATE TABLE people AS
                SELECT {selected}
                FROM ({compiled}) p JOIN subjects s ON s.account_id = p.account_id {joins}
                LEFT JOIN verdicts v ON v.account_id = p.account_id
                WHERE {sent}"""
        )

    def close(self) -> None:
        self.duck.close()

    def _declared(self, source: TableClause) -> list:
        return [c for c in source.c if f"{source.name}.{c.name}" in self.sources]

    def _in_scope(self, query: Select, account_column) -> Select:  # noqa: ANN001 - a column clause
        return query.where(account_column.in_(select(scope_accounts.c.account_id))) if self.scoped else query

    def select(self, plan: PurposePlan) -> Selected:
        schema = wire.profile_schema(plan.manifest_categories(), plan.pseudonymised)
        wanted = [name for name in schema.names if name != "subject"]
        profiles, usages = [], []
        for n, (_, purpose) in enumerate(plan.versions):
            rule = f"{flag(plan, n)} AND {_ban_rule(plan)}"
            declared = {}
            for f in catalogue.fields_for(list(purpose.data_categories)):
                name, expression = f.wire_name, _duck_column(f.source)
                if f.transform == Transform.PHONE:
                    name = "phone_hash" if plan.pseudonymised else "phone_number"
                    expression = "phone_hash" if plan.pseudonymised else expression
                elif f.transform == Transform.DAY:
                    expression = f"CAST(epoch_ms({expression}) AS DATE)"
                declared[name] = expression
            columns = ", ".join(
                f"{declared[name]} AS {name}"
                if name in declared
                else f"CAST(NULL AS {_duck_type(schema, name)}) AS {name}"
                for name in wanted
            )
            profiles.append(
                self.duck.sql(
                    f"SELECT ordinal, account_id, subject, {columns} FROM people WHERE {rule}"
                ).to_arrow_table()
            )
            if DataCategory.USAGE_COUNTERS in purpose.data_categories:
                usages.append(
                    self.duck.sql(
                        f"""SELECT p.ordinal, p.account_id, p.subject, CAST(u.day AS INTEGER) AS day,
                                   CAST(u.messages_sent AS INTEGER) AS messages_sent,
                                   CAST(u.messages_received AS INTEGER) AS messages_received,
                                   CAST(u.app_opens AS INTEGER) AS app_opens, u.updated_at_ms
                            FROM people p JOIN usage u ON u.account_id = p.account_id
                            WHERE {rule}"""
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


def flag(plan: PurposePlan, version: int) -> str:
    """The column that says whether the purpose's ``version``-th policy version permits the account."""
    return f"permitted_{plan.id}_{version}"


def _ban_rule(plan: PurposePlan, banned: str = "banned") -> str:
    """A purpose carrying verdicts sends banned accounts only; safety sends any; the others none that is banned."""
    return banned if plan.only_banned else "TRUE" if plan.safety else f"NOT ({banned})"


_SOURCE_ALIAS = {"accounts": "a", "devices": "d", "safety_verdicts": "v"}


def _duck_column(source: str) -> str:
    """The column of ``people`` that holds a catalogue source, ``table.column``."""
    return source.replace(".", "__")


def _duck_type(schema: pa.Schema, name: str) -> str:
    return "DATE" if pa.types.is_date32(schema.field(name).type) else "VARCHAR"
