"""A tiny real discord.py bot run against `LocalDiscord`, and the harness that starts it.

The bot is defined here on purpose (not the product bot): it exercises exactly the discord.py
features the stand-in must support — a hybrid group with prefix + slash subcommands, a
confirm view with explicit custom_ids and an author-only ``interaction_check``, embeds,
deferred responses and follow-ups.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord
import pytest
from discord.ext import commands

from bot.localdiscord import LocalDiscord, World, standard_world

ORDER_TABLE = "```\nSYM  QTY\nSPY    1\n```"


class ConfirmView(discord.ui.View):
    def __init__(self, author_id: int) -> None:
        super().__init__(timeout=30)
        self.author_id = author_id
        self.value: bool | None = None

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id != self.author_id:
            await interaction.response.send_message("This order isn't yours.", ephemeral=True)
            return False
        return True

    @discord.ui.button(label="Confirm", style=discord.ButtonStyle.success, custom_id="tt:confirm")
    async def confirm(
        self, interaction: discord.Interaction, button: discord.ui.Button[Any]
    ) -> None:
        self.value = True
        self.stop()
        await interaction.response.edit_message(content="Confirmed.", view=None)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary, custom_id="tt:cancel")
    async def cancel(
        self, interaction: discord.Interaction, button: discord.ui.Button[Any]
    ) -> None:
        self.value = False
        self.stop()
        await interaction.response.edit_message(content="Cancelled.", view=None)


class RefreshView(discord.ui.View):
    """Deferred-update flow: type 6, then edits through the interaction webhook."""

    @discord.ui.button(label="Refresh", custom_id="tt:refresh")
    async def refresh(
        self, interaction: discord.Interaction, button: discord.ui.Button[Any]
    ) -> None:
        await interaction.response.defer()  # type 6: nothing visible yet
        await interaction.edit_original_response(content="Quotes refreshed.")
        note = await interaction.followup.send("Refreshing…", ephemeral=True, wait=True)
        await note.edit(content="Refreshed.")


class Trading(commands.Cog):
    def __init__(self, bot: TinyBot) -> None:
        self.bot = bot

    @commands.hybrid_group(name="tt", fallback="help")
    async def tt(self, ctx: commands.Context[TinyBot]) -> None:
        """Trading commands."""
        await ctx.send("Try `!tt ping`.")

    @tt.command(name="ping")
    async def ping(self, ctx: commands.Context[TinyBot]) -> None:
        """Check the bot is alive."""
        await ctx.send("pong")

    @tt.command(name="order")
    async def order(self, ctx: commands.Context[TinyBot], *, order: str) -> None:
        """Preview an order and ask for confirmation."""
        embed = discord.Embed(title=order, description="Review and confirm.")
        embed.add_field(name="Symbol", value="SPY")
        embed.add_field(name="Legs", value=ORDER_TABLE)
        embed.set_footer(text="Expires in 30s")
        view = ConfirmView(ctx.author.id)
        await ctx.send("Order preview", embed=embed, view=view)
        await view.wait()
        await ctx.send("Order placed." if view.value else "Order not placed.")

    @tt.command(name="slow")
    async def slow(self, ctx: commands.Context[TinyBot], private: bool = False) -> None:
        """Defer, then answer with two follow-ups."""
        await ctx.defer(ephemeral=private)
        await asyncio.sleep(0.05)
        await ctx.send("done", ephemeral=private)
        await ctx.send("second", ephemeral=private)

    @tt.command(name="qty")
    async def qty(
        self, ctx: commands.Context[TinyBot], symbol: str, qty: int, dry: bool = False
    ) -> None:
        """Echo typed options."""
        self.bot.option_values.append((symbol, qty, dry))
        await ctx.send(f"{symbol}:{type(qty).__name__}={qty} dry={dry}")

    @tt.command(name="quotes")
    async def quotes(self, ctx: commands.Context[TinyBot]) -> None:
        """Show quotes with a refresh button."""
        await ctx.send("Quotes", view=RefreshView(timeout=30))

    @tt.command(name="flash")
    async def flash(self, ctx: commands.Context[TinyBot]) -> None:
        """Reply, then take the reply back."""
        assert ctx.interaction is not None
        await ctx.interaction.response.send_message("now you see it")
        await ctx.interaction.delete_original_response()

    @tt.command(name="late")
    async def late(self, ctx: commands.Context[TinyBot]) -> None:
        """Answer after the interaction deadline (a bot bug the stand-in must expose)."""
        await asyncio.sleep(self.bot.late_delay)
        await ctx.send("too late")

    async def cog_command_error(
        self, ctx: commands.Context[TinyBot], error: commands.CommandError
    ) -> None:
        cause: BaseException = error
        while getattr(cause, "original", None) is not None:  # unwrap hybrid/app wrappers
            cause = cause.original  # type: ignore[attr-defined]
        self.bot.command_errors.append(cause)
        self.bot.command_errors_changed.set()


class TinyBot(commands.Bot):
    def __init__(self, *, message_content: bool = True, members: bool = False, **options: Any):
        intents = discord.Intents.default()
        intents.message_content = message_content
        intents.members = members
        super().__init__(
            command_prefix="!",
            intents=intents,
            allowed_mentions=discord.AllowedMentions.none(),
            guild_ready_timeout=0.01,
            **options,
        )
        self.seen: list[discord.Message] = []
        self.seen_changed = asyncio.Event()
        self.raw_edits: list[discord.RawMessageUpdateEvent] = []
        self.raw_edits_changed = asyncio.Event()
        self.option_values: list[tuple[str, int, bool]] = []
        self.command_errors: list[BaseException] = []
        self.command_errors_changed = asyncio.Event()
        self.late_delay = 0.3

    async def setup_hook(self) -> None:
        await self.add_cog(Trading(self))

    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot:
            return
        self.seen.append(message)
        self.seen_changed.set()
        await self.process_commands(message)

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        self.raw_edits.append(payload)
        self.raw_edits_changed.set()

    async def wait_seen(self, count: int, timeout: float = 2.0) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while len(self.seen) < count:
                self.seen_changed.clear()
                await self.seen_changed.wait()

    async def wait_raw_edits(self, count: int, timeout: float = 2.0) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while len(self.raw_edits) < count:
                self.raw_edits_changed.clear()
                await self.raw_edits_changed.wait()


@dataclass
class Running:
    discord: LocalDiscord
    bot: TinyBot
    task: asyncio.Task[None]
    startup_seconds: float


@contextlib.asynccontextmanager
async def run_bot(
    world: World | None = None,
    *,
    bot_options: dict[str, Any] | None = None,
    **discord_options: Any,
) -> AsyncIterator[Running]:
    """Start LocalDiscord and a TinyBot against it; on exit close both and check hygiene."""
    async with LocalDiscord(world or standard_world(), **discord_options) as fake:
        fake.install()
        bot = TinyBot(**(bot_options or {}))
        started = time.monotonic()
        task = asyncio.create_task(bot.start("fake-token"))
        try:
            await fake.wait_until_identified(timeout=5)
            await asyncio.wait_for(bot.wait_until_ready(), 5)
            yield Running(fake, bot, task, time.monotonic() - started)
        finally:
            await bot.close()
            await task
        assert fake.unhandled == [], fake.unhandled
        assert fake.server_errors == [], fake.server_errors
    assert not discord.http.Route.BASE.startswith("http://127.0.0.1"), "uninstall restores"


async def raw_request(
    fake: LocalDiscord, method: str, path: str, body: Any = None, *, token: str = "fake-token"
) -> tuple[int, Any]:
    """A REST call that bypasses discord.py's client-side checks."""
    headers = {"Authorization": f"Bot {token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, fake.api_url + path, json=body, headers=headers) as response,
    ):
        data = await response.json() if response.content_type == "application/json" else None
        return response.status, data


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    async with run_bot() as env:
        yield env
