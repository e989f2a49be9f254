"""Walking paginated lists while the broker's data changes underneath the walk."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from decimal import Decimal

import pytest
from tastytrade import Account
from tastytrade.account import Transaction as SdkTransaction
from tastytrade.order import (
    InstrumentType,
    Leg,
    LimitOrder,
    OrderAction,
    OrderTimeInForce,
    PlacedOrder,
)

from broker.paper import PaperExchange
from broker.session import BrokerError, BrokerSession, ErrorCategory
from broker.sync.pages import ListQuery, WalkedPage, walk_by_cursor, walk_by_offset

from .conftest import eventually

Walker = type(walk_by_cursor)


def _orders(number: str, per_page: int) -> ListQuery[PlacedOrder]:
    return ListQuery(
        path=f"/accounts/{number}/orders",
        model=PlacedOrder,
        per_page=per_page,
        key=lambda order: order.updated_at,
        row_id=lambda order: order.id,
    )


def _transactions(number: str, per_page: int) -> ListQuery[SdkTransaction]:
    return ListQuery(
        path=f"/accounts/{number}/transactions",
        model=SdkTransaction,
        per_page=per_page,
        key=lambda tx: tx.executed_at,
        row_id=lambda tx: tx.id,
    )


async def _drain(pages: AsyncGenerator[WalkedPage[PlacedOrder], None]) -> list[int]:
    return [order.id async for page in pages for order in page.items]


async def _walk_while_the_first_order_is_cancelled(
    walker: Walker,
    exchange: PaperExchange,
    broker: BrokerSession,
    account: Account,
) -> tuple[list[int], int, set[int]]:
    """A working GTC order first in updated-at order, then history; the walk's first page
    is taken, the order is cancelled (it moves to the end), then the walk goes on."""
    number = exchange.account_number
    exchange.market.set_quote("SPY", Decimal("600.00"), Decimal("600.10"))
    resting = LimitOrder(
        time_in_force=OrderTimeInForce.GTC,
        legs=[
            Leg(
                instrument_type=InstrumentType.EQUITY,
                symbol="SPY",
                action=OrderAction.BUY_TO_OPEN,
                quantity=1,
            )
        ],
        price=Decimal("-400.00"),
    )
    placed = await broker.submit(lambda s: account.place_order(s, resting, dry_run=False))
    first_id = placed.order.id
    await eventually(lambda: any(o.status == "Live" for o in exchange.orders()))
    exchange.clock.advance(2 * 86_400)
    exchange.seed_history(orders=7, days=1)  # history after the working order
    everything = {o.id for o in exchange.orders()}

    pages = walker(broker, _orders(number, 2), None)
    first_page = await anext(pages)
    assert next(o.id for o in first_page.items) == first_id
    await broker.submit(lambda s: account.delete_order(s, first_id))
    await eventually(
        lambda: any(o.id == first_id and o.status == "Cancelled" for o in exchange.orders())
    )
    seen = [o.id for o in first_page.items] + await _drain(pages)
    return seen, first_id, everything


async def test_the_cursor_walk_skips_nothing_when_an_order_moves_during_the_walk(
    exchange: PaperExchange, broker: BrokerSession, account: Account
) -> None:
    seen, moved, everything = await _walk_while_the_first_order_is_cancelled(
        walk_by_cursor, exchange, broker, account
    )
    assert set(seen) == everything
    assert seen.count(moved) == 2  # first as working, again (cancelled) at the end
    assert len(seen) == len(everything) + 1


async def test_page_offsets_would_skip_a_row_when_an_order_moves(
    exchange: PaperExchange, broker: BrokerSession, account: Account
) -> None:
    """Why orders are walked by cursor: the same change defeats page offsets."""
    seen, _, everything = await _walk_while_the_first_order_is_cancelled(
        walk_by_offset, exchange, broker, account
    )
    assert len(everything - set(seen)) == 1


async def test_the_offset_walk_reads_rows_inserted_behind_it_at_most_twice(
    exchange: PaperExchange, broker: BrokerSession, account: Account
) -> None:
    number = exchange.account_number
    exchange.seed_history(transactions=60, days=30)
    before = await broker.read(lambda s: account.get_history(s, per_page=500, page_offset=None))
    pages = walk_by_offset(broker, _transactions(number, 7), None)
    first = await anext(pages)
    seen = [tx.id for tx in first.items]
    exchange.seed_history(transactions=20, days=30)  # posted late, dated inside the history
    async for page in pages:
        seen += [tx.id for tx in page.items]
    assert len(seen) == len(set(seen))  # a row pushed onto the next page is dropped by id
    assert {tx.id for tx in before} <= set(seen)  # and none of the rows already there is lost


async def test_a_page_the_sdk_model_rejects_is_a_contract_error(
    exchange: PaperExchange, broker: BrokerSession
) -> None:
    number = exchange.account_number
    exchange.seed_history(transactions=3)
    not_orders = ListQuery(
        path=f"/accounts/{number}/transactions",
        model=PlacedOrder,  # transactions do not validate as orders
        per_page=5,
        key=lambda order: order.updated_at,
        row_id=lambda order: order.id,
    )
    for walker in (walk_by_cursor, walk_by_offset):
        with pytest.raises(BrokerError) as failure:
            await anext(walker(broker, not_orders, None))
        assert failure.value.category is ErrorCategory.CONTRACT
