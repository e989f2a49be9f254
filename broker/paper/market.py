"""Quote simulator.

Each equity and each futures product (/MES follows /ES) follows a geometric random
walk. The path is a deterministic function of the seed and of exchange time: one
coarse step per minute from a per-driver RNG, filled in second by second with a
Brownian bridge seeded by (seed, driver, minute). Prices therefore do not depend on
how the clock was stepped or on which symbols were queried, and long clock jumps
cost one draw per simulated minute.

The market moves in ticks of `grid_seconds`: every quote is priced at the start of the
current tick (options and futures included), so quotes are computed once per tick and
`revision` (bumped when a tick passes or a quote is pinned or unpinned) tells callers
when values derived from quotes (marks, margin) must be recomputed.

Bid/ask of underlyings: a spread of `spread_fraction` of the price, at least one tick.
Options: Black-Scholes (Black-76 for future options) on the underlying's current mid
with a flat volatility plus a mild smile, spread `option_spread_fraction` of the
theoretical value, at least one tick, on the instrument's tick schedule.
`set_quote()` pins a quote (pinned underlyings also drive their options).
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from broker.paper import calendar
from broker.paper.clock import SimClock
from broker.paper.config import FillModelConfig, MarketConfig
from broker.paper.universe import (
    EQUITY_TICKS,
    EquitySpec,
    FutureContract,
    FutureOptionContract,
    Instrument,
    OptionContract,
    TickSchedule,
    Universe,
)

SECONDS_PER_YEAR = 365.0 * 86400.0
STEPS_PER_MINUTE = 60


class UnknownSymbolError(KeyError):
    """Raised for a symbol that is not in the universe."""


@dataclass(frozen=True)
class Quote:
    symbol: str
    bid: Decimal
    ask: Decimal
    pinned: bool = False

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2

    @property
    def half_spread(self) -> Decimal:
        return (self.ask - self.bid) / 2


class _Driver:
    """Random walk of one log-price, defined on a fine grid via minute-level anchors."""

    def __init__(self, key: str, seed: int, spot: float, sigma: float, drift: float) -> None:
        self._key_seed = zlib.crc32(key.encode()) ^ (seed * 0x9E3779B1 & 0xFFFFFFFF)
        self._coarse_rng = random.Random(self._key_seed)
        self._sigma_step = sigma / math.sqrt(SECONDS_PER_YEAR)
        self._drift_step = (drift - 0.5 * sigma * sigma) / SECONDS_PER_YEAR
        self._anchors: list[float] = [math.log(spot)]
        self._bridge_minute = -1
        self._bridge: list[float] = []

    def _anchor(self, minute: int) -> float:
        while len(self._anchors) <= minute:
            z = self._coarse_rng.gauss(0.0, 1.0)
            step = (
                self._drift_step * STEPS_PER_MINUTE
                + self._sigma_step * math.sqrt(STEPS_PER_MINUTE) * z
            )
            self._anchors.append(self._anchors[-1] + step)
        return self._anchors[minute]

    def price(self, step: int) -> float:
        minute, offset = divmod(step, STEPS_PER_MINUTE)
        start = self._anchor(minute)
        if offset == 0:
            return math.exp(start)
        end = self._anchor(minute + 1)
        if self._bridge_minute != minute:
            rng = random.Random(self._key_seed * 1_000_003 + minute)
            walk = [0.0]
            for _ in range(STEPS_PER_MINUTE):
                walk.append(walk[-1] + rng.gauss(0.0, 1.0))
            total = walk[-1]
            self._bridge = [w - (i / STEPS_PER_MINUTE) * total for i, w in enumerate(walk)]
            self._bridge_minute = minute
        fraction = offset / STEPS_PER_MINUTE
        log_price = start + fraction * (end - start) + self._sigma_step * self._bridge[offset]
        return math.exp(log_price)


def floor_to_tick(price: Decimal, ticks: TickSchedule) -> Decimal:
    tick = ticks.tick_for(price)
    return (price / tick).to_integral_value(rounding=ROUND_FLOOR) * tick


def ceil_to_tick(price: Decimal, ticks: TickSchedule) -> Decimal:
    tick = ticks.tick_for(price)
    return (price / tick).to_integral_value(rounding=ROUND_CEILING) * tick


def _norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def black_price(
    forward: float, strike: float, years: float, vol: float, discount: float, call: bool
) -> float:
    """Black-76 price on a forward (for equities pass the rate-grown spot)."""
    if years <= 0 or vol <= 0:
        intrinsic = forward - strike if call else strike - forward
        return max(intrinsic, 0.0) * discount
    sd = vol * math.sqrt(years)
    d1 = (math.log(forward / strike) + 0.5 * sd * sd) / sd
    d2 = d1 - sd
    if call:
        return discount * (forward * _norm_cdf(d1) - strike * _norm_cdf(d2))
    return discount * (strike * _norm_cdf(-d2) - forward * _norm_cdf(-d1))


class Market:
    """Bid/ask for every instrument of the universe at the market's current time."""

    def __init__(
        self,
        universe: Universe,
        clock: SimClock,
        config: MarketConfig,
        seed: int,
        fills: FillModelConfig | None = None,
    ) -> None:
        self.universe = universe
        self.config = config
        # The fill model's parameters; tests and benchmarks may change them at run time.
        self.fills = fills or FillModelConfig()
        self._clock = clock
        self._elapsed = clock.elapsed()
        self._pinned: dict[str, Quote] = {}
        # Model quotes of the current tick (cleared whenever the tick or a pin changes).
        self._cache: dict[str, Quote] = {}
        self.revision = 0
        self._drivers: dict[str, _Driver] = {}
        self._spots: dict[str, float] = {}
        for spec in universe.equities.values():
            self._add_driver(spec.symbol, float(spec.spot), spec.volatility, seed)
        for product in universe.products.values():
            if product.driver not in self._drivers:
                self._add_driver(product.driver, float(product.spot), product.volatility, seed)
        # Set by the exchange: brings the market (and the order book) up to the clock.
        self.sync: Callable[[], None] = self._sync_to_clock
        # Told after every change of quotes (a new tick, a pin or an unpin): the DXLink feed.
        self._listeners: list[Callable[[], None]] = []

    def _add_driver(self, key: str, spot: float, vol: float, seed: int) -> None:
        sigma = vol * self.config.volatility_scale
        self._drivers[key] = _Driver(key, seed, spot, sigma, self.config.drift)
        self._spots[key] = spot

    # ------------------------------------------------------------------ time
    @property
    def now(self) -> datetime:
        return self._clock.start + timedelta(seconds=self._elapsed)

    def advance_to(self, elapsed: float) -> None:
        """Move the market's time forward (never backwards)."""
        if elapsed > self._elapsed:
            tick = self._step_index()
            self._elapsed = elapsed
            if self._step_index() != tick:
                self._invalidate()

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call `listener()` whenever quotes may have changed (it must not block)."""
        self._listeners.append(listener)

    def _invalidate(self) -> None:
        self._cache.clear()
        self.revision += 1
        for listener in self._listeners:
            listener()

    def _sync_to_clock(self) -> None:
        self.advance_to(self._clock.elapsed())

    def step(self, seconds: float) -> None:
        """Advance the simulation and the exchange clock by `seconds`."""
        self._clock.advance(seconds)

    def _step_index(self) -> int:
        return int(self._elapsed // self.config.grid_seconds)

    @property
    def _priced_at(self) -> datetime:
        """The start of the current tick: the moment every model quote is priced at."""
        seconds = self._step_index() * self.config.grid_seconds
        return self._clock.start + timedelta(seconds=seconds)

    def _driver_price(self, key: str) -> float:
        return self._drivers[key].price(self._step_index())

    # ---------------------------------------------------------------- quotes
    def set_quote(self, symbol: str, bid: Decimal | str, ask: Decimal | str) -> Quote:
        """Pin `symbol`'s quote until `clear_quote()`; raises for unknown symbols."""
        if self.universe.lookup(symbol) is None:
            raise UnknownSymbolError(symbol)
        bid_d, ask_d = Decimal(bid), Decimal(ask)
        if bid_d < 0 or ask_d < bid_d:
            raise ValueError("a quote needs 0 <= bid <= ask")
        quote = Quote(symbol, bid_d, ask_d, pinned=True)
        self._pinned[symbol] = quote
        self._invalidate()
        return quote

    def clear_quote(self, symbol: str | None = None) -> None:
        """Unpin one symbol, or every symbol when `symbol` is None."""
        if symbol is None:
            self._pinned.clear()
        else:
            self._pinned.pop(symbol, None)
        self._invalidate()

    def quote(self, symbol: str) -> Quote:
        """Current bid/ask of `symbol` (catches the exchange up to its clock first)."""
        self.sync()
        return self.quote_now(symbol)

    def quote_now(self, symbol: str) -> Quote:
        """Bid/ask at the market's current time, without catching up."""
        pinned = self._pinned.get(symbol)
        if pinned is not None:
            return pinned
        instrument = self.universe.lookup(symbol)
        if instrument is None:
            raise UnknownSymbolError(symbol)
        return self.instrument_quote(instrument)

    def instrument_quote(self, instrument: Instrument) -> Quote:
        pinned = self._pinned.get(instrument.symbol)
        if pinned is not None:
            return pinned
        cached = self._cache.get(instrument.symbol)
        if cached is None:
            cached = self._cache[instrument.symbol] = self._model_quote(instrument)
        return cached

    def _model_quote(self, instrument: Instrument) -> Quote:
        if isinstance(instrument, EquitySpec):
            return self._underlying_quote(
                instrument.symbol, self._driver_price(instrument.symbol), EQUITY_TICKS
            )
        if isinstance(instrument, FutureContract):
            ticks = TickSchedule(((instrument.product.tick, None),))
            return self._underlying_quote(
                instrument.symbol, self._future_model_price(instrument), ticks
            )
        theo, underlying, ticks = self._option_theo(instrument)
        return self._option_quote(instrument.symbol, theo, underlying, ticks)

    def _underlying_quote(self, symbol: str, price: float, ticks: TickSchedule) -> Quote:
        mid = Decimal(repr(price))
        width = max(ticks.tick_for(mid), mid * Decimal(repr(self.config.spread_fraction)))
        bid = floor_to_tick(mid - width / 2, ticks)
        ask = ceil_to_tick(mid + width / 2, ticks)
        if ask <= bid:
            ask = bid + ticks.tick_for(bid)
        return Quote(symbol, max(bid, Decimal(0)), ask)

    def _option_quote(
        self, symbol: str, theo: float, underlying: Decimal, ticks: TickSchedule
    ) -> Quote:
        theo_d = Decimal(repr(round(theo, 6)))
        width = min(
            theo_d * Decimal(repr(self.config.option_spread_fraction)),
            underlying * Decimal(repr(self.config.option_spread_cap_fraction)),
        )
        bid = floor_to_tick(theo_d - width / 2, ticks)
        ask = ceil_to_tick(theo_d + width / 2, ticks)
        if bid < 0:
            bid = Decimal("0")
        if ask <= bid:
            ask = bid + ticks.tick_for(bid)
        return Quote(symbol, bid, ask)

    # -------------------------------------------------------------- pricing
    def underlying_mid(self, symbol: str) -> Decimal:
        """Mid of an equity or future (pinned quotes win)."""
        return self.quote_now(symbol).mid

    def _future_model_price(self, future: FutureContract) -> float:
        front = self._driver_price(future.product.driver)
        years = max((future.expires_at - self._priced_at).total_seconds(), 0.0)
        years /= SECONDS_PER_YEAR
        return front * (1.0 + future.product.carry * years)

    def _option_theo(
        self, option: OptionContract | FutureOptionContract
    ) -> tuple[float, Decimal, TickSchedule]:
        years = max((option.expiration.expires_at - self._priced_at).total_seconds(), 0.0)
        years /= SECONDS_PER_YEAR
        rate = self.config.risk_free_rate
        strike = float(option.strike)
        if isinstance(option, OptionContract):
            spec = self.universe.equities[option.underlying]
            underlying = self.underlying_mid(option.underlying)
            forward = float(underlying) * math.exp(rate * years)
            vol, ticks = spec.volatility, spec.option_ticks
        else:
            underlying = self.underlying_mid(option.underlying.symbol)
            forward = float(underlying)
            product = option.underlying.product
            vol = product.volatility
            ticks = product.option_ticks or TickSchedule(((product.tick, None),))
        moneyness = math.log(strike / forward) if forward > 0 else 0.0
        smile_vol = vol * (1.0 + 0.8 * moneyness * moneyness - 0.15 * moneyness)
        theo = black_price(
            forward, strike, years, smile_vol, math.exp(-rate * years), option.option_type == "C"
        )
        return theo, underlying, ticks

    def tick_schedule(self, instrument: Instrument) -> TickSchedule:
        """The price tick schedule that applies to single-leg orders in `instrument`."""
        if isinstance(instrument, EquitySpec):
            return EQUITY_TICKS
        if isinstance(instrument, OptionContract):
            return self.universe.equities[instrument.underlying].option_ticks
        if isinstance(instrument, FutureContract):
            return TickSchedule(((instrument.product.tick, None),))
        product = instrument.underlying.product
        return product.option_ticks or TickSchedule(((product.tick, None),))

    # ----------------------------------------------------------- market data
    def market_data(self, instrument: Instrument) -> dict[str, object]:
        """A `/market-data` item (MarketData model plus the usual extra keys)."""
        quote = self.instrument_quote(instrument)
        now = self.now
        today = calendar.ny_date(now)
        prev_day = calendar.previous_trading_day(today - timedelta(days=1))
        mid = quote.mid
        ticks = self.tick_schedule(instrument)
        size_seed = zlib.crc32(instrument.symbol.encode())
        item: dict[str, object] = {
            "symbol": instrument.symbol,
            "instrument-type": instrument.kind.value,
            "updated-at": now,
            "bid": quote.bid,
            "bid-size": Decimal(10 + size_seed % 40 * 10),
            "ask": quote.ask,
            "ask-size": Decimal(10 + size_seed // 7 % 40 * 10),
            "mid": mid,
            "mark": mid,
            "last": mid,
            "tick-size": ticks.tick_for(mid),
            "close-price-type": "Regular",
            "summary-date": today,
            "prev-close-date": prev_day,
            "prev-close-price-type": "Final",
            "halt-start-time": -1,
            "halt-end-time": -1,
            "is-trading-halted": False,
        }
        if isinstance(instrument, EquitySpec | FutureContract):
            item["high-limit-price"] = ceil_to_tick(mid * Decimal("1.05"), ticks)
            item["low-limit-price"] = floor_to_tick(mid * Decimal("0.95"), ticks)
            item.update(self._day_statistics(instrument, mid, prev_day, today, ticks))
            item["last-mkt"] = mid
            item["beta"] = Decimal("1.0")
            item["volume"] = Decimal(100_000 + size_seed % 9_000_000)
        return item

    def _day_statistics(
        self,
        instrument: EquitySpec | FutureContract,
        mid: Decimal,
        prev_day: date,
        today: date,
        ticks: TickSchedule,
    ) -> dict[str, object]:
        """Open / previous close / day and year range from the simulated path.

        Before the clock started the path is flat at the starting spot; the year range is
        a plausible band around it, not a simulated history.
        """
        if isinstance(instrument, EquitySpec):
            key, spot = instrument.symbol, instrument.spot
        else:
            key, spot = instrument.product.driver, instrument.product.spot

        def price_at(moment: datetime | None) -> Decimal:
            if moment is None:
                return spot
            step = int((moment - self._clock.start).total_seconds() // self.config.grid_seconds)
            if step <= 0 or step > self._step_index():
                return spot
            value = Decimal(repr(self._drivers[key].price(step)))
            if isinstance(instrument, FutureContract):
                value *= Decimal(
                    repr(self._future_model_price(instrument) / self._driver_price(key))
                )
            return floor_to_tick(value, ticks)

        previous = calendar.session_on(prev_day)
        session = calendar.session_on(today)
        prev_close = price_at(previous.close if previous else None)
        opened = price_at(session.open if session else None) if session else prev_close
        return {
            "prev-close": prev_close,
            "open": opened,
            "day-high-price": max(opened, mid),
            "day-low-price": min(opened, mid),
            "year-high-price": ceil_to_tick(max(mid, spot) * Decimal("1.25"), ticks),
            "year-low-price": floor_to_tick(min(mid, spot) * Decimal("0.75"), ticks),
        }
