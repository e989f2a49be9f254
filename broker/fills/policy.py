"""Pure price math for the fill-retry ("chase") engine. No I/O.

Prices here are *signed* in the SDK convention: negative = Debit (we pay), positive = Credit
(we receive). With that convention "more aggressive" always means a *lower* signed price (pay
more or receive less), and "better for the trader" always means a higher one. The order's
effect is fixed at submission (a replace keeps the original effect), so stepping works on the
price magnitude:

* Debit orders start at the net mid rounded *down* (passive) and step *up* toward the ask side.
* Credit orders start at the net mid rounded *up* (passive) and step *down* toward the bid side.

Every price is on the tick schedule, and no step ever goes beyond the current natural (far-side)
price. The natural is itself rounded passively when it is off the ladder, so "never beyond the
natural" holds even for spread nets that are not on the spread tick.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from tastytrade.utils import PriceEffect

from broker.orders.pricing import passive_side, signed_price, split_signed_price
from broker.ticks import TickSchedule

__all__ = [
    "ChaseParams",
    "ChaseParamsError",
    "PriceLadder",
    "effect_of",
    "half_spread",
    "improvement",
    "improvement_pct_of_half_spread",
]

MAX_TICKS_PER_STEP = 3
MAX_STEPS_LIMIT = 10
MAX_INTERVAL_S = 300.0


class ChaseParamsError(ValueError):
    """Chase settings outside their allowed range; the message names the setting."""


def effect_of(price: Decimal) -> PriceEffect:
    """The effect a signed limit price carries; a zero price is refused (it has none)."""
    _, effect = split_signed_price(price)
    if effect is PriceEffect.NONE:
        raise ChaseParamsError("a limit price of 0 has no debit/credit effect; refusing it")
    return effect


@dataclass(frozen=True, slots=True)
class ChaseParams:
    """Engine settings (per guild, overridable per command).

    ``max_steps`` is the maximum number of replacements; 0 means "no chase, just the limit".
    ``ticks`` is how many ticks each replacement moves toward the far side (1-3).
    ``interval_s`` is the wait between looking at the order.
    """

    interval_s: float = 5.0
    ticks: int = 2
    max_steps: int = 3

    def __post_init__(self) -> None:
        if isinstance(self.interval_s, bool) or not isinstance(self.interval_s, int | float):
            raise ChaseParamsError("chase interval must be a number of seconds")
        if not 0 < self.interval_s <= MAX_INTERVAL_S:
            raise ChaseParamsError(
                f"chase interval must be between 0 and {MAX_INTERVAL_S:g} seconds, "
                f"got {self.interval_s:g}"
            )
        if isinstance(self.ticks, bool) or not isinstance(self.ticks, int):
            raise ChaseParamsError("chase ticks must be a whole number")
        if not 1 <= self.ticks <= MAX_TICKS_PER_STEP:
            raise ChaseParamsError(
                f"chase ticks per step must be 1 to {MAX_TICKS_PER_STEP}, got {self.ticks}"
            )
        if isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int):
            raise ChaseParamsError("chase steps must be a whole number")
        if not 0 <= self.max_steps <= MAX_STEPS_LIMIT:
            raise ChaseParamsError(
                f"chase steps must be 0 to {MAX_STEPS_LIMIT} (0 = no chase), got {self.max_steps}"
            )

    def override(
        self,
        *,
        max_steps: int | None = None,
        ticks: int | None = None,
        interval_s: float | None = None,
    ) -> ChaseParams:
        """Per-command overrides on top of the guild's settings (``chase=0`` → max_steps=0)."""
        return replace(
            self,
            max_steps=self.max_steps if max_steps is None else max_steps,
            ticks=self.ticks if ticks is None else ticks,
            interval_s=self.interval_s if interval_s is None else interval_s,
        )


@dataclass(frozen=True, slots=True)
class PriceLadder:
    """Start and step prices for one order: its tick schedule and its (fixed) effect."""

    schedule: TickSchedule
    effect: PriceEffect

    def __post_init__(self) -> None:
        passive_side(self.effect)  # refuses PriceEffect.NONE

    def _sign(self, magnitude: Decimal) -> Decimal:
        return signed_price(magnitude, self.effect)

    def limit_toward_natural(self, natural: Decimal) -> Decimal:
        """The most aggressive valid signed price that is not beyond ``natural``.

        If the natural has crossed to the other effect (a credit order whose bid side is now a
        debit), or rounds to zero, the limit is the smallest valid price on our side: we never
        flip the effect and never send a zero price.
        """
        floor_price = self.schedule.step(Decimal(0), 1, "up")
        if self.effect is PriceEffect.DEBIT:
            magnitude = self.schedule.round_down(max(-natural, Decimal(0)))
        else:
            magnitude = self.schedule.round_up(max(natural, Decimal(0)))
        return self._sign(max(magnitude, floor_price))

    def start(self, mid: Decimal, natural: Decimal) -> Decimal:
        """The opening limit: the mid rounded toward the passive side, never beyond the natural.

        ``mid`` and ``natural`` are signed; a mid on the other side of zero (possible for a
        near-zero spread net) is clamped to the smallest valid price on our side.
        """
        floor_price = self.schedule.step(Decimal(0), 1, "up")
        if self.effect is PriceEffect.DEBIT:
            magnitude = self.schedule.round_down(max(-mid, Decimal(0)))
        else:
            magnitude = self.schedule.round_up(max(mid, Decimal(0)))
        magnitude = max(magnitude, floor_price)
        start = self._sign(magnitude)
        return self.clamp(start, natural)

    def clamp(self, price: Decimal, natural: Decimal) -> Decimal:
        """``price`` or, if that is beyond the natural, the natural's limit."""
        limit = self.limit_toward_natural(natural)
        # More aggressive = lower signed price; never go below the limit.
        return max(price, limit)

    def next(self, current: Decimal, natural: Decimal, ticks: int) -> Decimal | None:
        """The price ``ticks`` ticks further toward the far side, capped at the natural.

        Returns ``None`` when there is nothing more aggressive to move to (already at or beyond
        the current natural): replacing would only churn the order.
        """
        if not 1 <= ticks <= MAX_TICKS_PER_STEP:
            raise ChaseParamsError(f"ticks per step must be 1 to {MAX_TICKS_PER_STEP}")
        magnitude = abs(current)
        if self.effect is PriceEffect.DEBIT:
            stepped = self.schedule.step(magnitude, ticks, "up")
        else:
            # Step one rung at a time: the ladder ends at zero, and we stop one tick above it.
            floor_price = self.schedule.step(Decimal(0), 1, "up")
            stepped = magnitude
            for _ in range(ticks):
                if stepped <= floor_price:
                    break
                stepped = max(self.schedule.step(stepped, 1, "down"), floor_price)
        candidate = self.clamp(self._sign(stepped), natural)
        if candidate >= current:
            return None
        return candidate

    def is_valid(self, price: Decimal) -> bool:
        magnitude, effect = split_signed_price(price)
        return effect is self.effect and self.schedule.is_on_tick(magnitude)


def improvement(fill_price: Decimal, natural: Decimal) -> Decimal:
    """Per-unit price improvement versus the natural (positive = better for the trader).

    Both prices are signed (SDK convention), so one formula covers debits and credits.
    """
    return fill_price - natural


def half_spread(mid: Decimal, natural: Decimal) -> Decimal:
    """Distance from the mid to the far side (both signed), always >= 0."""
    return abs(natural - mid)


def improvement_pct_of_half_spread(
    fill_price: Decimal, natural: Decimal, mid: Decimal
) -> Decimal | None:
    """Improvement as a percentage of the half-spread; ``None`` for a locked market."""
    half = half_spread(mid, natural)
    if half == 0:
        return None
    return improvement(fill_price, natural) / half * 100
