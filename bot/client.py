"""The bot: a `commands.Bot` subclass that receives its services by injection.

Everything the commands need (the trading service facade, owner ids, clock) is passed in;
the bot never builds brokers or databases itself, which is what lets the offline console
and the end-to-end tests run this exact class against the local Discord stand-in.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import discord
from discord.ext import commands

from bot.errors import handle_command_error
from broker.service import TradingService

log = logging.getLogger(__name__)

DEFAULT_EXTENSIONS: tuple[str, ...] = ("cogs.tt", "cogs.notifications")
PREFIX = "!"
_SEEN_MESSAGES = 2048  # re-delivered gateway messages are recognised among this many


def bot_intents() -> discord.Intents:
    """Only what the bot uses: guild + DM messages and message content for `!tt`."""
    intents = discord.Intents.default()
    intents.message_content = True
    intents.presences = False
    intents.typing = False
    intents.dm_typing = False
    intents.guild_typing = False
    return intents


class TTBot(commands.Bot):
    def __init__(
        self,
        *,
        service: TradingService,
        owner_ids: Sequence[int] = (),
        extensions: Sequence[str] = DEFAULT_EXTENSIONS,
        dev_guild_id: int | None = None,
        progress_interval: float = 1.0,
        confirm_timeout: float = 60.0,
        notice_retry_delay: float = 1.0,
        **options: Any,
    ) -> None:
        super().__init__(
            command_prefix=PREFIX,
            intents=bot_intents(),
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,  # `!tt help` is ours; a bare `!help` is not a tt-bot command
            case_insensitive=True,
            strip_after_prefix=True,
            owner_ids=set(owner_ids) or None,
            **options,
        )
        self.service = service
        self.dev_guild_id = dev_guild_id
        self.progress_interval = progress_interval  # min seconds between progress edits
        self.confirm_timeout = confirm_timeout  # how long Confirm/Cancel buttons stay live
        self.notice_retry_delay = notice_retry_delay  # backoff base for failed fill posts
        self._extensions = tuple(extensions)
        self._seen_messages: OrderedDict[int, None] = OrderedDict()
        # (guild, channel) pairs where an admin was already told `!tt` is not enabled there
        self.hinted_channels: set[tuple[int, int]] = set()
        # follow-up work started by commands (order tracking); cancelled on close
        self.background_tasks: set[asyncio.Task[None]] = set()

    async def setup_hook(self) -> None:
        for extension in self._extensions:
            # A half-loaded trading bot is worse than none: fail start-up loudly.
            await self.load_extension(extension)
            log.info("loaded extension %s", extension)
        if self.dev_guild_id is not None:
            # Only a development server is synced at start-up (instant, not rate-limited);
            # everything else waits for the owner's explicit `!tt slashsync`.
            guild = discord.Object(id=self.dev_guild_id)
            try:
                count = await self.sync_app_commands("guild", guild)
            except discord.HTTPException:
                log.warning("could not sync slash commands to the dev guild", exc_info=True)
            else:
                log.info("synced %d slash command(s) to the dev guild", count)

    async def close(self) -> None:
        for task in list(self.background_tasks):
            task.cancel()
        if self.background_tasks:
            await asyncio.gather(*self.background_tasks, return_exceptions=True)
        await super().close()

    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot:
            return
        if not self._first_delivery(message.id):
            log.info("ignoring a re-delivered message id=%s", message.id)
            return
        await self.process_commands(message)

    def _first_delivery(self, message_id: int) -> bool:
        """True the first time a message id is seen (gateway events may be re-delivered)."""
        if message_id in self._seen_messages:
            return False
        self._seen_messages[message_id] = None
        if len(self._seen_messages) > _SEEN_MESSAGES:
            self._seen_messages.popitem(last=False)
        return True

    async def on_command_error(
        self, context: commands.Context[Any], exception: commands.CommandError, /
    ) -> None:
        await handle_command_error(context, exception)

    async def sync_app_commands(self, scope: str, guild: discord.abc.Snowflake | None) -> int:
        """Push the slash-command tree to Discord (an explicit owner action, never automatic)."""
        if scope == "global":
            synced = await self.tree.sync()
        elif scope == "clear" and guild is not None:
            self.tree.clear_commands(guild=guild)
            synced = await self.tree.sync(guild=guild)
        elif guild is not None:
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
        else:
            raise ValueError("a guild is needed to sync or clear guild commands")
        return len(synced)
