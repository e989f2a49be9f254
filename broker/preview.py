"""Dry-run previews: what the exchange says an order would do, before anyone confirms it.

The dry-run goes through ``BrokerSession.read(kind="orders")``: it changes nothing at the
broker, so retrying it is safe. A 422 from the dry-run is a preview that would reject (its
errors say why), not an exception. The preview also checks that the exchange understood the
order exactly as built (legs, actions, quantities, price and effect); any difference is an
error, so a confirmation can never bind to something the exchange reads differently.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from tastytrade.account import Account
from tastytrade.order import (
    BuyingPowerEffect,
    FeeCalculation,
    InstrumentType,
    Message,
    OrderAction,
    OrderTimeInForce,
    OrderType,
    PlacedOrderResponse,
    UnplacedOrder,
)
from tastytrade.utils import PriceEffect

from broker.orders.build import BuiltOrder
from broker.orders.pricing import split_signed_price
from broker.session import BrokerError, BrokerSession, Environment, ErrorCategory

__all__ = [
    "BrokerMessage",
    "BuyingPowerChange",
    "ExchangeLeg",
    "ExchangeOrder",
    "FeeBreakdown",
    "OrderPreview",
    "preview_order",
]

MISMATCH_CODE = "preview_mismatch"


@dataclass(frozen=True, slots=True)
class BrokerMessage:
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.message else self.code


@dataclass(frozen=True, slots=True)
class BuyingPowerChange:
    """Signed like the SDK: a negative change uses buying power."""

    change: Decimal
    effect: PriceEffect
    current: Decimal
    new: Decimal
    margin_requirement_change: Decimal
    is_spread: bool

    @classmethod
    def from_sdk(cls, effect: BuyingPowerEffect) -> BuyingPowerChange:
        return cls(
            change=effect.change_in_buying_power,
            effect=effect.effect,
            current=effect.current_buying_power,
            new=effect.new_buying_power,
            margin_requirement_change=effect.change_in_margin_requirement,
            is_spread=effect.is_spread,
        )


@dataclass(frozen=True, slots=True)
class FeeBreakdown:
    """Signed like the SDK: fees you pay are negative."""

    total: Decimal
    commission: Decimal
    clearing: Decimal
    regulatory: Decimal
    proprietary_index_option: Decimal

    @classmethod
    def from_sdk(cls, fees: FeeCalculation) -> FeeBreakdown:
        return cls(
            total=fees.total_fees,
            commission=fees.commission,
            clearing=fees.clearing_fees,
            regulatory=fees.regulatory_fees,
            proprietary_index_option=fees.proprietary_index_option_fees,
        )


@dataclass(frozen=True, slots=True)
class ExchangeLeg:
    symbol: str
    instrument_type: InstrumentType
    action: OrderAction
    quantity: Decimal | None


@dataclass(frozen=True, slots=True)
class ExchangeOrder:
    """The order as the exchange understood it (price is a magnitude plus its effect)."""

    order_type: OrderType
    time_in_force: OrderTimeInForce
    underlying_symbol: str
    legs: tuple[ExchangeLeg, ...]
    price: Decimal | None
    price_effect: PriceEffect | None

    @classmethod
    def from_sdk(cls, order: UnplacedOrder) -> ExchangeOrder:
        price, effect = (None, None) if order.price is None else split_signed_price(order.price)
        return cls(
            order_type=order.order_type,
            time_in_force=order.time_in_force,
            underlying_symbol=order.underlying_symbol,
            legs=tuple(
                ExchangeLeg(
                    symbol=leg.symbol,
                    instrument_type=leg.instrument_type,
                    action=leg.action,
                    quantity=None if leg.quantity is None else Decimal(leg.quantity),
                )
                for leg in order.legs
            ),
            price=price,
            price_effect=effect,
        )


@dataclass(frozen=True, slots=True)
class OrderPreview:
    """A dry-run result that the Discord layer renders and the confirmation binds to."""

    built: BuiltOrder
    environment: Environment
    account_number: str
    buying_power: BuyingPowerChange | None
    fees: FeeBreakdown | None
    warnings: tuple[BrokerMessage, ...]
    errors: tuple[BrokerMessage, ...]
    exchange_order: ExchangeOrder | None
    fingerprint: str
    created_at: datetime

    @property
    def would_reject(self) -> bool:
        return bool(self.errors)

    def matches(self, built: BuiltOrder) -> bool:
        """True when ``built`` is exactly the order this preview showed."""
        return built.fingerprint() == self.fingerprint


def _messages(items: Sequence[Message] | None) -> tuple[BrokerMessage, ...]:
    return tuple(BrokerMessage(m.code, m.message) for m in items or ())


def _mismatches(built: BuiltOrder, seen: ExchangeOrder) -> list[BrokerMessage]:
    """Differences between what we built and what the exchange read."""
    problems: list[str] = []
    ours = [(leg.symbol, leg.action, Decimal(leg.quantity)) for leg in built.legs]
    theirs = [(leg.symbol, leg.action, leg.quantity) for leg in seen.legs]
    if Counter(ours) != Counter(theirs):
        problems.append(
            "legs differ: sent "
            + ", ".join(f"{a} {q} {s.strip()}" for s, a, q in ours)
            + "; exchange read "
            + ", ".join(f"{a} {q} {s.strip()}" for s, a, q in theirs)
        )
    if built.price is not None:
        magnitude, effect = split_signed_price(built.price)
        if seen.price != magnitude or seen.price_effect is not effect:
            problems.append(
                f"price differs: sent {magnitude} {effect.value}, exchange read "
                f"{seen.price} {seen.price_effect.value if seen.price_effect else 'no effect'}"
            )
    if seen.order_type is not built.order.order_type:
        problems.append(
            f"order type differs: sent {built.order.order_type}, read {seen.order_type}"
        )
    if seen.time_in_force is not built.order.time_in_force:
        problems.append(
            f"time in force differs: sent {built.order.time_in_force}, read {seen.time_in_force}"
        )
    return [BrokerMessage(MISMATCH_CODE, text) for text in problems]


async def preview_order(
    broker: BrokerSession,
    account: Account,
    built: BuiltOrder,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> OrderPreview:
    """Dry-run ``built`` at the exchange and describe the result.

    Raises ``BrokerError`` for anything but a rejection (network, auth, server...).
    """

    def preview(
        *,
        buying_power: BuyingPowerChange | None,
        fees: FeeBreakdown | None,
        warnings: tuple[BrokerMessage, ...],
        errors: tuple[BrokerMessage, ...],
        exchange_order: ExchangeOrder | None,
    ) -> OrderPreview:
        return OrderPreview(
            built=built,
            environment=broker.environment,
            account_number=account.account_number,
            buying_power=buying_power,
            fees=fees,
            warnings=warnings,
            errors=errors,
            exchange_order=exchange_order,
            fingerprint=built.fingerprint(),
            created_at=now(),
        )

    try:
        response: PlacedOrderResponse[UnplacedOrder] = await broker.read(
            lambda s: account.place_order(s, built.order, dry_run=True), kind="orders"
        )
    except BrokerError as exc:
        if exc.category is not ErrorCategory.REJECTED:
            raise
        errors = tuple(BrokerMessage(code, text) for code, text in exc.details) or (
            BrokerMessage(exc.codes[0] if exc.codes else "rejected", exc.message),
        )
        return preview(
            buying_power=None, fees=None, warnings=(), errors=errors, exchange_order=None
        )
    seen = ExchangeOrder.from_sdk(response.order)
    fees = response.fee_calculation
    return preview(
        buying_power=BuyingPowerChange.from_sdk(response.buying_power_effect),
        fees=None if fees is None else FeeBreakdown.from_sdk(fees),
        warnings=_messages(response.warnings),
        errors=_messages(response.errors) + tuple(_mismatches(built, seen)),
        exchange_order=seen,
    )
