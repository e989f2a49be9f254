"""`advanced-instructions.strict-position-effect-validation`: a close of nothing is refused.

Without the flag tastytrade turns a "to Close" with no position into an opening order (and
the dry run warns `closing_with_no_position`); with it, the close is discarded. The bot sets
the flag on every closing order, so the paper exchange must honour it.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from tastytrade import Account, Session
from tastytrade.order import (
    AdvancedInstructions,
    InstrumentType,
    LimitOrder,
    MarketOrder,
    OrderAction,
)
from tastytrade.utils import TastytradeError

from broker.paper import PaperExchange

from .conftest import eventually, leg

EQ = InstrumentType.EQUITY
BTO, STC, BTC = OrderAction.BUY_TO_OPEN, OrderAction.SELL_TO_CLOSE, OrderAction.BUY_TO_CLOSE
STRICT = AdvancedInstructions(strict_position_effect_validation=True)


def _sell_to_close(quantity: int, *, strict: bool) -> LimitOrder:
    return LimitOrder(
        legs=[leg(EQ, "AAPL", STC, quantity)],
        price=Decimal("400.00"),  # far above the bid: rests, never fills
        advanced_instructions=STRICT if strict else None,
    )


async def test_strict_close_without_a_position_is_refused(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    frozen.market.set_quote("AAPL", Decimal("300.00"), Decimal("300.20"))
    with pytest.raises(TastytradeError, match="closing_with_no_position"):
        await account.place_order(session, _sell_to_close(1, strict=True), dry_run=False)
    with pytest.raises(TastytradeError, match="closing_with_no_position"):
        await account.place_order(session, _sell_to_close(1, strict=True), dry_run=True)
    short_cover = LimitOrder(
        legs=[leg(EQ, "AAPL", BTC, 1)], price=Decimal("-200.00"), advanced_instructions=STRICT
    )
    with pytest.raises(TastytradeError, match="closing_with_no_position"):
        await account.place_order(session, short_cover, dry_run=False)
    assert frozen.orders() == []
    # Without the flag the exchange accepts it (and would open a short), as tastytrade does.
    loose = await account.place_order(session, _sell_to_close(1, strict=False), dry_run=False)
    assert loose.order.id > 0


async def test_strict_close_is_limited_to_the_position_held(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    frozen.market.set_quote("AAPL", Decimal("300.00"), Decimal("300.20"))
    buy = LimitOrder(legs=[leg(EQ, "AAPL", BTO, 2)], price=Decimal("-301.00"))
    await account.place_order(session, buy, dry_run=False)
    await eventually(lambda: frozen.orders()[0].status == "Filled")

    with pytest.raises(TastytradeError, match="closing_quantity_exceeds_position"):
        await account.place_order(session, _sell_to_close(3, strict=True), dry_run=False)
    placed = await account.place_order(session, _sell_to_close(2, strict=True), dry_run=False)
    order = frozen.engine.orders[placed.order.id]
    assert order.strict_position_effect and order.is_working


async def test_a_replacement_keeps_the_strict_check(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    frozen.market.set_quote("AAPL", Decimal("300.00"), Decimal("300.20"))
    buy = LimitOrder(legs=[leg(EQ, "AAPL", BTO, 1)], price=Decimal("-301.00"))
    await account.place_order(session, buy, dry_run=False)
    await eventually(lambda: frozen.orders()[0].status == "Filled")
    close = await account.place_order(session, _sell_to_close(1, strict=True), dry_run=False)
    await eventually(lambda: frozen.engine.orders[close.order.id].status == "Live")
    # The position goes away elsewhere (a market sell in the app) while the close rests.
    elsewhere = await account.place_order(
        session, MarketOrder(legs=[leg(EQ, "AAPL", STC, 1)]), dry_run=False
    )
    await eventually(lambda: frozen.engine.orders[elsewhere.order.id].status == "Filled")

    moved = LimitOrder(legs=[leg(EQ, "AAPL", STC, 1)], price=Decimal("399.00"))  # no flag sent
    with pytest.raises(TastytradeError, match="closing_with_no_position"):
        await account.replace_order(session, close.order.id, moved)
