"""Fill notifications: broker fill events → an embed in the order's channel.

The service hands us `FillNotice`s; we queue them and a single worker posts them, so a slow
or failing Discord request never blocks the broker or other notices. HTTP errors are
retried a few times with backoff, then logged. A notice is acknowledged to the service only
once posted (or when it can never be posted: no channel, no permission); the others are
re-sent at the next start (`service.redeliver_notices()`, asked once we are subscribed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot import embeds
from broker.service.models import FillNotice

if TYPE_CHECKING:
    from bot.client import TTBot

log = logging.getLogger(__name__)

SEND_ATTEMPTS = 3


class Notifications(commands.Cog):
    def __init__(self, bot: TTBot) -> None:
        self.bot = bot
        self.retry_delay = bot.notice_retry_delay
        self.queue: asyncio.Queue[FillNotice] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._unsubscribe: object = None

    async def cog_load(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="fill-notifier")
        self._unsubscribe = await self.bot.service.subscribe_fills(self.enqueue)
        redelivered = await self.bot.service.redeliver_notices()
        if redelivered:
            log.info("re-sending %d fill notice(s) not posted before the restart", redelivered)

    async def cog_unload(self) -> None:
        unsubscribe = self._unsubscribe
        if callable(unsubscribe):
            result = unsubscribe()
            if asyncio.iscoroutine(result):
                await result
        await self.drain(timeout=5.0)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    async def enqueue(self, notice: FillNotice) -> None:
        """Called by the service for each fill; never waits on Discord."""
        self.queue.put_nowait(notice)

    async def drain(self, timeout: float) -> None:  # noqa: ASYNC109
        """Wait (bounded) until queued notices have been posted (shutdown, tests)."""
        try:
            await asyncio.wait_for(self.queue.join(), timeout)
        except TimeoutError:
            log.warning("fill notices still queued at shutdown: %d", self.queue.qsize())

    async def _run(self) -> None:
        await self.bot.wait_until_ready()
        while True:
            notice = await self.queue.get()
            try:
                if await self._post(notice):
                    await self.bot.service.acknowledge_notice(notice.dedupe_key)
            except Exception:
                log.exception("posting a fill notice failed order=%s", notice.order_id)
            finally:
                self.queue.task_done()

    async def _post(self, notice: FillNotice) -> bool:
        """Post the notice; True when done with it (posted, or it can never be posted)."""
        channel_id = await self._target_channel(notice)
        if channel_id is None:
            log.warning("no channel for fill notice order=%s", notice.order_id)
            return True
        channel = self.bot.get_channel(channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            log.warning("fill notice channel %s not found", channel_id)
            return True
        mention = f"<@{notice.author_id}>" if notice.author_id else None
        embed = embeds.fill_embed(notice, author_mention=mention)
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                await channel.send(embed=embed)
                return True
            except discord.Forbidden:
                log.warning("no permission to post fills in channel %s", channel_id)
                return True
            except discord.HTTPException:
                if attempt == SEND_ATTEMPTS:
                    # Not acknowledged: re-sent at the next start.
                    log.exception("giving up posting a fill notice order=%s", notice.order_id)
                    return False
                await asyncio.sleep(self.retry_delay * attempt)
        return False

    async def _target_channel(self, notice: FillNotice) -> int | None:
        settings = await self.bot.service.guild(notice.guild_id)
        return settings.notification_channel_id or notice.channel_id


async def setup(bot: TTBot) -> None:
    await bot.add_cog(Notifications(bot))
