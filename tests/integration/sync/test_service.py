"""SyncService: one run per account, manual rate limits, the scheduler, database queries."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from tastytrade import Account
from tastytrade.order import InstrumentType, Leg, LimitOrder, OrderAction

from broker.paper import PaperExchange
from broker.session import BrokerError, BrokerSession, ErrorCategory
from broker.sync import Stage, SyncProgress, SyncRateLimited, SyncService, SyncSettings, SyncTarget
from storage import Database

from .conftest import ENV, broker_transactions, eventually, stored_transaction_keys, trade


async def test_concurrent_requests_share_one_run(
    exchange: PaperExchange, broker: BrokerSession, sync: SyncService, db: Database
) -> None:
    exchange.seed_history(transactions=2000, orders=200)
    number = exchange.account_number
    seen_by_second: list[SyncProgress] = []

    first_request = len(exchange.requests)
    one, two = await asyncio.gather(
        sync.run(broker, ENV, number),
        sync.run(broker, ENV, number, kind="full", progress=seen_by_second.append),
    )

    assert one.run_id == two.run_id and not one.attached and two.attached
    assert seen_by_second and seen_by_second[-1].stage is Stage.DONE
    tx_requests = [raw for _, raw in exchange.requests[first_request:] if "/transactions" in raw]
    assert len(tx_requests) >= 8 and len(set(tx_requests)) == len(tx_requests)  # one walk
    latest = await db.sync.latest_run(ENV, number)
    assert latest is not None and latest.run_id == one.run_id == 1
    assert not sync.is_running(ENV, number)

    after = await sync.run(broker, ENV, number)  # once finished, a new request starts anew
    assert after.run_id == 2 and not after.attached


async def test_a_caller_that_stops_waiting_does_not_stop_the_sync(
    exchange: PaperExchange, broker: BrokerSession, sync: SyncService, db: Database
) -> None:
    exchange.seed_history(transactions=1500)
    exchange.faults.latency(0.05, "GET", "/accounts/*/transactions")  # a sync that takes a while
    number = exchange.account_number
    impatient = asyncio.create_task(sync.run(broker, ENV, number))
    await eventually(lambda: sync.is_running(ENV, number))
    impatient.cancel()
    with pytest.raises(asyncio.CancelledError):
        await impatient
    result = await sync.run(broker, ENV, number)  # attaches to the sync still running
    assert result.attached
    assert (await db.sync.get(result.run_id)).status == "succeeded"


async def test_manual_syncs_are_rate_limited_per_guild(
    exchange: PaperExchange, broker: BrokerSession, db: Database
) -> None:
    await db.guilds.get_or_create(7, ENV)
    now = [1000.0]
    sync = SyncService(db, settings=SyncSettings(manual_interval=30), monotonic=lambda: now[0])
    number = exchange.account_number
    try:
        assert not sync.is_rate_limited(7)
        await sync.run(broker, ENV, number, guild_id=7, manual=True)
        assert sync.is_rate_limited(7) and not sync.is_rate_limited(8)

        now[0] += 10
        with pytest.raises(SyncRateLimited) as refused:
            await sync.run(broker, ENV, number, guild_id=7, manual=True)
        assert refused.value.category is ErrorCategory.RATE_LIMIT
        assert refused.value.retry_after == pytest.approx(20)
        assert "20 s" in refused.value.message
        # Automatic syncs (after a fill, scheduled) are not manual: never refused.
        await sync.run(broker, ENV, number, guild_id=7)

        now[0] += 20
        await sync.run(broker, ENV, number, guild_id=7, manual=True)
        stored = await db.accounts.require(ENV, number)
        assert stored.guild_id == 7
    finally:
        await sync.stop()


async def test_scheduled_sync_is_off_by_default_and_runs_at_the_interval(
    exchange: PaperExchange, broker: BrokerSession, account: Account, db: Database
) -> None:
    sync = SyncService(db)
    number = exchange.account_number
    calls = 0

    async def targets() -> list[SyncTarget]:
        nonlocal calls
        calls += 1
        return [SyncTarget(broker, ENV, number)]

    try:
        assert not sync.start_scheduler(None, targets)
        assert not sync.start_scheduler(0, targets)
        await asyncio.sleep(0.05)
        assert calls == 0 and await db.sync.latest_run(ENV, number) is None

        assert sync.start_scheduler(0.02, targets)
        with pytest.raises(RuntimeError):
            sync.start_scheduler(0.02, targets)
        await eventually(lambda: calls >= 3)
        await trade(broker, exchange, account, "QQQ", OrderAction.BUY_TO_OPEN, 2)
        target_calls = calls
        await eventually(lambda: calls >= target_calls + 2)
    finally:
        await sync.stop()
    stopped_at = calls
    await asyncio.sleep(0.1)
    assert calls == stopped_at  # stop() ended the scheduler
    truth = await broker_transactions(broker, account)
    assert await stored_transaction_keys(db, number) == [(t.executed_at, t.id) for t in truth]
    assert any(p.symbol == "QQQ" for p in await db.positions.for_account(ENV, number))


async def test_queries_are_served_from_the_database(
    exchange: PaperExchange,
    broker: BrokerSession,
    account: Account,
    sync: SyncService,
    db: Database,
) -> None:
    exchange.seed_history(transactions=300, orders=50, positions=30)
    number = exchange.account_number
    exchange.market.set_quote("IWM", Decimal("200.00"), Decimal("200.10"))
    resting = LimitOrder(
        legs=[
            Leg(
                instrument_type=InstrumentType.EQUITY,
                symbol="IWM",
                action=OrderAction.BUY_TO_OPEN,
                quantity=3,
            )
        ],
        price=Decimal("-150.00"),  # far below the bid: stays working
    )
    placed = await broker.submit(lambda s: account.place_order(s, resting, dry_run=False))
    await eventually(lambda: any(o.status == "Live" for o in exchange.orders()))
    await sync.run(broker, ENV, number)
    broker_positions = await broker.read(lambda s: account.get_positions(s, include_marks=True))
    broker_balance = await broker.read(lambda s: account.get_balances(s))
    requests_before = len(exchange.requests)

    groups = await sync.positions_by_underlying(ENV, number)
    orders = await sync.open_orders(ENV, number)
    balance = await sync.balances(ENV, number)
    recent = await sync.recent_transactions(ENV, number, 10)

    assert len(exchange.requests) == requests_before  # no network
    underlyings = [group.underlying_symbol for group in groups]
    assert underlyings == sorted({p.underlying_symbol for p in broker_positions})
    by_symbol = {p.symbol: p for p in broker_positions}
    for group in groups:
        total = Decimal(0)
        for position in group.positions:
            live = by_symbol[position.symbol]
            sign = -1 if live.quantity_direction == "Short" else 1
            assert position.signed_quantity == sign * live.quantity
            assert position.average_open_price == live.average_open_price
            assert position.mark_price == live.mark_price is not None
            expected = (live.mark_price - live.average_open_price) * sign * live.quantity
            assert position.unrealized_pnl == expected * live.multiplier
            total += position.unrealized_pnl
        assert group.unrealized_pnl == total
    assert [o.order_id for o in orders] == [placed.order.id]
    assert orders[0].signed_price == Decimal("-150.00") and orders[0].is_open
    assert balance is not None
    assert balance.net_liquidating_value == broker_balance.net_liquidating_value
    assert balance.equity_buying_power == broker_balance.equity_buying_power
    assert balance.cash_balance == broker_balance.cash_balance
    truth = await broker_transactions(broker, account)
    assert [t.transaction_id for t in recent] == [t.id for t in reversed(truth)][:10]
    with pytest.raises(ValueError, match="limit"):
        await sync.recent_transactions(ENV, number, 0)


async def test_each_sync_adds_a_balance_snapshot(
    exchange: PaperExchange, broker: BrokerSession, sync: SyncService, db: Database
) -> None:
    number = exchange.account_number
    for _ in range(3):
        await sync.run(broker, ENV, number)
    assert len(await db.balances.history(ENV, number)) == 3


@pytest.mark.parametrize(
    ("environment", "number", "kind", "message"),
    [
        ("paper", "5WT00001", "everything", "sync kind must be one of auto, full, incremental"),
        ("prod", "5WT00001", "auto", "'prod' is not a valid Environment"),
        ("paper", " ", "auto", "an account number is required"),
        ("sandbox", "5WT00001", "auto", "this session is for paper, not sandbox"),
    ],
)
async def test_bad_requests_get_clear_errors(
    environment: str,
    number: str,
    kind: str,
    message: str,
    broker: BrokerSession,
    sync: SyncService,
    exchange: PaperExchange,
) -> None:
    before = len(exchange.requests)
    with pytest.raises(ValueError, match=message):
        await sync.run(broker, environment, number, kind=kind)
    assert len(exchange.requests) == before


async def test_an_unknown_account_fails_as_rejected_without_crashing(
    broker: BrokerSession, sync: SyncService, db: Database
) -> None:
    with pytest.raises(BrokerError) as failure:
        await sync.run(broker, ENV, "5WT99999")
    assert failure.value.category is ErrorCategory.REJECTED
    run = await db.sync.latest_run(ENV, "5WT99999")
    assert run is not None and run.status == "failed" and run.error_category == "rejected"
    assert await db.accounts.get(ENV, "5WT99999") is None
