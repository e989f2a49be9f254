"""Dry-run previews and pre-trade guards against the paper exchange, through the real SDK."""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal

import pytest
from tastytrade.account import Account
from tastytrade.order import OrderAction, OrderTimeInForce, OrderType
from tastytrade.utils import PriceEffect

from broker.guards import (
    GuardCode,
    GuardViolation,
    Limits,
    PreTradeGuard,
    check_limits,
    check_trading_status,
    risk_profile,
)
from broker.orders.build import AccountPositions, BuiltOrder
from broker.preview import preview_order
from broker.session import Environment
from tests.integration.builder_support import Venue, venue

__all__ = ["venue"]  # the fixture, re-exported for pytest

D = Decimal
CASH_ACCOUNT = "5WT00002"


async def _build(v: Venue, text: str) -> BuiltOrder:
    return await v.builder.build(v.broker, v.ticket(text), v.positions)


async def _day(v: Venue) -> str:
    return f"{(await v.expiration('SPY')).expiration_date:%m/%d/%y}"


# -- previews -----------------------------------------------------------------------------------


async def test_preview_of_an_accepted_order(venue: Venue) -> None:
    day = await _day(venue)
    built = await _build(venue, f"buy 2 SPY {day} 760/770c @ mid")
    preview = await preview_order(venue.broker, venue.account, built)

    assert not preview.would_reject
    assert preview.environment is Environment.PAPER
    assert preview.account_number == venue.exchange.account_number
    assert preview.fingerprint == built.fingerprint()
    assert preview.matches(built)
    assert preview.created_at.tzinfo is not None
    assert preview.created_at.utcoffset() == UTC.utcoffset(None)

    assert preview.buying_power is not None
    assert preview.buying_power.change < 0  # a debit spread uses buying power
    assert preview.buying_power.effect is PriceEffect.DEBIT
    assert preview.buying_power.is_spread
    assert preview.buying_power.new == preview.buying_power.current + preview.buying_power.change
    assert preview.fees is not None
    assert preview.fees.total < 0  # fees are paid: Debit, negative in the SDK's sign rule

    seen = preview.exchange_order
    assert seen is not None
    assert seen.order_type is OrderType.LIMIT
    assert seen.time_in_force is OrderTimeInForce.DAY
    assert seen.underlying_symbol == "SPY"
    assert built.price is not None
    assert (seen.price, seen.price_effect) == (-built.price, PriceEffect.DEBIT)
    assert [(leg.symbol, leg.action, leg.quantity) for leg in seen.legs] == [
        (leg.symbol, leg.action, D(leg.quantity)) for leg in built.legs
    ]


async def test_preview_binds_to_one_exact_order(venue: Venue) -> None:
    day = await _day(venue)
    first = await _build(venue, f"sell 1 SPY {day} 740P 790C @ 9.00")
    preview = await preview_order(venue.broker, venue.account, first)
    changed = await _build(venue, f"sell 1 SPY {day} 740P 790C @ 9.05")
    assert preview.matches(first)
    assert not preview.matches(changed)
    assert preview.matches(first.with_external_identifier("idem-7"))


async def test_preview_uses_one_dry_run_request(venue: Venue) -> None:
    built = await _build(venue, "buy 10 AAPL @ 190.00")
    mark = len(venue.exchange.requests)
    await preview_order(venue.broker, venue.account, built)
    assert venue.requests_since(mark) == [
        ("POST", f"/accounts/{venue.account.account_number}/orders/dry-run")
    ]
    assert not any(o for o in venue.exchange.orders(venue.exchange.account_number))


async def test_preview_that_would_reject_on_margin(venue: Venue) -> None:
    built = await _build(venue, "buy 400 SPY @ mid")
    preview = await preview_order(venue.broker, venue.account, built)
    assert preview.would_reject
    assert preview.errors
    assert preview.buying_power is not None  # a 200 dry-run still reports the effect


async def test_preview_of_a_preflight_rejection(venue: Venue) -> None:
    venue.exchange.open_account(CASH_ACCOUNT, cash_account=True)
    cash = await venue.broker.read(lambda s: Account.get(s, CASH_ACCOUNT))
    built = await venue.builder.build(
        venue.broker, venue.ticket("buy 1 /ES @ mid"), AccountPositions(venue.broker, cash)
    )
    preview = await preview_order(venue.broker, cash, built)
    assert preview.would_reject
    assert [e.code for e in preview.errors] == ["futures_not_approved"]
    assert "not approved for futures" in preview.errors[0].message
    assert preview.buying_power is None and preview.exchange_order is None
    assert preview.fingerprint == built.fingerprint()


# -- risk math ----------------------------------------------------------------------------------


async def test_risk_of_defined_and_undefined_structures(venue: Venue) -> None:
    day = await _day(venue)
    debit = await _build(venue, f"buy 2 SPY {day} 760/770c @ 4.80")
    assert risk_profile(debit).max_loss == D("4.80") * 2 * 100

    condor = await _build(venue, f"sell 1 SPY {day} IC 740/750/780/790 @ 3.00")
    assert risk_profile(condor).max_loss == (D(10) - D("3.00")) * 100

    credit_put = await _build(venue, f"sell 3 SPY {day} 760/750p @ 2.00")
    assert risk_profile(credit_put).max_loss == (D(10) - D("2.00")) * 3 * 100

    strangle = await _build(venue, f"sell 1 SPY {day} 740P 790C @ mid")
    profile = risk_profile(strangle)
    assert profile.max_loss is None and profile.undefined_contracts == 2

    long_stock = await _build(venue, "buy 10 AAPL @ 190.00")
    assert risk_profile(long_stock).max_loss == D("1900.00")


# -- limits -------------------------------------------------------------------------------------


async def test_default_limits_allow_a_small_debit_trade(venue: Venue) -> None:
    day = await _day(venue)
    built = await _build(venue, f"buy 2 SPY {day} 760/770c @ 4.80")
    assert check_limits(built, Limits()) == []


async def test_quantity_and_max_loss_limits(venue: Venue) -> None:
    day = await _day(venue)
    too_many = await _build(venue, f"buy 11 SPY {day} 760/770c @ 0.50")
    codes = [v.code for v in check_limits(too_many, Limits())]
    assert codes.count(GuardCode.QUANTITY) == 2  # both legs

    wide = await _build(venue, f"sell 1 SPY {day} 790/740p @ 5.00")
    [violation] = check_limits(wide, Limits())
    assert violation.code is GuardCode.MAX_LOSS
    assert violation.message == (
        "max loss $4,500.00 (the spread's width less the credit) is above this server's limit "
        "of $2,500.00"
    )
    assert check_limits(wide, Limits(max_loss=D("5000"))) == []

    shares = await _build(venue, "buy 600 GME @ mid")
    assert [v.code for v in check_limits(shares, Limits())] == [GuardCode.QUANTITY]


async def test_notional_and_undefined_risk(venue: Venue) -> None:
    future = await _build(venue, "buy 1 /ES @ mid")
    codes = {v.code for v in check_limits(future, Limits())}
    assert codes == {GuardCode.NOTIONAL, GuardCode.UNDEFINED_RISK}

    day = await _day(venue)
    strangle = await _build(venue, f"sell 1 SPY {day} 740P 790C @ mid")
    [violation] = check_limits(strangle, Limits())
    assert violation.code is GuardCode.UNDEFINED_RISK
    assert "an admin must set an undefined-risk limit first" in violation.message
    assert check_limits(strangle, Limits(max_undefined_risk_contracts=2)) == []

    short_stock = await _build(venue, "sell 10 AAPL @ 190.00")
    assert [v.code for v in check_limits(short_stock, Limits())] == [GuardCode.UNDEFINED_RISK]
    assert check_limits(short_stock, Limits(allow_short_stock=True)) == []


async def test_closing_orders_are_exempt_from_size_limits(venue: Venue) -> None:
    day = await _day(venue)
    await venue.fill_market(f"buy 12 SPY {day} 700c @ mkt")
    close = await _build(venue, f"sell 12 SPY {day} 700c @ mid")
    assert close.is_closing
    assert check_limits(close, Limits()) == []


def test_limits_validate() -> None:
    with pytest.raises(ValueError, match="max_contracts"):
        Limits(max_contracts=-1)
    with pytest.raises(ValueError, match="max_notional"):
        Limits(max_notional=25000)  # type: ignore[arg-type]


# -- account state ------------------------------------------------------------------------------


async def test_account_state_from_the_exchange(venue: Venue) -> None:
    guard = PreTradeGuard(status_ttl=60)
    status = await guard.trading_status(venue.broker, venue.account)
    day = await _day(venue)
    opening = await _build(venue, f"buy 1 SPY {day} 760/770c @ 4.80")
    assert check_trading_status(opening, status) == []

    closing_only = status.model_copy(update={"is_closing_only": True})
    [violation] = check_trading_status(opening, closing_only)
    assert violation.code is GuardCode.CLOSING_ONLY

    margin_call = status.model_copy(update={"is_in_margin_call": True})
    assert [v.code for v in check_trading_status(opening, margin_call)] == [GuardCode.MARGIN_CALL]

    await venue.fill_market(f"buy 1 SPY {day} 700c @ mkt")
    closing = await _build(venue, f"sell 1 SPY {day} 700c @ mid")
    assert check_trading_status(closing, closing_only) == []
    frozen = status.model_copy(update={"is_frozen": True})
    assert [v.code for v in check_trading_status(closing, frozen)] == [GuardCode.ACCOUNT_FROZEN]

    futures_closing = status.model_copy(update={"is_futures_closing_only": True})
    future = await _build(venue, "buy 1 /ES @ mid")
    assert [v.code for v in check_trading_status(future, futures_closing)] == [
        GuardCode.FUTURES_CLOSING_ONLY
    ]


async def test_guard_checks_a_cash_account(venue: Venue) -> None:
    venue.exchange.open_account(CASH_ACCOUNT, cash_account=True)
    cash = await venue.broker.read(lambda s: Account.get(s, CASH_ACCOUNT))
    positions = AccountPositions(venue.broker, cash)
    generous = Limits(max_notional=D("1000000"), max_undefined_risk_contracts=5)
    guard = PreTradeGuard(generous, status_ttl=60)

    future = await venue.builder.build(venue.broker, venue.ticket("buy 1 /ES @ mid"), positions)
    with pytest.raises(GuardViolation) as info:
        await guard.check(venue.broker, cash, future)
    assert info.value.codes == (GuardCode.FUTURES_DISABLED,)
    assert str(info.value) == f"account {CASH_ACCOUNT} is not approved for futures"

    day = await _day(venue)
    naked_call = await venue.builder.build(
        venue.broker, venue.ticket(f"sell 1 SPY {day} 800c @ mid"), positions
    )
    mark = len(venue.exchange.requests)
    with pytest.raises(GuardViolation) as info:
        await guard.check(venue.broker, cash, naked_call)
    assert info.value.codes == (GuardCode.SHORT_CALLS_DISABLED,)
    assert venue.requests_since(mark) == []  # the trading status came from the cache

    # Per-guild limits override the guard's default on each check.
    with pytest.raises(GuardViolation) as info:
        await guard.check(venue.broker, cash, naked_call, limits=Limits())
    assert set(info.value.codes) == {GuardCode.SHORT_CALLS_DISABLED, GuardCode.UNDEFINED_RISK}


async def test_guard_passes_a_normal_order(venue: Venue) -> None:
    guard = PreTradeGuard()
    day = await _day(venue)
    built = await _build(venue, f"buy 1 SPY {day} 760/770c @ 4.80")
    await guard.check(venue.broker, venue.account, built)
    assert built.order.legs[0].action is OrderAction.BUY_TO_OPEN
