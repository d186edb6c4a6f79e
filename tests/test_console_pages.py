"""The console's pages over a relay whose ledger was edited behind Cove's back: the consent page says it cannot
count the acts instead of failing, and the verification button finds the edit (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from console_world import PASSWORD, RELAY_ENV, add_operator, console_env, csrf_of, notice_for, start_console
from cove.consent import service
from cove.consent.ledger_storage import ledger_entries
from cove.db import create_engine
from cove.testing import policy_opening_now

DEFAULT = Path(__file__).resolve().parents[1] / "policies" / "cove-default.toml"


@pytest.fixture
def relay_env() -> dict[str, str]:
    return RELAY_ENV


async def test_an_edited_ledger_is_reported_not_hidden(users, relay, tmp_path: Path) -> None:
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

    env = console_env(relay.database_url, relay.data_dir)
    add_operator(env)
    console = start_console(env, tmp_path / "console.log")
    try:
        async with httpx.AsyncClient(base_url=console.base, timeout=30) as client:
            token = csrf_of((await client.get("/login")).text)
            form = {"csrf": token, "name": "olivia", "password": PASSWORD}
            assert (await client.post("/login", data=form)).status_code == 303
            page = await client.get("/consent")
            assert page.status_code == 200 and "cannot read as JSON" in page.text
            token = csrf_of(page.text)
            checked = await client.post("/consent/verify", headers={"HX-Request": "true", "X-CSRF-Token": token})
            assert "problems found" in checked.text and "edited" in checked.text.lower()
            overview = await client.get("/")
            assert "problems found" in overview.text
    finally:
        console.stop()
