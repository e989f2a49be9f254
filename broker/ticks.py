"""Tick-size schedules: which limit prices an instrument accepts, and how to round onto them.

Pure (no I/O, no SDK import). A schedule is the ordered list the API publishes as
``tick-sizes`` / ``option-tick-sizes``: an entry with a threshold applies to prices *below* that
threshold, the last entry applies at or above the previous threshold (tastytrade-api.md §10).

The valid prices form a ladder: in each band, the non-negative multiples of that band's tick
that fall inside the band. Prices are magnitudes (the debit/credit sign lives elsewhere), so the
ladder starts at 0; callers refuse a zero limit price themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum
from typing import Literal, Protocol

__all__ = ["Side", "TickBand", "TickError", "TickSchedule", "TickSizeLike"]


class TickError(ValueError):
    """A schedule or a price that tick math cannot work with (the message says why)."""


class Side(StrEnum):
    """Which side of the market a price is for: buyers round down to be passive, sellers up."""

    BUY = "buy"
    SELL = "sell"


class TickSizeLike(Protocol):
    """Anything shaped like the SDK's ``TickSize`` (value + optional threshold)."""

    @property
    def value(self) -> Decimal: ...

    @property
    def threshold(self) -> Decimal | None: ...


@dataclass(frozen=True, slots=True)
class TickBand:
    """Prices in ``[lower, upper)`` trade in multiples of ``tick``; ``upper=None`` is unbounded."""

    tick: Decimal
    lower: Decimal
    upper: Decimal | None

    def contains(self, price: Decimal) -> bool:
        return price >= self.lower and (self.upper is None or price < self.upper)


def _to_decimal(value: Decimal | int | str, what: str) -> Decimal:
    if isinstance(value, float):
        raise TickError(f"{what} must be a Decimal, not a float ({value!r})")
    try:
        result = Decimal(value)
    except ArithmeticError as exc:
        raise TickError(f"{what} is not a number: {value!r}") from exc
    if not result.is_finite():
        raise TickError(f"{what} must be finite, got {value!r}")
    return result


def _floor_multiple(price: Decimal, tick: Decimal) -> Decimal:
    return (price / tick).to_integral_value(rounding=ROUND_FLOOR) * tick


def _ceil_multiple(price: Decimal, tick: Decimal) -> Decimal:
    return (price / tick).to_integral_value(rounding=ROUND_CEILING) * tick


@dataclass(frozen=True, slots=True)
class TickSchedule:
    """An ordered, validated tick schedule. Build it with :meth:`from_sizes`."""

    bands: tuple[TickBand, ...]

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_sizes(
        cls, sizes: Iterable[tuple[Decimal | int | str, Decimal | int | str | None]]
    ) -> TickSchedule:
        """``[(tick, threshold | None), ...]`` in API order: ``[("0.01", "3"), ("0.05", None)]``.

        The last entry's threshold (if any) is ignored: it applies to every higher price.
        """
        entries = list(sizes)
        if not entries:
            raise TickError("a tick schedule needs at least one tick size")
        bands: list[TickBand] = []
        lower = Decimal(0)
        for index, (raw_tick, raw_threshold) in enumerate(entries):
            tick = _to_decimal(raw_tick, "tick size")
            if tick <= 0:
                raise TickError(f"tick size must be positive, got {tick}")
            is_last = index == len(entries) - 1
            if is_last:
                bands.append(TickBand(tick=tick, lower=lower, upper=None))
                break
            if raw_threshold is None:
                raise TickError("only the last tick size may omit its threshold")
            threshold = _to_decimal(raw_threshold, "tick threshold")
            if threshold <= lower:
                raise TickError(
                    f"tick thresholds must increase and be positive, got {threshold} after {lower}"
                )
            bands.append(TickBand(tick=tick, lower=lower, upper=threshold))
            lower = threshold
        return cls(bands=tuple(bands))

    @classmethod
    def from_tick_sizes(cls, sizes: Sequence[TickSizeLike]) -> TickSchedule:
        """From the SDK's ``list[TickSize]`` (``Equity.option_tick_sizes`` and friends)."""
        return cls.from_sizes((size.value, size.threshold) for size in sizes)

    @classmethod
    def uniform(cls, tick: Decimal | int | str) -> TickSchedule:
        """A single tick for every price (e.g. a future's scalar ``tick-size``)."""
        return cls.from_sizes([(tick, None)])

    def to_sizes(self) -> list[tuple[Decimal, Decimal | None]]:
        """The inverse of :meth:`from_sizes` (for canonical JSON and display)."""
        return [(band.tick, band.upper) for band in self.bands]

    def describe(self) -> str:
        """Human-readable, e.g. ``0.01 below 3, 0.05 above``."""
        parts = [
            f"{band.tick} below {band.upper}" if band.upper is not None else f"{band.tick}"
            for band in self.bands
        ]
        if len(parts) == 1:
            return parts[0]
        return ", ".join(parts[:-1]) + f", {parts[-1]} above"

    # -- queries ------------------------------------------------------------------------------

    def _check_price(self, price: Decimal) -> Decimal:
        value = _to_decimal(price, "price")
        if value < 0:
            raise TickError(f"price must not be negative, got {value}")
        return value

    def _band_index(self, price: Decimal) -> int:
        for index, band in enumerate(self.bands):
            if band.upper is None or price < band.upper:
                return index
        raise AssertionError("the last band is unbounded")  # pragma: no cover

    def tick_at(self, price: Decimal) -> Decimal:
        """The tick that applies at ``price``."""
        return self.bands[self._band_index(self._check_price(price))].tick

    def is_on_tick(self, price: Decimal) -> bool:
        value = self._check_price(price)
        return value % self.tick_at(value) == 0

    def round_down(self, price: Decimal) -> Decimal:
        """The highest valid price at or below ``price``."""
        value = self._check_price(price)
        index = self._band_index(value)
        return self._max_at_or_below(index, value)

    def round_up(self, price: Decimal) -> Decimal:
        """The lowest valid price at or above ``price``."""
        value = self._check_price(price)
        index = self._band_index(value)
        return self._min_at_or_above(index, value)

    def round_passive(self, price: Decimal, side: Side | Literal["buy", "sell"]) -> Decimal:
        """Round away from the market: a buyer bids lower (down), a seller offers higher (up)."""
        return self.round_down(price) if Side(side) is Side.BUY else self.round_up(price)

    def round_aggressive(self, price: Decimal, side: Side | Literal["buy", "sell"]) -> Decimal:
        """Round toward the market: a buyer pays up, a seller gives down."""
        return self.round_up(price) if Side(side) is Side.BUY else self.round_down(price)

    def nearest_valid(self, price: Decimal) -> tuple[Decimal, Decimal]:
        """``(below, above)`` bracketing ``price``; both equal ``price`` when it is on tick."""
        return self.round_down(price), self.round_up(price)

    def step(self, price: Decimal, ticks: int = 1, toward: Literal["up", "down"] = "up") -> Decimal:
        """Move ``ticks`` rungs along the ladder of valid prices.

        Each rung uses the tick valid where the move starts, so crossing a threshold changes
        the step size: on ``0.01 below 3, 0.05 above``, 2.98 +2 → 3.00, +3 → 3.05, and
        3.00 −1 → 2.99. An off-tick start counts its first rung as reaching the next valid
        price in that direction (2.985 +1 → 2.99).
        """
        if ticks < 0:
            raise TickError(f"ticks must not be negative, got {ticks}")
        if toward not in ("up", "down"):
            raise TickError(f"toward must be 'up' or 'down', got {toward!r}")
        value = self._check_price(price)
        for _ in range(ticks):
            value = self._next_above(value) if toward == "up" else self._next_below(value)
        return value

    # -- ladder walking -----------------------------------------------------------------------

    def _max_at_or_below(self, index: int, limit: Decimal) -> Decimal:
        """Highest valid price <= limit, searching band ``index`` and then lower bands."""
        while index >= 0:
            band = self.bands[index]
            top = limit if band.contains(limit) else None
            if top is None:
                # limit lies above this band: take the highest multiple strictly below upper.
                assert band.upper is not None
                candidate = _ceil_multiple(band.upper, band.tick) - band.tick
            else:
                candidate = _floor_multiple(top, band.tick)
            if candidate >= band.lower:
                return candidate
            index -= 1
        return Decimal(0)

    def _min_at_or_above(self, index: int, limit: Decimal) -> Decimal:
        """Lowest valid price >= limit, searching band ``index`` and then higher bands."""
        while True:
            band = self.bands[index]
            candidate = _ceil_multiple(max(limit, band.lower), band.tick)
            if band.upper is None or candidate < band.upper:
                return candidate
            index += 1

    def _next_above(self, value: Decimal) -> Decimal:
        index = self._band_index(value)
        band = self.bands[index]
        candidate = _floor_multiple(value, band.tick) + band.tick
        if band.upper is None or candidate < band.upper:
            return candidate
        return self._min_at_or_above(index + 1, band.upper)

    def _next_below(self, value: Decimal) -> Decimal:
        index = self._band_index(value)
        band = self.bands[index]
        candidate = _ceil_multiple(value, band.tick) - band.tick
        if candidate >= band.lower:
            return candidate
        if index == 0:
            raise TickError(f"there is no valid price below {value}")
        return self._max_at_or_below(index - 1, band.lower)
