"""Which purposes a recipient receives, and under which policy versions: pure, from the published policies.

An account's data keeps the promises of the version it accepted (R5), so a purpose's rows are projected per
version: an account on an older version sends only the categories that version declared for the purpose, and the
file carries the union of columns with the rest left empty.
"""

from __future__ import annotations

from dataclasses import dataclass

from cove.consent.categories import DataCategory
from cove.consent.policy import Policy, Purpose
from cove.sharing import wire


class PlanError(Exception):
    """Published policies that the gateway cannot export from; the message says which and why."""


@dataclass(frozen=True)
class PurposePlan:
    id: str
    use: wire.Use
    legal_basis: str | None
    retention_days: int | None
    pseudonymised: bool
    categories: frozenset[DataCategory]  # the union over versions: the file's columns
    versions: tuple[tuple[Policy, Purpose], ...]

    @property
    def only_banned(self) -> bool:
        """A purpose carrying safety verdicts sends banned accounts only: nothing about accounts in good standing."""
        return DataCategory.SAFETY_VERDICTS in self.categories

    @property
    def safety(self) -> bool:
        return self.use == wire.Use.SAFETY

    def manifest_categories(self) -> list[str]:
        return sorted(c.value for c in self.categories)


def plan_purposes(policies: list[Policy], recipient: str) -> list[PurposePlan]:
    """Every purpose that names ``recipient`` in any published version, newest declaration first for metadata."""
    by_purpose: dict[str, list[tuple[Policy, Purpose]]] = {}
    for policy in policies:
        for purpose in policy.purposes:
            if recipient in purpose.recipients:
                by_purpose.setdefault(purpose.id, []).append((policy, purpose))
    if not by_purpose:
        raise PlanError(f"no published policy names recipient {recipient!r} in any purpose")
    plans = []
    for purpose_id, versions in sorted(by_purpose.items()):
        newest = max(versions, key=lambda v: v[0].effective)[1]
        if len({p.pseudonymised for _, p in versions}) > 1:
            raise PlanError(
                f"purpose {purpose_id!r} is pseudonymised in some versions and not in others; "
                "give the changed purpose a new id"
            )
        if len({p.use for _, p in versions}) > 1:
            raise PlanError(f"purpose {purpose_id!r} changes its use between versions; give it a new id")
        plans.append(
            PurposePlan(
                id=purpose_id,
                use=wire.Use(newest.use.value),
                legal_basis=newest.legal_basis.value if newest.legal_basis else None,
                retention_days=newest.retention_days,
                pseudonymised=newest.pseudonymised,
                categories=frozenset(c for _, p in versions for c in p.data_categories),
                versions=tuple(versions),
            )
        )
    return plans
