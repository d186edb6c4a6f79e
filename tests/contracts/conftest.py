"""Fixtures of the contract tests: a business's gateway on a real relay, posting to a plain receiver or to a pywa
bot."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.harness import Bot
from gateway_world import GatewayProcess, register_profile, shop_gateway

SHOP_PHONE = "+14155550170"
PROFILE = {"display_name": "Lucky Shrimp", "about": "Succulents, delivered", "vertical": "RETAIL"}


@pytest.fixture
async def shop(relay, code_inbox, tmp_path: Path):  # noqa: ANN001, ANN201
    """The gateway of a registered business, posting webhooks to a receiver that checks both signatures."""
    async with shop_gateway(relay, code_inbox, tmp_path, SHOP_PHONE, PROFILE) as world:
        yield world


@pytest.fixture
async def pywa_shop(relay, code_inbox, tmp_path: Path):  # noqa: ANN001, ANN201
    """The gateway of a registered business whose webhook endpoint is a pywa 4.5.0 bot, answering through it."""
    home = tmp_path / "business-home"
    home.mkdir()
    shop_id = await register_profile(relay, code_inbox, home, "shop", SHOP_PHONE, PROFILE)
    bot = Bot(tmp_path)
    gateway = GatewayProcess(relay, home, "shop", bot.url)
    made = gateway.cli("token")
    assert made.returncode == 0, made.stderr
    gateway.token = made.stdout.strip()
    gateway.phone_number_id = shop_id
    bot.start(gateway.url, gateway.token, shop_id)
    gateway.start()
    yield gateway, bot
    gateway.stop()
    bot.stop()
