"""The one place that relies on private parts of the SDK's ``DXLinkStreamer`` (13.2.3).

* ``_map_message(message, channel)`` (with ``_channels_reversed``): overridden for the Quote
  channel so *every* Quote record reaches the feed in arrival order. The SDK drops a record
  that fails validation — which is what a quote without a bid or an ask (``"NaN"``) does — so
  on its own a market that went one-sided would leave the last two-sided quote in place. Here
  such a record withdraws the symbol's quote instead. Quote records never enter the SDK's
  (unbounded) queue, so there is nothing to drain.
* ``_websocket``: the SDK disables websocket keepalive pings and ignores the server's
  KEEPALIVE messages, so liveness is checked with our own pings through its session.
* ``_auth_token``: the DXLink token, registered with the log redactor while it is in use.
* ``_wss_url``: the DXLink URL ``/api-quote-tokens`` named (``…/realtime`` in production,
  ``…/delayed`` in the sandbox): a delayed feed never prices a live order.

``tests/unit/test_quote_feed_sdk.py`` fails loudly if any of these change shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import anyio
from pydantic import ValidationError
from tastytrade.dxfeed import Quote
from tastytrade.streamer import DXLinkStreamer
from tastytrade.utils import TastytradeError

__all__ = ["QUOTE_FIELDS", "BookStreamer", "QuoteSink", "is_delayed", "quote_records"]

#: The Quote fields in the order the SDK asks the server for them (its ``FEED_SETUP``).
QUOTE_FIELDS: tuple[str, ...] = tuple(Quote.model_fields)
QUOTE_EVENT = Quote.__name__

#: Receives (streamer symbol, bid, ask); bid/ask None when the record had no usable pair.
QuoteSink = Callable[[str, Decimal | None, Decimal | None], None]


def _ignore(symbol: str, bid: Decimal | None, ask: Decimal | None) -> None:
    return None


class BookStreamer(DXLinkStreamer):
    """A ``DXLinkStreamer`` that hands Quote records to ``on_quote`` instead of its queue."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_quote: QuoteSink = _ignore

    def _map_message(self, message: list[Any], channel: int) -> None:
        if self._channels_reversed.get(channel) != QUOTE_EVENT:
            super()._map_message(message, channel)
            return
        for symbol, bid, ask in quote_records(message):
            self.on_quote(symbol, bid, ask)

    async def ping(self) -> anyio.Event:
        """Send a websocket ping; the event is set when its pong arrives."""
        return await self._websocket.ping()

    @property
    def auth_token(self) -> str | None:
        """The DXLink token of this connection (None before connecting)."""
        token = getattr(self, "_auth_token", None)
        return token if isinstance(token, str) else None

    @property
    def dxlink_url(self) -> str | None:
        """The DXLink URL this connection went to (None before connecting)."""
        url = getattr(self, "_wss_url", None)
        return url if isinstance(url, str) else None


def is_delayed(dxlink_url: str | None) -> bool:
    """Whether a DXLink URL serves delayed quotes (the sandbox's ``…/delayed``); no URL (not
    connected yet) counts as delayed."""
    return dxlink_url is None or "delayed" in dxlink_url.lower()


def quote_records(data: list[Any]) -> Iterator[tuple[str, Decimal | None, Decimal | None]]:
    """(symbol, bid, ask) for each Quote record of a ``FEED_DATA`` payload, in order.

    COMPACT (``["Quote", [flat values…], …]``, fields in ``QUOTE_FIELDS`` order) and FULL
    (``[{"eventSymbol": …}, …]``) formats. A record the SDK's model rejects yields None for
    bid and ask. A COMPACT block whose length is not a whole number of records is a contract
    error (as in the SDK), which ends the connection.
    """
    if not data:
        return
    if isinstance(data[0], dict):
        for record in data:
            if isinstance(record, dict):
                yield from _one(record)
        return
    for index in range(0, len(data) - 1, 2):
        kind, values = data[index], data[index + 1]
        if kind != QUOTE_EVENT or not isinstance(values, list):
            continue
        size = len(QUOTE_FIELDS)
        if len(values) % size:
            raise TastytradeError("Mapper data input values are not a multiple of the key size!")
        for offset in range(0, len(values), size):
            yield from _one(dict(zip(QUOTE_FIELDS, values[offset : offset + size], strict=True)))


def _one(record: dict[str, Any]) -> Iterator[tuple[str, Decimal | None, Decimal | None]]:
    try:
        quote = Quote.model_validate(record)
    except ValidationError:
        symbol = record.get("event_symbol", record.get("eventSymbol"))
        if isinstance(symbol, str) and symbol:
            yield symbol, None, None
        return
    yield quote.event_symbol, quote.bid_price, quote.ask_price
