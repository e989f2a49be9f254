"""Order entry and management: buy/sell/bto/sto/btc/stc, close, cancel, replace, orders.

Every entry command goes parse → build → dry-run preview (all inside the service), then
shows the preview with author-only Confirm/Cancel buttons that expire after 60 s. Confirm
submits exactly that preview (idempotent on the message or interaction id) and the preview
message is edited in place as the order works.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import embeds
from bot import formatting as fmt
from bot.checks import member_tier
from bot.errors import reply
from bot.tiers import Tier
from bot.views import ConfirmView
from broker.service import OrderRequest
from broker.service.errors import ServiceError
from broker.service.models import OrderProgress, PlacementOutcome, PreviewSummary
from broker.tickets import TicketError
from broker.tickets.prices import parse_price
from cogs.tt.base import Ctx, TTBase

log = logging.getLogger(__name__)

ORDER_HELP = "The order, e.g. `1 SPY 12/18 590P @ 1.20` or `10 AAPL @ mid`"

Editable = discord.Message | discord.WebhookMessage | discord.InteractionMessage


#: Longest wait for the exchange's answer before acknowledging a Confirm click (Discord
#: allows 3 s for the first response to an interaction).
ACK_DEADLINE_S = 1.0


class OrderCommands(TTBase):
    # -- entry -----------------------------------------------------------------------------

    @TTBase.tt.command(
        name="buy",
        extras={"examples": ["!tt buy 10 AAPL @ 185.50", "!tt buy 1 SPY 12/18 590/595C @ 1.20"]},
    )
    @app_commands.describe(order=ORDER_HELP)
    async def tt_buy(self, ctx: Ctx, *, order: str) -> None:
        """Buy: opens or closes depending on your position. Price defaults to the mid."""
        await self.enter_order(ctx, "buy", order)

    @TTBase.tt.command(
        name="sell",
        extras={
            "examples": ["!tt sell 5 TSLA @ mkt", "!tt sell 1 SPY 12/18 IC 570/575/605/610 @ 2.10"]
        },
    )
    @app_commands.describe(order=ORDER_HELP)
    async def tt_sell(self, ctx: Ctx, *, order: str) -> None:
        """Sell: closes a long or opens a short. Price defaults to the mid."""
        await self.enter_order(ctx, "sell", order)

    @TTBase.tt.command(name="bto", extras={"examples": ["!tt bto 2 SPY 12/18 590P @ 1.20"]})
    @app_commands.describe(order=ORDER_HELP)
    async def tt_bto(self, ctx: Ctx, *, order: str) -> None:
        """Buy to open."""
        await self.enter_order(ctx, "bto", order)

    @TTBase.tt.command(name="sto", extras={"examples": ["!tt sto 1 SPY 12/18 580P 620C @ 3.20"]})
    @app_commands.describe(order=ORDER_HELP)
    async def tt_sto(self, ctx: Ctx, *, order: str) -> None:
        """Sell to open."""
        await self.enter_order(ctx, "sto", order)

    @TTBase.tt.command(name="btc", extras={"examples": ["!tt btc 1 SPY 12/18 590P @ 0.40"]})
    @app_commands.describe(order=ORDER_HELP)
    async def tt_btc(self, ctx: Ctx, *, order: str) -> None:
        """Buy to close."""
        await self.enter_order(ctx, "btc", order)

    @TTBase.tt.command(name="stc", extras={"examples": ["!tt stc 2 SPY 12/18 590P @ 1.80"]})
    @app_commands.describe(order=ORDER_HELP)
    async def tt_stc(self, ctx: Ctx, *, order: str) -> None:
        """Sell to close."""
        await self.enter_order(ctx, "stc", order)

    @TTBase.tt.command(
        name="close", extras={"examples": ["!tt close 2", "!tt close AAPL", "!tt close 2 @ 1.50"]}
    )
    @app_commands.describe(
        target="A position number from `positions`, or a symbol; optional `@ price`"
    )
    async def tt_close(self, ctx: Ctx, *, target: str) -> None:
        """Close a whole position (by its # in `!tt positions`, or by symbol) at the mid."""
        await ctx.defer()
        preview = await self.service.preview_close(self._request(ctx, target))
        await self.present_preview(ctx, preview)

    # -- management ------------------------------------------------------------------------

    @TTBase.tt.command(name="cancel", extras={"examples": ["!tt cancel 12345", "!tt cancel all"]})
    @app_commands.describe(target="An order id from `!tt orders`, or `all`")
    async def tt_cancel(self, ctx: Ctx, target: str) -> None:
        """Cancel a working order (stopping its chase), or `all` of them."""
        await ctx.defer()
        outcome = await self.service.cancel(self.guild_id(ctx), target.strip())
        env = self.settings_of(ctx).environment
        lines = [f"Cancelled order #{oid}." for oid in outcome.cancelled]
        lines += [f"No working order #{oid}." for oid in outcome.not_found]
        lines += [f"Could not cancel #{oid}: {why}" for oid, why in outcome.failed]
        if not lines:
            lines = ["There were no working orders to cancel."]
        await self.send(ctx, f"{fmt.badge(env)} · " + "\n".join(lines))

    @TTBase.tt.command(name="replace", extras={"examples": ["!tt replace 12345 1.25"]})
    @app_commands.describe(order_id="The order id from `!tt orders`", price="The new limit price")
    async def tt_replace(self, ctx: Ctx, order_id: str, price: str) -> None:
        """Move a working limit order to a new price (stops its chase)."""
        try:
            # The same plain-decimal rule as prices in the order language.
            new_price, effect = parse_price(price.strip())
        except TicketError as exc:
            raise commands.BadArgument(fmt.sanitize(exc.message, limit=200)) from None
        if effect is not None:
            raise commands.BadArgument(
                "Give only the price: the order keeps its debit/credit (e.g. `!tt replace "
                "12345 1.25`)."
            )
        await ctx.defer()
        outcome = await self.service.replace(
            self.guild_id(ctx),
            order_id.strip().lstrip("#"),
            new_price,
            key=self.invocation_key(ctx),
        )
        env = self.settings_of(ctx).environment
        await self.send(
            ctx,
            f"{fmt.badge(env)} · Replaced order #{outcome.old_order_id} with "
            f"#{outcome.new_order_id} at {fmt.price(outcome.price, outcome.price_effect)}.",
        )

    @TTBase.tt.command(name="orders", extras={"examples": ["!tt orders"]})
    async def tt_orders(self, ctx: Ctx) -> None:
        """Working orders (including ones being chased)."""
        await ctx.defer()
        scoped = await self.service.open_orders(self.guild_id(ctx))
        pages = embeds.orders_pages(scoped.data, scoped.environment, scoped.account_number)
        await self.send_pages(ctx, pages)

    # -- flow ------------------------------------------------------------------------------

    def _request(self, ctx: Ctx, text: str) -> OrderRequest:
        assert ctx.guild is not None
        return OrderRequest(
            guild_id=ctx.guild.id,
            channel_id=ctx.channel.id,
            author_id=ctx.author.id,
            author_name=ctx.author.display_name,
            text=text,
            key=self.invocation_key(ctx),
        )

    async def enter_order(self, ctx: Ctx, action: str, order: str) -> None:
        await ctx.defer()
        key = self.invocation_key(ctx)
        # Was this very command placed before (a message re-delivered after a restart)?
        # Looked up alongside the preview so the common case waits for neither twice.
        lookup = asyncio.get_running_loop().create_task(self.service.placement_for_key(key))
        try:
            preview = await self.service.preview_order(self._request(ctx, f"{action} {order}"))
        except ServiceError:
            if await lookup is None:
                raise
            preview = None
        placed = await lookup
        if placed is not None:
            await reply(ctx, f"This command was already placed as order #{placed}.", ephemeral=True)
            return
        assert preview is not None
        await self.present_preview(ctx, preview)

    async def present_preview(self, ctx: Ctx, preview: PreviewSummary) -> None:
        if preview.would_reject:
            await self.send(
                ctx, embed=embeds.preview_embed(preview, status="Not placed: see above.")
            )
            return
        if not preview.confirm_required:
            posted = await self.send(
                ctx,
                embed=embeds.preview_embed(
                    preview, status="⏳ Submitting (confirmation skipped in this server)…"
                ),
            )
            self.spawn(self.place_and_track(preview, posted), name="place")
            return

        message: Editable | None = None

        async def confirmed(interaction: discord.Interaction) -> None:
            await self.on_confirm(interaction, preview)

        async def cancelled(interaction: discord.Interaction) -> None:
            await interaction.response.edit_message(
                embed=embeds.preview_embed(preview, status="✖️ Cancelled — nothing was placed."),
                view=None,
            )

        async def expired() -> None:
            if message is not None:
                seconds = f"{self.bot.confirm_timeout:g}"
                status = f"⌛ Expired after {seconds} s — nothing was placed."
                await self._edit(
                    message, embed=embeds.preview_embed(preview, status=status), view=None
                )

        view = ConfirmView(
            author_id=preview.author_id,
            key=preview.preview_id,
            on_confirm=confirmed,
            on_cancel=cancelled,
            on_expire=expired,
            timeout=self.bot.confirm_timeout,
        )
        message = await self.send(ctx, embed=embeds.preview_embed(preview), view=view)

    async def on_confirm(self, interaction: discord.Interaction, preview: PreviewSummary) -> None:
        # Re-validate the person: roles may have changed since the preview.
        settings = await self.service.guild(preview.guild_id)
        if (
            not isinstance(interaction.user, discord.Member)
            or member_tier(interaction.user, settings) < Tier.TRADER
        ):
            await interaction.response.edit_message(
                embed=embeds.preview_embed(
                    preview, status="✖️ Not placed: you no longer have the trader tier."
                ),
                view=None,
            )
            return
        message = interaction.message
        if message is None:  # previews are never ephemeral, so Discord always sends it
            await interaction.response.defer()
            return
        # The order goes first: Discord's acknowledgement ("Submitting…", buttons removed)
        # follows once the exchange has answered the submission, or after ACK_DEADLINE_S at
        # the latest (Discord allows 3 s), so building it never delays the order. Progress
        # edits wait for the acknowledgement so it can never overwrite them.
        loop = asyncio.get_running_loop()
        acknowledged: asyncio.Future[None] = loop.create_future()
        submitted: asyncio.Future[None] = loop.create_future()
        self.spawn(
            self.place_and_track(preview, message, after=acknowledged, submitted=submitted),
            name="place",
        )
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(ACK_DEADLINE_S):
                    await asyncio.shield(submitted)
            await interaction.response.edit_message(
                embed=embeds.preview_embed(preview, status="⏳ Submitting…"), view=None
            )
        finally:
            acknowledged.set_result(None)

    async def place_and_track(
        self,
        preview: PreviewSummary,
        message: Editable,
        *,
        after: asyncio.Future[Any] | None = None,
        submitted: asyncio.Future[None] | None = None,
    ) -> None:
        """Submit a confirmed preview and follow it. `submitted` is settled once the
        submission is over, whatever its outcome; `after` is awaited before any edit."""
        outcome: PlacementOutcome | None = None
        try:
            outcome = await self.service.place(preview)
        except ServiceError as exc:
            failure = f"✖️ Not placed: {exc.message}"
        except Exception:
            log.exception("placing a confirmed preview failed")
            failure = "⚠️ Submission failed unexpectedly; check `!tt orders` before retrying."
        finally:
            # Also on cancellation (shutdown): the acknowledgement must not wait for nothing.
            _settle_when(outcome.submission if outcome is not None else None, submitted)
        await _settled(after)
        if outcome is None:
            await self._edit(message, embed=embeds.preview_embed(preview, status=failure))
            return
        if outcome.duplicate:
            status = f"Already placed as order #{outcome.order_id}; nothing new was sent."
            await self._edit(message, embed=embeds.preview_embed(preview, status=status))
            return
        # The message already says "Submitting…"; the next update ("Working" with the
        # order id) arrives as soon as the exchange has the order.
        if not outcome.progress.stage.terminal:
            self.spawn(self._track(preview, message), name=f"wait:track:{preview.preview_id}")

    async def _track(self, preview: PreviewSummary, message: Editable) -> None:
        """Edit the preview message as the order works, until it is done.

        Waiting for the next update is idle time; each edit is work in flight (its own
        task, so shutdown and the offline console's settling see it), done in order.
        """
        async for progress in self.service.watch(preview.preview_id):
            await self.spawn(self._show_progress(message, preview, progress), name="progress-edit")

    async def _show_progress(
        self, message: Editable, preview: PreviewSummary, progress: OrderProgress
    ) -> None:
        await self._edit(
            message, embed=embeds.preview_embed(preview, status=embeds.progress_text(progress))
        )

    async def _edit(
        self, message: Editable, *, embed: discord.Embed, view: discord.ui.View | None = None
    ) -> None:
        try:
            await message.edit(embed=embed, view=view)
        except discord.HTTPException:
            log.warning("could not edit an order message", exc_info=True)

    # -- edits ---------------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_message_edit(self, before: discord.Message, after: discord.Message) -> None:
        """An edited `!tt` command never runs again; say so if it had already placed an order."""
        if after.author.bot or after.guild is None or before.content == after.content:
            return
        if not after.content.lower().lstrip().startswith("!tt"):
            return
        settings = await self.service.guild(after.guild.id)
        if after.channel.id not in settings.allowed_channel_ids:
            return
        placed = await self.service.placement_for_key(str(after.id))
        if placed is None:
            return
        try:
            await after.reply(
                f"Edits don't change orders: this command was already placed as order #{placed}.",
                mention_author=False,
            )
        except discord.HTTPException:
            log.warning("could not answer an edited command", exc_info=True)


def _settle(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


def _settle_when(source: asyncio.Future[None] | None, target: asyncio.Future[None] | None) -> None:
    """Settle `target` once `source` is done (at once when there is no `source`)."""
    if source is None:
        _settle(target)
    else:
        source.add_done_callback(lambda _: _settle(target))


async def _settled(future: asyncio.Future[Any] | None) -> None:
    """Wait for `future` to finish, whatever its outcome (its owner reports failures)."""
    if future is not None:
        await asyncio.wait([future])
