"""Fixtures for sync tests: a frozen-clock paper exchange, a managed session, a database file.

The broker's own view (read back through the SDK's full pagination) is the truth the
database is compared with.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from tastytrade import Account
from tastytrade.account import Transaction as SdkTransaction
from tastytrade.order import InstrumentType, Leg, MarketOrder, OrderAction, PlacedOrder

from broker.paper import PaperConfig, PaperExchange
from broker.session import (
    BrokerSession,
    Credentials,
    Environment,
    RetryPolicy,
    Secret,
    SessionManager,
    Timeouts,
)
from broker.sync import SyncService, SyncSettings
from storage import Database

# Tuesday 2026-11-24, 10:00 New York: a normal trading day.
START = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
PROVIDER = "sync-test-provider-secret"
REFRESH = "sync-test-refresh-token"
ENV = "paper"
RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02)
TX_PER_PAGE = 250
ORDERS_PER_PAGE = 100


@pytest.fixture
async def exchange() -> AsyncIterator[PaperExchange]:
    config = PaperConfig(seed=11, real_time=False, start_time=START)
    async with PaperExchange(config) as ex:
        yield ex


@pytest.fixture
async def manager() -> AsyncIterator[SessionManager]:
    timeouts = Timeouts(refresh=5, validate=5, chains=5, orders=5, reads=10)
    async with SessionManager(timeouts=timeouts, retry=RETRY, rng=random.Random(3)) as m:
        yield m


@pytest.fixture
async def broker(exchange: PaperExchange, manager: SessionManager) -> BrokerSession:
    return await manager.get(
        Credentials(
            environment=Environment.PAPER,
            provider_secret=Secret(PROVIDER),
            refresh_token=Secret(REFRESH),
            api_url=exchange.api_url,
            streamer_url=exchange.streamer_url,
        )
    )


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "sync.sqlite3")
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def settings() -> SyncSettings:
    return SyncSettings(transactions_per_page=TX_PER_PAGE, orders_per_page=ORDERS_PER_PAGE)


@pytest.fixture
async def sync(db: Database, settings: SyncSettings) -> AsyncIterator[SyncService]:
    service = SyncService(db, settings=settings)
    try:
        yield service
    finally:
        await service.stop()


@pytest.fixture
async def account(broker: BrokerSession, exchange: PaperExchange) -> Account:
    number = exchange.account_number
    return await broker.read(lambda s: Account.get(s, number))


# ----------------------------------------------------------------------------- the truth


async def broker_transactions(broker: BrokerSession, account: Account) -> list[SdkTransaction]:
    """Every transaction the broker reports, ascending (SDK pagination, all pages)."""
    rows = await broker.read(
        lambda s: account.get_history(s, per_page=2000, page_offset=None, sort="Asc")
    )
    return sorted(rows, key=lambda tx: (tx.executed_at, tx.id))


async def broker_orders(broker: BrokerSession, account: Account) -> list[PlacedOrder]:
    return await broker.read(
        lambda s: account.get_order_history(s, per_page=2000, page_offset=None, sort="Asc")
    )


async def stored_transaction_keys(db: Database, number: str) -> list[tuple[datetime, int]]:
    """(executed_at, id) of every stored transaction, ascending."""
    total = await db.transactions.count(ENV, number)
    rows = await db.transactions.recent(ENV, number, max(total, 1))
    return sorted((tx.executed_at, tx.transaction_id) for tx in rows)


async def stored_order_ids(db: Database, number: str) -> set[int]:
    rows = await db.fetch_all(
        "SELECT order_id FROM orders WHERE environment = ? AND account_number = ?",
        (ENV, number),
    )
    return {row[0] for row in rows}


# ----------------------------------------------------------------------------- trading


async def eventually(check: Callable[[], bool], within: float = 3.0) -> None:
    """Wait (real time) for the exchange's scheduled Live/fill transitions."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def trade(
    broker: BrokerSession,
    exchange: PaperExchange,
    account: Account,
    symbol: str,
    action: OrderAction,
    quantity: int,
) -> int:
    """A filled market order for an equity; returns its id."""
    exchange.market.set_quote(symbol, Decimal("100.00"), Decimal("100.02"))
    order = MarketOrder(
        legs=[
            Leg(
                instrument_type=InstrumentType.EQUITY,
                symbol=symbol,
                action=action,
                quantity=quantity,
            )
        ]
    )
    placed = await broker.submit(lambda s: account.place_order(s, order, dry_run=False))
    order_id = placed.order.id
    await eventually(
        lambda: any(o.id == order_id and o.status == "Filled" for o in exchange.orders())
    )
    return order_id
