"""Startup, shutdown, gateway protocol and failure paths of the real client on LocalDiscord."""

from __future__ import annotations

import asyncio

import discord
import pytest

from bot.localdiscord import LocalDiscord, standard_world
from tests.e2e.localdiscord.conftest import Running, TinyBot, run_bot


async def test_startup_reaches_on_ready_fast_with_the_standard_world(running: Running) -> None:
    bot, fake = running.bot, running.discord
    assert running.startup_seconds < 5.0  # typically ~20 ms; loose for a loaded CI box
    assert bot.user is not None and bot.user.id == fake.world.bot.id
    (guild,) = bot.guilds
    assert guild.name == "Trading Desk"
    assert {c.name for c in guild.text_channels} == {"trading", "general"}
    assert {"Admin", "Trader", "Viewer"} <= {r.name for r in guild.roles}
    assert guild.get_role(guild.id) is not None and guild.default_role.name == "@everyone"
    assert guild.me is not None and guild.me.id == bot.user.id
    channel = guild.text_channels[0]
    assert channel.permissions_for(guild.me).send_messages
    # Login made exactly the two documented REST calls; nothing reached an unknown route.
    assert [(c.method, c.path) for c in fake.rest_log] == [
        ("GET", "/users/@me"),
        ("GET", "/oauth2/applications/@me"),
    ]
    identify = next(f for f in fake.gateway.received if f["op"] == 2)
    assert identify["d"]["intents"] & (1 << 15)


async def test_install_points_discord_py_at_loopback_and_uninstall_restores() -> None:
    original_base = discord.http.Route.BASE
    original_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    async with LocalDiscord() as fake:
        fake.install()
        assert fake.api_url == discord.http.Route.BASE
        assert discord.http.Route.BASE.startswith("http://127.0.0.1:")
        assert str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == fake.gateway_url
        fake.uninstall()
        assert original_base == discord.http.Route.BASE
        assert original_gateway == discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY


async def test_clean_shutdown_closes_the_gateway() -> None:
    async with run_bot() as env:
        pass
    assert env.task.done() and env.task.exception() is None
    assert env.bot.is_closed()


async def test_wrong_token_fails_login() -> None:
    async with LocalDiscord(token="right-token") as fake:
        fake.install()
        bot = TinyBot()
        with pytest.raises(discord.LoginFailure):
            await bot.start("wrong-token")
        await bot.close()
        assert fake.rest_log[0].status == 401


async def test_disallowed_privileged_intent_closes_with_4014() -> None:
    async with LocalDiscord(privileged_intents=0) as fake:
        fake.install()
        bot = TinyBot(message_content=True)
        with pytest.raises(discord.PrivilegedIntentsRequired):
            await asyncio.wait_for(bot.start("fake-token"), 5)
        await bot.close()
        assert not fake.gateway.identified.is_set()


async def test_members_intent_sends_full_member_list_without_chunking() -> None:
    async with run_bot(bot_options={"members": True}) as env:
        (guild,) = env.bot.guilds
        assert guild.chunked
        trader = next(m for m in guild.members if m.name == "trader")
        assert [r.name for r in trader.roles if not r.is_default()] == ["Trader"]
    async with run_bot() as env:  # without the intent only the bot itself is cached
        (guild,) = env.bot.guilds
        assert [m.name for m in guild.members] == ["tt-bot"]


async def test_reconnect_resumes_and_replays_missed_events() -> None:
    async with run_bot() as env:
        fake, bot = env.discord, env.bot
        await fake.reconnect_gateway()
        await fake.say("trader", "#trading", "!tt ping")  # may land while the bot reconnects
        reply = await fake.wait_for_message(lambda m: m.content == "pong")
        assert reply.channel.name == "trading"
        assert fake.gateway.resumes == 1
        assert fake.gateway.connections == 2
        await bot.wait_seen(1)
        assert [m.content for m in bot.seen] == ["!tt ping"]


async def test_heartbeats_are_acknowledged(running: Running) -> None:
    assert any(frame["op"] == 1 for frame in running.discord.gateway.received)
    ws = running.bot.ws
    assert ws is not None and ws.latency < 1.0  # a HEARTBEAT_ACK arrived


async def test_standard_world_is_fresh_per_instance() -> None:
    first, second = standard_world(), standard_world()
    assert first.bot.id != second.bot.id
    assert first.guilds[0].id != second.guilds[0].id
