"""`python -m bot` on "Discord" (the local stand-in): SIGTERM shuts everything down cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from bot.__main__ import run_discord
from bot.localdiscord import LocalDiscord, standard_world
from broker.service.models import Environment
from storage.database import Database
from tests.e2e.bot.helpers import offline_config


async def test_sigterm_stops_the_bot_and_closes_everything(tmp_path: Path) -> None:
    db_path = tmp_path / "tt.db"
    config = offline_config(DISCORD_TOKEN="local-token", TT_BOT_DB_PATH=str(db_path))
    async with LocalDiscord(standard_world()) as discord:
        discord.install()
        try:
            task = asyncio.create_task(run_discord(config))
            await discord.wait_until_identified(timeout=15)
            guild = discord.world.guilds[0]
            await discord.say("admin", "#trading", "!tt channels add")
            reply = await discord.wait_for_message(lambda m: "Enabled" in m.text, timeout=15)
            assert reply.channel.name == "trading"
            os.kill(os.getpid(), signal.SIGTERM)
            assert await asyncio.wait_for(task, 15) == 0
        finally:
            discord.uninstall()
    # The database was closed (it can be opened again) and kept what the bot stored.
    db = await Database.open(db_path)
    try:
        settings = await db.guilds.require(guild.id)
        assert settings.environment == Environment.PAPER.value
        assert guild.channel("trading").id in settings.allowed_channel_ids
    finally:
        await db.close()
