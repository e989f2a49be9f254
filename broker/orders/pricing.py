"""Price rules: the debit/credit sign, leg and net mids, and position-effect resolution.

Pure functions (no I/O). ``signed_price`` is the ONE place that maps a positive magnitude plus
a price effect onto the SDK's signed convention (negative = Debit, positive = Credit,
tastytrade-api.md §9); the builder, the fill engine's replace step and the previews all go
through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from math import gcd

from tastytrade.utils import PriceEffect

from broker.ticks import Side, TickSchedule

__all__ = [
    "LegPrice",
    "NetQuote",
    "PositionEffect",
    "PositionEffectError",
    "PricingError",
    "effect_for_side",
    "leg_mid",
    "leg_ratios",
    "net_quote",
    "passive_side",
    "resolve_position_effect",
    "round_net_passive",
    "signed_price",
    "split_signed_price",
]


class PricingError(ValueError):
    """A price that cannot be computed or is unsafe to use; the message is user-facing."""


class PositionEffectError(ValueError):
    """An order that would close and open in one go, or close what isn't held."""


# -- the sign rule ----------------------------------------------------------------------------


def signed_price(magnitude: Decimal, effect: PriceEffect) -> Decimal:
    """SDK-signed price from a positive magnitude: Debit → negative, Credit → positive."""
    if not isinstance(magnitude, Decimal):
        raise PricingError(f"price must be a Decimal, got {type(magnitude).__name__}")
    if not magnitude.is_finite() or magnitude <= 0:
        raise PricingError(f"price must be a positive amount, got {magnitude}")
    if effect is PriceEffect.DEBIT:
        return -magnitude
    if effect is PriceEffect.CREDIT:
        return magnitude
    raise PricingError(f"a price needs a Debit or Credit effect, got {effect}")


def split_signed_price(price: Decimal) -> tuple[Decimal, PriceEffect]:
    """Inverse of :func:`signed_price` (0 has no effect: ``PriceEffect.NONE``)."""
    if price < 0:
        return -price, PriceEffect.DEBIT
    if price > 0:
        return price, PriceEffect.CREDIT
    return Decimal(0), PriceEffect.NONE


def effect_for_side(side: Side) -> PriceEffect:
    """A single-leg buy pays (Debit); a single-leg sell receives (Credit)."""
    return PriceEffect.DEBIT if side is Side.BUY else PriceEffect.CREDIT


def passive_side(effect: PriceEffect) -> Side:
    """Whoever pays a net debit is the buyer of the package; a net credit is the seller."""
    if effect is PriceEffect.NONE:
        raise PricingError("a zero net price has no passive side")
    return Side.BUY if effect is PriceEffect.DEBIT else Side.SELL


# -- mids and net prices ----------------------------------------------------------------------


def leg_mid(symbol: str, bid: Decimal | None, ask: Decimal | None) -> Decimal:
    """(bid + ask) / 2, refusing to invent a price when either side is missing or crossed."""
    if bid is None or ask is None:
        missing = (
            "bid and ask are"
            if bid is None and ask is None
            else ("bid is" if bid is None else "ask is")
        )
        raise PricingError(f"no quote for {symbol.strip()}: the {missing} missing")
    if bid < 0 or ask <= 0:
        raise PricingError(f"no usable quote for {symbol.strip()}: bid {bid}, ask {ask}")
    if bid > ask:
        raise PricingError(f"crossed quote for {symbol.strip()}: bid {bid} > ask {ask}")
    return (bid + ask) / 2


def leg_ratios(quantities: Sequence[int]) -> list[int]:
    """Per-unit ratio of each leg: 10×10 → 1:1, 1×2 → 1:2 (the net price is per unit)."""
    if not quantities or any(q <= 0 for q in quantities):
        raise PricingError("every leg needs a positive quantity")
    divisor = 0
    for quantity in quantities:
        divisor = gcd(divisor, quantity)
    return [quantity // divisor for quantity in quantities]


@dataclass(frozen=True, slots=True)
class LegPrice:
    """One leg as priced: direction, ratio within the package, and its quote."""

    symbol: str
    side: Side
    ratio: int
    bid: Decimal | None
    ask: Decimal | None


@dataclass(frozen=True, slots=True)
class NetQuote:
    """Net per-unit package prices, SDK-signed (negative = Debit).

    ``natural`` is the far side (fills now: buy legs at the ask, sell legs at the bid),
    ``passive`` the near side (buy legs at the bid, sell legs at the ask), ``mid`` the
    unrounded average of the two.
    """

    natural: Decimal
    mid: Decimal
    passive: Decimal


def net_quote(legs: Sequence[LegPrice]) -> NetQuote:
    """Sum signed leg prices × ratio over the legs actually ordered."""
    if not legs:
        raise PricingError("an order needs at least one leg")
    natural = mid = passive = Decimal(0)
    for leg in legs:
        leg_mid_price = leg_mid(leg.symbol, leg.bid, leg.ask)  # refuses a missing side
        assert leg.bid is not None and leg.ask is not None
        if leg.side is Side.BUY:
            natural -= leg.ratio * leg.ask
            passive -= leg.ratio * leg.bid
            mid -= leg.ratio * leg_mid_price
        else:
            natural += leg.ratio * leg.bid
            passive += leg.ratio * leg.ask
            mid += leg.ratio * leg_mid_price
    return NetQuote(natural=natural, mid=mid, passive=passive)


def round_net_passive(signed: Decimal, schedule: TickSchedule) -> Decimal:
    """Round an SDK-signed net price onto ``schedule`` toward the passive side.

    Passive means better for us: pay less on a debit (magnitude down), receive more on a
    credit (magnitude up). Refuses a price that would round to zero.
    """
    magnitude, effect = split_signed_price(signed)
    if effect is PriceEffect.NONE:
        raise PricingError("the net price is 0.00; give an explicit debit or credit price")
    rounded = schedule.round_passive(magnitude, passive_side(effect))
    if rounded == 0:
        raise PricingError(
            f"the net price {magnitude} {effect.value.lower()} rounds to 0.00 on ticks of "
            f"{schedule.describe()}; give an explicit price"
        )
    return signed_price(rounded, effect)


# -- opening / closing ------------------------------------------------------------------------


class PositionEffect(StrEnum):
    OPEN = "open"
    CLOSE = "close"


def resolve_position_effect(
    *,
    symbol: str,
    side: Side,
    quantity: Decimal,
    held: Decimal,
    opening: bool | None,
) -> PositionEffect:
    """Decide open vs close for one leg given the signed position held (long > 0, short < 0).

    ``opening=None`` infers it: a buy against a short or a sell against a long closes. One
    order never both closes and opens (that would silently flip the position), so a quantity
    larger than the position is refused with the two orders to send instead. An explicit
    ``opening`` is checked against the position too, because the broker otherwise turns a
    close of nothing into an open.
    """
    name = symbol.strip()
    verb = side.value
    held_abs = abs(held)
    direction = "long" if held > 0 else "short"
    reduces = (side is Side.BUY and held < 0) or (side is Side.SELL and held > 0)

    if opening is None:
        if not reduces:
            return PositionEffect.OPEN
        if quantity <= held_abs:
            return PositionEffect.CLOSE
        remainder = quantity - held_abs
        raise PositionEffectError(
            f"you are {direction} {_qty(held_abs)} {name}; one order cannot both close and open. "
            f"{verb} {_qty(held_abs)} to close, then {verb} {_qty(remainder)} to open"
        )
    if opening:
        if reduces:
            raise PositionEffectError(
                f"you are {direction} {_qty(held_abs)} {name}; a {verb} to open would close it. "
                f"Use {verb} to close (up to {_qty(held_abs)})"
            )
        return PositionEffect.OPEN
    if not reduces:
        have = "no position" if held == 0 else f"a {direction} position of {_qty(held_abs)}"
        raise PositionEffectError(f"nothing to close: you hold {have} in {name}")
    if quantity > held_abs:
        raise PositionEffectError(
            f"you are {direction} only {_qty(held_abs)} {name}; cannot {verb} {_qty(quantity)} "
            f"to close"
        )
    return PositionEffect.CLOSE


def _qty(quantity: Decimal) -> str:
    return f"{quantity.normalize():f}"
