"""Configuration for the paper exchange.

Everything a test or benchmark may want to tune lives here; defaults give a realistic,
deliberately not-too-generous exchange.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

MIN_TOKEN_TTL = 60


@dataclass
class FillModelConfig:
    """Parameters of the fill model (see `broker.paper.engine` for the model itself).

    The running exchange keeps its own copy at `ex.market.fills`, which may be changed
    while it runs (e.g. `ex.market.fills.hazard_per_second = 0` to stop passive fills).

    A resting limit order strictly inside the spread fills with a per-second hazard
    ``hazard_per_second * exp(-distance_decay * d / half_spread)`` where ``d`` is its
    distance from the far side of the market.
    """

    hazard_per_second: float = 0.5
    distance_decay: float = 3.0
    # Fraction of the order quantity filled per fill event; None = fill all at once.
    partial_fill_ratio: Decimal | None = None
    # Seconds between two evaluations of resting orders in real time.
    evaluation_interval: float = 0.15
    # Real seconds between Routed and Live (and Cancel Requested -> Cancelled).
    live_delay: float = 0.01
    cancel_delay: float = 0.01

    def __post_init__(self) -> None:
        ratio = self.partial_fill_ratio
        if ratio is not None and not Decimal(0) < ratio <= Decimal(1):
            raise ValueError("partial_fill_ratio must be in (0, 1]")
        if self.hazard_per_second < 0 or self.distance_decay < 0:
            raise ValueError("hazard_per_second and distance_decay must be >= 0")
        if self.evaluation_interval <= 0:
            raise ValueError("evaluation_interval must be > 0")


@dataclass(frozen=True)
class MarketConfig:
    """Parameters of the quote simulator."""

    # Multiplies every underlying's annual volatility for the random walk (not option vols).
    volatility_scale: float = 1.0
    # Annual drift of every underlying.
    drift: float = 0.0
    # Equity/future spread as a fraction of price (rounded out to at least one tick).
    spread_fraction: float = 0.00003
    # Option spread: this fraction of the option's value, capped at
    # `option_spread_cap_fraction` of the underlying price, and at least one tick.
    option_spread_fraction: float = 0.015
    option_spread_cap_fraction: float = 0.0005
    risk_free_rate: float = 0.04
    # Simulation grid in seconds: prices are a deterministic function of (seed, grid step).
    grid_seconds: float = 1.0


@dataclass(frozen=True)
class PaperConfig:
    """Configuration of one `PaperExchange`."""

    seed: int = 0
    token_ttl: int = 900
    host: str = "127.0.0.1"
    port: int = 0
    # When False only `provider_secret` / `refresh_tokens` are accepted at /oauth/token.
    accept_any_credentials: bool = True
    provider_secret: str | None = field(default=None, repr=False)
    refresh_tokens: tuple[str, ...] = field(default=(), repr=False)
    account_number: str = "5WT00001"
    cash_account: bool = False
    starting_cash: Decimal = Decimal("100000")
    # Start of the exchange clock; None = now. The clock then runs with wall time
    # (real_time=True) or only moves through clock.advance()/market.step() (False).
    start_time: datetime | None = None
    real_time: bool = True
    market: MarketConfig = field(default_factory=MarketConfig)
    fills: FillModelConfig = field(default_factory=FillModelConfig)
    max_legs: int = 4
    # Net-price tick of multi-leg equity-option orders (future options use their schedule).
    spread_price_tick: Decimal = Decimal("0.01")

    def __post_init__(self) -> None:
        if self.token_ttl < MIN_TOKEN_TTL:
            raise ValueError(f"token_ttl must be at least {MIN_TOKEN_TTL} seconds")
        if self.start_time is not None and self.start_time.tzinfo is None:
            raise ValueError("start_time must be timezone-aware")
