"""Guild administration: channels, roles, limits, environments, halt/resume, credentials.

All of these need the admin tier (checked by the shared gate). Switching to live also needs
linked live credentials and a Confirm click; credentials are only ever typed in DMs, never
echoed, and stored encrypted.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot import formatting as fmt
from bot.errors import reply
from bot.tiers import Tier
from bot.views import ConfirmView
from broker.service.errors import ServiceError
from broker.service.models import Environment, GuildView
from cogs.tt.base import Ctx, TTBase

log = logging.getLogger(__name__)

LINK_PROMPT_TIMEOUT = 180.0
EnvName = Literal["paper", "sandbox", "live"]
LinkEnv = Literal["sandbox", "live"]
TierName = Literal["viewer", "trader", "admin"]


def _channel_list(ids: frozenset[int]) -> str:
    return ", ".join(f"<#{cid}>" for cid in sorted(ids)) or "none yet"


class AdminCommands(TTBase):
    # -- channels --------------------------------------------------------------------------

    @TTBase.tt.group(name="channels", extras={"examples": ["!tt channels add #trading"]})
    async def tt_channels(self, ctx: Ctx) -> None:
        """Where tt-bot answers: `add`, `remove`, `list`, `notify`."""
        await self._show_channels(ctx, self.settings_of(ctx))

    @tt_channels.command(name="list", extras={"examples": ["!tt channels list"]})
    async def channels_list(self, ctx: Ctx) -> None:
        """Show the allowed channels and the notifications channel."""
        await self._show_channels(ctx, self.settings_of(ctx))

    @tt_channels.command(
        name="add", extras={"examples": ["!tt channels add #trading"]}, ignore_extra=False
    )
    @app_commands.describe(channel="The channel to allow (default: this one)")
    async def channels_add(self, ctx: Ctx, channel: discord.TextChannel | None = None) -> None:
        """Allow `!tt` in a channel (default: this one)."""
        target = channel.id if channel is not None else ctx.channel.id
        settings = await self.service.allow_channel(self.guild_id(ctx), target, allowed=True)
        await self._show_channels(ctx, settings, note=f"Enabled <#{target}>.")

    @tt_channels.command(
        name="remove", extras={"examples": ["!tt channels remove #general"]}, ignore_extra=False
    )
    @app_commands.describe(channel="The channel to disallow (default: this one)")
    async def channels_remove(self, ctx: Ctx, channel: discord.TextChannel | None = None) -> None:
        """Stop answering `!tt` in a channel (default: this one)."""
        target = channel.id if channel is not None else ctx.channel.id
        settings = await self.service.allow_channel(self.guild_id(ctx), target, allowed=False)
        await self._show_channels(ctx, settings, note=f"Disabled <#{target}>.")

    @tt_channels.command(
        name="notify", extras={"examples": ["!tt channels notify #fills"]}, ignore_extra=False
    )
    @app_commands.describe(channel="Where fill notifications go (leave empty: the order's channel)")
    async def channels_notify(self, ctx: Ctx, channel: discord.TextChannel | None = None) -> None:
        """Send fill notifications to one channel (no channel: back to each order's channel)."""
        settings = await self.service.set_notification_channel(
            self.guild_id(ctx), channel.id if channel is not None else None
        )
        note = (
            f"Fill notifications go to <#{channel.id}>."
            if channel is not None
            else "Fill notifications go to the channel where each order was placed."
        )
        await self._show_channels(ctx, settings, note=note)

    async def _show_channels(self, ctx: Ctx, settings: GuildView, note: str = "") -> None:
        notify = (
            f"<#{settings.notification_channel_id}>"
            if settings.notification_channel_id
            else "the channel of each order"
        )
        allowed = _channel_list(settings.allowed_channel_ids)
        text = f"Allowed channels: {allowed}.\nFill notifications: {notify}."
        await self.send(ctx, f"{note}\n{text}".strip())

    # -- roles -----------------------------------------------------------------------------

    @TTBase.tt.group(name="roles", extras={"examples": ["!tt roles add trader @Traders"]})
    async def tt_roles(self, ctx: Ctx) -> None:
        """Which roles are viewers, traders and admins: `add`, `remove`, `list`."""
        await self._show_roles(ctx, self.settings_of(ctx))

    @tt_roles.command(name="list", extras={"examples": ["!tt roles list"]})
    async def roles_list(self, ctx: Ctx) -> None:
        """Show the role → tier mapping."""
        await self._show_roles(ctx, self.settings_of(ctx))

    @tt_roles.command(name="add", extras={"examples": ["!tt roles add trader @Traders"]})
    @app_commands.describe(tier="viewer, trader or admin", role="The role that gets this tier")
    async def roles_add(self, ctx: Ctx, tier: TierName, role: discord.Role) -> None:
        """Give a role a tier (viewer, trader or admin)."""
        parsed = Tier.parse(tier)
        settings = await self.service.set_role_tier(self.guild_id(ctx), role.id, parsed.label)
        await self._show_roles(
            ctx, settings, note=f"{fmt.sanitize(role.name)} is now **{parsed.label}**."
        )

    @tt_roles.command(name="remove", extras={"examples": ["!tt roles remove @Traders"]})
    @app_commands.describe(role="The role to remove from the mapping")
    async def roles_remove(self, ctx: Ctx, role: discord.Role) -> None:
        """Remove a role from the tier mapping."""
        settings = await self.service.set_role_tier(self.guild_id(ctx), role.id, None)
        await self._show_roles(
            ctx, settings, note=f"{fmt.sanitize(role.name)} no longer has a tier."
        )

    async def _show_roles(self, ctx: Ctx, settings: GuildView, note: str = "") -> None:
        lines = [f"<@&{rid}> → **{tier}**" for rid, tier in sorted(settings.role_tiers.items())]
        body = "\n".join(lines) if lines else "No roles mapped yet."
        body += "\nMembers with Manage Server are always admins."
        await self.send(ctx, f"{note}\nRole tiers:\n{body}".strip())

    # -- limits ----------------------------------------------------------------------------

    @TTBase.tt.group(
        name="limits",
        extras={"examples": ["!tt limits set max_quantity 5", "!tt limits set skip_confirm on"]},
    )
    async def tt_limits(self, ctx: Ctx) -> None:
        """Order limits and chase settings: `list`, `set <name> <value>`."""
        await self._show_limits(ctx, self.settings_of(ctx))

    @tt_limits.command(name="list", extras={"examples": ["!tt limits list"]})
    async def limits_list(self, ctx: Ctx) -> None:
        """Show the limits and chase settings."""
        await self._show_limits(ctx, self.settings_of(ctx))

    @tt_limits.command(name="set", extras={"examples": ["!tt limits set max_notional 10000"]})
    @app_commands.describe(name="Which limit (see `!tt limits list`)", value="The new value")
    async def limits_set(self, ctx: Ctx, name: str, value: str) -> None:
        """Change one limit or chase setting."""
        settings = await self.service.set_limit(
            self.guild_id(ctx), name.strip().lower(), value.strip()
        )
        await self._show_limits(ctx, settings, note=f"Set `{fmt.sanitize(name, limit=40)}`.")

    async def _show_limits(self, ctx: Ctx, settings: GuildView, note: str = "") -> None:
        rows = [[name, value] for name, value in settings.limits.items()]
        text = fmt.table(["Setting", "Value"], rows) if rows else "No limits."
        await self.send(ctx, f"{note}\n{fmt.badge(settings.environment)} limits:\n{text}".strip())

    # -- environments ----------------------------------------------------------------------

    @TTBase.tt.command(
        name="env", ignore_extra=False, extras={"examples": ["!tt env sandbox", "!tt env live"]}
    )
    @app_commands.describe(environment="paper (built-in), sandbox (Tastytrade cert) or live")
    async def tt_env(self, ctx: Ctx, environment: EnvName | None = None) -> None:
        """Show or switch this server's environment: paper, sandbox or live."""
        if environment is None:
            await self._show_env(ctx)
            return
        await self.switch_environment(ctx, Environment(environment))

    @TTBase.tt.command(
        name="sandbox",
        with_app_command=False,
        extras={"examples": ["!tt sandbox on", "!tt sandbox status"]},
    )
    async def tt_sandbox(self, ctx: Ctx, state: Literal["on", "off", "status"] = "status") -> None:
        """`on`: use the Tastytrade sandbox; `off`: back to the built-in paper exchange."""
        if state == "status":
            await self._show_env(ctx)
            return
        await self.switch_environment(
            ctx, Environment.SANDBOX if state == "on" else Environment.PAPER
        )

    async def _show_env(self, ctx: Ctx) -> None:
        env = self.settings_of(ctx).environment
        await self.send(
            ctx,
            f"This server trades in {fmt.badge(env)}. Switch with `!tt env paper|sandbox|live`.",
        )

    async def switch_environment(self, ctx: Ctx, target: Environment) -> None:
        guild_id = self.guild_id(ctx)
        current = self.settings_of(ctx).environment
        if target == current:
            await self.send(ctx, f"Already in {fmt.badge(target)}.")
            return
        await ctx.defer()
        await self.service.check_environment(guild_id, target)  # raises with the reason
        if target is not Environment.LIVE:
            await self.service.set_environment(guild_id, target)
            await self.send(ctx, f"Switched from {fmt.badge(current)} to {fmt.badge(target)}.")
            return

        message: discord.Message | None = None

        async def confirmed(interaction: discord.Interaction) -> None:
            try:
                await self.service.check_environment(guild_id, target)
                await self.service.set_environment(guild_id, target)
            except ServiceError as exc:
                await interaction.response.edit_message(
                    content=f"Not switched: {exc.message}", view=None
                )
                return
            await interaction.response.edit_message(
                content=f"Switched to {fmt.badge(target)}. Orders now trade real money.", view=None
            )

        async def cancelled(interaction: discord.Interaction) -> None:
            await interaction.response.edit_message(
                content=f"Staying in {fmt.badge(current)}.", view=None
            )

        async def expired() -> None:
            if message is not None:
                try:
                    await message.edit(
                        content=f"Not switched (no confirmation). Still in {fmt.badge(current)}.",
                        view=None,
                    )
                except discord.HTTPException:
                    log.warning("could not edit the live-switch prompt", exc_info=True)

        view = ConfirmView(
            author_id=ctx.author.id,
            key=f"env-{self.invocation_key(ctx)}",
            on_confirm=confirmed,
            on_cancel=cancelled,
            on_expire=expired,
            timeout=self.bot.confirm_timeout,
            danger=True,
        )
        message = await self.send(
            ctx,
            f"Switch this server from {fmt.badge(current)} to {fmt.badge(Environment.LIVE)}? "
            "Orders will use real money. Press **Confirm** within 60 s.",
            view=view,
        )

    # -- halt ------------------------------------------------------------------------------

    @TTBase.tt.command(name="halt", extras={"examples": ["!tt halt"]})
    async def tt_halt(self, ctx: Ctx) -> None:
        """Kill switch: stop all chases, cancel their working orders, refuse new orders."""
        await ctx.defer()
        outcome = await self.service.halt(self.guild_id(ctx))
        env = self.settings_of(ctx).environment
        await self.send(
            ctx,
            f"{fmt.badge(env)} · 🛑 Trading halted: {outcome.chases_stopped} chase(s) stopped, "
            f"{outcome.orders_cancelled} working order(s) cancelled. New orders are refused until "
            "an admin runs `!tt resume`.",
        )

    @TTBase.tt.command(name="resume", extras={"examples": ["!tt resume"]})
    async def tt_resume(self, ctx: Ctx) -> None:
        """Allow new orders again after `!tt halt`."""
        await self.service.resume(self.guild_id(ctx))
        env = self.settings_of(ctx).environment
        await self.send(ctx, f"{fmt.badge(env)} · ✅ Trading resumed.")

    # -- credentials -----------------------------------------------------------------------

    @TTBase.tt.command(name="link", extras={"examples": ["!tt link sandbox", "!tt link live"]})
    @app_commands.describe(environment="sandbox or live")
    async def tt_link(self, ctx: Ctx, environment: LinkEnv) -> None:
        """Link Tastytrade credentials for this server (asked for in a DM, stored encrypted)."""
        env = Environment(environment)
        self.service.check_can_store_credentials()  # refuses clearly without an encryption key
        try:
            dm = await ctx.author.create_dm()
            server = fmt.sanitize(ctx.guild.name if ctx.guild else "")
            await dm.send(
                f"Linking **{env.value}** Tastytrade credentials for **{server}**.\n"
                "Reply with your OAuth **provider secret** (client secret). "
                f"I won't echo it. You have {LINK_PROMPT_TIMEOUT:.0f} s; reply `cancel` to stop."
            )
        except discord.HTTPException:
            await reply(ctx, "I couldn't DM you. Allow DMs from server members and try again.")
            return
        await reply(ctx, f"Check your DMs to link {fmt.badge(env)} credentials.", ephemeral=True)
        self.spawn(
            self._link_dialog(ctx.author, dm, self.guild_id(ctx), env, ctx.channel),
            name=f"wait:link:{ctx.author.id}",
        )

    async def _link_dialog(
        self,
        user: discord.abc.User,
        dm: discord.DMChannel,
        guild_id: int,
        env: Environment,
        origin: discord.abc.Messageable,
    ) -> None:
        secret = await self._ask_secret(user, dm)
        if secret is None:
            return
        await dm.send("Got it. Now reply with your **refresh token**.")
        refresh = await self._ask_secret(user, dm)
        if refresh is None:
            return
        try:
            accounts = await self.service.link(guild_id, env, secret, refresh, linked_by=user.id)
        except ServiceError as exc:
            await dm.send(f"Not linked: {exc.message}")
            return
        except Exception:
            log.exception("linking credentials failed")
            await dm.send("Not linked: something went wrong; the details are in the bot's log.")
            return
        await dm.send(
            f"✅ Linked {fmt.badge(env)}: {accounts} account(s) found. You can delete our chat."
        )
        try:
            await origin.send(f"✅ {fmt.badge(env)} credentials linked by <@{user.id}>.")
        except discord.HTTPException:
            log.warning("could not announce a credentials link", exc_info=True)

    async def _ask_secret(self, user: discord.abc.User, dm: discord.DMChannel) -> str | None:
        def from_user(message: discord.Message) -> bool:
            return message.author.id == user.id and message.channel.id == dm.id

        try:
            message = await self.bot.wait_for(
                "message", check=from_user, timeout=LINK_PROMPT_TIMEOUT
            )
        except TimeoutError:
            await dm.send("Timed out; nothing was stored. Run `!tt link` again when ready.")
            return None
        value = message.content.strip()
        with contextlib.suppress(discord.HTTPException):
            await message.delete()  # Discord does not allow this in DMs; try anyway
        if value.lower() == "cancel" or not value:
            await dm.send("Cancelled; nothing was stored.")
            return None
        return value

    @TTBase.tt.command(name="unlink", extras={"examples": ["!tt unlink sandbox"]})
    @app_commands.describe(environment="sandbox or live")
    async def tt_unlink(self, ctx: Ctx, environment: LinkEnv) -> None:
        """Delete this server's linked credentials for an environment."""
        env = Environment(environment)
        switched_to = await self.service.unlink(self.guild_id(ctx), env)
        text = f"Removed this server's {fmt.badge(env)} credentials."
        if switched_to is not None:
            text += f" The server now trades in {fmt.badge(switched_to)}."
        await self.send(ctx, text)

    # -- owner -----------------------------------------------------------------------------

    @TTBase.tt.command(name="slashsync", with_app_command=False, hidden=True)
    @commands.is_owner()
    async def tt_slashsync(
        self, ctx: Ctx, scope: Literal["guild", "global", "clear"] = "guild"
    ) -> None:
        """Owner: push the `/tt` slash commands to Discord (this server, global, or clear)."""
        count = await self.bot.sync_app_commands(scope, ctx.guild)
        where = "globally" if scope == "global" else "to this server"
        await self.send(ctx, f"Synced {count} application command(s) {where}.")
