"""What is sent is what was confirmed: the builder's SDK order, only re-priced.

The order builder marks closing orders with strict position-effect validation, so a close
whose position has gone meanwhile is discarded by the broker instead of opening a naked
position. The engine must send that very order (a copy with only the price and the
external identifier changed), bound to the preview's fingerprint.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from decimal import Decimal
from pathlib import Path

import pytest
from tastytrade import Account
from tastytrade.order import LimitOrder, MarketOrder, OrderAction

from broker.fills import ChaseOrder, ChaseParams, ChaseStatus
from broker.fills.broker_ops import OrderOps
from broker.fills.model import OrderDrift, order_fingerprint
from broker.orders.build import AccountPositions, BuiltOrder, OrderBuilder
from broker.paper import calendar
from broker.tickets import parse_ticket
from tests.integration.fills.support import D, Rig, rig

CHASE = ChaseParams(interval_s=5.0, ticks=2, max_steps=3)


async def build(r: Rig, text: str) -> BuiltOrder:
    account = Account.model_construct(account_number=r.account)
    today = calendar.ny_date(r.exchange.clock.now())
    return await OrderBuilder().build(
        r.session, parse_ticket(text, today=today), AccountPositions(r.session, account)
    )


async def hold(r: Rig, symbol: str, quantity: int) -> None:
    """Trade ``symbol`` outside the bot until the account holds ``quantity``."""
    ops = OrderOps(r.session, r.account)
    held = await r.position(symbol)
    delta = quantity - held
    if delta:
        order = r.equity_order(symbol, "100.00", "100.04", quantity=int(abs(delta)), buy=delta > 0)
        if held != 0:  # reduce what is held: a plain close, as someone would in the app
            action = "Buy to Close" if delta > 0 else "Sell to Close"
            legs = (dataclasses.replace(order.legs[0], action=action),)
            order = dataclasses.replace(order, legs=legs)
        await ops.place(order.market_order(None).model_copy(update={"advanced_instructions": None}))
    for _ in range(300):
        if await r.position(symbol) == quantity:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{symbol} position did not reach {quantity}")


async def test_a_close_whose_position_is_gone_is_rejected_not_opened(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        r.exchange.market.set_quote("SPY", "100.00", "100.04")
        await hold(r, "SPY", 1)
        built = await build(r, "sell 1 SPY @ mid")
        assert built.order.legs[0].action is OrderAction.SELL_TO_CLOSE
        assert built.is_closing

        # Between the preview and the confirmation the position is sold in the app.
        await hold(r, "SPY", 0)
        orders_before = len(r.exchange_orders())
        result = await (
            await r.engine.submit(r.request(ChaseOrder.from_built(built), "gone-1", params=CHASE))
        ).wait()

        assert result.status is ChaseStatus.REJECTED
        assert "closing_with_no_position" in result.codes
        assert await r.position("SPY") == 0  # no naked short was opened
        assert len(r.exchange_orders()) == orders_before

        # Even an order described leg by leg (no confirmed SDK order) keeps the rule.
        bare = dataclasses.replace(
            ChaseOrder.from_built(built), template=None, fingerprint=None, price_effect=None
        )
        again = await (await r.engine.submit(r.request(bare, "gone-2", params=CHASE))).wait()
        assert again.status is ChaseStatus.REJECTED
        assert await r.position("SPY") == 0


async def test_a_closing_chase_sends_the_confirmed_order_at_every_step(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        r.exchange.market.set_quote("SPY", "100.00", "100.04")
        await hold(r, "SPY", 2)
        built = await build(r, "sell 2 SPY @ mid")
        order = ChaseOrder.from_built(built)
        assert order.fingerprint == built.fingerprint()
        assert order.limit_price == built.price == D("100.02")
        # The bid is where the chase will end: 100.02 -> 100.00 (two 0.01 ticks), a fill.
        result = await (await r.engine.submit(r.request(order, "close-1", params=CHASE))).wait()

        assert result.status is ChaseStatus.FILLED
        assert result.steps == 1 and result.final_price == D("100.00")
        chain = [o for o in r.exchange_orders() if o.id in result.order_chain]
        assert len(chain) == 2
        for sent in chain:
            assert sent.strict_position_effect
            assert sent.external_identifier == "close-1"
            assert [(leg.symbol, leg.action, leg.quantity) for leg in sent.legs] == [
                ("SPY", "Sell to Close", D(2))
            ]
        assert await r.position("SPY") == 0


def _body(order: LimitOrder | MarketOrder) -> dict[str, object]:
    return dict(json.loads(order.model_dump_json(by_alias=True, exclude_none=True)))


async def test_only_price_and_identifier_change_and_drift_is_never_sent(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        r.exchange.market.set_quote("SPY", "100.00", "100.04")
        await hold(r, "SPY", 1)
        built = await build(r, "sell 1 SPY @ mid")
        order = ChaseOrder.from_built(built)

        stepped = order.limit_order(D("100.01"), "key-9")
        expected = _body(built.order) | {"price": "100.01", "external-identifier": "key-9"}
        assert _body(stepped) == expected
        assert stepped.advanced_instructions is not None
        assert stepped.advanced_instructions.strict_position_effect_validation
        # The chase survives a restart as the same confirmed order.
        restored = ChaseOrder.from_json(json.loads(json.dumps(order.to_json())))
        assert restored == order
        assert order_fingerprint(restored.template or built.order) == built.fingerprint()

        # A confirmed order that no longer matches its fingerprint is never sent.
        tampered = dataclasses.replace(order, fingerprint="0" * 64)
        posts_before = sum(1 for m, _ in r.exchange.requests if m == "POST")
        result = await (await r.engine.submit(r.request(tampered, "drift-1"))).wait()
        assert result.status is ChaseStatus.NOT_PLACED
        assert "not the one that was confirmed" in result.message
        assert sum(1 for m, _ in r.exchange.requests if m == "POST") == posts_before
        assert await r.position("SPY") == 1


def test_price_of_the_wrong_effect_is_refused() -> None:
    order = ChaseOrder.from_json(
        {
            "legs": [
                {
                    "symbol": "SPY",
                    "action": "Buy to Open",
                    "quantity": "1",
                    "instrument_type": "Equity",
                }
            ],
            "quantity": "1",
            "underlying_symbol": "SPY",
            "natural": "-100.04",
            "mid": "-100.02",
            "schedule": [["0.0001", "1"], ["0.01", None]],
            "time_in_force": "Day",
            "is_market": False,
            "limit_price": None,
            "multiplier": "1",
        }
    )
    assert order.effect.value == "Debit"
    with pytest.raises(OrderDrift, match="Debit"):
        order.limit_order(Decimal("100.02"), "k")
