"""Order placement, dry-run, replace chains, cancels, history and preflight rejections."""

from __future__ import annotations

from decimal import Decimal

import httpx2
import pytest
from tastytrade import Account, Session
from tastytrade.order import (
    InstrumentType,
    LimitOrder,
    MarketOrder,
    OrderAction,
    OrderStatus,
    OrderTimeInForce,
    OrderType,
    StopOrder,
)
from tastytrade.utils import TastytradeError

from broker.paper import PaperExchange

from .conftest import eventually, leg

EQ, OPT, FUT, FOP = (
    InstrumentType.EQUITY,
    InstrumentType.EQUITY_OPTION,
    InstrumentType.FUTURE,
    InstrumentType.FUTURE_OPTION,
)
BTO, STO, BTC, STC = (
    OrderAction.BUY_TO_OPEN,
    OrderAction.SELL_TO_OPEN,
    OrderAction.BUY_TO_CLOSE,
    OrderAction.SELL_TO_CLOSE,
)


def _spy_call(ex: PaperExchange, strike: int, expiration: int = 2) -> str:
    exp = ex.universe.chains["SPY"][expiration]
    return next(
        o.symbol
        for o in ex.universe.options_of("SPY")
        if o.expiration == exp and o.option_type == "C" and o.strike == strike
    )


def _resting_buy(ex: PaperExchange, symbol: str, kind: InstrumentType, below: str) -> LimitOrder:
    """A buy limit far under the bid: it never fills on a frozen clock."""
    price = ex.market.quote(symbol).bid - Decimal(below)
    return LimitOrder(legs=[leg(kind, symbol, BTO)], price=-price)


async def test_equity_dry_run_and_placement(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    order = _resting_buy(frozen, "AAPL", EQ, "5")
    preview = await account.place_order(session, order, dry_run=True)
    assert preview.order.status == OrderStatus.RECEIVED
    assert preview.order.price == order.price
    effect = preview.buying_power_effect
    assert effect.change_in_buying_power < 0 and effect.effect == "Debit"
    assert effect.new_buying_power == effect.current_buying_power + effect.change_in_buying_power
    assert preview.fee_calculation is not None and preview.fee_calculation.total_fees == 0
    assert frozen.orders() == []

    placed = await account.place_order(session, order, dry_run=False)
    assert placed.order.status == OrderStatus.ROUTED
    assert placed.order.id > 0
    await eventually(lambda: frozen.orders()[0].status == "Live")
    fetched = await account.get_order(session, placed.order.id)
    assert fetched.status == OrderStatus.LIVE and fetched.live_at is not None
    assert fetched.legs[0].remaining_quantity == 1 and fetched.legs[0].fills == []
    assert fetched.cancellable and fetched.editable


async def test_placement_returns_201(frozen: PaperExchange, session: Session) -> None:
    await session.refresh()
    body = _resting_buy(frozen, "SPY", EQ, "3").model_dump_json(exclude_none=True, by_alias=True)
    async with httpx2.AsyncClient(
        base_url=frozen.api_url, headers={"Authorization": f"Bearer {session.session_token}"}
    ) as client:
        response = await client.post(f"/accounts/{frozen.account_number}/orders", content=body)
    assert response.status_code == 201
    data = response.json()["data"]
    assert set(data) == {"order", "buying-power-effect", "fee-calculation", "warnings"}
    assert data["order"]["source"] == "tastyware/tastytrade:v13.2.3"


async def test_option_vertical_future_and_future_option_orders(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    call = _spy_call(frozen, 765)
    single = await account.place_order(session, _resting_buy(frozen, call, OPT, "1"), dry_run=False)
    assert single.order.underlying_symbol == "SPY"
    assert single.order.underlying_instrument_type == InstrumentType.EQUITY

    short = _spy_call(frozen, 775)
    vertical = LimitOrder(legs=[leg(OPT, call, BTO), leg(OPT, short, STO)], price=Decimal("-1.00"))
    dry = await account.place_order(session, vertical, dry_run=True)
    assert dry.buying_power_effect.is_spread
    assert dry.buying_power_effect.isolated_order_margin_requirement < 0
    assert dry.fee_calculation is not None
    assert dry.fee_calculation.commission == Decimal("-2.00")
    placed = await account.place_order(session, vertical, dry_run=False)
    assert placed.order.price == Decimal("-1.00")
    assert [lg.symbol for lg in placed.order.legs] == [call, short]

    future = MarketOrder(legs=[leg(FUT, "/ESZ6", OrderAction.BUY)])
    future_preview = await account.place_order(session, future, dry_run=True)
    requirement = future_preview.buying_power_effect.isolated_order_margin_requirement
    assert Decimal(-30000) < requirement < Decimal(-20000)  # ~6% of 50 x ES
    assert future_preview.fee_calculation is not None
    assert future_preview.fee_calculation.total_fees == Decimal("-2.95")
    placed_future = await account.place_order(session, future, dry_run=False)
    await eventually(lambda: frozen.orders()[-1].status == "Filled")
    filled = await account.get_order(session, placed_future.order.id)
    assert filled.legs[0].fills and filled.legs[0].fills[0].fill_price % Decimal("0.25") == 0
    assert filled.underlying_symbol == "/ESZ6"
    [position] = await account.get_positions(session, instrument_type=FUT)
    assert position.multiplier == 50 and position.underlying_symbol == "/ES"

    fop = frozen.universe.future_options_of("ES")[30].symbol
    ask = frozen.market.quote(fop).ask
    credit = LimitOrder(
        time_in_force=OrderTimeInForce.GTC,
        legs=[leg(FOP, fop, STO)],
        price=ask + Decimal(50),
        external_identifier="bot-7f3a",
    )
    fop_preview = await account.place_order(session, credit, dry_run=True)
    assert fop_preview.order.price == ask + 50
    assert fop_preview.buying_power_effect.change_in_buying_power < 0  # a naked short call
    placed_fop = await account.place_order(session, credit, dry_run=False)
    assert placed_fop.order.external_identifier == "bot-7f3a"
    assert placed_fop.order.price == ask + 50
    assert placed_fop.order.time_in_force == OrderTimeInForce.GTC


async def test_replace_chain(frozen: PaperExchange, session: Session, account: Account) -> None:
    first = await account.place_order(session, _resting_buy(frozen, "QQQ", EQ, "4"), dry_run=False)
    await eventually(lambda: frozen.orders()[0].status == "Live")
    price = first.order.price
    ids = [first.order.id]
    for _ in range(2):
        price -= Decimal("0.01")  # more negative = paying more
        new = await account.replace_order(
            session, ids[-1], LimitOrder(legs=[leg(EQ, "QQQ", BTO)], price=price)
        )
        assert new.id not in ids
        assert new.replaces_order_id == ids[-1]
        assert new.status == OrderStatus.CONTINGENT
        assert new.contingent_status == "Pending Order"
        assert new.price == price
        ids.append(new.id)
        await eventually(lambda: frozen.orders()[-1].status == "Live")
        old = await account.get_order(session, ids[-2])
        assert old.status == OrderStatus.CANCELLED
        assert old.replacing_order_id == new.id and old.edited
        assert old.cancelled_at is not None and old.terminal_at is not None
    live = await account.get_live_orders(session)
    assert {o.id for o in live} == set(ids)
    statuses = {o.id: o.status for o in live}
    assert statuses[ids[-1]] == OrderStatus.LIVE


async def test_replace_keeps_time_in_force_change_and_rejects_terminal(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    resting = await account.place_order(
        session, _resting_buy(frozen, "IWM", EQ, "2"), dry_run=False
    )
    await eventually(lambda: frozen.orders()[0].status == "Live")
    gtc = LimitOrder(
        time_in_force=OrderTimeInForce.GTC, legs=[leg(EQ, "IWM", BTO)], price=resting.order.price
    )
    replaced = await account.replace_order(session, resting.order.id, gtc)
    assert replaced.time_in_force == OrderTimeInForce.GTC
    with pytest.raises(TastytradeError, match="order_not_editable"):
        await account.replace_order(session, resting.order.id, gtc)


async def test_replace_body_with_legs_is_rejected(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    placed = await account.place_order(session, _resting_buy(frozen, "IWM", EQ, "2"), dry_run=False)
    await session.refresh()
    body = _resting_buy(frozen, "IWM", EQ, "2").model_dump_json(exclude_none=True, by_alias=True)
    async with httpx2.AsyncClient(
        base_url=frozen.api_url, headers={"Authorization": f"Bearer {session.session_token}"}
    ) as client:
        response = await client.put(
            f"/accounts/{frozen.account_number}/orders/{placed.order.id}", content=body
        )
    assert response.status_code == 422
    assert response.json()["error"]["errors"][0]["code"] == "order_legs_not_editable"


async def test_cancel(frozen: PaperExchange, session: Session, account: Account) -> None:
    placed = await account.place_order(
        session, _resting_buy(frozen, "TSLA", EQ, "10"), dry_run=False
    )
    await account.delete_order(session, placed.order.id)
    assert frozen.orders()[0].status in ("Cancel Requested", "Cancelled")
    await eventually(lambda: frozen.orders()[0].status == "Cancelled")
    cancelled = await account.get_order(session, placed.order.id)
    assert cancelled.cancelled_at is not None and not cancelled.cancellable
    with pytest.raises(TastytradeError, match="order_not_cancellable"):
        await account.delete_order(session, placed.order.id)
    with pytest.raises(TastytradeError, match="not_found"):
        await account.delete_order(session, 999)


async def test_order_history_pages_and_filters(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    placed = []
    for _ in range(7):
        placed.append(
            await account.place_order(session, _resting_buy(frozen, "AMD", EQ, "5"), dry_run=False)
        )
        await eventually(lambda: frozen.orders()[-1].status == "Live")
        frozen.clock.advance(1)  # distinct updated-at stamps
    await account.delete_order(session, placed[0].order.id)
    await eventually(lambda: frozen.orders()[0].status == "Cancelled")
    history = await account.get_order_history(session, per_page=3, page_offset=None)
    assert len(history) == 7
    assert len([p for m, p in frozen.requests if "/orders?" in p]) == 3
    one_page = await account.get_order_history(session, per_page=3)
    assert len(one_page) == 3
    cancelled = await account.get_order_history(
        session, page_offset=None, statuses=[OrderStatus.CANCELLED]
    )
    assert [o.id for o in cancelled] == [placed[0].order.id]
    ascending = await account.get_order_history(session, page_offset=None, sort="Asc")
    updated = [o.updated_at for o in ascending]
    assert updated == sorted(updated)
    later = await account.get_order_history(
        session, page_offset=None, start_at=ascending[3].updated_at
    )
    assert len(later) == 4
    assert (await account.get_order_history(session, underlying_symbol="SPY")) == []


async def test_stop_order_triggers(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    frozen.market.set_quote("GME", Decimal("26.00"), Decimal("26.02"))
    stop = StopOrder(legs=[leg(EQ, "GME", BTO, 10)], stop_trigger=Decimal("27.00"))
    placed = await account.place_order(session, stop, dry_run=False)
    assert placed.order.order_type == OrderType.STOP
    await eventually(lambda: frozen.orders()[0].status == "Live")
    frozen.clock.advance(5)
    assert frozen.orders()[0].status == "Live"
    frozen.market.set_quote("GME", Decimal("27.10"), Decimal("27.12"))
    frozen.clock.advance(1)
    filled = await account.get_order(session, placed.order.id)
    assert filled.status == OrderStatus.FILLED
    assert filled.legs[0].fills and filled.legs[0].fills[0].fill_price == Decimal("27.12")


# ---------------------------------------------------------------- preflight
async def _rejected(account: Account, session: Session, order: object, code: str) -> None:
    with pytest.raises(TastytradeError, match=code):
        await account.place_order(session, order, dry_run=False)  # type: ignore[call-overload]


async def test_preflight_rejections(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    aapl_call = next(
        o for o in frozen.universe.options_of("AAPL")
        if o.option_type == "C" and frozen.market.quote(o.symbol).mid > 5
    ).symbol  # fmt: skip
    call, short = _spy_call(frozen, 765), _spy_call(frozen, 775)
    cases: list[tuple[object, str]] = [
        (LimitOrder(legs=[leg(EQ, "AAPL", BTO)], price=Decimal("-300.005")),
         "invalid_price_increment"),
        (LimitOrder(legs=[leg(OPT, aapl_call, BTO)], price=Decimal("-5.03")),
         "invalid_price_increment"),
        (LimitOrder(legs=[leg(OPT, call, BTO), leg(OPT, short, STO)], price=Decimal("-1.005")),
         "invalid_price_increment"),
        (LimitOrder(legs=[leg(EQ, "AAPL", BTO)], price=Decimal("300")), "cant_buy_for_credit"),
        (LimitOrder(legs=[leg(EQ, "AAPL", STO)], price=Decimal("-300")), "cant_sell_for_debit"),
        (LimitOrder(legs=[leg(OPT, call, BTO), leg(OPT, short, STO)], price=Decimal("1.00")),
         "cant_buy_for_credit"),
        (LimitOrder(legs=[leg(OPT, call, STO), leg(OPT, short, BTO)], price=Decimal("-1.00")),
         "cant_sell_for_debit"),
        (MarketOrder(time_in_force=OrderTimeInForce.GTC, legs=[leg(EQ, "AAPL", BTO)]),
         "gtc_market_orders_not_supported"),
        (LimitOrder(legs=[leg(OPT, call, BTO), leg(OPT, call, STO)], price=Decimal("-1.00")),
         "duplicate_legs"),
        (LimitOrder(legs=[leg(OPT, _spy_call(frozen, k), BTO) for k in range(760, 765)],
                    price=Decimal("-10.00")), "too_many_legs"),
        (LimitOrder(legs=[leg(EQ, "AAPL", BTO), leg(EQ, "SPY", BTO)], price=Decimal("-300")),
         "too_many_legs"),
        (LimitOrder(legs=[leg(EQ, "NOPE", BTO)], price=Decimal("-1")), "unknown_symbol"),
        (LimitOrder(legs=[leg(OPT, "SPY", BTO)], price=Decimal("-1")), "unknown_symbol"),
        (LimitOrder(legs=[leg(EQ, "SPY", BTO, 1000)], price=Decimal("-800")),
         "margin_check_failed"),
        (LimitOrder(legs=[leg(EQ, "SPY", OrderAction.BUY)], price=Decimal("-800")),
         "invalid_action"),
    ]  # fmt: skip
    for order, code in cases:
        await _rejected(account, session, order, code)
    assert frozen.orders() == []


async def test_preflight_lists_every_failure(frozen: PaperExchange, session: Session) -> None:
    await session.refresh()
    body = (
        '{"time-in-force":"GTC","order-type":"Market","legs":['
        '{"instrument-type":"Equity","symbol":"AAPL","action":"Buy to Open","quantity":1},'
        '{"instrument-type":"Equity","symbol":"AAPL","action":"Buy to Open","quantity":1}]}'
    )
    async with httpx2.AsyncClient(
        base_url=frozen.api_url, headers={"Authorization": f"Bearer {session.session_token}"}
    ) as client:
        response = await client.post(f"/accounts/{frozen.account_number}/orders", content=body)
        garbage = await client.post(f"/accounts/{frozen.account_number}/orders", content="{")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "preflight_check_failure"
    codes = {e["code"] for e in error["errors"]}
    assert codes >= {"gtc_market_orders_not_supported", "duplicate_legs", "too_many_legs"}
    assert garbage.status_code == 400


async def test_dry_run_reports_margin_errors_and_warnings(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    huge = LimitOrder(legs=[leg(EQ, "SPY", BTO, 1000)], price=Decimal("-800"))
    preview = await account.place_order(session, huge, dry_run=True)
    assert preview.errors and preview.errors[0].code == "margin_check_failed"
    closing = LimitOrder(legs=[leg(EQ, "AAPL", STC)], price=Decimal("400"))
    warned = await account.place_order(session, closing, dry_run=True)
    assert warned.warnings and warned.warnings[0].code == "closing_with_no_position"
    effect = await account.get_order_buying_power_effect(session, huge)
    assert effect.change_in_buying_power < -300000


_SPY = '{"instrument-type":"Equity","symbol":"SPY","action":"Buy to Open","quantity":%s}'
_LIMIT = '{"order-type":"Limit","price":%s,"price-effect":"Debit","legs":[%s]}'


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("[]", "invalid_parameter"),
        ("{}", "invalid_parameter"),
        ('{"order-type":"Limit","legs":{}}', "invalid_parameter"),
        ('{"order-type":"Limit","legs":[1]}', "invalid_parameter"),
        (_LIMIT % ('"NaN"', _SPY % 1), "invalid_parameter"),
        (_LIMIT % ("[1]", _SPY % 1), "invalid_parameter"),
        (_LIMIT % ('"1e30"', _SPY % 1), "invalid_parameter"),
        (_LIMIT % ('"-5"', _SPY % 1), "invalid_parameter"),
        (_LIMIT % ('"700"', _SPY % '"abc"'), "invalid_parameter"),
        (_LIMIT % ('"700"', _SPY % 1.5), "invalid_quantity"),
        (_LIMIT % ('"700"', _SPY % 1e30), "invalid_parameter"),
        (_LIMIT % ('"700"', _SPY % 0), "invalid_quantity"),
        ('{"order-type":"Limit","price":"1","price-effect":"Sideways","legs":[%s]}' % (_SPY % 1),
         "invalid_parameter"),
        ('{"order-type":"Teleport","legs":[%s]}' % (_SPY % 1), "invalid_parameter"),
        ('{"order-type":"Market","time-in-force":"Forever","legs":[%s]}' % (_SPY % 1),
         "invalid_parameter"),
        ('{"order-type":"Market","legs":[{"instrument-type":"Cryptocurrency",'
         '"symbol":"BTC/USD","action":"Buy to Open","quantity":1}]}', "invalid_parameter"),
        ('{"order-type":"Stop","legs":[%s]}' % (_SPY % 1), "stop_trigger_required"),
        ('{"order-type":"Limit","legs":[%s]}' % (_SPY % 1), "price_required"),
        ('{"order-type":"Limit","price":"700","price-effect":"Debit","time-in-force":"GTD",'
         '"gtc-date":"2020-01-01","legs":[%s]}' % (_SPY % 1), "invalid_gtc_date"),
        ('{"order-type":"Notional Market","value":"100","value-effect":"Debit","legs":[%s]}'
         % (_SPY % 1), "invalid_order_type"),
    ],
)  # fmt: skip
async def test_malformed_orders_get_specific_errors(
    frozen: PaperExchange, session: Session, body: str, code: str
) -> None:
    await session.refresh()
    async with httpx2.AsyncClient(
        base_url=frozen.api_url, headers={"Authorization": f"Bearer {session.session_token}"}
    ) as client:
        for path in ("orders", "orders/dry-run"):
            response = await client.post(f"/accounts/{frozen.account_number}/{path}", content=body)
            assert response.status_code == 422, response.text
            errors = response.json()["error"]["errors"]
            assert code in {e["code"] for e in errors}
            assert all(e["message"] for e in errors)
    assert frozen.orders() == []
