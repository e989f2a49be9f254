"""Account views: status, positions, balance, history, quote, sync, accounts.

Positions, orders, balances and history are served from the local database (fast, no
network); `!tt sync` refreshes it with a live progress message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import discord
from discord import app_commands

from bot import embeds
from bot.errors import reply
from bot.tiers import Tier
from broker.service.models import SyncProgress
from cogs.tt.base import Ctx, TTBase

log = logging.getLogger(__name__)

SYNC_KINDS = ("auto", "full", "incremental")


class AccountCommands(TTBase):
    @TTBase.tt.command(name="status", extras={"examples": ["!tt status"]})
    async def tt_status(self, ctx: Ctx) -> None:
        """Environment, session health, streamer state and last sync."""
        await ctx.defer()
        report = await self.service.status(self.guild_id(ctx))
        await self.send(ctx, embed=embeds.status_embed(report, self.service.now()))

    @TTBase.tt.command(name="positions", extras={"examples": ["!tt positions"]})
    async def tt_positions(self, ctx: Ctx) -> None:
        """Open positions, numbered for `!tt close <#>` (from the last sync)."""
        await ctx.defer()
        scoped = await self.service.positions(self.guild_id(ctx))
        await self.send_pages(
            ctx, embeds.positions_pages(scoped.data, scoped.environment, scoped.account_number)
        )

    @TTBase.tt.command(name="balance", extras={"examples": ["!tt balance"]})
    async def tt_balance(self, ctx: Ctx) -> None:
        """Net liquidating value, cash and buying power."""
        await ctx.defer()
        scoped = await self.service.balance(self.guild_id(ctx))
        await self.send(
            ctx, embed=embeds.balance_embed(scoped.data, scoped.environment, scoped.account_number)
        )

    @TTBase.tt.command(name="history", extras={"examples": ["!tt history"]})
    async def tt_history(self, ctx: Ctx) -> None:
        """Recent transactions: trades, fees and money movements."""
        await ctx.defer()
        scoped = await self.service.history(self.guild_id(ctx))
        await self.send_pages(
            ctx, embeds.history_pages(scoped.data, scoped.environment, scoped.account_number)
        )

    @TTBase.tt.command(name="quote", extras={"examples": ["!tt quote SPY", "!tt quote /ESZ6"]})
    @app_commands.describe(symbol="A ticker, OCC option symbol or future, e.g. SPY or /ESZ6")
    async def tt_quote(self, ctx: Ctx, *, symbol: str) -> None:
        """Bid, ask and mid for a symbol."""
        await ctx.defer()
        scoped = await self.service.quote(self.guild_id(ctx), symbol)
        await self.send(ctx, embed=embeds.quote_embed(scoped.data, scoped.environment))

    @TTBase.tt.command(
        name="sync", ignore_extra=False, extras={"examples": ["!tt sync", "!tt sync full"]}
    )
    @app_commands.describe(kind="auto (default), full or incremental")
    @app_commands.choices(kind=[app_commands.Choice(name=k, value=k) for k in SYNC_KINDS])
    async def tt_sync(self, ctx: Ctx, kind: str = "auto") -> None:
        """Fetch orders, positions, balances and history from the broker into the local database."""
        kind = kind.lower()
        if kind not in SYNC_KINDS:
            await reply(ctx, "Use `!tt sync`, `!tt sync full` or `!tt sync incremental`.")
            return
        await ctx.defer()
        guild_id = self.guild_id(ctx)
        await self.service.check_sync(guild_id)
        env = self.settings_of(ctx).environment
        account = await self.service.account_number(guild_id)
        message = await self.send(ctx, embed=embeds.sync_progress_embed(None, env, account))
        editor = _ThrottledEditor(message, self.bot.progress_interval)

        async def on_progress(progress: SyncProgress) -> None:
            editor.submit(embeds.sync_progress_embed(progress, env, account))

        try:
            summary = await self.service.sync(guild_id, kind=kind, progress=on_progress)
        finally:
            await editor.close()
        await _edit(message, embed=embeds.sync_done_embed(summary, env, account))

    @TTBase.tt.command(
        name="accounts",
        ignore_extra=False,
        extras={"examples": ["!tt accounts", "!tt accounts 2"]},
    )
    @app_commands.describe(choice="Admins: the # (or account number) to make this server's default")
    async def tt_accounts(self, ctx: Ctx, choice: str | None = None) -> None:
        """List the linked accounts; admins can choose the server's default one."""
        await ctx.defer()
        guild_id = self.guild_id(ctx)
        if choice is not None:
            if self.tier_of(ctx) < Tier.ADMIN:
                await reply(ctx, "Choosing the server's default account needs the **admin** tier.")
                return
            await self.service.choose_account(guild_id, choice.strip())
        scoped = await self.service.accounts(guild_id)
        await self.send(ctx, embed=embeds.accounts_embed(scoped.data, scoped.environment))


class _ThrottledEditor:
    """Edits a progress message at most once per `interval` (the first update goes at once).

    The sync never waits for Discord: updates are coalesced and sent by a background task,
    and a failed edit is logged and skipped.
    """

    def __init__(self, message: discord.Message, interval: float) -> None:
        self._message = message
        self._interval = interval
        self._pending: discord.Embed | None = None
        self._last = 0.0
        self._wake = asyncio.Event()
        self._closed = False
        self._task = asyncio.get_running_loop().create_task(self._run())

    def submit(self, embed: discord.Embed) -> None:
        self._pending = embed
        self._wake.set()

    async def _run(self) -> None:
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            delay = self._last + self._interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            embed, self._pending = self._pending, None
            if embed is not None:
                self._last = time.monotonic()
                await _edit(self._message, embed=embed)

    async def close(self) -> None:
        """Stop; an update never shown yet (a very fast sync) is still shown once."""
        self._closed = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if self._pending is not None and self._last == 0.0:
            await _edit(self._message, embed=self._pending)


async def _edit(message: discord.Message, **fields: object) -> None:
    try:
        await message.edit(**fields)  # type: ignore[arg-type]
    except discord.HTTPException:
        log.warning("could not edit the sync progress message", exc_info=True)
