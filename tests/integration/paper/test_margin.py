"""The buying-power effect of typical orders (dry-runs through the SDK)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from tastytrade import Account, Session
from tastytrade.order import InstrumentType, LimitOrder, OrderAction

from broker.paper import PaperExchange

from .conftest import leg

OPT = InstrumentType.EQUITY_OPTION
BTO, STO = OrderAction.BUY_TO_OPEN, OrderAction.SELL_TO_OPEN


def _series(ex: PaperExchange, option_type: str) -> dict[Decimal, str]:
    expiration = ex.universe.chains["SPY"][3]
    return {
        o.strike: o.symbol
        for o in ex.universe.options_of("SPY")
        if o.expiration == expiration and o.option_type == option_type
    }


async def test_stock_uses_half_its_value_in_a_margin_account(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    frozen.market.set_quote("AAPL", Decimal("300.00"), Decimal("300.02"))
    order = LimitOrder(
        legs=[leg(InstrumentType.EQUITY, "AAPL", BTO, 100)], price=Decimal("-300.02")
    )
    effect = (await account.place_order(session, order, dry_run=True)).buying_power_effect
    assert effect.isolated_order_margin_requirement == Decimal("-15000.50")  # 50% at mid
    assert effect.change_in_buying_power == pytest.approx(Decimal(-15002), abs=Decimal(2))


async def test_long_option_costs_its_premium(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    call = _series(frozen, "C")[Decimal(770)]
    frozen.market.set_quote(call, Decimal("8.00"), Decimal("8.10"))
    order = LimitOrder(legs=[leg(OPT, call, BTO, 2)], price=Decimal("-8.10"))
    effect = (await account.place_order(session, order, dry_run=True)).buying_power_effect
    # premium 1620 + 2.28 fees, less nothing: long options do not add buying power
    assert effect.change_in_buying_power == Decimal("-1622.28")


async def test_credit_spread_needs_width_less_credit(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    puts = _series(frozen, "P")
    short, long = puts[Decimal(760)], puts[Decimal(755)]
    frozen.market.set_quote("SPY", Decimal("765.00"), Decimal("765.02"))
    frozen.market.set_quote(short, Decimal("4.00"), Decimal("4.10"))
    frozen.market.set_quote(long, Decimal("2.50"), Decimal("2.60"))
    order = LimitOrder(legs=[leg(OPT, short, STO), leg(OPT, long, BTO)], price=Decimal("1.40"))
    effect = (await account.place_order(session, order, dry_run=True)).buying_power_effect
    # width 500 - credit 140 = 360, plus 2.28 fees (the mid-mark spread costs nothing more)
    assert effect.change_in_buying_power == Decimal("-362.28")
    assert effect.is_spread


async def test_naked_short_call_needs_about_a_fifth_of_the_underlying(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    call = _series(frozen, "C")[Decimal(780)]
    frozen.market.set_quote("SPY", Decimal("765.00"), Decimal("765.02"))
    frozen.market.set_quote(call, Decimal("5.00"), Decimal("5.10"))
    order = LimitOrder(legs=[leg(OPT, call, STO)], price=Decimal("5.00"))
    effect = (await account.place_order(session, order, dry_run=True)).buying_power_effect
    notional = Decimal("765.01") * 100
    assert Decimal("0.10") * notional < -effect.change_in_buying_power < Decimal("0.25") * notional


async def test_cash_account_cannot_sell_naked_options(
    frozen: PaperExchange, session: Session
) -> None:
    frozen.open_account("5WT00002", cash_account=True, cash=Decimal(20000))
    cash = await Account.get(session, "5WT00002")
    call = _series(frozen, "C")[Decimal(780)]
    order = LimitOrder(legs=[leg(OPT, call, STO)], price=Decimal("5.00"))
    preview = await cash.place_order(session, order, dry_run=True)
    assert preview.errors and preview.errors[0].code == "margin_check_failed"
