"""Multi-leg chases: the net mid start, net-price steps with the right sign, net fills."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from tastytrade import Session
from tastytrade.instruments import NestedOptionChain
from tastytrade.order import OrderTimeInForce

from broker.events import LegInfo, OrderFilled
from broker.fills import ChaseOrder, ChaseStatus
from broker.fills.quotes import current_net_quote
from broker.ticks import TickSchedule
from tests.integration.fills.support import D, Rig, rig, settle


async def two_calls(r: Rig, underlying: str = "SPY") -> tuple[str, str, TickSchedule]:
    """Two adjacent call strikes of an expiration a few weeks out, and the chain's ticks."""

    async def chains(sdk: Session) -> list[NestedOptionChain]:
        return await NestedOptionChain.get(sdk, underlying)

    chain = (await r.session.read(chains, kind="chains"))[0]
    expiration = next(e for e in chain.expirations if e.days_to_expiration >= 14)
    strikes = sorted(expiration.strikes, key=lambda s: s.strike_price)
    middle = len(strikes) // 2
    schedule = TickSchedule.from_tick_sizes(chain.tick_sizes)
    return strikes[middle].call, strikes[middle + 1].call, schedule


def vertical(r: Rig, low: str, high: str, schedule: TickSchedule, *, buy_low: bool) -> ChaseOrder:
    legs = (
        LegInfo(low, "Buy to Open" if buy_low else "Sell to Open", D(1), "Equity Option"),
        LegInfo(high, "Sell to Open" if buy_low else "Buy to Open", D(1), "Equity Option"),
    )
    return ChaseOrder(
        legs=legs,
        quantity=D(1),
        underlying_symbol="SPY",
        natural=D(0),  # replaced below from live quotes
        mid=D(0),
        schedule=schedule,
        time_in_force=OrderTimeInForce.DAY,
        multiplier=D(100),
    )


async def priced(r: Rig, order: ChaseOrder) -> ChaseOrder:
    quote = await current_net_quote(r.session, order.legs)
    return ChaseOrder(
        legs=order.legs,
        quantity=order.quantity,
        underlying_symbol=order.underlying_symbol,
        natural=quote.natural,
        mid=quote.mid,
        schedule=order.schedule,
        time_in_force=order.time_in_force,
        multiplier=order.multiplier,
    )


async def test_debit_vertical_steps_its_net_price_up_to_the_natural(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        low, high, schedule = await two_calls(r)
        r.exchange.market.set_quote(low, "5.00", "5.08")
        r.exchange.market.set_quote(high, "3.00", "3.04")
        order = await priced(r, vertical(r, low, high, schedule, buy_low=True))
        assert (order.natural, order.mid) == (D("-2.08"), D("-2.02"))

        result = await (await r.engine.submit(r.request(order, "vertical-debit"))).wait()
        await settle(r)

        assert result.status is ChaseStatus.FILLED and result.steps == 3
        assert result.effect == "Debit"
        prices = [o.price for o in sorted(r.exchange_orders(), key=lambda o: o.id)]
        assert prices == [D("-2.02"), D("-2.04"), D("-2.06"), D("-2.08")]
        # Bought the 600 call at its ask, sold the 605 at its bid: 2.08 debit per spread.
        assert result.average_price == D("-2.08")
        [fill] = r.recorder.of(OrderFilled)
        assert fill.average_price == D("-2.08") and fill.effect == "Debit"
        assert [leg.symbol for leg in fill.legs] == [low, high]
        assert fill.chase is not None and fill.chase.improvement_total == D("0.00")
        assert await r.position(low) == 1 and await r.position(high) == -1


async def test_credit_vertical_steps_its_net_credit_down(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        low, high, schedule = await two_calls(r)
        r.exchange.market.set_quote(low, "5.00", "5.04")
        r.exchange.market.set_quote(high, "3.00", "3.04")
        order = await priced(r, vertical(r, low, high, schedule, buy_low=False))
        assert (order.natural, order.mid) == (D("1.96"), D("2.00"))

        result = await (await r.engine.submit(r.request(order, "vertical-credit"))).wait()
        await settle(r)

        assert result.status is ChaseStatus.FILLED and result.steps == 2
        assert result.effect == "Credit"
        prices = [o.price for o in sorted(r.exchange_orders(), key=lambda o: o.id)]
        assert prices == [D("2.00"), D("1.98"), D("1.96")]  # positive: credits
        assert result.average_price == D("1.96")
        [fill] = r.recorder.of(OrderFilled)
        assert fill.effect == "Credit" and fill.average_price == D("1.96")
        assert fill.fees is not None and fill.fees > Decimal(0)  # options pay commissions
        assert await r.position(low) == -1 and await r.position(high) == 1
