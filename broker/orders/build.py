"""The order builder: a parsed ticket → a priced, tick-checked SDK order (``BuiltOrder``).

One build costs, with warm instrument caches, at most one market-data request (all legs in one
``get_market_data_by_type`` call) plus whatever the ``PositionSource`` needs (nothing when it
reads the live position book). Given a ``QuoteSource`` (the session's DXLink feed) that has a
trusted quote for *every* leg, it makes no market-data request at all; otherwise every leg is
read over REST in that one request (so all legs of a spread are priced from one source and one
moment) and the feed is asked to stream the legs for the next time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Protocol

from tastytrade.account import Account
from tastytrade.market_data import MarketData, get_market_data_by_type
from tastytrade.order import (
    AdvancedInstructions,
    InstrumentType,
    Leg,
    LimitOrder,
    MarketOrder,
    OrderAction,
    OrderTimeInForce,
)
from tastytrade.utils import PriceEffect

from broker.orders.errors import BuildError, BuildRefusal
from broker.orders.pricing import (
    LegPrice,
    NetQuote,
    PositionEffect,
    PositionEffectError,
    PricingError,
    effect_for_side,
    leg_ratios,
    net_quote,
    resolve_position_effect,
    round_net_passive,
    signed_price,
    split_signed_price,
)
from broker.orders.resolve import InstrumentResolver, ResolvedInstrument
from broker.quotes import StreamedQuote
from broker.session import BrokerError, BrokerSession
from broker.tickets.model import OptionType, OrderTicket, PriceMode, TicketLeg, TimeInForce
from broker.tickets.model import PriceEffect as TicketEffect
from broker.ticks import Side, TickSchedule

__all__ = [
    "AccountPositions",
    "BuilderConfig",
    "BuiltLeg",
    "BuiltOrder",
    "OrderBuilder",
    "PositionSource",
    "QuoteSource",
]

MAX_LEGS = 4
SINGLE_LEG_KINDS = frozenset({InstrumentType.EQUITY, InstrumentType.FUTURE})
#: Statuses meaning "this environment serves no REST market data" (not worth a retry).
MARKET_DATA_UNAVAILABLE = frozenset({403, 404})


class PositionSource(Protocol):
    """Current positions, signed: long > 0, short < 0; symbols not held may be omitted."""

    async def quantities(self, symbols: Sequence[str]) -> Mapping[str, Decimal]: ...


class QuoteSource(Protocol):
    """Streamed quotes by streamer symbol (``broker.quotes.QuoteFeed``)."""

    def quote(self, symbol: str) -> StreamedQuote | None:
        """A trusted two-sided quote, or None."""
        ...

    def want(self, symbols: Iterable[str]) -> None:
        """Start (or keep) streaming ``symbols``; never blocks."""
        ...


#: A leg's (bid, ask) as priced; either may be missing.
LegQuote = tuple[Decimal | None, Decimal | None]


class AccountPositions:
    """A ``PositionSource`` that asks the exchange (one request per build)."""

    def __init__(self, broker: BrokerSession, account: Account) -> None:
        self._broker = broker
        self._account = account

    async def quantities(self, symbols: Sequence[str]) -> Mapping[str, Decimal]:
        positions = await self._broker.read(lambda s: self._account.get_positions(s))
        wanted = set(symbols)
        held: dict[str, Decimal] = {}
        for position in positions:
            if position.symbol not in wanted:
                continue
            sign = -1 if position.quantity_direction == "Short" else 1
            held[position.symbol] = held.get(position.symbol, Decimal(0)) + sign * abs(
                position.quantity
            )
        return held


@dataclass(frozen=True, slots=True)
class BuilderConfig:
    """Builder settings.

    The net price of a multi-leg order is checked against ``spread_ticks[underlying]``, else
    ``default_spread_ticks``, else the underlying's option tick schedule (tastytrade does not
    document its spread tick rule, so it stays configurable).
    """

    spread_ticks: Mapping[str, TickSchedule] = field(default_factory=dict)
    default_spread_ticks: TickSchedule | None = None


@dataclass(frozen=True, slots=True)
class BuiltLeg:
    """One resolved, priced leg as it goes to the exchange."""

    symbol: str
    instrument_type: InstrumentType
    action: OrderAction
    side: Side
    position_effect: PositionEffect
    quantity: int
    ratio: int
    multiplier: Decimal
    ticks: TickSchedule
    bid: Decimal | None
    ask: Decimal | None
    description: str
    closing_only: bool = False
    expiration: date | None = None
    strike: Decimal | None = None
    option_type: OptionType | None = None

    @property
    def is_option(self) -> bool:
        return self.instrument_type in (InstrumentType.EQUITY_OPTION, InstrumentType.FUTURE_OPTION)


@dataclass(frozen=True, slots=True)
class BuiltOrder:
    """An SDK order plus everything a preview, a guard or the fill engine needs to know.

    Prices are SDK-signed (negative = Debit). ``price`` is None for market orders;
    ``net_natural`` / ``net_mid`` are None when a quote was missing (allowed only for an
    explicit limit price or a market order).
    """

    order: LimitOrder | MarketOrder
    legs: tuple[BuiltLeg, ...]
    price_mode: PriceMode
    price: Decimal | None
    price_effect: PriceEffect
    net_natural: Decimal | None
    net_mid: Decimal | None
    net_ticks: TickSchedule
    units: int  # number of packages: the gcd of the leg quantities
    multiplier: Decimal
    underlying: str
    built_at: datetime

    @property
    def external_identifier(self) -> str | None:
        return self.order.external_identifier

    @property
    def is_closing(self) -> bool:
        """Every leg only reduces an existing position."""
        return all(leg.position_effect is PositionEffect.CLOSE for leg in self.legs)

    @property
    def reference_price(self) -> Decimal | None:
        """The signed per-unit price used for estimates: the limit, else the natural."""
        return self.price if self.price is not None else self.net_natural

    @property
    def notional(self) -> Decimal | None:
        """Estimated cash value: |per-unit price| × units × multiplier (None without a price).

        For options that is the premium; for futures and shares the value of what is traded.
        """
        reference = self.reference_price
        if reference is None:
            return None
        return abs(reference) * self.units * self.multiplier

    def canonical_json(self) -> str:
        """The order as sent, with sorted keys, minus bookkeeping (``external-identifier``)."""
        body = self.order.model_dump(mode="json", by_alias=True, exclude_none=True)
        body.pop("external-identifier", None)
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    def fingerprint(self) -> str:
        """sha256 of :meth:`canonical_json`: a confirmation binds to exactly this order."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    def with_external_identifier(self, identifier: str) -> BuiltOrder:
        """The same order stamped with an idempotency key (the fingerprint is unchanged)."""
        if not identifier or len(identifier) > 255:
            raise ValueError("external identifier must be 1-255 characters")
        order = self.order.model_copy(update={"external_identifier": identifier})
        return _replace_order(self, order)

    def limit_order_at(self, magnitude: Decimal) -> LimitOrder:
        """The same limit order at another price (same effect), checked against the ticks."""
        if not isinstance(self.order, LimitOrder):
            raise BuildError(BuildRefusal.UNSUPPORTED, "a market order has no price to change")
        if not self.net_ticks.is_on_tick(magnitude):
            raise _off_tick(magnitude, self.net_ticks, self.underlying)
        return self.order.model_copy(update={"price": signed_price(magnitude, self.price_effect)})


def _replace_order(built: BuiltOrder, order: LimitOrder | MarketOrder) -> BuiltOrder:
    return dataclasses.replace(built, order=order)


class OrderBuilder:
    """Turns ``OrderTicket``s into ``BuiltOrder``s against one exchange environment."""

    def __init__(
        self,
        resolver: InstrumentResolver | None = None,
        config: BuilderConfig | None = None,
    ) -> None:
        self.resolver = resolver or InstrumentResolver()
        self.config = config or BuilderConfig()

    async def build(
        self,
        broker: BrokerSession,
        ticket: OrderTicket,
        positions: PositionSource,
        *,
        external_identifier: str | None = None,
        quotes: QuoteSource | None = None,
    ) -> BuiltOrder:
        """``quotes``: streamed quotes to price from when every leg has one (no request)."""
        _check_shape(ticket)
        resolved = await asyncio.gather(
            *(self.resolver.resolve(broker, leg) for leg in ticket.legs)
        )
        _check_resolved(ticket, resolved)
        held, leg_quotes = await asyncio.gather(
            positions.quantities([r.symbol for r in resolved]), _quotes(broker, resolved, quotes)
        )
        position_effects = [
            _position_effect(leg, r, held.get(r.symbol, Decimal(0)))
            for leg, r in zip(ticket.legs, resolved, strict=True)
        ]
        for r, position_effect in zip(resolved, position_effects, strict=True):
            if r.closing_only and position_effect is PositionEffect.OPEN:
                raise BuildError(
                    BuildRefusal.CLOSING_ONLY,
                    f"{r.description} is closing-only: only orders that reduce a position "
                    "are accepted",
                )
        ratios = leg_ratios([leg.quantity for leg in ticket.legs])
        legs = tuple(
            _built_leg(leg, r, position_effect, ratio, leg_quotes.get(r.symbol))
            for leg, r, position_effect, ratio in zip(
                ticket.legs, resolved, position_effects, ratios, strict=True
            )
        )
        net_ticks = self._net_ticks(resolved)
        net = _net(legs)
        price, effect = _price(ticket, legs, net, net_ticks)
        units = ticket.legs[0].quantity // ratios[0]
        order = _sdk_order(ticket, legs, price, external_identifier)
        return BuiltOrder(
            order=order,
            legs=legs,
            price_mode=ticket.price_mode,
            price=price,
            price_effect=effect,
            net_natural=None if net is None else net.natural,
            net_mid=None if net is None else net.mid,
            net_ticks=net_ticks,
            units=units,
            multiplier=resolved[0].multiplier,
            underlying=resolved[0].underlying,
            built_at=datetime.now(UTC),
        )

    def _net_ticks(self, resolved: Sequence[ResolvedInstrument]) -> TickSchedule:
        if len(resolved) == 1:
            return resolved[0].ticks
        underlying = resolved[0].underlying
        configured = self.config.spread_ticks.get(underlying) or self.config.default_spread_ticks
        if configured is not None:
            return configured
        option_ticks = resolved[0].option_ticks
        if option_ticks is None:  # pragma: no cover - option legs always carry their schedule
            raise BuildError(
                BuildRefusal.UNSUPPORTED, f"no spread tick schedule is known for {underlying}"
            )
        return option_ticks


# -- shape checks --------------------------------------------------------------------------------


def _check_shape(ticket: OrderTicket) -> None:
    if not ticket.legs:
        raise BuildError(BuildRefusal.UNSUPPORTED, "the order has no legs")
    if len(ticket.legs) > MAX_LEGS:
        raise BuildError(BuildRefusal.UNSUPPORTED, f"an order takes at most {MAX_LEGS} legs")
    if ticket.price_mode is PriceMode.MARKET:
        if len(ticket.legs) > 1:
            raise BuildError(
                BuildRefusal.UNSUPPORTED,
                "market orders take one leg; price a spread with a limit or @ mid",
            )
        if ticket.time_in_force is TimeInForce.GTC:
            raise BuildError(BuildRefusal.UNSUPPORTED, "a market order cannot be GTC; use day")
    if ticket.price_mode is PriceMode.LIMIT and ticket.price is None:
        raise BuildError(BuildRefusal.BAD_PRICE, "a limit order needs a price")
    for leg in ticket.legs:
        if leg.quantity <= 0:
            raise BuildError(BuildRefusal.UNSUPPORTED, f"{leg.symbol}: quantity must be positive")


def _check_resolved(ticket: OrderTicket, resolved: Sequence[ResolvedInstrument]) -> None:
    if len(resolved) > 1:
        kinds = {r.instrument_type for r in resolved}
        if kinds & SINGLE_LEG_KINDS:
            raise BuildError(
                BuildRefusal.UNSUPPORTED, "stock and futures orders take exactly one leg"
            )
        if len({r.underlying for r in resolved}) > 1:
            raise BuildError(
                BuildRefusal.UNSUPPORTED, "all legs of a spread must share one underlying"
            )
    symbols = [r.symbol for r in resolved]
    if len(set(symbols)) != len(symbols):
        raise BuildError(BuildRefusal.UNSUPPORTED, "two legs resolve to the same contract")


def _position_effect(leg: TicketLeg, resolved: ResolvedInstrument, held: Decimal) -> PositionEffect:
    try:
        return resolve_position_effect(
            symbol=resolved.description,
            side=Side(leg.side.value),
            quantity=Decimal(leg.quantity),
            held=held,
            opening=leg.opening,
        )
    except PositionEffectError as exc:
        raise BuildError(BuildRefusal.POSITION, str(exc)) from exc


# -- quotes and legs -----------------------------------------------------------------------------


async def _quotes(
    broker: BrokerSession, resolved: Sequence[ResolvedInstrument], feed: QuoteSource | None
) -> dict[str, LegQuote]:
    """Each leg's (bid, ask) by exchange symbol: from the feed when it has a trusted quote for
    every leg, else one market-data request for all legs (and the feed is asked for them).

    A spread is never priced from a mix of streamed and REST quotes (two sources, two
    moments); reading every leg costs the same single request as reading the missing ones.
    """
    if feed is not None:
        streamed = [feed.quote(r.streamer_symbol) if r.streamer_symbol else None for r in resolved]
        if all(quote is not None for quote in streamed):
            return {
                r.symbol: (quote.bid, quote.ask)
                for r, quote in zip(resolved, streamed, strict=True)
                if quote is not None
            }
        feed.want([r.streamer_symbol for r in resolved if r.streamer_symbol])
    return {
        symbol: (item.bid, item.ask)
        for symbol, item in (await _rest_quotes(broker, resolved)).items()
    }


async def _rest_quotes(
    broker: BrokerSession, resolved: Sequence[ResolvedInstrument]
) -> dict[str, MarketData]:
    """One market-data request for every leg."""
    by_type: dict[InstrumentType, list[str]] = {}
    for r in resolved:
        by_type.setdefault(r.instrument_type, []).append(r.symbol)
    try:
        items = await broker.read(
            lambda s: get_market_data_by_type(
                s,
                equities=by_type.get(InstrumentType.EQUITY),
                options=by_type.get(InstrumentType.EQUITY_OPTION),
                futures=by_type.get(InstrumentType.FUTURE),
                future_options=by_type.get(InstrumentType.FUTURE_OPTION),
            )
        )
    except BrokerError as exc:
        # Sandbox may not serve REST market data at all: an explicit limit price still works,
        # a mid price is refused later for want of a quote. Transient failures propagate.
        if exc.status in MARKET_DATA_UNAVAILABLE:
            return {}
        raise
    return {item.symbol: item for item in items}


def _action(kind: InstrumentType, side: Side, effect: PositionEffect) -> OrderAction:
    if kind is InstrumentType.FUTURE:  # outright futures trade as plain Buy / Sell
        return OrderAction.BUY if side is Side.BUY else OrderAction.SELL
    if side is Side.BUY:
        return (
            OrderAction.BUY_TO_OPEN if effect is PositionEffect.OPEN else OrderAction.BUY_TO_CLOSE
        )
    return OrderAction.SELL_TO_OPEN if effect is PositionEffect.OPEN else OrderAction.SELL_TO_CLOSE


def _built_leg(
    leg: TicketLeg,
    resolved: ResolvedInstrument,
    effect: PositionEffect,
    ratio: int,
    quote: LegQuote | None,
) -> BuiltLeg:
    side = Side(leg.side.value)
    return BuiltLeg(
        symbol=resolved.symbol,
        instrument_type=resolved.instrument_type,
        action=_action(resolved.instrument_type, side, effect),
        side=side,
        position_effect=effect,
        quantity=leg.quantity,
        ratio=ratio,
        multiplier=resolved.multiplier,
        ticks=resolved.ticks,
        bid=None if quote is None else quote[0],
        ask=None if quote is None else quote[1],
        description=resolved.description,
        closing_only=resolved.closing_only,
        expiration=resolved.expiration,
        strike=resolved.strike,
        option_type=resolved.option_type,
    )


def _leg_prices(legs: Sequence[BuiltLeg]) -> list[LegPrice]:
    return [LegPrice(leg.description, leg.side, leg.ratio, leg.bid, leg.ask) for leg in legs]


def _net(legs: Sequence[BuiltLeg]) -> NetQuote | None:
    """The net quote, or None when any leg lacks a usable two-sided quote."""
    try:
        return net_quote(_leg_prices(legs))
    except PricingError:
        return None


def _require_net(legs: Sequence[BuiltLeg], why: str) -> NetQuote:
    try:
        return net_quote(_leg_prices(legs))
    except PricingError as exc:
        raise BuildError(BuildRefusal.NO_QUOTE, f"{exc}; {why}") from exc


# -- price ---------------------------------------------------------------------------------------


def _ticket_effect(effect: TicketEffect | None) -> PriceEffect | None:
    return None if effect is None else PriceEffect(effect.value)


def _effect_words(effect: PriceEffect) -> str:
    return "debit" if effect is PriceEffect.DEBIT else "credit"


def _price(
    ticket: OrderTicket,
    legs: Sequence[BuiltLeg],
    net: NetQuote | None,
    ticks: TickSchedule,
) -> tuple[Decimal | None, PriceEffect]:
    """The SDK-signed limit price (None for market) and the order's price effect."""
    asked_effect = _ticket_effect(ticket.price_effect)
    single = len(legs) == 1
    natural_effect = effect_for_side(legs[0].side) if single else None

    if ticket.price_mode is PriceMode.MARKET:
        assert natural_effect is not None  # _check_shape allows only single-leg market orders
        return None, natural_effect

    if ticket.price_mode is PriceMode.MID:
        quote = _require_net(legs, "a mid price needs a live bid and ask on every leg")
        try:
            signed = round_net_passive(quote.mid, ticks)
        except PricingError as exc:
            raise BuildError(BuildRefusal.BAD_PRICE, str(exc)) from exc
        effect = split_signed_price(signed)[1]
        if asked_effect is not None and asked_effect is not effect:
            raise _effect_mismatch(legs, quote, asked_effect)
        return signed, effect

    assert ticket.price is not None  # _check_shape
    magnitude = ticket.price
    if magnitude <= 0:
        raise BuildError(BuildRefusal.BAD_PRICE, "a limit price must be above 0")
    if single:
        assert natural_effect is not None
        if asked_effect is not None and asked_effect is not natural_effect:
            side = legs[0].side.value
            raise BuildError(
                BuildRefusal.EFFECT_MISMATCH,
                f"a {side} is a {_effect_words(natural_effect)}, not a "
                f"{_effect_words(asked_effect)}",
            )
        effect = natural_effect
    else:
        market_effect = None
        if net is not None and net.mid != 0:
            market_effect = split_signed_price(net.mid)[1]
        if asked_effect is None:
            if market_effect is None:
                raise BuildError(
                    BuildRefusal.NO_QUOTE,
                    "no live quote tells whether this spread is a debit or a credit; "
                    "add db or cr to the price",
                )
            effect = market_effect
        else:
            if market_effect is not None and market_effect is not asked_effect:
                assert net is not None
                raise _effect_mismatch(legs, net, asked_effect)
            effect = asked_effect
    if not ticks.is_on_tick(magnitude):
        raise _off_tick(magnitude, ticks, legs[0].description if single else "this spread")
    return signed_price(magnitude, effect), effect


def _effect_mismatch(legs: Sequence[BuiltLeg], quote: NetQuote, asked: PriceEffect) -> BuildError:
    mid, actual = split_signed_price(quote.mid)
    return BuildError(
        BuildRefusal.EFFECT_MISMATCH,
        f"these legs trade for a {_effect_words(actual)} (mid {mid.quantize(Decimal('0.01'))} "
        f"{_effect_words(actual)}), but the order asks for a {_effect_words(asked)}; "
        "check the legs' buy/sell sides or the db/cr",
    )


def _off_tick(magnitude: Decimal, ticks: TickSchedule, what: str) -> BuildError:
    below, above = ticks.nearest_valid(magnitude)
    options = [p for p in (below, above) if p > 0]
    nearest = " or ".join(f"{p:f}" for p in options)
    return BuildError(
        BuildRefusal.OFF_TICK,
        f"{magnitude:f} is not a valid price for {what} (ticks: {ticks.describe()}); "
        f"nearest valid: {nearest}",
    )


# -- SDK order -----------------------------------------------------------------------------------


def _sdk_order(
    ticket: OrderTicket,
    legs: Sequence[BuiltLeg],
    price: Decimal | None,
    external_identifier: str | None,
) -> LimitOrder | MarketOrder:
    sdk_legs = [
        Leg(
            instrument_type=leg.instrument_type,
            symbol=leg.symbol,
            action=leg.action,
            quantity=leg.quantity,
        )
        for leg in legs
    ]
    closing = any(leg.position_effect is PositionEffect.CLOSE for leg in legs)
    # With strict validation the broker drops a close whose position is gone instead of
    # silently turning it into an open.
    instructions = AdvancedInstructions(strict_position_effect_validation=True) if closing else None
    tif = OrderTimeInForce(ticket.time_in_force.value)
    if price is None:
        return MarketOrder(
            time_in_force=tif,
            legs=sdk_legs,
            external_identifier=external_identifier,
            advanced_instructions=instructions,
        )
    return LimitOrder(
        time_in_force=tif,
        legs=sdk_legs,
        price=price,
        external_identifier=external_identifier,
        advanced_instructions=instructions,
    )
