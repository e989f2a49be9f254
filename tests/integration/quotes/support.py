"""Set-up for the quote feed tests: a frozen-clock paper exchange (its DXLink endpoint
included), a managed session, and a feed with short intervals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from tastytrade import Account
from tastytrade.instruments import NestedOptionChain
from tastytrade.market_data import get_market_data_by_type

from broker.orders.build import AccountPositions, OrderBuilder
from broker.orders.resolve import InstrumentResolver
from broker.paper import PaperConfig, PaperExchange, calendar
from broker.quotes import FeedSettings, QuoteFeed
from broker.session import BrokerSession, Credentials, Environment, Secret, SessionManager
from broker.tickets import OrderTicket, parse_ticket

# A Wednesday, 11:00 New York: the market is open.
START = datetime(2026, 3, 11, 15, 0, tzinfo=UTC)
D = Decimal

#: Fast enough for tests: a dead connection is noticed within 0.6 s.
FAST = FeedSettings(
    ping_interval_s=0.3,
    pong_timeout_s=0.3,
    backoff_base_s=0.05,
    backoff_cap_s=0.2,
    connect_timeout_s=5.0,
)


@dataclass
class Rig:
    exchange: PaperExchange
    manager: SessionManager
    broker: BrokerSession
    account: Account
    builder: OrderBuilder
    positions: AccountPositions

    @property
    def today(self) -> date:
        return calendar.ny_date(self.exchange.clock.now())

    def ticket(self, text: str) -> OrderTicket:
        return parse_ticket(text, today=self.today)

    def feed(self, settings: FeedSettings = FAST) -> QuoteFeed:
        feed = QuoteFeed(self.broker, settings)
        feed.start()
        return feed

    def mark(self) -> int:
        return len(self.exchange.requests)

    def market_data_reads(self, since: int) -> int:
        return sum(
            1
            for _, path in self.exchange.requests[since:]
            if path.split("?")[0] == "/market-data/by-type"
        )

    async def rest_quote(self, symbol: str, kind: str = "equities") -> tuple[Decimal, Decimal]:
        (item,) = await self.broker.read(lambda s: get_market_data_by_type(s, **{kind: [symbol]}))
        assert item.bid is not None and item.ask is not None
        return item.bid, item.ask

    async def chain(self, underlying: str) -> NestedOptionChain:
        chains = await self.broker.read(lambda s: NestedOptionChain.get(s, underlying))
        return next(c for c in chains if c.root_symbol == underlying)


@asynccontextmanager
async def rig(**config: object) -> AsyncIterator[Rig]:
    values: dict[str, object] = {"seed": 7, "real_time": False, "start_time": START}
    values.update(config)
    async with PaperExchange(PaperConfig(**values)) as exchange:  # type: ignore[arg-type]
        manager = SessionManager()
        try:
            broker = await manager.get(
                Credentials(
                    environment=Environment.PAPER,
                    provider_secret=Secret("paper-provider-secret"),
                    refresh_token=Secret("paper-refresh-token"),
                    api_url=exchange.api_url,
                    streamer_url=exchange.streamer_url,
                )
            )
            account = await broker.read(
                lambda s: Account.get(s, exchange.account_number), kind="validate"
            )
            yield Rig(
                exchange=exchange,
                manager=manager,
                broker=broker,
                account=account,
                builder=OrderBuilder(InstrumentResolver(now=exchange.clock.now)),
                positions=AccountPositions(broker, account),
            )
        finally:
            await manager.close()


async def eventually(condition: Callable[[], bool], what: str, seconds: float = 5.0) -> None:
    """Wait (polling every 5 ms) until `condition()` holds; fail naming `what`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)
