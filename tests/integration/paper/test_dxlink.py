"""The DXLink quote feed: the SDK's real ``DXLinkStreamer`` over loopback, and a raw
websocket for what the SDK does not show (keepalives, errors, FULL format, pings)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from httpx2.websockets import WebSocketDisconnect, WebSocketUpgradeError
from tastytrade import DXLinkStreamer, Session
from tastytrade.dxfeed import Quote
from tastytrade.market_data import MarketData, get_market_data_by_type
from tastytrade.utils import TastytradeError

from broker.paper import MarketConfig, PaperExchange
from broker.paper.dxlink import StreamerSymbols
from broker.paper.universe import EquitySpec

from .conftest import frozen_config

D = Decimal
SDK_QUOTE_FIELDS = [
    "eventSymbol", "eventTime", "sequence", "timeNanoPart", "bidTime", "bidExchangeCode",
    "askTime", "askExchangeCode", "bidPrice", "askPrice", "bidSize", "askSize",
]  # fmt: skip


async def _event(streamer: DXLinkStreamer, within: float = 3.0) -> Quote:
    return await asyncio.wait_for(streamer.get_event(Quote), within)


def _same_quote(event: Quote, item: MarketData) -> bool:
    return (event.bid_price, event.ask_price, event.bid_size, event.ask_size) == (
        item.bid,
        item.ask,
        item.bid_size,
        item.ask_size,
    )


# ------------------------------------------------------------------ the SDK client
async def test_quote_token_route_names_the_dxlink_endpoint(
    frozen: PaperExchange, session: Session
) -> None:
    served: list[str] = []
    frozen.on_served = lambda method, path, started, done: served.append(path)
    data = await session._get("/api-quote-tokens")
    assert data["dxlink-url"] == frozen.dxlink_url == f"ws://127.0.0.1:{frozen.port}/dxlink"
    assert data["level"] == "api"
    assert frozen.dxlink.token_is_valid(data["token"])
    async with DXLinkStreamer(session):
        assert frozen.dxlink.connection_count == 1
    # The upgrade is logged like /streamer's, but only the token request is an API request.
    assert [p for _, p in frozen.requests].count("/dxlink") == 1
    assert [p for p in served if p != "/oauth/token"] == ["/api-quote-tokens"] * 2


async def test_quote_token_needs_a_valid_access_token(frozen: PaperExchange) -> None:
    async with aiohttp.ClientSession() as http:
        url = frozen.api_url + "/api-quote-tokens"
        async with http.get(url, headers={"Authorization": "Bearer nope"}) as reply:
            assert reply.status == 401


async def test_first_event_is_the_rest_quote_and_changes_stream(
    frozen: PaperExchange, session: Session
) -> None:
    async with DXLinkStreamer(session) as streamer:
        await streamer.subscribe(Quote, ["SPY"])
        first = await _event(streamer)
        [rest] = await get_market_data_by_type(session, equities=["SPY"])
        assert first.event_symbol == "SPY"
        assert _same_quote(first, rest)
        assert first.bid_exchange_code == "Q" and first.bid_time > 0

        frozen.market.set_quote("SPY", "410.00", "410.20")
        changed = await _event(streamer)
        assert (changed.bid_price, changed.ask_price) == (D("410.00"), D("410.20"))

        # Pinning the same quote again and moving the clock change nothing for SPY, so the
        # next event is QQQ's snapshot: nothing for SPY was queued before it.
        frozen.market.set_quote("SPY", "410.00", "410.20")
        frozen.clock.advance(30)
        await asyncio.sleep(0.05)
        await streamer.subscribe(Quote, ["QQQ"])
        assert (await _event(streamer)).event_symbol == "QQQ"
        assert streamer.get_event_nowait(Quote) is None

        frozen.market.clear_quote("SPY")
        back = await _event(streamer)
        [rest] = await get_market_data_by_type(session, equities=["SPY"])
        assert back.event_symbol == "SPY" and _same_quote(back, rest)


async def test_the_clock_moves_model_quotes_and_the_feed_follows(
    frozen: PaperExchange, session: Session
) -> None:
    async with DXLinkStreamer(session) as streamer:
        await streamer.subscribe(Quote, ["AAPL"])
        first = await _event(streamer)
        frozen.clock.advance(600)
        moved = await _event(streamer)
        [moved_rest] = await get_market_data_by_type(session, equities=["AAPL"])
        assert (moved.bid_price, moved.ask_price) != (first.bid_price, first.ask_price)
        assert _same_quote(moved, moved_rest)
        assert moved.bid_time > first.bid_time or moved.ask_time > first.ask_time
        # The same through the admin clock.
        async with aiohttp.ClientSession() as http:
            url = frozen.api_url + "/_admin/clock/advance"
            async with http.post(url, json={"seconds": 200}) as reply:
                assert reply.status == 200
        again = await _event(streamer)
        [rest] = await get_market_data_by_type(session, equities=["AAPL"])
        assert _same_quote(again, rest) and not _same_quote(again, moved_rest)


async def test_the_real_time_ticker_streams_moves_without_any_request() -> None:
    market = MarketConfig(grid_seconds=0.05, volatility_scale=20.0)
    async with PaperExchange(frozen_config(real_time=True, market=market)) as exchange:
        sdk = Session("secret", "refresh", is_test=True)
        sdk._client.base_url = exchange.api_url
        async with sdk, DXLinkStreamer(sdk) as streamer:
            await streamer.subscribe(Quote, ["SPY"])
            seen = [await _event(streamer)]
            requests = len(exchange.requests)
            while len(seen) < 3:
                seen.append(await _event(streamer))
            assert len(exchange.requests) == requests
            pairs = [(e.bid_price, e.ask_price) for e in seen]
            assert all(a != b for a, b in itertools.pairwise(pairs))  # only changes are sent


async def test_option_future_and_future_option_streamer_symbols(
    frozen: PaperExchange, session: Session
) -> None:
    universe = frozen.universe
    option = universe.options_of("SPY")[len(universe.options_of("SPY")) // 2]
    future = universe.futures["/ESZ6"]
    future_option = universe.future_options_of("ES")[0]
    wanted = {
        option.streamer_symbol: option.symbol,
        future.streamer_symbol: future.symbol,
        future_option.streamer_symbol: future_option.symbol,
    }
    assert future.streamer_symbol == "/ESZ26:XCME"
    assert option.streamer_symbol.startswith(".SPY")
    assert (
        future_option.streamer_symbol.startswith("./") and ":XCME" in future_option.streamer_symbol
    )
    async with DXLinkStreamer(session) as streamer:
        await streamer.subscribe(Quote, list(wanted))
        events = {e.event_symbol: e for e in [await _event(streamer) for _ in wanted]}
        rest = await get_market_data_by_type(
            session,
            options=[option.symbol],
            futures=[future.symbol],
            future_options=[future_option.symbol],
        )
    by_symbol = {item.symbol: item for item in rest}
    assert set(events) == set(wanted)
    for streamer_symbol, symbol in wanted.items():
        assert _same_quote(events[streamer_symbol], by_symbol[symbol]), streamer_symbol


async def test_unknown_symbols_produce_no_event_and_no_error(
    frozen: PaperExchange, session: Session
) -> None:
    unknown = ["NOPE", ".SPY990101C1", "/ZZZ26:XCME", "SPY   261218C00600000"]
    async with DXLinkStreamer(session) as streamer:
        await streamer.subscribe(Quote, unknown)
        await streamer.subscribe(Quote, ["SPY"])
        assert (await _event(streamer)).event_symbol == "SPY"
        await asyncio.sleep(0.05)
        assert streamer.get_event_nowait(Quote) is None
        assert frozen.dxlink.subscriptions() == {*unknown, "SPY"}


async def test_unsubscribe_stops_events(frozen: PaperExchange, session: Session) -> None:
    async with DXLinkStreamer(session) as streamer:
        await streamer.subscribe(Quote, ["SPY", "QQQ"])
        assert {(await _event(streamer)).event_symbol for _ in range(2)} == {"SPY", "QQQ"}
        await streamer.unsubscribe(Quote, ["SPY"])
        await _until(lambda: frozen.dxlink.subscriptions() == {"QQQ"})
        frozen.market.set_quote("SPY", "400.00", "400.10")
        frozen.market.set_quote("QQQ", "500.00", "500.10")
        assert (await _event(streamer)).event_symbol == "QQQ"
        await asyncio.sleep(0.05)
        assert streamer.get_event_nowait(Quote) is None


async def test_two_connections_each_get_the_changes(
    frozen: PaperExchange, session: Session
) -> None:
    async with DXLinkStreamer(session) as one, DXLinkStreamer(session) as two:
        await one.subscribe(Quote, ["SPY"])
        await two.subscribe(Quote, ["SPY", "IWM"])
        await _event(one)
        await _event(two)
        await _event(two)
        assert frozen.dxlink.connection_count == 2
        frozen.market.set_quote("SPY", "401.00", "401.05")
        for streamer in (one, two):
            event = await _event(streamer)
            assert (event.event_symbol, event.ask_price) == ("SPY", D("401.05"))
    assert frozen.dxlink.connections_accepted == 2


async def test_an_expired_token_is_refused(frozen: PaperExchange, session: Session) -> None:
    frozen.dxlink.quote_token_ttl = 0
    with pytest.raises(Exception) as raised:
        async with DXLinkStreamer(session):
            pass
    assert _contains(raised.value, TastytradeError, "token is invalid or has expired")


async def test_an_error_ends_the_sdk_client_after_a_channel_cancel(
    frozen: PaperExchange, session: Session
) -> None:
    with pytest.raises(Exception) as raised:
        async with DXLinkStreamer(session) as streamer:
            await streamer.subscribe(Quote, ["SPY"])
            await _event(streamer)
            await streamer.unsubscribe_all(Quote)
            await _until(lambda: frozen.dxlink.subscriptions() == set())
            # FEED_SUBSCRIPTION on the cancelled channel: out of order.
            await streamer.unsubscribe(Quote, ["SPY"])
            await asyncio.sleep(2)
    assert _contains(raised.value, TastytradeError, "channel 7 is not open")


async def test_close_streamers_ends_the_sdk_client(frozen: PaperExchange, session: Session) -> None:
    with pytest.raises(ExceptionGroup) as raised:
        async with DXLinkStreamer(session) as streamer:
            await streamer.subscribe(Quote, ["SPY"])
            await _event(streamer)
            await frozen.close_streamers(1011)
            await _event(streamer, within=5)
    assert raised.group_contains(WebSocketDisconnect)
    await _until(lambda: frozen.dxlink.connection_count == 0)


async def test_a_failed_upgrade_is_a_websocket_upgrade_error(
    frozen: PaperExchange, session: Session
) -> None:
    frozen.faults.fail("GET", "/dxlink", 502)
    with pytest.raises(Exception) as raised:
        async with DXLinkStreamer(session):
            pass
    assert _contains(raised.value, WebSocketUpgradeError, "")
    assert frozen.dxlink.connection_count == 0


async def test_freeze_stops_events_without_closing(frozen: PaperExchange, session: Session) -> None:
    async with DXLinkStreamer(session) as streamer:
        await streamer.subscribe(Quote, ["SPY"])
        await _event(streamer)
        frozen.dxlink.freeze()
        frozen.market.set_quote("SPY", "402.00", "402.10")
        pong = await streamer._websocket.ping()
        await asyncio.sleep(0.3)
        assert streamer.get_event_nowait(Quote) is None and not pong.is_set()
        assert frozen.dxlink.connection_count == 1
        frozen.dxlink.unfreeze()
        event = await _event(streamer)
        assert (event.bid_price, event.ask_price) == (D("402.00"), D("402.10"))
        # A ping that arrived while frozen stays unanswered; later ones are answered.
        later = await streamer._websocket.ping()
        await asyncio.wait_for(later.wait(), 2)
        assert not pong.is_set()


# ------------------------------------------------------------------ raw protocol
class Raw:
    """A bare dxLink client: every message the server sends is visible."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket

    async def send(self, **message: Any) -> None:
        await self.socket.send_str(json.dumps(message))

    async def next(self, within: float = 2.0, *, keepalives: bool = False) -> dict[str, Any]:
        while True:
            message = await self.socket.receive(timeout=within)
            assert message.type == aiohttp.WSMsgType.TEXT, message
            data: dict[str, Any] = json.loads(message.data, parse_float=Decimal)
            if keepalives or data["type"] != "KEEPALIVE":
                return data

    async def setup(self, **timeouts: float) -> dict[str, Any]:
        await self.send(type="SETUP", channel=0, version="0.1-test", **timeouts)
        reply = await self.next()
        assert await self.next() == {"type": "AUTH_STATE", "channel": 0, "state": "UNAUTHORIZED"}
        return reply

    async def login(self, token: str) -> None:
        await self.setup()
        await self.send(type="AUTH", channel=0, token=token)
        assert (await self.next())["state"] == "AUTHORIZED"

    async def open_feed(self, channel: int = 1, **setup: Any) -> dict[str, Any]:
        await self.send(
            type="CHANNEL_REQUEST", channel=channel, service="FEED", parameters={"contract": "AUTO"}
        )
        assert (await self.next())["type"] == "CHANNEL_OPENED"
        await self.send(type="FEED_SETUP", channel=channel, **setup)
        config = await self.next()
        assert config["type"] == "FEED_CONFIG"
        return config


@asynccontextmanager
async def raw(exchange: PaperExchange) -> AsyncIterator[Raw]:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(exchange.dxlink_url, autoping=False) as socket,
    ):
        yield Raw(socket)


async def test_handshake_messages(frozen: PaperExchange) -> None:
    async with raw(frozen) as client:
        setup = await client.setup(keepaliveTimeout=60, acceptKeepaliveTimeout=60)
        assert setup == {
            "type": "SETUP",
            "channel": 0,
            "version": "1.0-paper",
            "keepaliveTimeout": 60,
            "acceptKeepaliveTimeout": 60,
        }
        await client.send(type="AUTH", channel=0, token=frozen.dxlink.issue_token())
        assert await client.next() == {
            "type": "AUTH_STATE",
            "channel": 0,
            "state": "AUTHORIZED",
            "userId": "paper",
        }
        config = await client.open_feed(
            3,
            acceptAggregationPeriod=0.1,
            acceptDataFormat="COMPACT",
            acceptEventFields={"Quote": SDK_QUOTE_FIELDS},
        )
        assert config == {
            "type": "FEED_CONFIG",
            "channel": 3,
            "aggregationPeriod": D("0.1"),
            "dataFormat": "COMPACT",
            "eventFields": {"Quote": SDK_QUOTE_FIELDS},
        }
        frozen.market.set_quote("SPY", "410.20", "410.30")
        await client.send(
            type="FEED_SUBSCRIPTION", channel=3, add=[{"symbol": "SPY", "type": "Quote"}]
        )
        data = await client.next()
        at = int(frozen.clock.timestamp() * 1000)
        assert data == {
            "type": "FEED_DATA",
            "channel": 3,
            "data": [
                "Quote",
                ["SPY", 0, 0, 0, at, "Q", at, "Q", D("410.20"), D("410.30"), 240, 210],
            ],
        }
        # The exact decimal text travels, as JSON numbers.
        assert [str(v) for v in data["data"][1][8:10]] == ["410.20", "410.30"]
        await client.send(type="CHANNEL_CANCEL", channel=3)
        assert await client.next() == {"type": "CHANNEL_CLOSED", "channel": 3}
        assert frozen.dxlink.subscriptions() == set()


async def test_full_format_and_chosen_fields(frozen: PaperExchange) -> None:
    async with raw(frozen) as client:
        await client.login(frozen.dxlink.issue_token())
        fields = ["eventType", "eventSymbol", "askPrice", "bidPrice", "colour"]
        config = await client.open_feed(
            acceptDataFormat="FULL", acceptEventFields={"Quote": fields}
        )
        assert config["eventFields"] == {"Quote": fields[:4]}
        frozen.market.set_quote("/ESZ6", "6000.25", "6000.50")
        await client.send(
            type="FEED_SUBSCRIPTION",
            channel=1,
            add=[
                {"symbol": "/ESZ26:XCME", "type": "Quote"},
                {"symbol": "NOPE", "type": "Quote"},
                {"symbol": "SPY", "type": "Greeks"},
            ],
        )
        assert await client.next() == {
            "type": "FEED_DATA",
            "channel": 1,
            "data": [
                {
                    "eventType": "Quote",
                    "eventSymbol": "/ESZ26:XCME",
                    "askPrice": D("6000.50"),
                    "bidPrice": D("6000.25"),
                }
            ],
        }
        assert frozen.dxlink.subscriptions("Greeks") == {"SPY"}


async def test_a_channel_without_feed_setup_sends_full_records(frozen: PaperExchange) -> None:
    async with raw(frozen) as client:
        await client.login(frozen.dxlink.issue_token())
        await client.send(type="CHANNEL_REQUEST", channel=5, service="FEED")
        assert (await client.next())["parameters"] == {"contract": "AUTO"}
        await client.send(
            type="FEED_SUBSCRIPTION",
            channel=5,
            reset=True,
            add=[{"symbol": "IWM", "type": "Quote"}],
        )
        [record] = (await client.next())["data"]
        quote = frozen.market.quote("IWM")
        assert record["eventType"] == "Quote" and record["eventSymbol"] == "IWM"
        assert (record["bidPrice"], record["askPrice"]) == (quote.bid, quote.ask)
        assert set(record) == {"eventType", *SDK_QUOTE_FIELDS}


async def test_bad_tokens_are_refused_and_a_good_one_still_works(frozen: PaperExchange) -> None:
    frozen.dxlink.quote_token_ttl = 5
    expired = frozen.dxlink.issue_token()
    frozen.clock.advance(5)
    async with raw(frozen) as client:
        await client.setup()
        for token in ("garbage", expired, 42):
            await client.send(type="AUTH", channel=0, token=token)
            error = await client.next()
            assert (error["type"], error["channel"], error["error"]) == ("ERROR", 0, "UNAUTHORIZED")
            assert await client.next() == {
                "type": "AUTH_STATE",
                "channel": 0,
                "state": "UNAUTHORIZED",
            }
        await client.send(type="CHANNEL_REQUEST", channel=1, service="FEED")
        assert (await client.next())["error"] == "UNAUTHORIZED"
        await client.send(type="AUTH", channel=0, token=frozen.dxlink.issue_token())
        assert (await client.next())["state"] == "AUTHORIZED"


@pytest.mark.parametrize(
    ("before", "message", "error"),
    [
        ("connected", {"type": "AUTH", "channel": 0, "token": "t"}, "BAD_ACTION"),
        ("connected", {"type": "CHANNEL_REQUEST", "channel": 1, "service": "FEED"}, "BAD_ACTION"),
        ("set up", {"type": "SETUP", "channel": 0, "version": "0.1"}, "BAD_ACTION"),
        ("set up", {"type": "FEED_SETUP", "channel": 1}, "UNAUTHORIZED"),
        ("authorized", {"type": "FEED_SUBSCRIPTION", "channel": 1, "add": []}, "BAD_ACTION"),
        ("authorized", {"type": "CHANNEL_CANCEL", "channel": 9}, "BAD_ACTION"),
        ("authorized", {"type": "CHANNEL_REQUEST", "channel": 1, "service": "X"}, "BAD_ACTION"),
        ("authorized", {"type": "GREETINGS", "channel": 0}, "BAD_ACTION"),
        ("authorized", {"type": "SETUP", "channel": 3, "version": "0.1"}, "INVALID_MESSAGE"),
        ("authorized", {"type": "CHANNEL_REQUEST", "channel": "1"}, "INVALID_MESSAGE"),
        ("authorized", {"channel": 0}, "INVALID_MESSAGE"),
        ("authorized", [1, 2], "INVALID_MESSAGE"),
        (
            "opened",
            {"type": "FEED_SETUP", "channel": 1, "acceptDataFormat": "CSV"},
            "INVALID_MESSAGE",
        ),
        (
            "opened",
            {"type": "FEED_SETUP", "channel": 1, "acceptEventFields": {"Quote": ["x"]}},
            "INVALID_MESSAGE",
        ),
        (
            "opened",
            {"type": "FEED_SUBSCRIPTION", "channel": 1, "add": [{"symbol": "SPY"}]},
            "INVALID_MESSAGE",
        ),
        ("opened", {"type": "CHANNEL_REQUEST", "channel": 1, "service": "FEED"}, "BAD_ACTION"),
    ],
)
async def test_protocol_violations_get_an_error(
    frozen: PaperExchange, before: str, message: object, error: str
) -> None:
    async with raw(frozen) as client:
        if before != "connected":
            await client.setup()
        if before in ("authorized", "opened"):
            await client.send(type="AUTH", channel=0, token=frozen.dxlink.issue_token())
            await client.next()
        if before == "opened":
            await client.send(type="CHANNEL_REQUEST", channel=1, service="FEED")
            await client.next()
        await client.socket.send_str(json.dumps(message))
        reply = await client.next()
        assert (reply["type"], reply["channel"], reply["error"]) == ("ERROR", 0, error)
        assert reply["message"]
        # The connection stays usable.
        await client.socket.send_str("not json")
        assert (await client.next())["error"] == "INVALID_MESSAGE"


async def test_server_keepalives_flow_within_the_announced_timeout(frozen: PaperExchange) -> None:
    async with raw(frozen) as client:
        setup = await client.setup(keepaliveTimeout=30, acceptKeepaliveTimeout=0.2)
        assert (setup["keepaliveTimeout"], setup["acceptKeepaliveTimeout"]) == (D("0.2"), 30)
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(3):
            assert await client.next(0.3, keepalives=True) == {"type": "KEEPALIVE", "channel": 0}
        assert loop.time() - started < 0.6


async def test_keepalive_interval_is_configurable(frozen: PaperExchange) -> None:
    frozen.dxlink.keepalive_interval = 0.05
    async with raw(frozen) as client:
        setup = await client.setup()
        assert setup["keepaliveTimeout"] == 60
        for _ in range(3):
            assert (await client.next(0.2, keepalives=True))["type"] == "KEEPALIVE"


async def test_a_silent_client_is_timed_out_and_a_chatty_one_is_not(
    frozen: PaperExchange,
) -> None:
    async with raw(frozen) as chatty, raw(frozen) as silent:
        await chatty.setup(keepaliveTimeout=0.3)
        await silent.setup(keepaliveTimeout=0.3)
        for _ in range(6):
            await asyncio.sleep(0.1)
            await chatty.send(type="KEEPALIVE", channel=0)
        error = await silent.next()
        assert (error["type"], error["error"]) == ("ERROR", "TIMEOUT")
        closing = await silent.socket.receive(timeout=1)
        assert closing.type == aiohttp.WSMsgType.CLOSE
        assert not chatty.socket.closed
        await _until(lambda: frozen.dxlink.connection_count == 1)


async def test_freeze_stops_all_traffic_and_unfreeze_resumes_it(frozen: PaperExchange) -> None:
    async with raw(frozen) as client:
        # Keepalives every 0.05 s; the server gives up on a client silent for 0.3 s.
        await client.setup(keepaliveTimeout=0.3, acceptKeepaliveTimeout=0.1)
        await client.send(type="AUTH", channel=0, token=frozen.dxlink.issue_token())
        assert (await client.next())["state"] == "AUTHORIZED"
        await client.open_feed(
            acceptDataFormat="COMPACT", acceptEventFields={"Quote": ["eventSymbol", "bidPrice"]}
        )
        await client.send(
            type="FEED_SUBSCRIPTION", channel=1, add=[{"symbol": "SPY", "type": "Quote"}]
        )
        await client.next()
        frozen.dxlink.freeze()
        with contextlib.suppress(TimeoutError):  # what was already on its way
            while True:
                await client.socket.receive(timeout=0.1)
        frozen.market.set_quote("SPY", "403.00", "403.10")
        await client.socket.ping()
        await client.send(
            type="FEED_SUBSCRIPTION", channel=1, add=[{"symbol": "QQQ", "type": "Quote"}]
        )
        with pytest.raises(TimeoutError):  # no keepalive, no data, no pong for 0.4 s
            await client.socket.receive(timeout=0.4)
        assert not client.socket.closed and frozen.dxlink.connection_count == 1
        assert frozen.dxlink.frozen
        # 0.5 s frozen: the client's own silence (0.3 s) is not held against it.
        frozen.dxlink.unfreeze()
        await client.send(type="KEEPALIVE", channel=0)
        seen = []
        while len(seen) < 2:
            message = await client.next()
            assert message["type"] == "FEED_DATA"
            seen.append(message["data"][1])
        assert sorted(seen) == sorted(
            [["SPY", D("403.00")], ["QQQ", frozen.market.quote("QQQ").bid]]
        )
        assert (await client.next(0.3, keepalives=True))["type"] == "KEEPALIVE"


async def test_close_streamers_closes_a_frozen_connection_too(frozen: PaperExchange) -> None:
    async with raw(frozen) as client:
        await client.setup()
        frozen.dxlink.freeze()
        await frozen.close_streamers(1011)
        closing = await client.socket.receive(timeout=2)
        assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 1011)
        await _until(lambda: frozen.dxlink.connection_count == 0)


async def test_admin_freeze_and_stats(frozen: PaperExchange) -> None:
    async with raw(frozen) as client, aiohttp.ClientSession() as http:
        await client.setup()
        async with http.post(frozen.api_url + "/_admin/dxlink/freeze") as reply:
            assert reply.status == 200
        assert frozen.dxlink.frozen
        async with http.get(frozen.api_url + "/_admin/stats") as reply:
            assert (await reply.json())["dxlink"] == 1
        async with http.post(frozen.api_url + "/_admin/dxlink/unfreeze") as reply:
            assert reply.status == 200
        assert not frozen.dxlink.frozen
        async with http.post(frozen.api_url + "/_admin/streamers/close", json={}) as reply:
            assert reply.status == 200
        closing = await client.socket.receive(timeout=2)
        assert closing.type == aiohttp.WSMsgType.CLOSE


# ------------------------------------------------------------------ streamer symbols
def test_every_listed_instrument_resolves_from_its_streamer_symbol(
    frozen: PaperExchange,
) -> None:
    universe = frozen.universe
    symbols = StreamerSymbols(universe)
    instruments = [
        *universe.equities.values(),
        *universe.options_of("SPY")[:50],
        *universe.futures.values(),
        *universe.future_options_of("ES")[:50],
    ]
    for instrument in instruments:
        name = (
            instrument.symbol if isinstance(instrument, EquitySpec) else instrument.streamer_symbol
        )
        resolved = symbols.resolve(name)
        assert resolved is not None and resolved.symbol == instrument.symbol, name
    # API symbols are not streamer symbols (except equities, where they are the same).
    for instrument in instruments:
        if not isinstance(instrument, EquitySpec):
            assert symbols.resolve(instrument.symbol) is None, instrument.symbol


# ------------------------------------------------------------------ helpers
def _contains(exc: BaseException, kind: type[BaseException], text: str) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return any(_contains(inner, kind, text) for inner in exc.exceptions)
    return isinstance(exc, kind) and text in str(exc)


async def _until(check: Any, within: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)
