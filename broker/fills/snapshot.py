"""What a broker order tells us about fills, independent of where we read it from.

The same :class:`OrderSnapshot` is built from a REST read, a live-orders poll or an
account-streamer message, so the engine and the notification tracker agree on "how much of
this order is filled, at what net price".

Fill detection follows production behaviour: fills appear on the legs (``fills[]`` and
``remaining-quantity``) before or together with ``status: Filled``, and multi-leg orders can
fill leg by leg. An order's filled quantity is therefore counted in *units* of the order (a
1×2 ratio spread of size 3 has 3 units) and is the minimum over its legs.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from math import gcd

from tastytrade.order import OrderAction, OrderStatus, PlacedOrder

from broker.events import LegInfo
from broker.orders.pricing import effect_for_side, signed_price
from broker.ticks import Side

__all__ = ["TERMINAL_STATUSES", "WORKING_STATUSES", "OrderSnapshot", "legs_of"]

TERMINAL_STATUSES = frozenset(
    {
        OrderStatus.FILLED,
        OrderStatus.CANCELLED,
        OrderStatus.EXPIRED,
        OrderStatus.REJECTED,
        OrderStatus.REMOVED,
        OrderStatus.PARTIALLY_REMOVED,
    }
)
WORKING_STATUSES = frozenset(
    {
        OrderStatus.RECEIVED,
        OrderStatus.ROUTED,
        OrderStatus.IN_FLIGHT,
        OrderStatus.LIVE,
        OrderStatus.CONTINGENT,
        OrderStatus.CANCEL_REQUESTED,
        OrderStatus.REPLACE_REQUESTED,
    }
)


def legs_of(order: PlacedOrder) -> tuple[LegInfo, ...]:
    return tuple(
        LegInfo(
            symbol=leg.symbol,
            action=leg.action.value,
            quantity=Decimal(leg.quantity or 0),
            instrument_type=leg.instrument_type.value,
        )
        for leg in order.legs
    )


def _order_size(order: PlacedOrder) -> Decimal:
    if order.size is not None and order.size > 0:
        return Decimal(order.size)
    quantities = [int(leg.quantity or 0) for leg in order.legs]
    divisor = 0
    for quantity in quantities:
        divisor = gcd(divisor, quantity)
    return Decimal(divisor or 0)


@dataclass(frozen=True, slots=True)
class OrderSnapshot:
    order_id: int
    account_number: str
    status: OrderStatus
    underlying_symbol: str
    legs: tuple[LegInfo, ...]
    size: Decimal
    filled_quantity: Decimal
    average_price: Decimal | None
    price: Decimal | None
    time_in_force: str
    replaces_order_id: int | None
    replacing_order_id: int | None
    external_identifier: str | None
    reject_reason: str | None

    @classmethod
    def of(cls, order: PlacedOrder) -> OrderSnapshot:
        size = _order_size(order)
        filled, average = _fills(order, size)
        return cls(
            order_id=order.id,
            account_number=order.account_number,
            status=order.status,
            underlying_symbol=order.underlying_symbol,
            legs=legs_of(order),
            size=size,
            filled_quantity=filled,
            average_price=average,
            price=order.price,
            time_in_force=order.time_in_force.value,
            replaces_order_id=order.replaces_order_id,
            replacing_order_id=order.replacing_order_id,
            external_identifier=order.external_identifier,
            reject_reason=order.reject_reason,
        )

    @property
    def remaining_quantity(self) -> Decimal:
        return max(self.size - self.filled_quantity, Decimal(0))

    @property
    def is_fully_filled(self) -> bool:
        return self.size > 0 and self.filled_quantity >= self.size

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES or self.is_fully_filled

    @property
    def was_replaced(self) -> bool:
        """Cancelled because a replacement took its place (a link in a chain, not an end)."""
        return self.replacing_order_id is not None and self.status is OrderStatus.CANCELLED

    @property
    def is_working(self) -> bool:
        return not self.is_terminal


def _signed_leg_value(action: OrderAction, magnitude: Decimal) -> Decimal:
    """A leg's fill value with the one sign rule: a buy pays (Debit), a sell receives."""
    if magnitude == 0:
        return Decimal(0)
    side = Side.SELL if action.multiplier < 0 else Side.BUY
    return signed_price(magnitude, effect_for_side(side))


def _fills(order: PlacedOrder, size: Decimal) -> tuple[Decimal, Decimal | None]:
    """(filled units, signed average net price per unit) from the legs' fills.

    Sign convention as for limit prices: buying legs cost (negative), selling legs earn
    (positive), so a filled debit spread has a negative average. (The SDK's own
    ``average_fill_price`` uses the opposite sign.)
    """
    if size <= 0 or not order.legs:
        return Decimal(0), None
    filled_units: Decimal | None = None
    net = Decimal(0)
    for leg in order.legs:
        leg_quantity = Decimal(leg.quantity or 0)
        if leg_quantity <= 0:
            return Decimal(0), None
        ratio = leg_quantity / size
        fills = leg.fills or []
        leg_filled = sum((fill.quantity for fill in fills), Decimal(0))
        units = leg_filled / ratio
        filled_units = units if filled_units is None else min(filled_units, units)
        if leg_filled > 0:
            leg_average = sum((f.fill_price * f.quantity for f in fills), Decimal(0)) / leg_filled
            net += _signed_leg_value(leg.action, ratio * leg_average)
    if not filled_units:
        return Decimal(0), None
    return filled_units, net
