"""SDK models → storage records (one function per model, nothing else per row).

These run for every synced row: they read the SDK's `StrEnum` values with `str()` (a third
of the cost of `.value`), and transactions, the bulk of a sync, go straight to their
stored rows (`storage.transaction_row`) without an intermediate record. Signs
stay as the SDK models them (a debit is negative) except for order prices, which storage
keeps as a magnitude plus Debit/Credit (`split_signed_price`).
"""

from __future__ import annotations

from decimal import Decimal
from math import gcd

from tastytrade import Account as SdkAccount
from tastytrade.account import AccountBalance, CurrentPosition
from tastytrade.account import Transaction as SdkTransaction
from tastytrade.order import PlacedOrder

from storage import (
    Account,
    BalanceSnapshot,
    Order,
    OrderFill,
    OrderLeg,
    Position,
    TransactionRow,
    split_signed_price,
    transaction_row,
)

_ZERO = Decimal(0)


def account_record(environment: str, account: SdkAccount, guild_id: int | None) -> Account:
    return Account(
        environment=environment,
        account_number=account.account_number,
        guild_id=guild_id,
        nickname=account.nickname,
        account_type=account.account_type_name,
        margin_or_cash=account.margin_or_cash,
        needs_relink=False,
    )


def transaction_row_of(environment: str, tx: SdkTransaction) -> TransactionRow:
    """A transaction's stored row, straight from the SDK model (no intermediate record)."""
    fees = _ZERO
    for part in (
        tx.commission,
        tx.clearing_fees,
        tx.regulatory_fees,
        tx.proprietary_index_option_fees,
        tx.other_charge,
    ):
        if part is not None:
            fees += part
    instrument_type, action = tx.instrument_type, tx.action
    return transaction_row(
        environment,
        tx.id,
        tx.account_number,
        tx.transaction_type,
        tx.transaction_sub_type,
        tx.description,
        tx.executed_at,
        tx.transaction_date,
        tx.value,
        tx.net_value,
        fees,
        tx.is_estimated_fee,
        tx.symbol,
        None if instrument_type is None else str(instrument_type),
        tx.underlying_symbol,
        None if action is None else str(action),
        tx.quantity,
        tx.price,
        tx.order_id,
    )


def order_record(environment: str, order: PlacedOrder) -> Order:
    price, effect = split_signed_price(order.price)
    size = order.size if order.size is not None and order.size > 0 else _implied_size(order)
    return Order(
        environment=environment,
        order_id=order.id,
        account_number=order.account_number,
        status=str(order.status),
        order_type=str(order.order_type),
        time_in_force=str(order.time_in_force),
        updated_at=order.updated_at,
        underlying_symbol=order.underlying_symbol,
        underlying_instrument_type=str(order.underlying_instrument_type),
        size=size,
        price=price,
        price_effect=effect,
        stop_trigger=order.stop_trigger,
        filled_quantity=_filled_units(order, size),
        received_at=order.received_at,
        terminal_at=order.terminal_at,
        replaces_order_id=order.replaces_order_id,
        replaced_by_order_id=order.replacing_order_id,
        external_identifier=order.external_identifier,
        legs=tuple(
            OrderLeg(
                symbol=leg.symbol,
                instrument_type=str(leg.instrument_type),
                action=str(leg.action),
                quantity=None if leg.quantity is None else Decimal(leg.quantity),
                remaining_quantity=leg.remaining_quantity,
                fills=tuple(
                    OrderFill(
                        fill_id=fill.fill_id,
                        quantity=fill.quantity,
                        fill_price=fill.fill_price,
                        filled_at=fill.filled_at,
                        destination_venue=fill.destination_venue,
                    )
                    for fill in leg.fills or ()
                ),
            )
            for leg in order.legs
        ),
    )


def _implied_size(order: PlacedOrder) -> Decimal:
    """An order without a size trades the legs' common divisor (as the fill engine counts)."""
    divisor = 0
    for leg in order.legs:
        divisor = gcd(divisor, int(leg.quantity or 0))
    return Decimal(divisor)


def _filled_units(order: PlacedOrder, size: Decimal) -> Decimal:
    """Whole order units filled: the least filled leg relative to its ratio (the same rule
    as `broker.fills.snapshot`, without the average-price work done there)."""
    if size <= 0 or not order.legs:
        return _ZERO
    filled: Decimal | None = None
    for leg in order.legs:
        quantity = Decimal(leg.quantity or 0)
        if quantity <= 0:
            return _ZERO
        leg_filled = sum((fill.quantity for fill in leg.fills or ()), _ZERO)
        units = leg_filled * size / quantity
        filled = units if filled is None or units < filled else filled
    return filled or _ZERO


def position_record(environment: str, position: CurrentPosition) -> Position:
    quantity = position.quantity
    direction = position.quantity_direction
    if quantity < 0:  # defensive: storage keeps a magnitude plus the direction
        quantity, direction = -quantity, "Short"
    mark = position.mark_price if position.mark_price is not None else position.mark
    return Position(
        environment,
        position.account_number,
        position.symbol,
        str(position.instrument_type),
        position.underlying_symbol,
        quantity,
        direction,
        position.average_open_price,
        position.multiplier,
        position.close_price,
        mark,
        position.cost_effect,
        position.realized_day_gain,
        position.expires_at,
        position.updated_at,
    )


def balance_record(environment: str, balance: AccountBalance) -> BalanceSnapshot:
    return BalanceSnapshot(
        environment=environment,
        account_number=balance.account_number,
        net_liquidating_value=balance.net_liquidating_value,
        cash_balance=balance.cash_balance,
        equity_buying_power=balance.equity_buying_power,
        derivative_buying_power=balance.derivative_buying_power,
        day_trading_buying_power=balance.day_trading_buying_power,
        maintenance_requirement=balance.maintenance_requirement,
        pending_cash=balance.pending_cash,
        broker_updated_at=balance.updated_at,
    )
