"""The whole bot, offline: real `TTBot` + local Discord stand-in + in-process paper exchange.

The bot is exactly the production one; only the network endpoints (the local Discord
stand-in's `install()`) and the clock (a `ManualClock` that `advance()` moves, stepping
the paper market along) differ. The offline console, the end-to-end tests and the latency
benchmark all run on this stack.

The guild comes preconfigured: paper environment, `#trading` allowed (`#general` not),
roles Admin/Trader/Viewer mapped to the admin/trader/viewer tiers.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.client import TTBot
from bot.config import Config, load_config
from bot.localdiscord import LocalDiscord, World, standard_world
from bot.runtime import Runtime, RuntimeOptions, open_runtime
from bot.simclock import ManualClock
from broker.paper import FillModelConfig, PaperConfig, PaperExchange
from broker.paper import calendar as paper_calendar
from broker.service.models import Environment

__all__ = ["LocalStack", "StackOptions", "local_stack", "trading_start_time"]

GUILD_READY_TIMEOUT = 0.05


def trading_start_time(now: datetime | None = None) -> datetime:
    """A moment inside a regular NYSE session: now if the market is open, else the next
    session's 10:00 ET — so a console run behaves the same at night and on weekends."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    day = paper_calendar.ny_date(moment)
    session = paper_calendar.session_on(day)
    if session is not None and session.open + timedelta(
        minutes=15
    ) <= moment < session.close - timedelta(minutes=60):
        return moment
    if session is None or moment >= session.close - timedelta(minutes=60):
        day = paper_calendar.next_trading_day(day + timedelta(days=1))
    return paper_calendar.ny_time(day, 10)


@dataclass(frozen=True)
class StackOptions:
    seed: int = 7
    db_path: Path | None = None  # default: a file in a temporary directory
    world: World | None = None
    start_time: datetime | None = None
    clock_step_seconds: float = 1.0
    settle_seconds: float = 0.02
    progress_interval: float = 0.05
    confirm_ttl_seconds: float = 60.0
    poll_interval_s: float = 0.5
    configure_guild: bool = True
    fills: FillModelConfig | None = None  # the paper fill model (tests pin it down)
    exchange: PaperExchange | None = None  # an exchange the caller runs (real_time=False)
    discord: LocalDiscord | None = None  # a stand-in the caller runs (e.g. across restarts)
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)
    bot_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class LocalStack:
    discord: LocalDiscord
    exchange: PaperExchange
    clock: ManualClock
    runtime: Runtime
    bot: TTBot
    config: Config

    @property
    def service(self) -> Any:
        return self.runtime.service

    @property
    def guild_id(self) -> int:
        return self.discord.world.guilds[0].id

    def channel_id(self, name: str) -> int:
        return self.discord.world.guilds[0].channel(name).id

    def role_id(self, name: str) -> int:
        return self.discord.world.guilds[0].role(name).id

    def _delivered(self) -> bool:
        """Has the bot received every gateway event the stand-in has sent?

        Without this a loaded machine could look "quiet" before the bot even read the
        event. The stand-in does not publish its sequence number, hence the guarded read.
        """
        sent = getattr(self.discord.gateway, "_seq", None)
        ws = self.bot.ws
        if not isinstance(sent, int) or ws is None or ws.sequence is None:
            return True
        return ws.sequence >= sent

    async def advance(self, seconds: float) -> None:
        """Let simulated time pass for the exchange and the chase engine."""
        await self.clock.advance(seconds)
        await self.settle()

    async def settle(self, *, quiet: float = 0.05, limit: float = 10.0) -> None:
        """Wait until the bot has stopped producing output and queued work is done."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        seen = -1
        while loop.time() < deadline:
            await self.service.idle()
            mark = self.discord.mark
            # A chase that is not waiting for simulated time is talking to the exchange.
            chasing = len(self.runtime.engine.running()) > self.clock.sleepers
            if mark == seen and not chasing and self._delivered() and not bot_busy(self.bot):
                return
            seen = mark
            await asyncio.sleep(quiet)


# Tasks discord.py names for work in flight: events (commands run inside on_message),
# button callbacks, and slash-command invocations.
_BUSY_PREFIXES = ("discord.py: on_message", "discord-ui-view-dispatch", "CommandTree-invoker")


def bot_busy(bot: TTBot) -> bool:
    """True while the bot is still handling a message, click or slash command."""
    for task in asyncio.all_tasks():
        if task.done():
            continue
        name = task.get_name()
        if name.startswith(_BUSY_PREFIXES):
            return True
        if task in bot.background_tasks and not name.startswith("wait:"):
            return True
    return False


async def configure_standard_guild(stack_service: Any, world: World) -> None:
    guild = world.guilds[0]
    await stack_service.set_environment(guild.id, Environment.PAPER)
    await stack_service.allow_channel(guild.id, guild.channel("trading").id, allowed=True)
    for role, tier in (("Admin", "admin"), ("Trader", "trader"), ("Viewer", "viewer")):
        await stack_service.set_role_tier(guild.id, guild.role(role).id, tier)


@contextlib.asynccontextmanager
async def local_stack(
    config: Config | None = None, options: StackOptions | None = None
) -> AsyncIterator[LocalStack]:
    """Start everything; on exit close the bot, the service, the exchange and the stand-in."""
    options = options or StackOptions()
    config = config or load_config(environ={})
    world = options.discord.world if options.discord else options.world or standard_world()
    start = options.start_time or trading_start_time()
    async with contextlib.AsyncExitStack() as stack:
        workdir = None
        db_path = options.db_path
        if db_path is None:
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="tt-bot-"))
            db_path = Path(workdir) / "tt-bot.db"
        exchange = options.exchange
        if exchange is None:
            paper_config = PaperConfig(seed=options.seed, start_time=start, real_time=False)
            if options.fills is not None:
                paper_config = replace(paper_config, fills=options.fills)
            exchange = PaperExchange(paper_config)
            await exchange.start()
            stack.push_async_callback(exchange.stop)
        clock = ManualClock(
            exchange.clock.now,
            exchange.market.step,
            step_seconds=options.clock_step_seconds,
        )
        runtime_options = replace(
            options.runtime,
            db_path=db_path,
            paper=exchange,
            clock=clock,
            confirm_ttl_seconds=options.confirm_ttl_seconds,
            poll_interval_s=options.poll_interval_s,
        )
        runtime = await stack.enter_async_context(open_runtime(config, runtime_options))
        if options.configure_guild:
            await configure_standard_guild(runtime.service, world)
        discord = options.discord
        if discord is None:
            discord = LocalDiscord(world)
            await discord.start()
            stack.push_async_callback(discord.stop)
        discord.install()
        stack.callback(discord.uninstall)
        bot = TTBot(
            service=runtime.service,
            owner_ids=[world.owner.id],
            progress_interval=options.progress_interval,
            guild_ready_timeout=GUILD_READY_TIMEOUT,
            **options.bot_options,
        )
        bot_task = asyncio.create_task(bot.start("local-console-token"), name="bot")

        async def stop_bot() -> None:
            await bot.close()
            with contextlib.suppress(asyncio.CancelledError):
                await bot_task

        stack.push_async_callback(stop_bot)
        await discord.wait_until_identified()
        await asyncio.wait_for(bot.wait_until_ready(), 10)
        yield LocalStack(discord, exchange, clock, runtime, bot, config)
