"""Full and incremental syncs against the paper exchange: the database matches the broker."""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

from tastytrade import Account
from tastytrade.order import OrderAction

from broker.paper import PaperExchange
from broker.session import BrokerSession
from broker.sync import Stage, SyncProgress, SyncService, SyncSettings
from storage import Database

from .conftest import (
    ENV,
    ORDERS_PER_PAGE,
    TX_PER_PAGE,
    broker_orders,
    broker_transactions,
    stored_order_ids,
    stored_transaction_keys,
    trade,
)

BUY, SELL = OrderAction.BUY_TO_OPEN, OrderAction.SELL_TO_CLOSE


def _requests_since(
    exchange: PaperExchange, start: int
) -> list[tuple[str, str, dict[str, list[str]]]]:
    out = []
    for method, raw in exchange.requests[start:]:
        parts = urlsplit(raw)
        out.append((method, parts.path, parse_qs(parts.query)))
    return out


async def test_full_sync_of_thousands_of_transactions_over_many_pages(
    exchange: PaperExchange,
    broker: BrokerSession,
    account: Account,
    sync: SyncService,
    db: Database,
) -> None:
    exchange.seed_history(transactions=6000, orders=700, positions=40)
    number = exchange.account_number
    updates: list[SyncProgress] = []
    first = len(exchange.requests)

    result = await sync.run(broker, ENV, number, kind="auto", progress=updates.append)
    requests = _requests_since(exchange, first)

    truth = await broker_transactions(broker, account)
    assert len(truth) > 6000
    assert await stored_transaction_keys(db, number) == [(tx.executed_at, tx.id) for tx in truth]
    orders = await broker_orders(broker, account)
    assert await stored_order_ids(db, number) == {order.id for order in orders}
    assert result.kind == "full" and not result.attached
    assert result.transactions_written == result.new_transactions == len(truth)
    assert result.orders_written == len(orders)

    # Many pages, ascending, at the configured page size: transactions by page offset (one
    # request per page, none repeated), orders by cursor.
    tx_requests = [q for _, path, q in requests if path.endswith("/transactions")]
    assert len(tx_requests) == -(-len(truth) // TX_PER_PAGE)
    assert all(q["per-page"] == [str(TX_PER_PAGE)] and q["sort"] == ["Asc"] for q in tx_requests)
    assert sorted(int(q["page-offset"][0]) for q in tx_requests) == list(range(len(tx_requests)))
    assert not any("start-at" in q for q in tx_requests)
    order_requests = [q for _, path, q in requests if path.endswith("/orders")]
    assert len(order_requests) >= len(orders) // ORDERS_PER_PAGE
    assert all(q["page-offset"] == ["0"] for q in order_requests)
    assert "start-at" not in order_requests[0] and all("start-at" in q for q in order_requests[1:])

    # Values: signs, fees and prices survive the trip.
    sample = next(tx for tx in truth if tx.transaction_type == "Trade" and tx.value < 0)
    [stored] = [
        tx
        for tx in await db.transactions.recent(ENV, number, len(truth))
        if tx.transaction_id == sample.id
    ]
    assert stored.value == sample.value and stored.net_value == sample.net_value
    fees = sum(
        (f for f in (sample.commission, sample.clearing_fees, sample.regulatory_fees) if f),
        Decimal(0),
    )
    assert stored.fees == fees + (sample.proprietary_index_option_fees or 0) and stored.fees < 0
    filled = next(o for o in orders if o.status.value == "Filled" and len(o.legs) == 2)
    order = await db.orders.get(ENV, filled.id)
    assert order is not None
    assert order.signed_price == filled.price and order.size == filled.size
    assert order.filled_quantity == filled.size
    assert [leg.symbol for leg in order.legs] == [leg.symbol for leg in filled.legs]
    assert all(len(leg.fills) == 1 for leg in order.legs)

    # Positions, balances, account row, run row and watermark.
    positions = await broker.read(lambda s: account.get_positions(s))
    stored_positions = await db.positions.for_account(ENV, number)
    assert {p.symbol for p in stored_positions} == {p.symbol for p in positions}
    assert result.positions == len(positions) == 40
    balance = await db.balances.latest(ENV, number)
    assert balance is not None
    live = await broker.read(lambda s: account.get_balances(s))
    assert balance.net_liquidating_value == live.net_liquidating_value
    stored_account = await db.accounts.require(ENV, number)
    assert stored_account.last_synced_at is not None and not stored_account.needs_relink
    run = await db.sync.get(result.run_id)
    assert run.status == "succeeded" and run.kind == "full"
    assert run.pages_done == result.pages_done and run.rows_written == result.rows_written
    mark = await db.sync.watermark(ENV, number)
    assert mark is not None
    assert (mark.last_transaction_executed_at, mark.last_transaction_id) == (
        truth[-1].executed_at,
        truth[-1].id,
    )
    assert mark.last_order_updated_at == max(o.updated_at for o in orders)

    # Progress: every page reported, estimates known from the first page on.
    assert [u.stage for u in updates][-1] is Stage.DONE
    tx_updates = [u for u in updates if u.stage is Stage.TRANSACTIONS and u.pages_done]
    assert tx_updates and all(u.estimated_total for u in tx_updates)
    assert all(u.estimated_total >= u.rows_written for u in tx_updates)  # type: ignore[operator]
    assert max(u.estimated_total or 0 for u in updates) >= len(truth)
    assert all(a.rows_written <= b.rows_written for a, b in itertools.pairwise(updates))
    assert updates[-1].rows_written == result.rows_written == updates[-1].estimated_total


async def test_incremental_sync_picks_up_exactly_the_new_rows(
    exchange: PaperExchange,
    broker: BrokerSession,
    account: Account,
    sync: SyncService,
    db: Database,
) -> None:
    exchange.seed_history(transactions=1200, orders=150, positions=5)
    number = exchange.account_number
    await sync.run(broker, ENV, number)
    before = await stored_transaction_keys(db, number)
    exchange.clock.advance(3 * 3600)  # later the same day: new activity only

    bought = await trade(broker, exchange, account, "AAPL", BUY, 10)
    sold = await trade(broker, exchange, account, "AAPL", SELL, 4)
    truth = await broker_transactions(broker, account)
    new = [(tx.executed_at, tx.id) for tx in truth if (tx.executed_at, tx.id) not in set(before)]
    assert len(new) == 2  # one trade transaction per fill

    first = len(exchange.requests)
    result = await sync.run(broker, ENV, number, kind="auto")
    requests = _requests_since(exchange, first)

    assert result.kind == "incremental"
    assert result.new_transactions == 2  # (rows re-read in the overlap window are upserts)
    assert await stored_transaction_keys(db, number) == sorted(before + new)
    stored_ids = await stored_order_ids(db, number)
    assert {bought, sold} <= stored_ids
    assert stored_ids == {o.id for o in await broker_orders(broker, account)}
    [position] = [p for p in await db.positions.for_account(ENV, number) if p.symbol == "AAPL"]
    assert position.signed_quantity == 6
    # The history requests start at the watermark minus the overlap, not at the beginning.
    [tx_query] = [q for _, path, q in requests if path.endswith("/transactions")]
    assert tx_query["start-at"]


async def test_incremental_sync_with_nothing_new_costs_a_handful_of_small_requests(
    exchange: PaperExchange,
    broker: BrokerSession,
    account: Account,
    sync: SyncService,
    db: Database,
) -> None:
    exchange.seed_history(transactions=3000, orders=300, positions=10)
    number = exchange.account_number
    await sync.run(broker, ENV, number)
    exchange.clock.advance(600)
    first = len(exchange.requests)

    result = await sync.run(broker, ENV, number)

    paths = [path for _, path, _ in _requests_since(exchange, first)]
    assert sorted(paths) == [  # sent concurrently: one round trip of latency
        f"/accounts/{number}/balances/USD",
        f"/accounts/{number}/orders",
        f"/accounts/{number}/orders/live",
        f"/accounts/{number}/positions",
        f"/accounts/{number}/transactions",
    ]
    assert result.kind == "incremental" and result.new_transactions == 0
    # Only the overlap window (an hour before the watermark) is read again.
    assert result.transactions_written < 50 and result.orders_written < 20
    truth = await broker_transactions(broker, account)
    assert await stored_transaction_keys(db, number) == [(tx.executed_at, tx.id) for tx in truth]


async def test_rows_arriving_late_inside_the_overlap_window_are_picked_up(
    exchange: PaperExchange,
    broker: BrokerSession,
    account: Account,
    db: Database,
) -> None:
    number = exchange.account_number
    sync = SyncService(db, settings=SyncSettings(overlap=timedelta(hours=6)))
    try:
        await trade(broker, exchange, account, "TSLA", BUY, 1)  # sets the watermark to "now"
        await sync.run(broker, ENV, number)
        synced = {tx_id for _, tx_id in await stored_transaction_keys(db, number)}
        mark = await db.sync.watermark(ENV, number)
        assert mark is not None and mark.last_transaction_executed_at is not None
        # History posted now, dated over the last two days (before the watermark).
        exchange.seed_history(transactions=400, days=2)
        truth = await broker_transactions(broker, account)
        window_start = mark.last_transaction_executed_at - timedelta(hours=6)
        late = {tx.id for tx in truth if tx.executed_at >= window_start} - synced
        older = {tx.id for tx in truth if tx.executed_at < window_start} - synced

        await sync.run(broker, ENV, number)

        stored = {tx_id for _, tx_id in await stored_transaction_keys(db, number)}
        assert len(late) > 50 and len(older) > 50
        assert late <= stored  # inside the overlap: picked up
        assert older.isdisjoint(stored)  # before the window: left for the next full sync
        await sync.run(broker, ENV, number, kind="full")
        everything = {tx_id for _, tx_id in await stored_transaction_keys(db, number)}
        assert everything == synced | late | older == {tx.id for tx in truth}
    finally:
        await sync.stop()


async def test_a_closed_position_disappears(
    exchange: PaperExchange,
    broker: BrokerSession,
    account: Account,
    sync: SyncService,
    db: Database,
) -> None:
    number = exchange.account_number
    await trade(broker, exchange, account, "GME", BUY, 5)
    exchange.seed_history(positions=8)  # other positions, which stay
    await sync.run(broker, ENV, number)
    held = {p.symbol for p in await db.positions.for_account(ENV, number)}
    assert "GME" in held and len(held) == 9

    await trade(broker, exchange, account, "GME", SELL, 5)
    await sync.run(broker, ENV, number)

    assert {p.symbol for p in await db.positions.for_account(ENV, number)} == held - {"GME"}


async def test_more_rows_at_one_instant_than_fit_a_page(
    exchange: PaperExchange, broker: BrokerSession, account: Account, db: Database
) -> None:
    """The cursor cannot move past a page of equal timestamps: the walk pages by offset."""
    number = exchange.account_number
    for _ in range(7):  # the exchange clock is frozen: every fill shares one timestamp
        await trade(broker, exchange, account, "AMD", BUY, 1)
    truth = await broker_transactions(broker, account)
    assert len({tx.executed_at for tx in truth}) == 1 and len(truth) == 8  # with the deposit
    sync = SyncService(db, settings=SyncSettings(transactions_per_page=3, orders_per_page=2))
    try:
        result = await sync.run(broker, ENV, number)
        assert await stored_transaction_keys(db, number) == [(t.executed_at, t.id) for t in truth]
        assert result.transactions_written == len(truth)
        assert await stored_order_ids(db, number) == {
            o.id for o in await broker_orders(broker, account)
        }
    finally:
        await sync.stop()


async def test_a_page_size_the_broker_refuses_falls_back_to_the_sdk_default(
    exchange: PaperExchange, broker: BrokerSession, account: Account, db: Database
) -> None:
    """The paper exchange caps pages at 2,000 rows (HTTP 400 above): the sync goes on at
    the SDK's default page sizes instead of failing."""
    exchange.seed_history(transactions=600, orders=120)
    number = exchange.account_number
    sync = SyncService(db, settings=SyncSettings(transactions_per_page=5000, orders_per_page=5000))
    first = len(exchange.requests)
    try:
        await sync.run(broker, ENV, number)
    finally:
        await sync.stop()
    sizes = {
        path: sorted(
            {q["per-page"][0] for m, p, q in _requests_since(exchange, first) if p == path}
        )
        for path in (f"/accounts/{number}/transactions", f"/accounts/{number}/orders")
    }
    assert sizes == {
        f"/accounts/{number}/transactions": ["250", "5000"],
        f"/accounts/{number}/orders": ["50", "5000"],
    }
    truth = await broker_transactions(broker, account)
    assert await stored_transaction_keys(db, number) == [(t.executed_at, t.id) for t in truth]
    assert await stored_order_ids(db, number) == {
        o.id for o in await broker_orders(broker, account)
    }
