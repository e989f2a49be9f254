"""The fill model, positions and cash after fills, expirations (frozen exchange clock)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from tastytrade import Account, Session
from tastytrade.order import (
    InstrumentType,
    LimitOrder,
    MarketOrder,
    OrderAction,
    OrderStatus,
    OrderTimeInForce,
)

from broker.paper import FillModelConfig, PaperExchange

from .conftest import advance, eventually, frozen_config, leg

EQ, OPT, FUT = InstrumentType.EQUITY, InstrumentType.EQUITY_OPTION, InstrumentType.FUTURE
BTO, STO, STC = OrderAction.BUY_TO_OPEN, OrderAction.SELL_TO_OPEN, OrderAction.SELL_TO_CLOSE


async def _live(ex: PaperExchange, order_id: int) -> None:
    await eventually(lambda: ex.engine.orders[order_id].status != "Routed")


async def test_marketable_limit_fills_at_the_far_side(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    frozen.market.set_quote("AAPL", Decimal("300.00"), Decimal("300.20"))
    order = LimitOrder(legs=[leg(EQ, "AAPL", BTO, 10)], price=Decimal("-301.00"))
    placed = await account.place_order(session, order, dry_run=False)
    await eventually(lambda: frozen.orders()[0].status == "Filled")
    filled = await account.get_order(session, placed.order.id)
    [fill] = filled.legs[0].fills or []
    assert fill.fill_price == Decimal("300.20") and fill.quantity == 10
    assert fill.destination_venue == "PAPER"
    assert filled.legs[0].remaining_quantity == 0 and filled.terminal_at is not None
    sell = MarketOrder(legs=[leg(EQ, "AAPL", STC, 10)])
    await account.place_order(session, sell, dry_run=False)
    await eventually(lambda: frozen.orders()[-1].status == "Filled")
    assert frozen.orders()[-1].legs[0].fills[0].price == Decimal("300.00")
    balances = await account.get_balances(session)
    fees = sum((t.fees.total for t in frozen.engine.accounts["5WT00001"].transactions
                if t.fees is not None), Decimal(0))  # fmt: skip
    assert balances.cash_balance == Decimal(100000) - Decimal("2.00") - fees


async def test_resting_orders_fill_by_distance_from_the_far_side(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    frozen.market.set_quote("AAPL", Decimal("300.00"), Decimal("300.20"))
    near_ask, at_mid, below_bid = [], [], []
    for group, price in ((near_ask, "300.18"), (at_mid, "300.10"), (below_bid, "299.99")):
        for _ in range(20):
            order = LimitOrder(legs=[leg(EQ, "AAPL", BTO)], price=-Decimal(price))
            group.append((await account.place_order(session, order, dry_run=False)).order.id)
    await eventually(lambda: all(o.status == "Live" for o in frozen.orders()))
    frozen.clock.advance(2)  # nothing marketable fills right away...
    filled = {o.id for o in frozen.orders() if o.status == "Filled"}
    assert len(filled & set(at_mid)) <= 4
    frozen.clock.advance(20)
    filled = {o.id for o in frozen.orders() if o.status == "Filled"}
    near, mid = len(filled & set(near_ask)), len(filled & set(at_mid))
    assert near > mid  # the hazard falls with the distance from the ask
    assert near >= 15
    assert not filled & set(below_bid)  # under the bid: never, unless the market moves
    await advance(frozen, session, 3600)
    assert not {o.id for o in frozen.orders() if o.status == "Filled"} & set(below_bid)
    prices = {f.price for o in frozen.orders() if o.status == "Filled" for f in o.legs[0].fills}
    assert prices <= {Decimal("300.18"), Decimal("300.10")}  # at the limit, not better


async def test_market_moving_through_a_resting_order_fills_it(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    frozen.market.set_quote("AAPL", Decimal("300.00"), Decimal("300.20"))
    order = LimitOrder(legs=[leg(EQ, "AAPL", BTO)], price=Decimal("-299.50"))
    placed = await account.place_order(session, order, dry_run=False)
    await _live(frozen, placed.order.id)
    await advance(frozen, session, 600)
    assert frozen.orders()[0].status == "Live"
    frozen.market.set_quote("AAPL", Decimal("299.40"), Decimal("299.45"))
    frozen.clock.advance(0.5)
    assert frozen.orders()[0].status == "Filled"
    assert frozen.orders()[0].legs[0].fills[0].price == Decimal("299.45")


async def test_vertical_fills_leg_by_leg_at_the_net_limit(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    expiration = frozen.universe.chains["SPY"][2]
    calls = {o.strike: o for o in frozen.universe.options_of("SPY")
             if o.option_type == "C" and o.expiration == expiration}  # fmt: skip
    long_leg, short_leg = calls[Decimal(765)], calls[Decimal(775)]
    frozen.market.set_quote(long_leg.symbol, Decimal("5.00"), Decimal("5.20"))
    frozen.market.set_quote(short_leg.symbol, Decimal("3.80"), Decimal("3.90"))
    # natural debit = 5.20 - 3.80 = 1.40; best = 5.00 - 3.90 = 1.10
    spread = LimitOrder(
        legs=[leg(OPT, long_leg.symbol, BTO), leg(OPT, short_leg.symbol, STO)],
        price=Decimal("-1.35"),
    )
    placed = await account.place_order(session, spread, dry_run=False)
    await _live(frozen, placed.order.id)
    assert frozen.orders()[0].status == "Live"
    await advance(frozen, session, 120)
    filled = await account.get_order(session, placed.order.id)
    assert filled.status == OrderStatus.FILLED
    assert filled.average_fill_price() == Decimal("1.35")
    for order_leg in filled.legs:
        [fill] = order_leg.fills or []
        quote = frozen.market.quote(order_leg.symbol)
        assert quote.bid <= fill.fill_price <= quote.ask
    marketable = LimitOrder(
        legs=[leg(OPT, long_leg.symbol, BTO), leg(OPT, short_leg.symbol, STO)],
        price=Decimal("-1.50"),
    )
    second = await account.place_order(session, marketable, dry_run=False)
    await eventually(lambda: frozen.engine.orders[second.order.id].status == "Filled")
    legs = frozen.engine.orders[second.order.id].legs
    assert [lg.fills[0].price for lg in legs] == [Decimal("5.20"), Decimal("3.80")]
    [long_position] = await account.get_positions(session, symbol=long_leg.symbol)
    assert long_position.quantity == 2


async def test_partial_fills_and_replacing_the_rest() -> None:
    config = frozen_config(fills=FillModelConfig(partial_fill_ratio=Decimal("0.5")))
    async with PaperExchange(config) as ex:
        session = Session("secret", "refresh", is_test=True)
        session._client.base_url = ex.api_url
        async with session:
            account = await Account.get(session, ex.account_number)
            ex.market.set_quote("SPY", Decimal("700.00"), Decimal("700.02"))
            order = LimitOrder(legs=[leg(EQ, "SPY", BTO, 4)], price=Decimal("-700.02"))
            placed = await account.place_order(session, order, dry_run=False)
            await eventually(lambda: ex.orders()[0].legs[0].remaining == 2)
            partial = await account.get_order(session, placed.order.id)
            assert partial.status == OrderStatus.LIVE
            assert partial.legs[0].remaining_quantity == 2
            ex.market.set_quote("SPY", Decimal("700.10"), Decimal("700.12"))
            replaced = await account.replace_order(
                session,
                placed.order.id,
                LimitOrder(legs=[leg(EQ, "SPY", BTO, 4)], price=Decimal("-700.05")),
            )
            assert replaced.legs[0].quantity == 2
            old = await account.get_order(session, placed.order.id)
            assert old.status == OrderStatus.CANCELLED
            assert sum(f.quantity for f in old.legs[0].fills or []) == 2
            [position] = await account.get_positions(session)
            assert position.quantity == 2


async def test_day_orders_expire_at_the_close_and_gtc_orders_do_not(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    bid = frozen.market.quote("IWM").bid
    day = LimitOrder(legs=[leg(EQ, "IWM", BTO)], price=-(bid - 5))
    gtc = LimitOrder(
        time_in_force=OrderTimeInForce.GTC, legs=[leg(EQ, "IWM", BTO)], price=-(bid - 5)
    )
    day_id = (await account.place_order(session, day, dry_run=False)).order.id
    gtc_id = (await account.place_order(session, gtc, dry_run=False)).order.id
    await eventually(lambda: all(o.status == "Live" for o in frozen.orders()))
    await advance(frozen, session, 5.9 * 3600)  # 15:54 New York
    assert frozen.engine.orders[day_id].status == "Live"
    await advance(frozen, session, 0.2 * 3600)
    expired = await account.get_order(session, day_id)
    assert expired.status == OrderStatus.EXPIRED
    assert expired.terminal_at is not None
    assert expired.terminal_at.hour == 21  # 16:00 New York in winter
    assert (await account.get_order(session, gtc_id)).status == OrderStatus.LIVE


async def test_ioc_that_cannot_fill_is_cancelled(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    bid = frozen.market.quote("QQQ").bid
    ioc = LimitOrder(
        time_in_force=OrderTimeInForce.IOC, legs=[leg(EQ, "QQQ", BTO)], price=-(bid - 1)
    )
    placed = await account.place_order(session, ioc, dry_run=False)
    await eventually(lambda: frozen.engine.orders[placed.order.id].status == "Cancelled")


async def test_expiring_options_are_cash_settled(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    first = frozen.universe.chains["SPY"][0]  # Friday 2026-11-27, a 13:00 close
    call = next(o for o in frozen.universe.options_of("SPY")
                if o.expiration == first and o.option_type == "C" and o.strike == 760)  # fmt: skip
    ask = frozen.market.quote(call.symbol).ask
    buy = LimitOrder(legs=[leg(OPT, call.symbol, BTO)], price=-ask)
    await account.place_order(session, buy, dry_run=False)
    await eventually(lambda: frozen.orders()[0].status == "Filled")
    frozen.market.set_quote("SPY", Decimal("770.00"), Decimal("770.02"))
    cash_before = (await account.get_balances(session)).cash_balance
    until = first.expires_at - frozen.clock.now() + timedelta(minutes=1)
    await advance(frozen, session, until.total_seconds())
    assert await account.get_positions(session) == []
    [settlement] = await account.get_history(session, types=["Receive Deliver"])
    assert settlement.transaction_sub_type == "Cash Settled Exercise"
    assert settlement.value == Decimal("1001.00")  # (770.01 - 760) x 100
    assert (await account.get_balances(session)).cash_balance == cash_before + Decimal("1001.00")


async def test_futures_pnl_goes_to_cash(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    frozen.market.set_quote("/MESZ6", Decimal("7700.00"), Decimal("7700.25"))
    await account.place_order(
        session, MarketOrder(legs=[leg(FUT, "/MESZ6", OrderAction.BUY, 2)]), dry_run=False
    )
    await eventually(lambda: frozen.orders()[-1].status == "Filled")
    frozen.market.set_quote("/MESZ6", Decimal("7710.00"), Decimal("7710.25"))
    balances = await account.get_balances(session)
    assert balances.net_liquidating_value > Decimal(100000)  # unrealized gain counts
    await account.place_order(
        session, MarketOrder(legs=[leg(FUT, "/MESZ6", OrderAction.SELL, 2)]), dry_run=False
    )
    await eventually(lambda: frozen.orders()[-1].status == "Filled")
    trades = await account.get_history(session, types=["Trade"], sort="Asc")
    assert trades[0].value == 0
    assert trades[1].value == Decimal("97.50")  # (7710.00 - 7700.25) x 2 x 5
    fees = -sum((t.commission + t.clearing_fees + t.regulatory_fees for t in trades),
                Decimal(0))  # fmt: skip
    cash = (await account.get_balances(session)).cash_balance
    assert cash == Decimal(100000) + Decimal("97.50") - fees


async def test_fill_model_can_be_changed_while_running(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    frozen.market.fills.hazard_per_second = 0.0  # passive orders never fill now
    frozen.market.set_quote("AAPL", Decimal("300.00"), Decimal("300.20"))
    order = LimitOrder(legs=[leg(EQ, "AAPL", BTO)], price=Decimal("-300.19"))
    placed = await account.place_order(session, order, dry_run=False)
    await _live(frozen, placed.order.id)
    frozen.clock.advance(300)
    assert frozen.engine.orders[placed.order.id].status == "Live"
    frozen.market.fills.hazard_per_second = 1000.0
    frozen.clock.advance(1)
    assert frozen.engine.orders[placed.order.id].status == "Filled"
