"""The order builder against the paper exchange, through the real tastytrade SDK."""

from __future__ import annotations

import dataclasses
import re
from decimal import Decimal

import pytest
from tastytrade.instruments import Future, NestedFutureOptionChain
from tastytrade.order import InstrumentType, LimitOrder, MarketOrder, OrderAction
from tastytrade.utils import PriceEffect

from broker.orders.build import BuilderConfig, OrderBuilder
from broker.orders.errors import BuildError, BuildRefusal
from broker.orders.pricing import PositionEffect
from broker.orders.resolve import CachePolicy, InstrumentResolver
from broker.preview import preview_order
from broker.tickets import PriceEffect as TicketEffect
from broker.ticks import TickSchedule
from tests.integration.builder_support import Venue, venue

__all__ = ["venue"]  # the fixture, re-exported for pytest

D = Decimal
ES_OPTION_TICKS = TickSchedule.from_sizes([("0.05", "5"), ("0.25", None)])


def _posts(requests: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [r for r in requests if r[0] == "POST"]


def _market_data(requests: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [r for r in requests if r[1].startswith("/market-data/")]


async def _accepted(v: Venue, built: object) -> None:
    """The exchange's dry-run accepts the order and reads it exactly as built."""
    preview = await preview_order(v.broker, v.account, built)  # type: ignore[arg-type]
    assert preview.errors == (), preview.errors
    assert preview.exchange_order is not None


# -- each kind ----------------------------------------------------------------------------------


async def test_equity_limit(venue: Venue) -> None:
    built = await venue.builder.build(
        venue.broker, venue.ticket("buy 10 AAPL @ 190.01"), venue.positions
    )
    assert isinstance(built.order, LimitOrder)
    [leg] = built.order.legs
    assert (leg.symbol, leg.action, leg.quantity) == ("AAPL", OrderAction.BUY_TO_OPEN, 10)
    assert leg.instrument_type is InstrumentType.EQUITY
    assert built.price == D("-190.01")
    assert built.price_effect is PriceEffect.DEBIT
    body = built.order.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert (body["price"], body["price-effect"]) == ("190.01", "Debit")
    assert built.notional == D("1900.10")
    assert built.legs[0].bid is not None and built.legs[0].ask is not None
    await _accepted(venue, built)


async def test_single_option_mid_rounds_passively(venue: Venue) -> None:
    expiration = await venue.expiration("AAPL")
    day = f"{expiration.expiration_date:%m/%d/%y}"
    buy = venue.ticket(f"buy 1 AAPL {day} 310c @ mid")
    symbol = buy.legs[0].symbol
    # Mid 3.175 on AAPL's penny-program schedule (0.01 below 3, 0.05 above).
    venue.exchange.market.set_quote(symbol, "3.10", "3.25")

    bought = await venue.builder.build(venue.broker, buy, venue.positions)
    assert bought.legs[0].symbol == symbol
    assert bought.legs[0].multiplier == 100
    assert bought.net_mid == D("-3.175")
    assert bought.price == D("-3.15")  # a buyer rounds down
    assert bought.net_natural == D("-3.25")
    assert bought.order.legs[0].action is OrderAction.BUY_TO_OPEN
    await _accepted(venue, bought)

    sold = await venue.builder.build(
        venue.broker, venue.ticket(f"sell 1 AAPL {day} 310c @ mid"), venue.positions
    )
    assert sold.price == D("3.20")  # a seller rounds up
    assert sold.price_effect is PriceEffect.CREDIT
    assert sold.order.legs[0].action is OrderAction.SELL_TO_OPEN
    await _accepted(venue, sold)


async def test_vertical_net_mid(venue: Venue) -> None:
    expiration = await venue.expiration("SPY")
    ticket = venue.ticket(f"buy 2 SPY {expiration.expiration_date:%m/%d/%y} 760/770c @ mid")
    long_call, short_call = (leg.symbol for leg in ticket.legs)
    venue.exchange.market.set_quote(long_call, "10.00", "10.21")
    venue.exchange.market.set_quote(short_call, "5.00", "5.10")

    built = await venue.builder.build(venue.broker, ticket, venue.positions)
    assert [(leg.symbol, leg.action, leg.quantity) for leg in built.order.legs] == [
        (long_call, OrderAction.BUY_TO_OPEN, 2),
        (short_call, OrderAction.SELL_TO_OPEN, 2),
    ]
    assert built.units == 2
    assert built.net_mid == D("-5.055")
    assert built.price == D("-5.05")  # per spread, debit rounded down
    assert built.net_natural == D("-5.21")  # pay the long's ask, get the short's bid
    assert built.notional == D("5.05") * 2 * 100
    await _accepted(venue, built)


async def test_vertical_explicit_debit_and_effect_check(venue: Venue) -> None:
    expiration = await venue.expiration("SPY")
    ticket = venue.ticket(f"buy 1 SPY {expiration.expiration_date:%m/%d/%y} 760/770c @ 4.80 db")
    built = await venue.builder.build(venue.broker, ticket, venue.positions)
    assert built.price == D("-4.80")
    await _accepted(venue, built)
    # The same legs at a credit are a sign mistake: refused before the exchange sees it.
    flipped = dataclasses.replace(ticket, price_effect=TicketEffect.CREDIT)
    with pytest.raises(BuildError) as info:
        await venue.builder.build(venue.broker, flipped, venue.positions)
    assert info.value.reason is BuildRefusal.EFFECT_MISMATCH
    assert "trade for a debit" in str(info.value)


async def test_short_strangle(venue: Venue) -> None:
    expiration = await venue.expiration("SPY")
    ticket = venue.ticket(f"sell 1 SPY {expiration.expiration_date:%m/%d/%y} 740P 790C @ mid")
    built = await venue.builder.build(venue.broker, ticket, venue.positions)
    assert [leg.action for leg in built.order.legs] == [OrderAction.SELL_TO_OPEN] * 2
    assert built.price is not None and built.price > 0
    assert built.price_effect is PriceEffect.CREDIT
    assert built.net_mid is not None and built.price >= built.net_mid  # credit rounds up
    await _accepted(venue, built)


async def test_iron_condor(venue: Venue) -> None:
    expiration = await venue.expiration("SPY")
    ticket = venue.ticket(
        f"sell 1 SPY {expiration.expiration_date:%m/%d/%y} IC 740/750/780/790 @ mid"
    )
    built = await venue.builder.build(venue.broker, ticket, venue.positions)
    actions = {leg.symbol[-9:]: leg.action for leg in built.order.legs}
    assert actions == {
        "P00740000": OrderAction.BUY_TO_OPEN,
        "P00750000": OrderAction.SELL_TO_OPEN,
        "C00780000": OrderAction.SELL_TO_OPEN,
        "C00790000": OrderAction.BUY_TO_OPEN,
    }
    assert built.price_effect is PriceEffect.CREDIT
    assert built.price is not None and D(0) < built.price < D(10)
    await _accepted(venue, built)


async def test_future_explicit_and_front_month(venue: Venue) -> None:
    listed = await venue.broker.read(lambda s: Future.get(s, product_codes=["ES"]))
    front = next(f for f in listed if f.active_month)
    later = max(listed, key=lambda f: f.expiration_date)

    explicit = await venue.builder.build(
        venue.broker, venue.ticket(f"buy 1 {later.symbol} @ mid"), venue.positions
    )
    assert explicit.legs[0].symbol == later.symbol
    assert explicit.order.legs[0].action is OrderAction.BUY
    assert explicit.multiplier == 50
    assert explicit.price is not None and explicit.price % D("0.25") == 0
    await _accepted(venue, explicit)

    front_built = await venue.builder.build(
        venue.broker, venue.ticket("sell 1 /ES @ mkt"), venue.positions
    )
    assert isinstance(front_built.order, MarketOrder)
    assert front_built.order.legs[0].symbol == front.symbol
    assert front_built.order.legs[0].action is OrderAction.SELL
    assert front_built.price is None
    assert front_built.price_effect is PriceEffect.CREDIT
    assert front_built.notional is not None and front_built.notional > 100_000
    await _accepted(venue, front_built)


async def test_future_option_maps_to_the_chain_symbol(venue: Venue) -> None:
    chain = await venue.broker.read(lambda s: NestedFutureOptionChain.get(s, "/ES"))
    expiration = chain.option_chains[0].expirations[2]
    strike = next(s for s in expiration.strikes if s.strike_price == D(7700))
    ticket = venue.ticket(f"sell 1 /ES {expiration.expiration_date:%m/%d/%y} 7700c @ mid")
    assert ticket.legs[0].symbol.startswith("./ES ")  # unresolved until the builder maps it

    built = await venue.builder.build(venue.broker, ticket, venue.positions)
    [leg] = built.order.legs
    assert leg.symbol == strike.call
    assert leg.instrument_type is InstrumentType.FUTURE_OPTION
    assert leg.action is OrderAction.SELL_TO_OPEN
    assert built.net_ticks == ES_OPTION_TICKS
    assert built.price is not None and ES_OPTION_TICKS.is_on_tick(built.price)
    assert built.multiplier == 50
    await _accepted(venue, built)


# -- refusals before the exchange sees anything -------------------------------------------------


async def test_off_tick_price_refused_before_the_exchange(venue: Venue) -> None:
    expiration = await venue.expiration("AAPL")
    ticket = venue.ticket(f"buy 1 AAPL {expiration.expiration_date:%m/%d/%y} 310c @ 3.07")
    mark = len(venue.exchange.requests)
    with pytest.raises(BuildError) as info:
        await venue.builder.build(venue.broker, ticket, venue.positions)
    assert info.value.reason is BuildRefusal.OFF_TICK
    assert "nearest valid: 3.05 or 3.10" in str(info.value)
    assert "0.01 below 3, 0.05 above" in str(info.value)
    assert _posts(venue.requests_since(mark)) == []


async def test_off_tick_spread_price(venue: Venue) -> None:
    expiration = await venue.expiration("SPY")
    builder = OrderBuilder(
        InstrumentResolver(now=venue.exchange.clock.now),
        BuilderConfig(default_spread_ticks=TickSchedule.uniform("0.05")),
    )
    ticket = venue.ticket(f"buy 1 SPY {expiration.expiration_date:%m/%d/%y} 760/770c @ 4.83 db")
    mark = len(venue.exchange.requests)
    with pytest.raises(BuildError, match=r"nearest valid: 4\.80 or 4\.85"):
        await builder.build(venue.broker, ticket, venue.positions)
    assert _posts(venue.requests_since(mark)) == []


async def test_missing_expiration_names_the_nearest(venue: Venue) -> None:
    chain = await venue.chain("SPY")
    days = [e.expiration_date for e in chain.expirations]
    # The Wednesday between the second and third listed (weekly) expirations.
    missing = days[1] + (days[2] - days[1]) / 2
    assert missing not in days
    with pytest.raises(BuildError) as info:
        await venue.builder.build(
            venue.broker, venue.ticket(f"buy 1 SPY {missing:%m/%d/%y} 765c @ mid"), venue.positions
        )
    assert info.value.reason is BuildRefusal.NO_EXPIRATION
    assert str(info.value) == (
        f"SPY has no {missing:%m/%d} expiration; nearest: {days[1]:%m/%d}, {days[2]:%m/%d}"
    )


async def test_missing_strike_names_the_nearest(venue: Venue) -> None:
    expiration = await venue.expiration("SPY")
    with pytest.raises(BuildError) as info:
        await venue.builder.build(
            venue.broker,
            venue.ticket(f"buy 1 SPY {expiration.expiration_date:%m/%d/%y} 765.5c @ mid"),
            venue.positions,
        )
    assert info.value.reason is BuildRefusal.NO_STRIKE
    assert str(info.value).endswith("has no 765.5 strike; nearest: 765, 766")


async def test_missing_future_option_strike(venue: Venue) -> None:
    chain = await venue.broker.read(lambda s: NestedFutureOptionChain.get(s, "/ES"))
    expiration = chain.option_chains[0].expirations[0]
    with pytest.raises(BuildError, match=r"/ES \d\d/\d\d has no 7710 strike; nearest: 7700, 7725"):
        await venue.builder.build(
            venue.broker,
            venue.ticket(f"buy 1 /ES {expiration.expiration_date:%m/%d/%y} 7710c @ mid"),
            venue.positions,
        )


async def test_unknown_symbol(venue: Venue) -> None:
    with pytest.raises(BuildError) as info:
        await venue.builder.build(venue.broker, venue.ticket("buy 1 ZZZZ @ 1.00"), venue.positions)
    assert info.value.reason is BuildRefusal.UNKNOWN_SYMBOL
    assert "ZZZZ" in str(info.value)


async def test_unlisted_future_contract(venue: Venue) -> None:
    with pytest.raises(BuildError, match=r"/ESZ9 is not listed; listed: /ESH6, "):
        await venue.builder.build(venue.broker, venue.ticket("buy 1 /ESZ9 @ mid"), venue.positions)


async def test_mid_without_a_usable_quote_is_refused(venue: Venue) -> None:
    expiration = await venue.expiration("SPY")
    ticket = venue.ticket(f"buy 1 SPY {expiration.expiration_date:%m/%d/%y} 700p @ mid")
    venue.exchange.market.set_quote(ticket.legs[0].symbol, "0", "0")
    with pytest.raises(BuildError) as info:
        await venue.builder.build(venue.broker, ticket, venue.positions)
    assert info.value.reason is BuildRefusal.NO_QUOTE
    assert "no usable quote for SPY" in str(info.value)


async def test_single_leg_effect_must_follow_the_side(venue: Venue) -> None:
    ticket = dataclasses.replace(
        venue.ticket("buy 10 AAPL @ 190.00"), price_effect=TicketEffect.CREDIT
    )
    with pytest.raises(BuildError, match="a buy is a debit, not a credit"):
        await venue.builder.build(venue.broker, ticket, venue.positions)


# -- opening / closing from real positions ------------------------------------------------------


async def test_opening_resolved_from_positions(venue: Venue) -> None:
    await venue.fill_market("buy 10 AAPL @ mkt")

    partial = await venue.builder.build(
        venue.broker, venue.ticket("sell 5 AAPL @ mid"), venue.positions
    )
    assert partial.order.legs[0].action is OrderAction.SELL_TO_CLOSE
    assert partial.legs[0].position_effect is PositionEffect.CLOSE
    assert partial.is_closing
    assert partial.order.advanced_instructions is not None
    assert partial.order.advanced_instructions.strict_position_effect_validation
    await _accepted(venue, partial)

    adding = await venue.builder.build(
        venue.broker, venue.ticket("buy 5 AAPL @ mid"), venue.positions
    )
    assert adding.order.legs[0].action is OrderAction.BUY_TO_OPEN

    with pytest.raises(BuildError) as info:
        await venue.builder.build(venue.broker, venue.ticket("sell 15 AAPL @ mid"), venue.positions)
    assert info.value.reason is BuildRefusal.POSITION
    assert str(info.value) == (
        "you are long 10 AAPL; one order cannot both close and open. "
        "sell 10 to close, then sell 5 to open"
    )


async def test_closing_an_option_and_explicit_effects(venue: Venue) -> None:
    expiration = await venue.expiration("SPY")
    day = f"{expiration.expiration_date:%m/%d/%y}"
    await venue.fill_market(f"sell 2 SPY {day} 800c @ mkt")

    close = await venue.builder.build(
        venue.broker, venue.ticket(f"buy 2 SPY {day} 800c @ mid"), venue.positions
    )
    assert close.order.legs[0].action is OrderAction.BUY_TO_CLOSE
    await _accepted(venue, close)

    with pytest.raises(BuildError, match=r"you are short 2 SPY .*; a buy to open would close it"):
        await venue.builder.build(
            venue.broker, venue.ticket(f"bto 1 SPY {day} 800c @ mid"), venue.positions
        )
    with pytest.raises(BuildError, match=r"nothing to close: you hold no position in SPY"):
        await venue.builder.build(
            venue.broker, venue.ticket(f"stc 1 SPY {day} 805c @ mid"), venue.positions
        )


# -- caching ------------------------------------------------------------------------------------


async def test_warm_build_costs_one_market_data_request(venue: Venue) -> None:
    expiration = await venue.expiration("SPY")
    ticket = venue.ticket(
        f"sell 1 SPY {expiration.expiration_date:%m/%d/%y} IC 740/750/780/790 @ mid"
    )
    futures = venue.ticket("buy 1 /ES @ mid")
    future_option = venue.ticket(f"buy 1 /ES {expiration.expiration_date:%m/%d/%y} 7700c @ mid")
    for warm_up in (ticket, futures, future_option):
        await venue.builder.build(venue.broker, warm_up, venue.positions)

    for again in (ticket, futures, future_option):
        mark = len(venue.exchange.requests)
        await venue.builder.build(venue.broker, again, venue.positions)
        seen = venue.requests_since(mark)
        non_position = [r for r in seen if not r[1].endswith("/positions")]
        assert len(non_position) == 1, seen
        assert _market_data(non_position) == non_position


async def test_chain_ttl_expires(venue: Venue) -> None:
    now = [0.0]
    builder = OrderBuilder(
        InstrumentResolver(
            CachePolicy(chain_ttl=60, instrument_ttl=600),
            clock=lambda: now[0],
            now=venue.exchange.clock.now,
        )
    )
    expiration = await venue.expiration("SPY")
    ticket = venue.ticket(f"buy 1 SPY {expiration.expiration_date:%m/%d/%y} 765c @ mid")
    await builder.build(venue.broker, ticket, venue.positions)

    now[0] = 59.0
    mark = len(venue.exchange.requests)
    await builder.build(venue.broker, ticket, venue.positions)
    assert not any("/option-chains/" in path for _, path in venue.requests_since(mark))

    now[0] = 61.0
    mark = len(venue.exchange.requests)
    await builder.build(venue.broker, ticket, venue.positions)
    chain_requests = [p for _, p in venue.requests_since(mark) if "/option-chains/" in p]
    assert chain_requests == ["/option-chains/SPY/nested"]


async def test_fingerprint_is_stable_and_binds_the_order(venue: Venue) -> None:
    ticket = venue.ticket("buy 10 AAPL @ 190.01")
    first = await venue.builder.build(venue.broker, ticket, venue.positions)
    second = await venue.builder.build(venue.broker, ticket, venue.positions)
    assert first.fingerprint() == second.fingerprint()
    assert re.fullmatch(r"[0-9a-f]{64}", first.fingerprint())

    stamped = first.with_external_identifier("tt-bot-key-1")
    assert stamped.order.external_identifier == "tt-bot-key-1"
    assert stamped.fingerprint() == first.fingerprint()  # bookkeeping, not economics

    other = await venue.builder.build(
        venue.broker, venue.ticket("buy 10 AAPL @ 190.02"), venue.positions
    )
    assert other.fingerprint() != first.fingerprint()

    repriced = first.limit_order_at(D("190.05"))
    assert repriced.price == D("-190.05")
    with pytest.raises(BuildError, match="not a valid price"):
        first.limit_order_at(D("190.055"))


async def test_external_identifier_reaches_the_exchange(venue: Venue) -> None:
    built = await venue.builder.build(
        venue.broker,
        venue.ticket("buy 1 AAPL @ 190.00"),
        venue.positions,
        external_identifier="tt-bot-idem-42",
    )
    preview = await preview_order(venue.broker, venue.account, built)
    assert preview.errors == ()
    body = built.order.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert body["external-identifier"] == "tt-bot-idem-42"


# -- market data outages and named futures -------------------------------------------------------


async def test_without_market_data_a_limit_still_builds_but_mid_does_not(venue: Venue) -> None:
    venue.exchange.faults.fail("GET", "/market-data/by-type", 404, times=2)
    limit = await venue.builder.build(
        venue.broker, venue.ticket("buy 10 AAPL @ 190.00"), venue.positions
    )
    assert limit.price == D("-190.00")
    assert limit.net_mid is None and limit.net_natural is None
    assert limit.legs[0].bid is None
    with pytest.raises(BuildError) as info:
        await venue.builder.build(venue.broker, venue.ticket("buy 10 AAPL @ mid"), venue.positions)
    assert info.value.reason is BuildRefusal.NO_QUOTE
    assert "no quote for AAPL" in str(info.value)


async def test_transient_market_data_failure_is_retried(venue: Venue) -> None:
    venue.exchange.faults.fail("GET", "/market-data/by-type", 503, times=1)
    built = await venue.builder.build(
        venue.broker, venue.ticket("buy 10 AAPL @ mid"), venue.positions
    )
    assert built.net_mid is not None
    assert len(_market_data(venue.exchange.requests)) == 2


async def test_future_option_on_a_named_future(venue: Venue) -> None:
    chain = await venue.broker.read(lambda s: NestedFutureOptionChain.get(s, "/ES"))
    expirations = chain.option_chains[0].expirations
    on_june = next(e for e in expirations if e.underlying_symbol == "/ESM6")
    day = f"{on_june.expiration_date:%m/%d/%y}"
    built = await venue.builder.build(
        venue.broker, venue.ticket(f"buy 1 /ESM6 {day} 7700p @ mid"), venue.positions
    )
    assert built.legs[0].symbol.startswith("./ESM6 ")
    assert built.legs[0].symbol.endswith("P7700")

    march = sorted(e.expiration_date for e in expirations if e.underlying_symbol == "/ESH6")
    with pytest.raises(BuildError) as info:
        await venue.builder.build(
            venue.broker, venue.ticket(f"buy 1 /ESH6 {day} 7700p @ mid"), venue.positions
        )
    assert info.value.reason is BuildRefusal.NO_EXPIRATION
    assert str(info.value) == (
        f"/ES on /ESH6 has no {on_june.expiration_date:%m/%d} expiration; "
        f"nearest: {march[-1]:%m/%d}"
    )
