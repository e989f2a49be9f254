"""Typed order-ticket model produced by the order-language parser.

Prices are magnitudes (always positive `Decimal`); the sign lives in `price_effect`, which is
how the Tastytrade API and SDK express it (positive price plus Debit/Credit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class InstrumentKind(StrEnum):
    EQUITY = "Equity"
    EQUITY_OPTION = "Equity Option"
    FUTURE = "Future"
    FUTURE_OPTION = "Future Option"


class OptionType(StrEnum):
    CALL = "C"
    PUT = "P"


class PriceMode(StrEnum):
    LIMIT = "limit"
    MID = "mid"
    MARKET = "market"


class PriceEffect(StrEnum):
    DEBIT = "Debit"
    CREDIT = "Credit"


class TimeInForce(StrEnum):
    DAY = "Day"
    GTC = "GTC"


class Structure(StrEnum):
    """The shape of the order, for previews and for formatting a ticket back to text."""

    EQUITY = "equity"
    FUTURE = "future"
    SINGLE = "single"  # one option leg
    VERTICAL = "vertical"  # S1/S2 with one type: first strike gets the order's side
    STRANGLE = "strangle"  # one call and one put, same side (includes straddles)
    IRON_CONDOR = "iron_condor"  # IC P1/P2/C1/C2
    COMBO = "combo"  # any other mix of up to 4 option legs


class Refusal(StrEnum):
    """Machine-readable reason a text was refused (for grouping, metrics and tests)."""

    EMPTY = "empty"
    TOO_LONG = "too_long"
    NO_ACTION = "no_action"
    MULTIPLE_ORDERS = "multiple_orders"
    BAD_QUANTITY = "bad_quantity"
    NO_SYMBOL = "no_symbol"
    BAD_SYMBOL = "bad_symbol"
    MIXED_UNDERLYINGS = "mixed_underlyings"
    UNKNOWN_WORD = "unknown_word"
    NO_OPTION_TYPE = "no_option_type"
    NO_EXPIRATION = "no_expiration"
    NO_STRIKE = "no_strike"
    BAD_DATE = "bad_date"
    PAST_EXPIRATION = "past_expiration"
    NOT_TRADING_DAY = "not_trading_day"
    TWO_EXPIRATIONS = "two_expirations"
    BAD_STRIKE = "bad_strike"
    BAD_SPREAD = "bad_spread"
    DUPLICATE_LEG = "duplicate_leg"
    TOO_MANY_LEGS = "too_many_legs"
    BAD_PRICE = "bad_price"
    TWO_PRICES = "two_prices"
    EFFECT_CONFLICT = "effect_conflict"
    GTC_MARKET = "gtc_market"
    DUPLICATE_SETTING = "duplicate_setting"
    BAD_SETTING = "bad_setting"
    EXIT_BEFORE_PRICE = "exit_before_price"


OPTION_EXAMPLE = '"BTO 1 SPY 12/18 590P @ 1.20"'
EQUITY_EXAMPLE = '"buy 10 AAPL @ 185.50"'


def quote(raw: str) -> str:
    """User input echoed in a message, kept short."""
    return raw if len(raw) <= 30 else raw[:27] + "..."


class TicketError(ValueError):
    """A text that is not a valid order. `str(err)` is the user-facing message."""

    def __init__(self, reason: Refusal, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __repr__(self) -> str:
        return f"TicketError({self.reason.value!r}, {self.message!r})"


@dataclass(frozen=True, slots=True)
class TicketLeg:
    """One leg. `symbol` is the canonical symbol (see `broker.tickets` docstring).

    `underlying` is the ticker for equities and equity options, and the future product root
    with its slash (`/ES`) for futures and future options. `future_symbol` is the explicit
    future contract (`/ESZ6`) when the user named one, else None (front month / builder's
    choice). `front_month_unresolved` is True when only a future root was given.
    """

    side: Side
    opening: bool | None
    kind: InstrumentKind
    symbol: str
    quantity: int
    underlying: str
    expiration: date | None = None
    strike: Decimal | None = None
    option_type: OptionType | None = None
    future_symbol: str | None = None
    front_month_unresolved: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "side": self.side.value,
            "opening": self.opening,
            "instrument_type": self.kind.value,
            "symbol": self.symbol,
            "quantity": self.quantity,
        }


@dataclass(frozen=True, slots=True)
class ExitTargets:
    """Exit levels found in an alert's comment. Informational only: never part of the order."""

    profit_targets: tuple[Decimal, ...] = ()
    stop_loss: Decimal | None = None

    def __bool__(self) -> bool:
        return bool(self.profit_targets) or self.stop_loss is not None


@dataclass(frozen=True, slots=True)
class OrderTicket:
    """A parsed order. Equality compares the order and its settings, not the free comment."""

    side: Side  # the side as typed; legs of spreads may have the opposite side
    quantity: int
    structure: Structure
    legs: tuple[TicketLeg, ...]
    price_mode: PriceMode
    price: Decimal | None
    price_effect: PriceEffect | None
    time_in_force: TimeInForce
    chase: int | None = None  # fill-retry steps override (0 = no chase)
    ticks: int | None = None  # ticks per chase step override
    exits: ExitTargets = field(default_factory=ExitTargets)
    comment: str = field(default="", compare=False)

    @property
    def opening(self) -> bool | None:
        return self.legs[0].opening

    @property
    def underlying(self) -> str:
        return self.legs[0].underlying

    def as_dict(self) -> dict[str, Any]:
        return {
            "legs": [leg.as_dict() for leg in self.legs],
            "price_mode": self.price_mode.value,
            "price": None if self.price is None else format_price(self.price),
            "price_effect": None if self.price_effect is None else self.price_effect.value,
            "time_in_force": self.time_in_force.value,
        }


def normalise_price(value: Decimal) -> Decimal:
    """Keep the user's digits but show at least 2 decimals: 1.2 -> 1.20, 25 -> 25.00, .965 stays."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        return value.quantize(Decimal("0.01"))
    return value


def format_price(value: Decimal) -> str:
    return f"{normalise_price(value):f}"
