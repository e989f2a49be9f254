"""Bulk history: fast to fabricate, valid for the SDK, pageable."""

from __future__ import annotations

import time

from tastytrade import Account, Session
from tastytrade.order import OrderStatus

from broker.paper import PaperExchange


async def test_bulk_seed_is_fast_and_sdk_valid(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    started = time.perf_counter()
    summary = frozen.seed_history(transactions=100_000, orders=10_000, positions=1_000)
    assert time.perf_counter() - started < 10  # ~2-3 s on one core
    assert (summary.transactions, summary.orders, summary.positions) == (100_000, 10_000, 1_000)

    positions = await account.get_positions(session)
    assert len(positions) == 1_000
    assert len({p.symbol for p in positions}) == 1_000
    balances = await account.get_balances(session)
    assert balances.derivative_buying_power >= 100_000  # seeding keeps the account tradable

    page = await account.get_order_history(session, per_page=2_000, page_offset=2)
    assert len(page) == 2_000  # every seeded order parses (one page here; all in the next test)
    assert {o.status for o in page} <= {
        OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.EXPIRED, OrderStatus.REJECTED,
    }  # fmt: skip
    orders = frozen.orders()
    assert len(orders) == 10_000
    by_id = {o.id: o for o in orders}
    for order in orders:
        if order.replacing_order_id is not None:
            assert by_id[order.replacing_order_id].replaces_order_id == order.id
        if order.status == "Filled":
            assert all(leg.fills and leg.remaining == 0 for leg in order.legs)

    last_page = await account.get_history(session, per_page=2_000, page_offset=49, sort="Asc")
    assert len(last_page) == 2_000  # 100,001 rows: page 50 holds the last one
    times = [t.executed_at for t in last_page]
    assert times == sorted(times)
    window = await account.get_history(session, page_offset=None, start_at=times[-300])
    newest_first = [t.executed_at for t in window]
    assert newest_first == sorted(newest_first, reverse=True)
    assert len(window) >= 301


async def test_seeded_history_walks_completely(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    frozen.seed_history(transactions=3_000, orders=1_000, positions=50)
    rows = await account.get_history(session, per_page=500, page_offset=None)
    stored = frozen.engine.account(frozen.account_number).transactions
    # 3,000 seeded + the opening deposit (+ a funding deposit when positions need margin)
    assert len(rows) == len(stored) >= 3_001
    assert len({t.id for t in rows}) == len(rows)
    trades = [t for t in rows if t.transaction_type == "Trade"]
    assert trades and all(t.symbol and t.action and t.price is not None for t in trades)
    orders = await account.get_order_history(session, per_page=250, page_offset=None)
    assert len(orders) == 1_000
    by_id = {o.id: o for o in orders}
    chains = [o for o in orders if o.replacing_order_id is not None]
    assert chains
    assert all(by_id[o.replacing_order_id].replaces_order_id == o.id for o in chains)
