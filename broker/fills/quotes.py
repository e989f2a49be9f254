"""Current net quote (natural / mid) for the legs of a working order: one batched request."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from tastytrade import Session
from tastytrade.market_data import MarketData, get_market_data_by_type
from tastytrade.order import InstrumentType

from broker.events import LegInfo
from broker.orders.pricing import LegPrice, NetQuote, PricingError, leg_ratios, net_quote
from broker.session import BrokerSession
from broker.ticks import Side

__all__ = ["QuoteUnavailable", "current_net_quote"]


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


def _side(action: str) -> Side:
    return Side.BUY if action.startswith("Buy") else Side.SELL


async def current_net_quote(session: BrokerSession, legs: Sequence[LegInfo]) -> NetQuote:
    """Net natural/mid/passive (SDK-signed) of ``legs`` from live bid/ask.

    Raises :class:`QuoteUnavailable` when a leg has no bid/ask; broker errors propagate as
    ``BrokerError``.
    """
    groups: dict[str, list[str]] = {}
    for leg in legs:
        param = _PARAM_FOR_TYPE.get(leg.instrument_type)
        if param is None:
            raise QuoteUnavailable(f"no quotes for instrument type {leg.instrument_type}")
        groups.setdefault(param, []).append(leg.symbol)

    async def fetch(sdk: Session) -> list[MarketData]:
        return await get_market_data_by_type(sdk, **groups)

    data = await session.read(fetch, kind="read")
    by_symbol = {item.symbol: item for item in data}
    ratios = leg_ratios([int(leg.quantity) for leg in legs])
    priced: list[LegPrice] = []
    for leg, ratio in zip(legs, ratios, strict=True):
        item = by_symbol.get(leg.symbol)
        if item is None or item.bid is None or item.ask is None:
            raise QuoteUnavailable(f"no quote for {leg.symbol.strip()}")
        priced.append(
            LegPrice(
                symbol=leg.symbol,
                side=_side(leg.action),
                ratio=ratio,
                bid=Decimal(item.bid),
                ask=Decimal(item.ask),
            )
        )
    try:
        return net_quote(priced)
    except PricingError as exc:
        raise QuoteUnavailable(str(exc)) from exc
