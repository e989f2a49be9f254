"""Shared set-up for the fill-retry engine and notification tests.

Everything is real: the paper exchange on loopback, the tastytrade SDK through the managed
``BrokerSession``, SQLite in a temporary file. The exchange runs on simulated time
(``real_time=False``); the engine's clock advances it, so a chase with 5-second intervals runs
in milliseconds. ``ScriptedClock`` lets a test act on the market at a given engine sleep
(e.g. "after the first step, the ask drops to our price").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from tastytrade import Account, Session
from tastytrade.account import CurrentPosition
from tastytrade.order import OrderTimeInForce

from broker.events import BrokerEvent, EventBus, LegInfo, NotificationContext
from broker.fills import (
    ChaseEngine,
    ChaseOrder,
    ChaseParams,
    ChaseRequest,
    ChaseResult,
    ChaseStatus,
)
from broker.fills.clock import SimulatedClock
from broker.notify import FillTracker, NotificationHub
from broker.paper import FillModelConfig, PaperConfig, PaperExchange
from broker.session import (
    BrokerSession,
    Credentials,
    Environment,
    RetryPolicy,
    SessionManager,
    Timeouts,
)
from broker.ticks import TickSchedule
from storage.database import Database

GUILD = 4242
CHANNEL = 777
AUTHOR = 99
EQUITY_TICKS = TickSchedule.from_sizes([("0.0001", "1"), ("0.01", None)])
D = Decimal

SleepHook = Callable[["ScriptedClock", int, float], Awaitable[None] | None]


class ScriptedClock(SimulatedClock):
    """A simulated clock that runs ``hooks[n]`` at the n-th sleep (0-based) *before* time
    advances, so a test can change the market at a precise point of the chase."""

    def __init__(self, exchange: PaperExchange, *, settle_s: float = 0.03) -> None:
        self.exchange = exchange
        self.sleeps: list[float] = []
        self.hooks: dict[int, SleepHook] = {}
        #: Real seconds every sleep also takes (to give a test time to act mid-chase).
        self.real_delay = 0.0
        super().__init__(exchange.clock.now, self._advance, settle_s=settle_s)

    async def _advance(self, seconds: float) -> None:
        index = len(self.sleeps)
        self.sleeps.append(seconds)
        hook = self.hooks.get(index)
        if hook is not None:
            result = hook(self, index, seconds)
            if result is not None:
                await result
        # Let the exchange's real-time transitions (Routed -> Live) happen first.
        await asyncio.sleep(0.02 + self.real_delay)
        self.exchange.clock.advance(seconds)


@dataclass
class Recorder:
    """Collects every event published on the bus."""

    events: list[BrokerEvent] = field(default_factory=list)

    async def __call__(self, event: BrokerEvent) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@dataclass
class Rig:
    exchange: PaperExchange
    session: BrokerSession
    db: Database
    bus: EventBus
    tracker: FillTracker
    engine: ChaseEngine
    clock: ScriptedClock
    recorder: Recorder
    manager: SessionManager
    db_path: Path

    @property
    def account(self) -> str:
        return self.exchange.account_number

    def context(self) -> NotificationContext:
        return NotificationContext(
            guild_id=GUILD,
            environment="paper",
            channel_id=CHANNEL,
            author_id=AUTHOR,
            author_name="trader",
            notify_channel_id=555,
        )

    def equity_order(
        self,
        symbol: str,
        bid: str,
        ask: str,
        *,
        quantity: int = 1,
        buy: bool = True,
        limit: Decimal | None = None,
    ) -> ChaseOrder:
        """Pin ``symbol`` at bid/ask and describe a buy (or sell) of it for the engine."""
        self.exchange.market.set_quote(symbol, bid, ask)
        bid_d, ask_d = D(bid), D(ask)
        mid = (bid_d + ask_d) / 2
        return ChaseOrder(
            legs=(
                LegInfo(
                    symbol=symbol,
                    action="Buy to Open" if buy else "Sell to Open",
                    quantity=D(quantity),
                    instrument_type="Equity",
                ),
            ),
            quantity=D(quantity),
            underlying_symbol=symbol,
            natural=-ask_d if buy else bid_d,
            mid=-mid if buy else mid,
            schedule=EQUITY_TICKS,
            time_in_force=OrderTimeInForce.DAY,
            limit_price=limit,
        )

    def request(
        self,
        order: ChaseOrder,
        key: str,
        *,
        params: ChaseParams | None = None,
        session: BrokerSession | None = None,
    ) -> ChaseRequest:
        return ChaseRequest(
            session=session or self.session,
            account_number=self.account,
            order=order,
            idempotency_key=key,
            params=params or ChaseParams(interval_s=5.0, ticks=2, max_steps=3),
            context=self.context(),
            command_text=f"!tt test {key}",
        )

    def exchange_orders(self) -> list[Any]:
        return self.exchange.orders(self.account)

    async def position(self, symbol: str) -> Decimal:
        """Signed quantity held, read through the SDK (``get_positions``)."""
        account = Account.model_construct(account_number=self.account)

        async def call(sdk: Session) -> list[CurrentPosition]:
            return await account.get_positions(sdk, symbol=symbol)

        total = Decimal(0)
        for position in await self.session.read(call):
            if position.symbol == symbol:
                sign = -1 if position.quantity_direction == "Short" else 1
                total += sign * Decimal(position.quantity)
        return total

    async def new_engine(self, **kwargs: Any) -> ChaseEngine:
        """A second engine on the same database (a process restart)."""
        return make_engine(self.db, self.bus, self.tracker, self.clock, **kwargs)


def make_engine(
    db: Database, bus: EventBus, tracker: FillTracker, clock: ScriptedClock, **kwargs: Any
) -> ChaseEngine:
    options: dict[str, Any] = {
        "reconcile_attempts": 2,
        "reconcile_delay_s": 0.1,
        "cancel_settle_attempts": 5,
        "cancel_settle_delay_s": 0.1,
    }
    options.update(kwargs)
    return ChaseEngine(db, bus, clock, observer=tracker, **options)


@asynccontextmanager
async def rig(
    tmp_path: Path,
    *,
    seed: int = 11,
    fills: FillModelConfig | None = None,
    timeouts: Timeouts | None = None,
    fees: bool = True,
) -> AsyncIterator[Rig]:
    config = PaperConfig(
        seed=seed,
        token_ttl=10**6,
        real_time=False,
        fills=fills or FillModelConfig(hazard_per_second=0.0),
    )
    async with PaperExchange(config) as exchange:
        manager = SessionManager(
            timeouts=timeouts or Timeouts(orders=3.0, reads=3.0),
            retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05),
        )
        credentials = Credentials(
            environment=Environment.PAPER,
            provider_secret="paper-secret",
            refresh_token="paper-refresh",
            api_url=exchange.api_url,
            streamer_url=exchange.streamer_url,
            label="fills-tests",
        )
        session = await manager.get(credentials)
        db_path = tmp_path / "fills.db"
        db = await Database.open(db_path)
        bus = EventBus()
        recorder = Recorder()
        bus.subscribe(recorder, name="recorder")
        tracker = FillTracker(db, bus, clock=None, fees=fees)
        tracker.set_account_context(
            "paper",
            exchange.account_number,
            NotificationContext(guild_id=GUILD, environment="paper", notify_channel_id=555),
        )
        clock = ScriptedClock(exchange)
        engine = make_engine(db, bus, tracker, clock)
        the_rig = Rig(
            exchange, session, db, bus, tracker, engine, clock, recorder, manager, db_path
        )
        try:
            yield the_rig
        finally:
            await engine.shutdown()
            await bus.drain()
            await bus.close()
            await manager.close()
            await db.close()


async def settle(rig_: Rig) -> None:
    """Let pending events reach the subscribers."""
    await asyncio.sleep(0.05)
    await rig_.bus.drain()


#: A resting limit order that is not chased (it works on its own).
PLAIN = ChaseParams(interval_s=5.0, ticks=1, max_steps=0)


async def place_plain(r: Rig, key: str, symbol: str = "SPY") -> ChaseResult:
    """Place a 1-share equity limit at 100.00 (bid 100.00 / ask 101.00) without a chase."""
    order = r.equity_order(symbol, "100.00", "101.00")
    result = await (await r.engine.submit(r.request(order, key, params=PLAIN))).wait()
    assert result.status is ChaseStatus.PLACED
    return result


async def eventually(condition: Callable[[], bool], what: str, seconds: float = 5.0) -> None:
    """Wait (polling every 10 ms) until `condition()` holds; fail naming `what` after `seconds`."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


__all__ = [
    "AUTHOR",
    "CHANNEL",
    "EQUITY_TICKS",
    "GUILD",
    "PLAIN",
    "D",
    "NotificationHub",
    "Recorder",
    "Rig",
    "ScriptedClock",
    "eventually",
    "make_engine",
    "place_plain",
    "rig",
    "settle",
]
