"""A small messenger population written straight into the relay's tables, for the gateway's tests.

The end-to-end test goes through the HTTP API; these tests need many accounts in exact states (minors, bans,
choices, usage) and build them with the same tables the services write.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
from sqlalchemy import delete, insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from cove.accounts.storage import accounts, devices
from cove.accounts.usage_storage import usage_daily
from cove.consent import service
from cove.consent.decision import DAY_MS, effective_ms
from cove.consent.policy import Policy, load_policy
from cove.consent.storage import consent_accounts, consent_policies, consent_purposes
from cove.safety.storage import safety_verdicts
from cove.sharing import wire
from cove.sharing.erasure import record_erasure

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_POLICY = ROOT / "policies" / "cove-default.toml"


@dataclass
class Person:
    account_id: str
    phone: str
    age: str = "adult"
    choices: dict[str, str] = field(default_factory=dict)
    banned: str | None = None


class World:
    def __init__(self, engine: AsyncEngine, policy: Policy | None = None) -> None:
        self.engine = engine
        self.policy = policy or load_policy(DEFAULT_POLICY)
        self.t0 = effective_ms(self.policy) + DAY_MS
        self.people: list[Person] = []

    async def publish(self) -> None:
        """Publish, dated when the policy takes effect: the world's clock (``t0``) runs from then, so incremental
        batches see an old publication and take the scoped path, as in production."""
        await service.publish(self.engine, self.policy)
        async with self.engine.begin() as conn:
            await conn.execute(
                update(consent_policies)
                .where(consent_policies.c.version == self.policy.version)
                .values(published_at_ms=effective_ms(self.policy))
            )

    async def add(
        self,
        choices: dict[str, str] | None = None,
        age: str = "adult",
        banned: str | None = None,
        accepted: bool = True,
        usage_days: int = 2,
    ) -> Person:
        n = len(self.people)
        person = Person(str(uuid.uuid4()), f"+4915{n:09d}", age, dict(choices or {}), banned)
        at = self.t0
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(accounts).values(id=person.account_id, phone_number=person.phone, created_at_ms=at)
            )
            await conn.execute(
                insert(devices).values(
                    account_id=person.account_id,
                    device_id=1,
                    registration_id=1,
                    identity_curve25519="c" * 43,
                    identity_ed25519="e" * 43,
                    device_model=f"Pixel {n % 3}",
                    os_name="Android",
                    os_version="15",
                    app_version="0.1.0",
                    vendor_device_id=f"vendor-{n}",
                    created_at_ms=at,
                    updated_at_ms=at,
                    last_seen_at_ms=at,
                )
            )
            if accepted:
                await conn.execute(
                    insert(consent_accounts).values(
                        account_id=person.account_id,
                        policy_version=self.policy.version,
                        accepted_at_ms=at,
                        age_bracket=age,
                        text_hash=self.policy.text_hash(),
                    )
                )
            for purpose, choice in person.choices.items():
                await conn.execute(
                    insert(consent_purposes).values(
                        account_id=person.account_id,
                        policy_version=self.policy.version,
                        purpose_id=purpose,
                        choice=choice,
                        chosen_at_ms=at,
                        method="opt_in" if choice == "in" else "opt_out",
                    )
                )
            for day in range(usage_days):
                await conn.execute(
                    insert(usage_daily).values(
                        account_id=person.account_id,
                        day=at // DAY_MS - day,
                        messages_sent=day + 1,
                        messages_received=day + 2,
                        app_opens=1,
                        updated_at_ms=at,
                    )
                )
            if banned:
                await conn.execute(
                    insert(safety_verdicts).values(
                        account_id=person.account_id, reason_code=banned, banned_at_ms=at, updated_at_ms=at
                    )
                )
        self.people.append(person)
        return person

    async def choose(self, person: Person, purpose: str, choice: str, at_ms: int) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(consent_purposes).where(
                    consent_purposes.c.account_id == person.account_id, consent_purposes.c.purpose_id == purpose
                )
            )
            await conn.execute(
                insert(consent_purposes).values(
                    account_id=person.account_id,
                    policy_version=self.policy.version,
                    purpose_id=purpose,
                    choice=choice,
                    chosen_at_ms=at_ms,
                    method="opt_in" if choice == "in" else "withdraw",
                )
            )
        person.choices[purpose] = choice

    async def update_device(self, person: Person, model: str, at_ms: int) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(devices)
                .where(devices.c.account_id == person.account_id)
                .values(device_model=model, updated_at_ms=at_ms)
            )

    async def delete(self, person: Person, at_ms: int) -> None:
        """What account deletion does to the tables the gateway reads, with the erasure hook, in one transaction."""
        async with self.engine.begin() as conn:
            for table in (usage_daily, devices, consent_purposes, consent_accounts):
                await conn.execute(delete(table).where(table.c.account_id == person.account_id))
            await conn.execute(delete(accounts).where(accounts.c.id == person.account_id))
            await record_erasure(conn, person.account_id, at_ms)
        self.people.remove(person)


def read_batch(path: Path) -> dict[str, list[dict]]:
    """Every file of a batch as rows, keyed by file name."""
    manifest = wire.Manifest.model_validate_json((path / wire.MANIFEST_FILE).read_bytes())
    return {entry.name: pq.read_table(path / entry.name).to_pylist() for entry in manifest.files()}


async def ban(engine: AsyncEngine, person: Person, reason: str, at_ms: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(delete(safety_verdicts).where(safety_verdicts.c.account_id == person.account_id))
        await conn.execute(
            insert(safety_verdicts).values(
                account_id=person.account_id, reason_code=reason, banned_at_ms=at_ms, updated_at_ms=at_ms
            )
        )
    person.banned = reason
