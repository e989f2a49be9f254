"""Assemble the trading service from the configuration (and tear it down in order).

One place builds the real parts — database, session manager, paper exchange, event bus,
chase engine, fill tracker, sync — and injects them into `TradingService`. The Discord bot,
the offline console, the end-to-end tests and the latency benchmark all go through
`open_runtime`, so they exercise the same wiring; tests only choose a temporary database,
a manual clock and fast intervals.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import structlog

from bot.config import Config
from broker.events import EventBus, NotificationContext
from broker.fills.clock import Clock, RealClock
from broker.fills.engine import ChaseEngine
from broker.notify.hub import NotificationHub
from broker.notify.tracker import FillTracker
from broker.paper import PaperConfig, PaperExchange
from broker.positions import LiveBooks
from broker.quotes import FeedSettings, QuoteFeeds
from broker.secrets import Secret
from broker.service import TradingService
from broker.service.account import AccountViews
from broker.service.brokers import BrokerContext, BrokerDirectory, PaperEndpoints
from broker.service.guilds import GuildSettingsStore
from broker.service.models import Environment
from broker.service.orders import OrderDesk
from broker.service.sync import SyncAdapter
from broker.session import SessionManager
from broker.sync import SyncService
from storage.database import Database

__all__ = ["Runtime", "RuntimeOptions", "open_runtime"]

log = structlog.get_logger(__name__)

EXCHANGE_TZ = ZoneInfo("America/New_York")


@dataclass(frozen=True)
class RuntimeOptions:
    """Knobs the console, tests and benchmarks turn; production uses the defaults."""

    db_path: Path | None = None  # default: config.db_path
    paper: PaperExchange | None = None  # an exchange someone else runs (tests, console)
    paper_config: PaperConfig | None = None  # how to start our own exchange
    clock: Clock | None = None  # the chase engine's clock (real time by default)
    confirm_ttl_seconds: float = 60.0
    poll_interval_s: float = 3.0
    use_streamer: bool = True
    reconcile_delay_s: float = 1.0
    cancel_settle_delay_s: float = 0.2
    watch_timeout_s: float = 900.0
    #: Streaming quotes for previews (None: every preview reads its quotes over REST).
    quote_feed: FeedSettings | None = field(default_factory=FeedSettings)
    # Point sandbox/live at other (local) exchanges: tests only, never in production.
    endpoints: dict[Environment, PaperEndpoints] = field(default_factory=dict)


@dataclass
class Runtime:
    service: TradingService
    db: Database
    sessions: SessionManager
    bus: EventBus
    engine: ChaseEngine
    hub: NotificationHub
    clock: Clock
    paper: PaperExchange | None  # the exchange, once started (lazily unless given)


class _PaperProvider:
    """Starts the in-process paper exchange the first time a guild trades on paper."""

    def __init__(self, given: PaperExchange | None, config: PaperConfig) -> None:
        self.exchange = given
        self._owned = given is None
        self._config = config
        self._lock = asyncio.Lock()

    async def endpoints(self) -> PaperEndpoints:
        async with self._lock:
            if self.exchange is None:
                exchange = PaperExchange(self._config)
                await exchange.start()
                self.exchange = exchange
                log.info("paper_exchange_started", api_url=exchange.api_url)
        return PaperEndpoints(self.exchange.api_url, self.exchange.streamer_url)

    async def close(self) -> None:
        if self._owned and self.exchange is not None:
            await self.exchange.stop()


class _FillTracking:
    """`StreamerStatus` over the notification hub: one streamer + poller per account."""

    def __init__(self, hub: NotificationHub, guilds: GuildSettingsStore) -> None:
        self._hub = hub
        self._guilds = guilds

    async def ensure(self, context: BrokerContext) -> None:
        settings = await self._guilds.get(context.guild_id)
        fallback = min(settings.allowed_channel_ids) if settings.allowed_channel_ids else None
        await self._hub.watch(
            context.session,
            context.environment.value,
            context.account_number,
            NotificationContext(
                guild_id=context.guild_id,
                environment=context.environment.value,
                channel_id=settings.notification_channel_id or fallback,
                notify_channel_id=settings.notification_channel_id,
            ),
        )

    def order_placed(self, environment: str, account_number: str, order_id: int) -> None:
        self._hub.order_placed(environment, account_number, order_id)

    def describe(self, environment: Environment, account_number: str) -> str:
        watch = self._hub.watch_of(environment.value, account_number)
        if watch is None:
            return "not started"
        if watch.streamer is None:
            return "polling (positions read from the API)"
        if not watch.streamer.connected.is_set():
            return "streamer reconnecting + polling (positions read from the API)"
        book = watch.positions.state() if watch.positions is not None else None
        if book is None or not book.live:
            return "streaming + polling (positions read from the API until the book is seeded)"
        doubts = f", {book.unconfirmed} awaiting confirmation" if book.unconfirmed else ""
        return f"streaming + polling; positions live ({book.symbols} held{doubts})"

    async def resume(self, engine: ChaseEngine) -> None:
        await self._hub.resume(engine)


def _logins(config: Config) -> dict[Environment, tuple[Secret, Secret]]:
    logins: dict[Environment, tuple[Secret, Secret]] = {}
    for environment in (Environment.SANDBOX, Environment.LIVE):
        login = config.login_for(environment)
        if login is not None:
            logins[environment] = (login.provider_secret, login.refresh_token)
    return logins


@contextlib.asynccontextmanager
async def open_runtime(
    config: Config, options: RuntimeOptions | None = None
) -> AsyncIterator[Runtime]:
    """Build every part, start the service, and close it all (in reverse) on exit."""
    options = options or RuntimeOptions()
    clock: Clock = options.clock or RealClock()
    now: Callable[[], datetime] = clock.now
    paper = _PaperProvider(
        options.paper, options.paper_config or PaperConfig(seed=config.paper_seed)
    )
    keyring = config.keyring()
    async with contextlib.AsyncExitStack() as stack:
        db = await Database.open(options.db_path or config.db_path, keyring=keyring, clock=now)
        stack.push_async_callback(db.close)
        stack.push_async_callback(paper.close)
        sessions = SessionManager(timeouts=config.timeouts)
        stack.push_async_callback(sessions.close)
        bus = EventBus()
        stack.push_async_callback(bus.close)
        # Notices are acknowledged by the Discord layer once posted (never lost in its queue).
        tracker = FillTracker(db, bus, clock=clock, explicit_ack=True)
        # The streamers keep each account's positions live; the order desk reads them.
        live_positions = LiveBooks()
        hub = NotificationHub(
            tracker,
            bus,
            poll_interval_s=options.poll_interval_s,
            use_streamer=options.use_streamer,
            positions=live_positions,
        )
        stack.push_async_callback(hub.close)
        # One DXLink quote feed per session, started by its first preview.
        quotes = QuoteFeeds(options.quote_feed) if options.quote_feed is not None else None
        if quotes is not None:
            stack.push_async_callback(quotes.close)
        guilds = GuildSettingsStore(
            db,
            config.default_environment,
            chase_defaults={
                "chase_interval_seconds": config.chase_interval_seconds,
                "chase_ticks": config.chase_ticks,
                "chase_max_steps": config.chase_max_steps,
            },
        )

        async def is_halted(guild_id: int) -> bool:
            return (await guilds.get(guild_id)).halted

        engine = ChaseEngine(
            db,
            bus,
            clock,
            observer=tracker,
            reconcile_delay_s=options.reconcile_delay_s,
            cancel_settle_delay_s=options.cancel_settle_delay_s,
            is_halted=is_halted,
        )
        brokers = BrokerDirectory(
            db,
            sessions,
            guilds,
            paper=paper.endpoints,
            logins=_logins(config),
            endpoints=options.endpoints,
            live_config_guild_ids=config.live_config_guild_ids,
        )
        orders = OrderDesk(
            db,
            guilds,
            brokers,
            engine,
            now=now,
            confirm_ttl_seconds=options.confirm_ttl_seconds,
            live_positions=live_positions,
            quotes=quotes,
        )
        views = AccountViews(
            db, builder=orders.builder, today=lambda: now().astimezone(EXCHANGE_TZ).date()
        )
        sync = SyncService(db, clock=now)
        stack.push_async_callback(sync.stop)
        service = TradingService(
            db=db,
            guilds=guilds,
            brokers=brokers,
            engine=engine,
            bus=bus,
            orders=orders,
            views=views,
            syncer=SyncAdapter(db, sync),
            streamers=_FillTracking(hub, guilds),
            now=now,
            encryption_configured=keyring.configured,
            watch_timeout=options.watch_timeout_s,
            notices=tracker,
        )
        await service.start()
        stack.push_async_callback(service.close)
        sync.start_scheduler(config.sync_interval_seconds, service.sync_targets)
        yield Runtime(
            service=service,
            db=db,
            sessions=sessions,
            bus=bus,
            engine=engine,
            hub=hub,
            clock=clock,
            paper=paper.exchange,
        )


def utc_now() -> datetime:
    return datetime.now(UTC)
