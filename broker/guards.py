"""Pre-trade guards: per-guild size and risk limits, and the account's trading status.

Run before every live submission. Orders that only close positions are exempt from the size and
risk limits (blocking a close would trap a user in risk), but not from a frozen or closed
account. Every violation carries a specific, user-facing message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from tastytrade.account import Account, TradingStatus
from tastytrade.order import InstrumentType

from broker.orders.build import BuiltLeg, BuiltOrder
from broker.orders.pricing import PositionEffect
from broker.orders.resolve import TtlCache
from broker.session import BrokerSession
from broker.tickets.model import OptionType
from broker.ticks import Side

__all__ = [
    "GuardCode",
    "GuardViolation",
    "Limits",
    "PreTradeGuard",
    "RiskProfile",
    "Violation",
    "check_limits",
    "check_trading_status",
    "risk_profile",
]

FUTURES_KINDS = frozenset({InstrumentType.FUTURE, InstrumentType.FUTURE_OPTION})
OPTION_KINDS = frozenset({InstrumentType.EQUITY_OPTION, InstrumentType.FUTURE_OPTION})


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-guild limits. Defaults are deliberately conservative.

    - ``max_contracts``: per leg, options and futures.
    - ``max_shares``: per stock order.
    - ``max_notional``: estimated cash value of the order (premium for options, traded value
      for stock and futures: a single /ES contract exceeds the default on purpose).
    - ``max_loss``: worst case at expiration of an option order with defined risk (debit
      trades and covered spreads).
    - ``max_undefined_risk_contracts``: naked short options and new futures positions are
      refused unless an admin sets this above 0.
    - ``allow_short_stock``: selling stock short (undefined risk) needs explicit permission.
    """

    max_contracts: int = 10
    max_shares: int = 500
    max_notional: Decimal = Decimal("25000")
    max_loss: Decimal = Decimal("2500")
    max_undefined_risk_contracts: int = 0
    allow_short_stock: bool = False

    def __post_init__(self) -> None:
        for name in ("max_contracts", "max_shares", "max_undefined_risk_contracts"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a whole number >= 0")
        for name in ("max_notional", "max_loss"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
                raise ValueError(f"{name} must be a Decimal amount >= 0")


class GuardCode(StrEnum):
    QUANTITY = "quantity"
    NOTIONAL = "notional"
    MAX_LOSS = "max_loss"
    UNDEFINED_RISK = "undefined_risk"
    NO_ESTIMATE = "no_estimate"
    ACCOUNT_CLOSED = "account_closed"
    ACCOUNT_FROZEN = "account_frozen"
    CLOSING_ONLY = "closing_only"
    MARGIN_CALL = "margin_call"
    FUTURES_DISABLED = "futures_disabled"
    FUTURES_CLOSING_ONLY = "futures_closing_only"
    SHORT_CALLS_DISABLED = "short_calls_disabled"


@dataclass(frozen=True, slots=True)
class Violation:
    code: GuardCode
    message: str


class GuardViolation(Exception):
    """Raised when an order may not be sent; ``str()`` lists every reason."""

    def __init__(self, violations: Sequence[Violation]) -> None:
        if not violations:
            raise ValueError("GuardViolation needs at least one violation")
        self.violations = tuple(violations)
        self.message = "; ".join(v.message for v in self.violations)
        super().__init__(self.message)

    @property
    def codes(self) -> tuple[GuardCode, ...]:
        return tuple(v.code for v in self.violations)


# -- risk -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RiskProfile:
    """Worst case of an order. ``max_loss`` is None when the risk is undefined or unknown."""

    max_loss: Decimal | None
    undefined_contracts: int  # naked short options / futures contracts opened
    short_shares: int
    reason: str  # how max_loss was found, or why it could not be


def _money(amount: Decimal) -> str:
    return f"${amount.quantize(Decimal('0.01')):,}"


def _intrinsic(leg: BuiltLeg, spot: Decimal) -> Decimal:
    assert leg.strike is not None
    if leg.option_type is OptionType.CALL:
        return max(spot - leg.strike, Decimal(0))
    return max(leg.strike - spot, Decimal(0))


def _naked(legs: Sequence[BuiltLeg], option_type: OptionType) -> int:
    """Short ratio not covered by long ratio of the same type (per unit)."""
    same = [leg for leg in legs if leg.option_type is option_type]
    short = sum(leg.ratio for leg in same if leg.side is Side.SELL)
    long = sum(leg.ratio for leg in same if leg.side is Side.BUY)
    return max(short - long, 0)


def risk_profile(built: BuiltOrder) -> RiskProfile:
    """Max loss of an opening order, per the structure of its legs."""
    legs = built.legs
    first = legs[0]
    reference = built.reference_price
    if first.instrument_type is InstrumentType.EQUITY:
        if first.side is Side.SELL:
            return RiskProfile(None, 0, first.quantity, "a short stock position has no cap")
        loss = None if reference is None else abs(reference) * first.quantity
        return RiskProfile(loss, 0, 0, "the stock's full price")
    if first.instrument_type is InstrumentType.FUTURE:
        return RiskProfile(None, first.quantity, 0, "a futures position has no defined cap")

    naked = _naked(legs, OptionType.CALL) + _naked(legs, OptionType.PUT)
    if naked:
        return RiskProfile(None, naked * built.units, 0, "naked short options")
    if reference is None:
        return RiskProfile(None, 0, 0, "no price to estimate the loss")
    if all(leg.side is Side.BUY for leg in legs):
        loss = abs(reference) * built.units * built.multiplier
        return RiskProfile(loss, 0, 0, "the debit paid")
    if len({leg.expiration for leg in legs}) > 1:
        return RiskProfile(None, 0, 0, "short legs across expirations")
    # Covered spread: evaluate the payoff at expiration at every strike and at 0; beyond the
    # highest strike the slope is >= 0 because every short call is covered.
    spots = sorted({Decimal(0)} | {leg.strike for leg in legs if leg.strike is not None})
    worst = min(
        reference
        + sum(
            (leg.ratio * _intrinsic(leg, spot) * (1 if leg.side is Side.BUY else -1))
            for leg in legs
        )
        for spot in spots
    )
    loss = max(-worst, Decimal(0)) * built.units * built.multiplier
    return RiskProfile(loss, 0, 0, "the spread's width less the credit")


def check_limits(built: BuiltOrder, limits: Limits) -> list[Violation]:
    """Size and risk limits (nothing for an order that only closes positions)."""
    if built.is_closing:
        return []
    found: list[Violation] = []
    for leg in built.legs:
        if leg.position_effect is not PositionEffect.OPEN:
            continue
        if leg.instrument_type is InstrumentType.EQUITY:
            if leg.quantity > limits.max_shares:
                found.append(
                    Violation(
                        GuardCode.QUANTITY,
                        f"{leg.quantity} shares is above this server's limit of "
                        f"{limits.max_shares}",
                    )
                )
        elif leg.quantity > limits.max_contracts:
            found.append(
                Violation(
                    GuardCode.QUANTITY,
                    f"{leg.quantity} contracts of {leg.description} is above this server's "
                    f"limit of {limits.max_contracts}",
                )
            )
    notional = built.notional
    if notional is None:
        found.append(
            Violation(
                GuardCode.NO_ESTIMATE,
                "no live quote to estimate what this order costs; use a limit price",
            )
        )
    elif notional > limits.max_notional:
        found.append(
            Violation(
                GuardCode.NOTIONAL,
                f"estimated value {_money(notional)} is above this server's limit of "
                f"{_money(limits.max_notional)}",
            )
        )
    risk = risk_profile(built)
    if risk.short_shares and not limits.allow_short_stock:
        found.append(
            Violation(
                GuardCode.UNDEFINED_RISK,
                "selling stock short has undefined risk and is not enabled on this server",
            )
        )
    if risk.undefined_contracts > limits.max_undefined_risk_contracts:
        what = (
            "new futures positions"
            if built.legs[0].instrument_type is InstrumentType.FUTURE
            else "naked short options"
        )
        allowed = limits.max_undefined_risk_contracts
        found.append(
            Violation(
                GuardCode.UNDEFINED_RISK,
                f"{what} have undefined risk ({risk.undefined_contracts} contracts); "
                + (
                    "an admin must set an undefined-risk limit first"
                    if allowed == 0
                    else f"this server allows {allowed}"
                ),
            )
        )
    if (
        risk.max_loss is not None
        and built.legs[0].instrument_type in OPTION_KINDS
        and risk.max_loss > limits.max_loss
    ):
        found.append(
            Violation(
                GuardCode.MAX_LOSS,
                f"max loss {_money(risk.max_loss)} ({risk.reason}) is above this server's "
                f"limit of {_money(limits.max_loss)}",
            )
        )
    return found


def check_trading_status(built: BuiltOrder, status: TradingStatus) -> list[Violation]:
    """What the account itself allows right now."""
    account = status.account_number
    if status.is_closed:
        return [Violation(GuardCode.ACCOUNT_CLOSED, f"account {account} is closed")]
    if status.is_frozen:
        return [Violation(GuardCode.ACCOUNT_FROZEN, f"account {account} is frozen")]
    opening = [leg for leg in built.legs if leg.position_effect is PositionEffect.OPEN]
    if not opening:
        return []
    found: list[Violation] = []
    if status.is_closing_only or status.is_risk_reducing_only:
        found.append(
            Violation(
                GuardCode.CLOSING_ONLY,
                f"account {account} is closing-only: only orders that reduce positions",
            )
        )
    if status.is_in_margin_call or status.is_in_day_trade_equity_maintenance_call:
        found.append(
            Violation(
                GuardCode.MARGIN_CALL,
                f"account {account} is in a margin call: no new positions until it is met",
            )
        )
    futures = [leg for leg in opening if leg.instrument_type in FUTURES_KINDS]
    if futures and not status.is_futures_enabled:
        found.append(
            Violation(GuardCode.FUTURES_DISABLED, f"account {account} is not approved for futures")
        )
    elif futures and status.is_futures_closing_only:
        found.append(
            Violation(
                GuardCode.FUTURES_CLOSING_ONLY,
                f"account {account} is closing-only for futures",
            )
        )
    if not status.short_calls_enabled and _naked(built.legs, OptionType.CALL):
        found.append(
            Violation(
                GuardCode.SHORT_CALLS_DISABLED,
                f"account {account} may not sell uncovered calls",
            )
        )
    return found


class PreTradeGuard:
    """Limits plus the account's trading status (cached briefly: it rarely changes)."""

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        status_ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits or Limits()
        self._status: TtlCache[tuple[str, str], TradingStatus] = TtlCache(status_ttl, clock)

    async def trading_status(self, broker: BrokerSession, account: Account) -> TradingStatus:
        async def load() -> TradingStatus:
            return await broker.read(lambda s: account.get_trading_status(s))

        key = (broker.environment.value, account.account_number)
        return await self._status.get(key, load)

    async def violations(
        self,
        broker: BrokerSession,
        account: Account,
        built: BuiltOrder,
        *,
        limits: Limits | None = None,
    ) -> list[Violation]:
        """Every reason not to send ``built``; ``limits`` overrides the default (per guild)."""
        status = await self.trading_status(broker, account)
        return check_trading_status(built, status) + check_limits(built, limits or self.limits)

    async def check(
        self,
        broker: BrokerSession,
        account: Account,
        built: BuiltOrder,
        *,
        limits: Limits | None = None,
    ) -> None:
        """Raise ``GuardViolation`` listing every reason the order may not be sent."""
        found = await self.violations(broker, account, built, limits=limits)
        if found:
            raise GuardViolation(found)
