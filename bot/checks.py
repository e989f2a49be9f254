"""Who may run what, where: the channel filter and the role tiers for every `!tt` command.

`authorize(ctx)` is the single gate; the `tt` cog calls it from `cog_check`, so prefix and
slash invocations share it. Failures are `CheckFailure` subclasses carrying a user-facing
message; the error handler decides whether to answer (outside allowed channels it stays
silent, apart from one hint to admins).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot.tiers import Tier, required_tier, resolve_tier

if TYPE_CHECKING:
    from broker.service.models import GuildView

# Commands an admin may run in any channel, so a fresh server can be configured at all.
ANYWHERE_FOR_ADMINS = frozenset({"channels", "help"})


class NotInGuild(commands.CheckFailure):
    def __init__(self) -> None:
        super().__init__(
            "tt-bot works in server channels. DMs are only used for linking credentials "
            "(an admin starts that with `!tt link` in the server)."
        )


class ChannelNotAllowed(commands.CheckFailure):
    """`!tt` was used outside the guild's allowed channels."""

    def __init__(self, *, member_is_admin: bool, configured: bool) -> None:
        self.member_is_admin = member_is_admin
        self.configured = configured
        if configured:
            text = "tt-bot isn't enabled in this channel."
        else:
            text = "tt-bot isn't enabled in any channel of this server yet."
        super().__init__(
            f"{text} An admin can enable it here with `!tt channels add #this-channel`."
        )


class TierRequired(commands.CheckFailure):
    def __init__(self, command: str, needed: Tier, have: Tier) -> None:
        self.needed = needed
        self.have = have
        if needed is Tier.NONE:  # an unknown command: refuse rather than run it
            text = f"`{command}` is not available."
        else:
            text = (
                f"`!tt {command}` needs the **{needed.label}** tier; "
                + (
                    f"you are a **{have.label}**."
                    if have is not Tier.NONE
                    else "you have no tt-bot role."
                )
                + " Ask an admin (`!tt roles`)."
            )
        super().__init__(text)


def subcommand_path(ctx: commands.Context[commands.Bot]) -> str:
    """`buy`, `channels add`, … — the command path below the `tt` group ('' for `tt` itself)."""
    if ctx.command is None:
        return ""
    parts = ctx.command.qualified_name.split(" ")
    return " ".join(parts[1:]) if parts[0] == "tt" else ctx.command.qualified_name


def member_tier(member: discord.Member, settings: GuildView) -> Tier:
    role_tiers = {role_id: Tier.parse(name) for role_id, name in settings.role_tiers.items()}
    return resolve_tier(
        role_ids=[role.id for role in member.roles],
        role_tiers=role_tiers,
        manage_guild=member.guild_permissions.manage_guild,
    )


def check_channel(
    ctx: commands.Context[commands.Bot], settings: GuildView, tier: Tier, path: str
) -> None:
    channel_id = ctx.channel.id
    parent_id = getattr(ctx.channel, "parent_id", None)  # threads inherit their channel
    if channel_id in settings.allowed_channel_ids or parent_id in settings.allowed_channel_ids:
        return
    head = path.split(" ", 1)[0]
    if tier is Tier.ADMIN and head in ANYWHERE_FOR_ADMINS:
        return
    raise ChannelNotAllowed(
        member_is_admin=tier is Tier.ADMIN, configured=bool(settings.allowed_channel_ids)
    )


def check_tier(path: str, tier: Tier) -> None:
    if not path:  # bare `!tt`: shows help
        return
    needed = required_tier(path)
    if needed is None:
        raise TierRequired(path, Tier.NONE, tier)
    if tier < needed:
        raise TierRequired(path, needed, tier)


async def authorize(ctx: commands.Context[commands.Bot], settings: GuildView) -> Tier:
    """Raise unless the author may run this command here; return their tier."""
    if ctx.guild is None or not isinstance(ctx.author, discord.Member):
        raise NotInGuild()
    path = subcommand_path(ctx)
    tier = member_tier(ctx.author, settings)
    check_channel(ctx, settings, tier, path)
    check_tier(path, tier)
    return tier
