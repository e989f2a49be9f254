"""Current net quote (natural / mid) for the legs of a working order.

From the session's DXLink feed when it has a trusted quote for every leg (no request),
else one batched REST request for all legs (and the feed, if given, is asked to stream them).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TypeAlias

from tastytrade import Session
from tastytrade.instruments import Option
from tastytrade.market_data import MarketData, get_market_data_by_type
from tastytrade.order import InstrumentType

from broker.events import LegInfo
from broker.orders.build import QuoteSource
from broker.orders.pricing import LegPrice, NetQuote, PricingError, leg_ratios, net_quote
from broker.session import BrokerSession
from broker.ticks import Side

__all__ = ["QuoteUnavailable", "current_net_quote", "streamer_symbol_for"]


class QuoteUnavailable(Exception):
    """No usable quote for a leg right now (the chase holds its price instead of guessing)."""


_PARAM_FOR_TYPE: dict[str, str] = {
    InstrumentType.EQUITY.value: "equities",
    InstrumentType.EQUITY_OPTION.value: "options",
    InstrumentType.FUTURE.value: "futures",
    InstrumentType.FUTURE_OPTION.value: "future_options",
    InstrumentType.INDEX.value: "indices",
    InstrumentType.CRYPTOCURRENCY.value: "cryptocurrencies",
}


BidAsk: TypeAlias = tuple[Decimal | None, Decimal | None]


def _side(action: str) -> Side:
    return Side.BUY if action.startswith("Buy") else Side.SELL


def streamer_symbol_for(leg: LegInfo) -> str | None:
    """The leg's DXLink symbol when the order symbol alone determines it: equities (the same
    symbol) and equity options (from the OCC symbol). Futures and future options carry an
    exchange code the order does not, so they are read over REST."""
    if leg.instrument_type == InstrumentType.EQUITY.value:
        return leg.symbol.strip() or None
    if leg.instrument_type == InstrumentType.EQUITY_OPTION.value:
        return Option.occ_to_streamer_symbol(leg.symbol) or None
    return None


def _streamed(legs: Sequence[LegInfo], feed: QuoteSource) -> dict[str, BidAsk] | None:
    """Every leg's (bid, ask) from the feed, or None (after asking the feed for them)."""
    symbols = [streamer_symbol_for(leg) for leg in legs]
    quotes: dict[str, BidAsk] = {}
    for leg, symbol in zip(legs, symbols, strict=True):
        quote = feed.quote(symbol) if symbol else None
        if quote is None:
            feed.want([s for s in symbols if s])
            return None
        quotes[leg.symbol] = (quote.bid, quote.ask)
    return quotes


async def current_net_quote(
    session: BrokerSession, legs: Sequence[LegInfo], feed: QuoteSource | None = None
) -> NetQuote:
    """Net natural/mid/passive (SDK-signed) of ``legs`` from live bid/ask.

    All legs come from one source: ``feed`` when it has a trusted quote for each, else one
    REST request. Raises :class:`QuoteUnavailable` when a leg has no bid/ask; broker errors
    propagate as ``BrokerError``.
    """
    quotes = _streamed(legs, feed) if feed is not None else None
    if quotes is None:
        quotes = await _rest(session, legs)
    ratios = leg_ratios([int(leg.quantity) for leg in legs])
    priced: list[LegPrice] = []
    for leg, ratio in zip(legs, ratios, strict=True):
        bid, ask = quotes.get(leg.symbol, (None, None))
        if bid is None or ask is None:
            raise QuoteUnavailable(f"no quote for {leg.symbol.strip()}")
        priced.append(
            LegPrice(symbol=leg.symbol, side=_side(leg.action), ratio=ratio, bid=bid, ask=ask)
        )
    try:
        return net_quote(priced)
    except PricingError as exc:
        raise QuoteUnavailable(str(exc)) from exc


async def _rest(session: BrokerSession, legs: Sequence[LegInfo]) -> dict[str, BidAsk]:
    groups: dict[str, list[str]] = {}
    for leg in legs:
        param = _PARAM_FOR_TYPE.get(leg.instrument_type)
        if param is None:
            raise QuoteUnavailable(f"no quotes for instrument type {leg.instrument_type}")
        groups.setdefault(param, []).append(leg.symbol)

    async def fetch(sdk: Session) -> list[MarketData]:
        return await get_market_data_by_type(sdk, **groups)

    data = await session.read(fetch, kind="read")
    return {
        item.symbol: (
            None if item.bid is None else Decimal(item.bid),
            None if item.ask is None else Decimal(item.ask),
        )
        for item in data
    }
