"""Previews and chase quotes priced from the warm DXLink feed: no market-data request when
every leg has a trusted quote, one REST read for all legs otherwise, the same prices."""

from __future__ import annotations

from decimal import Decimal

import pytest

from broker.events import LegInfo
from broker.fills.quotes import QuoteUnavailable, current_net_quote, streamer_symbol_for
from broker.orders.build import BuiltOrder
from broker.preview import preview_order
from broker.quotes import QuoteFeed
from tests.integration.quotes.support import D, Rig, eventually, rig

BUY_SPY = "buy 1 SPY @ mid"


async def _build(r: Rig, text: str, feed: QuoteFeed | None = None) -> BuiltOrder:
    return await r.builder.build(r.broker, r.ticket(text), r.positions, quotes=feed)


async def _spread(r: Rig) -> tuple[str, list[str]]:
    """A call spread ticket and its legs' streamer symbols (low strike first)."""
    chain = await r.chain("SPY")
    expiration = chain.expirations[2]
    strikes = sorted(expiration.strikes, key=lambda s: s.strike_price)
    middle = len(strikes) // 2
    low, high = strikes[middle], strikes[middle + 2]
    text = (
        f"buy 1 SPY {expiration.expiration_date:%m/%d/%y} "
        f"{low.strike_price.normalize():f}/{high.strike_price.normalize():f}c @ mid"
    )
    return text, [low.call_streamer_symbol, high.call_streamer_symbol]


async def test_a_warm_feed_prices_the_preview_with_no_market_data_request() -> None:
    async with rig() as r:
        r.exchange.market.set_quote("SPY", "500.00", "500.10")
        rest_built = await _build(r, BUY_SPY)  # also warms the instrument cache
        feed = r.feed()
        try:
            mark = r.mark()
            first = await _build(r, BUY_SPY, feed)  # not streamed yet: REST, and wanted now
            assert r.market_data_reads(mark) == 1
            assert feed.book.wanted() == {"SPY"}
            await eventually(lambda: feed.quote("SPY") is not None, "the SPY quote")

            mark = r.mark()
            built = await _build(r, BUY_SPY, feed)
            preview = await preview_order(r.broker, r.account, built)
            account = r.account.account_number
            # The positions read is this rig's position source (the bot reads its live book).
            assert r.exchange.requests[mark:] == [
                ("GET", f"/accounts/{account}/positions"),
                ("POST", f"/accounts/{account}/orders/dry-run"),
            ]
            assert not preview.would_reject
            for other in (rest_built, first):
                assert built.net_mid == other.net_mid == D("-500.05")
                assert built.price == other.price
                assert built.fingerprint() == other.fingerprint()
                assert (built.legs[0].bid, built.legs[0].ask) == (D("500.00"), D("500.10"))
        finally:
            await feed.close()


async def test_the_streamed_mid_follows_the_market_like_rest() -> None:
    async with rig() as r:
        feed = r.feed()
        try:
            feed.want(["SPY"])
            await eventually(lambda: feed.quote("SPY") is not None, "the SPY quote")
            r.exchange.clock.advance(600)  # the model moves the market; the feed follows
            bid, ask = await r.rest_quote("SPY")
            await eventually(lambda: _pair(feed, "SPY") == (bid, ask), "the moved quote")
            mark = r.mark()
            streamed = await _build(r, BUY_SPY, feed)
            assert r.market_data_reads(mark) == 0
            assert streamed.net_mid == (await _build(r, BUY_SPY)).net_mid == -(bid + ask) / 2
        finally:
            await feed.close()


async def test_without_a_live_feed_the_preview_reads_rest_once_and_prices_the_same() -> None:
    async with rig() as r:
        r.exchange.market.set_quote("SPY", "500.00", "500.10")
        feed = r.feed()
        try:
            feed.want(["SPY"])
            await eventually(lambda: feed.quote("SPY") is not None, "the SPY quote")
            streamed = await _build(r, BUY_SPY, feed)
            r.exchange.dxlink.freeze()
            await eventually(lambda: not feed.live, "the frozen feed to stop being live")
            mark = r.mark()
            fallback = await _build(r, BUY_SPY, feed)
            assert r.market_data_reads(mark) == 1
            assert fallback.fingerprint() == streamed.fingerprint()
            assert fallback.net_mid == streamed.net_mid == D("-500.05")
        finally:
            r.exchange.dxlink.unfreeze()
            await feed.close()


async def test_a_spread_with_a_leg_missing_from_the_feed_reads_every_leg_over_rest() -> None:
    async with rig() as r:
        text, (low, high) = await _spread(r)
        feed = r.feed()
        try:
            feed.want([low])
            await eventually(lambda: feed.quote(low) is not None, "the low leg's quote")
            assert feed.quote(high) is None

            mark = r.mark()
            mixed = await _build(r, text, feed)
            # One request for both legs (never one leg streamed and the other from REST)...
            assert r.market_data_reads(mark) == 1
            (path,) = [p for _, p in r.exchange.requests[mark:] if "market-data" in p]
            assert all(
                leg.symbol.replace(" ", "+") in path or leg.symbol in path for leg in mixed.legs
            )
            # ...and the missing leg is streamed from now on.
            assert feed.book.wanted() == {low, high}
            await eventually(lambda: feed.quote(high) is not None, "the high leg's quote")

            mark = r.mark()
            streamed = await _build(r, text, feed)
            assert r.market_data_reads(mark) == 0
            assert streamed.net_mid == mixed.net_mid
            assert [(leg.bid, leg.ask) for leg in streamed.legs] == [
                (leg.bid, leg.ask) for leg in mixed.legs
            ]
        finally:
            await feed.close()


async def test_the_chase_quote_comes_from_the_feed_when_every_leg_streams() -> None:
    async with rig() as r:
        text, _ = await _spread(r)
        built = await _build(r, text)
        legs = [
            LegInfo(
                symbol=leg.symbol,
                action=leg.action.value,
                quantity=Decimal(leg.quantity),
                instrument_type=leg.instrument_type.value,
            )
            for leg in built.legs
        ]
        symbols = [streamer_symbol_for(leg) for leg in legs]
        assert all(symbols)
        rest = await current_net_quote(r.broker, legs)
        feed = r.feed()
        try:
            mark = r.mark()
            assert await current_net_quote(r.broker, legs, feed) == rest  # cold: REST
            assert r.market_data_reads(mark) == 1
            await eventually(lambda: all(feed.quote(s) for s in symbols if s), "leg quotes")
            mark = r.mark()
            assert await current_net_quote(r.broker, legs, feed) == rest
            assert r.market_data_reads(mark) == 0
        finally:
            await feed.close()


async def test_a_streamed_quote_with_no_market_still_makes_the_chase_hold() -> None:
    async with rig() as r:
        r.exchange.market.set_quote("SPY", "0", "0")  # no bid, no offer
        legs = [LegInfo("SPY", "Buy to Open", Decimal(1), "Equity")]
        feed = r.feed()
        try:
            feed.want(["SPY"])
            await eventually(lambda: feed.quote("SPY") is not None, "the SPY quote")
            mark = r.mark()
            with pytest.raises(QuoteUnavailable):
                await current_net_quote(r.broker, legs, feed)
            assert r.market_data_reads(mark) == 0  # decided on the streamed quote, no guess
        finally:
            await feed.close()


def _pair(feed: QuoteFeed, symbol: str) -> tuple[Decimal, Decimal] | None:
    quote = feed.quote(symbol)
    return None if quote is None else (quote.bid, quote.ask)
