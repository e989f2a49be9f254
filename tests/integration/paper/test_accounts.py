"""Account, balances, positions, transactions and trading status through the SDK."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import httpx2
import pytest
from tastytrade import Account, Session
from tastytrade.order import InstrumentType, LimitOrder, OrderAction
from tastytrade.utils import TastytradeError

from broker.paper import PaperExchange

from .conftest import START, eventually, leg


async def _buy(
    frozen: PaperExchange,
    session: Session,
    account: Account,
    kind: InstrumentType,
    symbol: str,
    quantity: int,
) -> int:
    ask = frozen.market.quote(symbol).ask
    order = LimitOrder(legs=[leg(kind, symbol, OrderAction.BUY_TO_OPEN, quantity)], price=-ask)
    placed = await account.place_order(session, order, dry_run=False)
    await eventually(lambda: frozen.orders()[-1].status == "Filled")
    return placed.order.id


async def test_accounts_list_and_single(frozen: PaperExchange, session: Session) -> None:
    accounts = await Account.get(session)
    assert [a.account_number for a in accounts] == [frozen.account_number]
    single = await Account.get(session, frozen.account_number)
    assert single.margin_or_cash == "Margin"
    assert single.is_futures_approved
    with pytest.raises(TastytradeError, match="not_found"):
        await Account.get(session, "5WT99999")


async def test_second_cash_account(frozen: PaperExchange, session: Session) -> None:
    frozen.open_account("5WT00002", cash_account=True, cash=Decimal(5000))
    accounts = await Account.get(session)
    assert {a.account_number for a in accounts} == {"5WT00001", "5WT00002"}
    cash = await Account.get(session, "5WT00002")
    assert cash.margin_or_cash == "Cash"
    balances = await cash.get_balances(session)
    assert balances.equity_buying_power == balances.derivative_buying_power == Decimal(5000)


async def test_balances_on_both_paths(
    frozen: PaperExchange, account: Account, session: Session
) -> None:
    balances = await account.get_balances(session)
    assert balances.cash_balance == Decimal(100000)
    assert balances.net_liquidating_value == Decimal(100000)
    assert balances.derivative_buying_power == Decimal(100000)
    assert balances.equity_buying_power == Decimal(200000)
    async with httpx2.AsyncClient(base_url=frozen.api_url) as client:
        response = await client.get(
            f"/accounts/{account.account_number}/balances",
            headers={"Authorization": f"Bearer {session.session_token}"},
        )
    assert response.status_code == 200
    assert response.json()["data"]["cash-balance"] == "100000"


async def test_trading_status(account: Account, session: Session) -> None:
    status = await account.get_trading_status(session)
    assert status.account_number == account.account_number
    assert not status.is_frozen and not status.is_closing_only
    assert status.is_futures_enabled


async def test_fill_updates_positions_balances_and_transactions(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    ask = frozen.market.quote("AAPL").ask
    order_id = await _buy(frozen, session, account, InstrumentType.EQUITY, "AAPL", 10)
    positions = await account.get_positions(session)
    assert len(positions) == 1
    position = positions[0]
    assert (position.symbol, position.quantity, position.quantity_direction) == (
        "AAPL", Decimal(10), "Long",
    )  # fmt: skip
    assert position.average_open_price == ask
    assert position.multiplier == 1
    balances = await account.get_balances(session)
    assert balances.cash_balance == Decimal(100000) - 10 * ask
    assert balances.long_equity_value > 0
    trades = await account.get_history(session, types=["Trade"])
    assert len(trades) == 1
    trade = trades[0]
    assert trade.order_id == order_id
    assert trade.value == -10 * ask  # Debit comes back negative
    assert trade.action == OrderAction.BUY_TO_OPEN
    assert (await account.get_transaction(session, trade.id)).id == trade.id
    with pytest.raises(TastytradeError, match="not_found"):
        await account.get_transaction(session, 1)


async def test_option_fill_charges_fees(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    option = frozen.universe.options_of("SPY")[600].symbol
    await _buy(frozen, session, account, InstrumentType.EQUITY_OPTION, option, 2)
    trade = (await account.get_history(session, types=["Trade"]))[0]
    assert trade.commission == Decimal("-2.00")
    assert trade.clearing_fees == Decimal("-0.20")
    assert trade.regulatory_fees == Decimal("-0.08")
    assert trade.net_value == trade.value - Decimal("2.28")
    fees = await account.get_total_fees(session, START.date())
    assert fees.total_fees == Decimal("-2.28")
    positions = await account.get_positions(session, instrument_type=InstrumentType.EQUITY_OPTION)
    assert positions[0].multiplier == 100
    assert positions[0].expires_at is not None


async def test_position_filters(frozen: PaperExchange, session: Session, account: Account) -> None:
    await _buy(frozen, session, account, InstrumentType.EQUITY, "AAPL", 1)
    await _buy(frozen, session, account, InstrumentType.EQUITY, "SPY", 1)
    assert {p.symbol for p in await account.get_positions(session)} == {"AAPL", "SPY"}
    only = await account.get_positions(session, underlying_symbols=["SPY"])
    assert [p.symbol for p in only] == ["SPY"]
    assert [p.symbol for p in await account.get_positions(session, symbol="AAPL")] == ["AAPL"]
    assert await account.get_positions(session, instrument_type=InstrumentType.FUTURE) == []


async def test_closed_positions_are_hidden_unless_asked(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    await _buy(frozen, session, account, InstrumentType.EQUITY, "AMD", 5)
    bid = frozen.market.quote("AMD").bid
    sell = LimitOrder(
        legs=[leg(InstrumentType.EQUITY, "AMD", OrderAction.SELL_TO_CLOSE, 5)], price=bid
    )
    await account.place_order(session, sell, dry_run=False)
    await eventually(lambda: frozen.orders()[-1].status == "Filled")
    assert await account.get_positions(session) == []
    closed = await account.get_positions(session, include_closed=True)
    assert closed[0].quantity_direction == "Zero"
    assert closed[0].realized_day_gain == (bid - closed[0].average_open_price) * 5


async def test_transaction_history_pages_and_filters(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    frozen.seed_history(transactions=120)
    everything = await account.get_history(session, per_page=25, page_offset=None)
    assert len(everything) == 121  # 120 seeded + the opening deposit
    requests = [p for m, p in frozen.requests if "/transactions?" in p]
    assert len(requests) == 5  # ceil(121 / 25) pages
    times = [t.executed_at for t in everything]
    assert times == sorted(times, reverse=True)  # default sort is Desc
    ascending = await account.get_history(session, per_page=50, page_offset=None, sort="Asc")
    assert [t.id for t in ascending] == [t.id for t in reversed(everything)]
    first_page = await account.get_history(session, per_page=25)
    assert len(first_page) == 25
    middle = times[60]
    window = await account.get_history(
        session, page_offset=None, start_at=middle, end_at=middle + timedelta(days=400)
    )
    assert len(window) == 61
    moves = await account.get_history(session, page_offset=None, types=["Money Movement"])
    assert moves and all(t.transaction_type == "Money Movement" for t in moves)


async def test_transaction_time_filters_accept_iso_and_space_forms(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    frozen.seed_history(transactions=30)
    await session.refresh()
    headers = {"Authorization": f"Bearer {session.session_token}"}
    rows = await account.get_history(session, page_offset=None, sort="Asc")
    pivot = rows[10].executed_at
    url = f"/accounts/{account.account_number}/transactions"
    async with httpx2.AsyncClient(base_url=frozen.api_url, headers=headers) as client:
        spaced = await client.get(url, params={"start-at": str(pivot), "sort": "Asc"})
        iso = await client.get(
            url, params={"start-at": pivot.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "sort": "Asc"}
        )
        bad = await client.get(url, params={"start-at": "yesterday"})
    assert spaced.json()["data"]["items"][0]["id"] == rows[10].id
    assert iso.json()["data"]["items"][0]["id"] == rows[10].id
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_parameter"
