"""Shared fixtures for the builder and preview tests: a paper exchange, a real SDK session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from tastytrade.account import Account
from tastytrade.instruments import NestedOptionChain, NestedOptionChainExpiration
from tastytrade.order import MarketOrder

from broker.orders.build import AccountPositions, OrderBuilder
from broker.orders.resolve import InstrumentResolver
from broker.paper import calendar
from broker.paper.config import PaperConfig
from broker.paper.exchange import PaperExchange
from broker.session import BrokerSession, Credentials, Environment, Secret, SessionManager
from broker.tickets import OrderTicket, parse_ticket

# A Wednesday, 11:00 New York: the market is open, so market orders fill at once.
START = datetime(2026, 3, 11, 15, 0, tzinfo=UTC)


@dataclass
class Venue:
    exchange: PaperExchange
    broker: BrokerSession
    account: Account
    builder: OrderBuilder
    positions: AccountPositions

    @property
    def today(self) -> date:
        return calendar.ny_date(self.exchange.clock.now())

    def ticket(self, text: str) -> OrderTicket:
        return parse_ticket(text, today=self.today)

    async def chain(self, underlying: str) -> NestedOptionChain:
        chains = await self.broker.read(lambda s: NestedOptionChain.get(s, underlying))
        return next(c for c in chains if c.root_symbol == underlying)

    async def expiration(self, underlying: str, index: int = 2) -> NestedOptionChainExpiration:
        return (await self.chain(underlying)).expirations[index]

    def requests_since(self, mark: int) -> list[tuple[str, str]]:
        return self.exchange.requests[mark:]

    async def fill_market(self, text: str) -> None:
        """Open a position for real: build, place a market order, wait for the fill."""
        built = await self.builder.build(self.broker, self.ticket(text), self.positions)
        assert isinstance(built.order, MarketOrder)
        await self.broker.submit(lambda s: self.account.place_order(s, built.order, dry_run=False))
        symbol = built.legs[0].symbol
        for _ in range(200):
            held = await self.positions.quantities([symbol])
            if held.get(symbol):
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"market order for {symbol} did not fill")


def money(text: str) -> Decimal:
    return Decimal(text)


@pytest.fixture
async def venue() -> AsyncIterator[Venue]:
    async with PaperExchange(PaperConfig(seed=7, start_time=START)) as exchange:
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
            yield Venue(
                exchange=exchange,
                broker=broker,
                account=account,
                builder=OrderBuilder(InstrumentResolver(now=exchange.clock.now)),
                positions=AccountPositions(broker, account),
            )
        finally:
            await manager.close()
