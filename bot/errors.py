"""One error handler for every `!tt` / `/tt` failure.

Turns each failure into a short, specific reply and logs the details. Broker and service
errors arrive as `ServiceError` (user-safe by construction); anything unexpected gets a
reference id in the reply and a full traceback in the log — never in the channel.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.checks import ChannelNotAllowed, NotInGuild
from bot.formatting import badge
from broker.service.errors import ServiceError

log = logging.getLogger(__name__)


async def reply(ctx: commands.Context[commands.Bot], text: str, *, ephemeral: bool = True) -> None:
    """Answer the invoker: ephemeral for slash, a reply (no ping) for `!tt`."""
    try:
        if ctx.interaction is not None:
            await ctx.send(text, ephemeral=ephemeral)
        else:
            await ctx.reply(text, mention_author=False)
    except discord.HTTPException:
        log.warning("could not send an error reply", exc_info=True)


def usage(command: commands.Command[Any, ..., Any] | None) -> str:
    if command is None:
        return "See `!tt help`."
    text = (
        f"Usage: `!{command.qualified_name}{' ' + command.signature if command.signature else ''}`"
    )
    examples = command.extras.get("examples") if command.extras else None
    if examples:
        text += " — e.g. " + ", ".join(f"`{e}`" for e in examples[:2])
    return text


def unwrap(error: BaseException) -> BaseException:
    """The real exception behind discord.py's invoke/hybrid wrappers."""
    wrappers = (
        commands.HybridCommandError,
        commands.CommandInvokeError,
        app_commands.CommandInvokeError,
    )
    while isinstance(error, wrappers):
        error = error.original
    return error


async def handle_command_error(ctx: commands.Context[commands.Bot], error: BaseException) -> None:
    error = unwrap(error)

    if isinstance(error, commands.CommandNotFound):
        return  # not one of ours (`!tt` typos are answered by the group itself)

    if isinstance(error, ChannelNotAllowed):
        await _channel_not_allowed(ctx, error)
        return

    if isinstance(error, NotInGuild):
        await reply(ctx, str(error))
        return

    if isinstance(error, commands.NotOwner):
        await reply(ctx, "Only the bot's owner can do that.")
        return

    if isinstance(error, commands.CheckFailure | app_commands.CheckFailure):
        await reply(ctx, str(error) or "You can't use that command here.")
        return

    if isinstance(error, commands.MissingRequiredArgument):
        await reply(ctx, f"Missing `{error.param.name}`. {usage(ctx.command)}")
        return

    if isinstance(error, commands.TooManyArguments):
        await reply(
            ctx,
            f"I couldn't read all of that (unknown channel, role or extra words). "
            f"{usage(ctx.command)}",
        )
        return

    if isinstance(error, commands.UserInputError | app_commands.TransformerError):
        await reply(ctx, f"{_first_line(error)} {usage(ctx.command)}")
        return

    if isinstance(error, ServiceError):
        settings = getattr(ctx, "tt_settings", None)  # set by the gate for `tt` commands
        prefix = f"{badge(settings.environment)} · " if settings is not None else ""
        await reply(ctx, prefix + error.message)
        return

    if isinstance(error, commands.CommandOnCooldown):
        await reply(ctx, f"Slow down: try again in {error.retry_after:.0f} s.")
        return

    ref = secrets.token_hex(3)
    log.error(
        "command failed ref=%s command=%s",
        ref,
        ctx.command.qualified_name if ctx.command else "?",
        exc_info=error,
    )
    await reply(
        ctx,
        f"Something went wrong (ref `{ref}`); nothing further was done. "
        "The details are in the bot's log.",
    )


async def _channel_not_allowed(
    ctx: commands.Context[commands.Bot], error: ChannelNotAllowed
) -> None:
    if ctx.interaction is not None:
        # A slash command must be answered; ephemeral keeps the channel quiet.
        await reply(ctx, str(error))
        return
    if not error.member_is_admin or ctx.guild is None:
        return  # silently ignored for everyone else
    hinted: set[tuple[int, int]] = getattr(ctx.bot, "hinted_channels", set())
    key = (ctx.guild.id, ctx.channel.id)
    if key in hinted:
        return
    hinted.add(key)
    await reply(ctx, str(error) + " (This hint is shown once.)")


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
