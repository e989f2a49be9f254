"""SDK models → storage records (one function per model, nothing else per row).

Signs stay as the SDK models them (a debit is negative) except for order prices, which
storage keeps as a magnitude plus Debit/Credit (`split_signed_price`).
"""

from __future__ import annotations

from decimal import Decimal

from tastytrade import Account as SdkAccount
from tastytrade.account import AccountBalance, CurrentPosition
from tastytrade.account import Transaction as SdkTransaction
from tastytrade.order import PlacedOrder

from broker.fills.snapshot import OrderSnapshot
from storage import (
    Account,
    BalanceSnapshot,
    Order,
    OrderFill,
    OrderLeg,
    Position,
    Transaction,
    split_signed_price,
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


def transaction_record(environment: str, tx: SdkTransaction) -> Transaction:
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
    return Transaction(
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
        None if tx.instrument_type is None else tx.instrument_type.value,
        tx.underlying_symbol,
        None if tx.action is None else tx.action.value,
        tx.quantity,
        tx.price,
        tx.order_id,
    )


def order_record(environment: str, order: PlacedOrder) -> Order:
    price, effect = split_signed_price(order.price)
    snapshot = OrderSnapshot.of(order)  # the fill engine's filled-quantity rule
    return Order(
        environment=environment,
        order_id=order.id,
        account_number=order.account_number,
        status=order.status.value,
        order_type=order.order_type.value,
        time_in_force=order.time_in_force.value,
        updated_at=order.updated_at,
        underlying_symbol=order.underlying_symbol,
        underlying_instrument_type=order.underlying_instrument_type.value,
        size=order.size if order.size is not None else snapshot.size,
        price=price,
        price_effect=effect,
        stop_trigger=order.stop_trigger,
        filled_quantity=snapshot.filled_quantity,
        received_at=order.received_at,
        terminal_at=order.terminal_at,
        replaces_order_id=order.replaces_order_id,
        replaced_by_order_id=order.replacing_order_id,
        external_identifier=order.external_identifier,
        legs=tuple(
            OrderLeg(
                symbol=leg.symbol,
                instrument_type=leg.instrument_type.value,
                action=leg.action.value,
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
        position.instrument_type.value,
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
