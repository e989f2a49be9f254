"""The `tt` command group shared by `!tt …` and `/tt …`, and the gate every subcommand passes.

The group lives here; the feature mixins (`orders`, `account`, `admin`, `help`) attach their
subcommands to it and `cogs.tt` composes them into one cog. One cog means one `cog_check`
for the channel filter and role tiers, applied identically to prefix and slash invocations.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from bot.checks import authorize
from bot.errors import reply
from bot.tiers import Tier
from bot.views import Paginator
from broker.service import TradingService
from broker.service.models import GuildView

if TYPE_CHECKING:
    from bot.client import TTBot

Ctx = commands.Context[commands.Bot]


class TTBase(commands.Cog):
    """Attributes and helpers shared by the feature mixins."""

    def __init__(self, bot: TTBot) -> None:
        self.bot = bot
        self.service: TradingService = bot.service

    @commands.hybrid_group(name="tt", description="Trade your Tastytrade account from Discord")
    @commands.guild_only()
    async def tt(self, ctx: Ctx) -> None:
        """tt-bot: trade a Tastytrade account. `!tt help` lists every command."""
        # Group.invoke forgets the unknown word before calling us; recover it from the text.
        extra = ""
        if ctx.interaction is None and ctx.prefix and ctx.invoked_with:
            extra = ctx.message.content.strip()[len(ctx.prefix) + len(ctx.invoked_with) :]
        words = extra.split()
        if words:
            await reply(ctx, f"Unknown command `{words[0][:40]}`. `!tt help` lists the commands.")
            return
        await self.send_help(ctx, None)

    async def send_help(self, ctx: Ctx, topic: str | None) -> None:  # implemented by HelpMixin
        raise NotImplementedError

    async def cog_check(self, ctx: Ctx) -> bool:  # type: ignore[override]
        if ctx.guild is None:
            from bot.checks import NotInGuild

            raise NotInGuild()
        settings = await self.service.guild(ctx.guild.id)
        tier = await authorize(ctx, settings)
        ctx.tt_tier = tier  # type: ignore[attr-defined]
        ctx.tt_settings = settings  # type: ignore[attr-defined]
        return True

    # -- helpers for subcommands -----------------------------------------------------------

    @staticmethod
    def tier_of(ctx: Ctx) -> Tier:
        tier: Tier = getattr(ctx, "tt_tier", Tier.NONE)
        return tier

    @staticmethod
    def settings_of(ctx: Ctx) -> GuildView:
        return ctx.tt_settings  # type: ignore[attr-defined,no-any-return]

    @staticmethod
    def guild_id(ctx: Ctx) -> int:
        assert ctx.guild is not None  # guaranteed by cog_check
        return ctx.guild.id

    @staticmethod
    def invocation_key(ctx: Ctx) -> str:
        """The idempotency key of this invocation: the message id, or the interaction id."""
        if ctx.interaction is not None:
            return str(ctx.interaction.id)
        return str(ctx.message.id)

    @staticmethod
    async def send(ctx: Ctx, *args: Any, **kwargs: Any) -> discord.Message:
        """`ctx.send` that replies to the `!tt` message (without pinging) for prefix use."""
        if ctx.interaction is None:
            kwargs.setdefault("reference", ctx.message)
            kwargs.setdefault("mention_author", False)
        return await ctx.send(*args, **kwargs)

    def spawn(self, coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        """Run follow-up work without holding up the command (cancelled when the bot closes).

        Names starting with `wait:` mark work that waits on people or markets (tracking an
        order until it fills, a DM dialog) rather than work in progress.
        """
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.bot.background_tasks.add(task)
        task.add_done_callback(self.bot.background_tasks.discard)
        return task

    async def send_pages(self, ctx: Ctx, pages: list[discord.Embed]) -> None:
        if len(pages) <= 1:
            await self.send(ctx, embed=pages[0])
            return
        view = Paginator(pages, author_id=ctx.author.id)
        view.message = await self.send(ctx, embed=pages[0], view=view)
