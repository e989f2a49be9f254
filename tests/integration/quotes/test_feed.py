"""The DXLink quote feed against the paper exchange's DXLink endpoint, through the real SDK:
quotes arrive and follow the market; nothing is trusted from a connection that ended or went
silent; the feed reconnects, and stops for good with its session."""

from __future__ import annotations

import asyncio

import pytest

from broker.quotes import FeedSettings, QuoteFeed, StreamedQuote
from broker.session import BrokerError
from tests.integration.quotes.support import FAST, D, eventually, rig


async def test_a_wanted_symbol_streams_the_exchanges_quote() -> None:
    async with rig() as r:
        feed = r.feed()
        try:
            assert feed.quote("SPY") is None
            feed.want(["SPY", "NOSUCH"])
            await eventually(lambda: feed.quote("SPY") is not None, "the SPY quote")
            quote = feed.quote("SPY")
            assert quote is not None
            assert (quote.bid, quote.ask) == await r.rest_quote("SPY")
            assert quote.received_at.tzinfo is not None
            assert feed.quote("NOSUCH") is None  # unknown to the feed: no event, no quote
            assert feed.live and feed.connections == 1
        finally:
            await feed.close()


async def test_quote_changes_stream_to_the_feed() -> None:
    async with rig() as r:
        feed = r.feed()
        try:
            feed.want(["SPY"])
            await eventually(lambda: feed.quote("SPY") is not None, "the SPY quote")
            r.exchange.market.set_quote("SPY", "410.00", "410.20")
            await eventually(lambda: _bid_ask(feed.quote("SPY")) == (D("410"), D("410.2")), "set")
            assert await r.rest_quote("SPY") == (D("410.00"), D("410.20"))
            r.exchange.market.clear_quote("SPY")  # back to the model's quote
            model = await r.rest_quote("SPY")
            await eventually(lambda: _bid_ask(feed.quote("SPY")) == model, "the model's quote")
        finally:
            await feed.close()


async def test_a_closed_connection_is_not_trusted_and_the_new_one_starts_empty() -> None:
    async with rig() as r:
        feed = r.feed()
        try:
            feed.want(["SPY"])
            await eventually(lambda: feed.quote("SPY") is not None, "the SPY quote")
            await r.exchange.close_streamers()
            # The market moves while the feed is down: whatever it answers from now on must be
            # the new quote, never the one received on the old connection.
            r.exchange.market.set_quote("SPY", "420.00", "420.10")
            await eventually(lambda: not feed.live, "the feed to stop being live", seconds=0.5)
            seen: list[StreamedQuote] = []
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5.0
            while not (feed.connections >= 2 and feed.quote("SPY") is not None):
                assert loop.time() < deadline, "no reconnect"
                if (quote := feed.quote("SPY")) is not None:
                    seen.append(quote)
                await asyncio.sleep(0.001)
            seen.append(feed.quote("SPY"))  # type: ignore[arg-type]
            assert {(q.bid, q.ask) for q in seen} == {(D("420.00"), D("420.10"))}
            assert r.exchange.dxlink.connection_count == 1  # the old one is gone
        finally:
            await feed.close()


async def test_a_silent_connection_stops_being_live_within_the_ping_window_and_is_replaced() -> (
    None
):
    async with rig() as r:
        feed = r.feed()
        try:
            feed.want(["SPY"])
            await eventually(lambda: feed.quote("SPY") is not None, "the SPY quote")
            loop = asyncio.get_running_loop()
            frozen_at = loop.time()
            r.exchange.dxlink.freeze()
            await eventually(lambda: not feed.live, "the frozen feed to stop being live")
            window = FAST.ping_interval_s + FAST.pong_timeout_s
            assert loop.time() - frozen_at <= window + 0.4  # + polling and scheduling delays
            assert feed.quote("SPY") is None
            r.exchange.dxlink.unfreeze()
            await eventually(
                lambda: feed.connections >= 2 and feed.quote("SPY") is not None,
                "a new live connection",
            )
        finally:
            await feed.close()


async def test_the_feed_stops_for_good_when_its_session_is_closed() -> None:
    async with rig() as r:
        feed = r.feed()
        try:
            feed.want(["SPY"])
            await eventually(lambda: feed.quote("SPY") is not None, "the SPY quote")
            await r.broker.aclose()
            await eventually(lambda: not feed.running, "the feed to stop")
            assert feed.stop_reason == "the session was closed"
            assert feed.quote("SPY") is None and not feed.live
        finally:
            await feed.close()


async def test_the_feed_stops_for_good_when_the_refresh_token_is_revoked() -> None:
    async with rig() as r:
        feed = r.feed()
        try:
            feed.want(["SPY"])
            await eventually(lambda: feed.quote("SPY") is not None, "the SPY quote")
            r.exchange.revoke_refresh_token("paper-refresh-token")
            with pytest.raises(BrokerError):
                await r.broker.refresh()
            await eventually(lambda: not feed.running, "the feed to stop")
            assert feed.stop_reason == "the refresh token was revoked"
            assert feed.quote("SPY") is None
        finally:
            await feed.close()


async def test_symbols_beyond_the_cap_are_dropped_least_recently_used_first() -> None:
    async with rig() as r:
        feed = QuoteFeed(
            r.broker, FeedSettings(ping_interval_s=0.3, pong_timeout_s=0.3, max_symbols=2)
        )
        feed.start()
        try:
            feed.want(["SPY", "QQQ"])
            await eventually(
                lambda: feed.quote("SPY") is not None and feed.quote("QQQ") is not None,
                "both quotes",
            )
            feed.quote("SPY")  # used last: QQQ is now the least recently used
            feed.want(["IWM"])
            await eventually(lambda: feed.quote("IWM") is not None, "the IWM quote")
            assert feed.book.wanted() == {"SPY", "IWM"}
            assert feed.quote("QQQ") is None
            await eventually(
                lambda: r.exchange.dxlink.subscriptions() == {"SPY", "IWM"},
                "QQQ unsubscribed at the exchange",
            )
        finally:
            await feed.close()


def _bid_ask(quote: StreamedQuote | None) -> tuple[D, D] | None:
    return None if quote is None else (quote.bid, quote.ask)
