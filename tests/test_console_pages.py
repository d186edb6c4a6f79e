"""The console's pages over a relay whose ledger was edited behind Cove's back: the consent page says it cannot
count the acts instead of failing, and the verification button finds the edit (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update

from console_world import RELAY_ENV, signed_in
from cove.consent import service
from cove.consent.ledger_storage import ledger_entries
from cove.db import create_engine
from cove.testing import policy_opening_now
from privacy_world import notice_for

DEFAULT = Path(__file__).resolve().parents[1] / "policies" / "cove-default.toml"


@pytest.fixture
def relay_env() -> dict[str, str]:
    return RELAY_ENV


async def test_an_edited_ledger_is_reported_not_hidden(users, relay) -> None:
    engine = create_engine(relay.database_url)
    try:
        await service.publish(engine, policy_opening_now(DEFAULT))
        alice = await users.register("alice")
        await alice.accept_terms(await notice_for(alice), "adult")
        await alice.choose("ads", "in")
        async with engine.begin() as conn:
            await conn.execute(update(ledger_entries).where(ledger_entries.c.kind == "choice").values(payload="{oops"))
    finally:
        await engine.dispose()

    async with signed_in(relay.database_url, relay.data_dir) as operator:
        page = await operator.get("/consent")
        assert page.status_code == 200 and "cannot read as JSON" in page.text
        checked = await operator.client.post(
            "/consent/verify", headers={"HX-Request": "true", "X-CSRF-Token": operator.token}
        )
        assert "problems found" in checked.text and "edited" in checked.text.lower()
        overview = await operator.get("/")
        assert "problems found" in overview.text
