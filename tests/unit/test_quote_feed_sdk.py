"""The SDK internals broker.quotes.sdk relies on (fails loudly when the SDK changes them),
and its reading of DXLink FEED_DATA payloads."""

from __future__ import annotations

import inspect
from decimal import Decimal

import pytest
from httpx2.websockets import AsyncWebSocketSession
from tastytrade.dxfeed import Quote
from tastytrade.streamer import DXLinkStreamer
from tastytrade.utils import TastytradeError

from broker.quotes.sdk import QUOTE_FIELDS, BookStreamer, is_delayed, quote_records

D = Decimal


def test_the_private_parts_of_the_sdk_we_use_are_still_there() -> None:
    slots = set(DXLinkStreamer.__slots__)
    # The websocket session we ping through, the token we redact, the URL we check, and the
    # channel map our _map_message override reads.
    assert {"_websocket", "_auth_token", "_wss_url", "_channels_reversed"} <= slots
    assert DXLinkStreamer.__annotations__["_websocket"] == "AsyncWebSocketSession"
    assert inspect.iscoroutinefunction(AsyncWebSocketSession.ping)
    signature = inspect.signature(DXLinkStreamer._map_message)
    assert list(signature.parameters) == ["self", "message", "channel"]
    # The override must be the one the reader calls.
    assert "self._map_message(" in inspect.getsource(DXLinkStreamer._reader)
    assert BookStreamer._map_message is not DXLinkStreamer._map_message
    # COMPACT records are in the order the SDK asks for (its model's field order).
    assert tuple(Quote.model_fields) == QUOTE_FIELDS
    assert QUOTE_FIELDS[:2] == ("event_symbol", "event_time")


def _record(symbol: str, bid: object, ask: object) -> list[object]:
    values: dict[str, object] = {
        "event_symbol": symbol,
        "event_time": 0,
        "sequence": 0,
        "time_nano_part": 0,
        "bid_time": 0,
        "bid_exchange_code": "Q",
        "ask_time": 0,
        "ask_exchange_code": "Q",
        "bid_price": bid,
        "ask_price": ask,
        "bid_size": 100,
        "ask_size": "NaN",
    }
    return [values[name] for name in QUOTE_FIELDS]


def test_compact_records_are_read_in_order_one_sided_ones_included() -> None:
    data = [
        "Quote",
        _record("SPY", 601.23, 601.27)
        + _record(".SPY261218C600", "NaN", 1.05)
        + _record("SPY", 601.24, 601.28),
    ]
    assert list(quote_records(data)) == [
        ("SPY", D("601.23"), D("601.27")),
        (".SPY261218C600", None, None),
        ("SPY", D("601.24"), D("601.28")),
    ]


def test_full_format_records_and_other_event_types() -> None:
    full = [
        dict(zip(_camel(QUOTE_FIELDS), _record("QQQ", 400.5, 400.75), strict=True)),
        dict(zip(_camel(QUOTE_FIELDS), _record("IWM", 200, "NaN"), strict=True)),
    ]
    assert list(quote_records(full)) == [("QQQ", D("400.5"), D("400.75")), ("IWM", None, None)]
    assert list(quote_records(["Trade", ["SPY", 1, 2]])) == []
    assert list(quote_records([])) == []


def test_a_compact_block_that_is_not_whole_records_is_a_contract_error() -> None:
    with pytest.raises(TastytradeError):
        list(quote_records(["Quote", _record("SPY", 1, 2)[:-1]]))


def test_delayed_feeds_are_recognised_by_their_url() -> None:
    assert is_delayed("wss://tasty-demo-ws.dxfeed.com/delayed")
    assert not is_delayed("wss://tasty-openapi-ws.dxfeed.com/realtime")
    assert not is_delayed("ws://127.0.0.1:5000/dxlink")
    assert is_delayed(None)


def _camel(names: tuple[str, ...]) -> list[str]:
    def camel(name: str) -> str:
        head, *rest = name.split("_")
        return head + "".join(part.title() for part in rest)

    return [camel(name) for name in names]
