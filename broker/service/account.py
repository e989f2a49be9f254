"""Account views for the Discord layer: positions, orders, balances, history, quotes.

Everything but quotes is served from the local database (fast, no network); `!tt sync`
refreshes it. Rows come back numbered and signed the way the replies show them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Generic, TypeVar

from tastytrade.market_data import get_market_data_by_type
from tastytrade.order import InstrumentType

from broker.orders.build import OrderBuilder
from broker.orders.errors import BuildError
from broker.service.brokers import BrokerContext
from broker.service.errors import ServiceError
from broker.service.models import (
    BalanceSummary,
    LegLine,
    OrderRow,
    PositionRow,
    QuoteSummary,
    TransactionRow,
)
from broker.session import BrokerError, Environment
from broker.tickets import TicketError, parse_ticket
from storage.database import Database
from storage.orders import Order
from storage.positions import Position

__all__ = ["AccountViews", "Scoped"]

T = TypeVar("T")

HISTORY_LIMIT = 200


@dataclass(frozen=True, slots=True)
class Scoped(Generic[T]):
    """A result plus the environment and account it came from (for the badge)."""

    environment: Environment
    account_number: str
    data: T


def position_rows(positions: list[Position]) -> list[PositionRow]:
    """Numbered as `!tt positions` shows them (stable: underlying, then symbol)."""
    ordered = sorted(positions, key=lambda p: (p.underlying_symbol, p.symbol))
    return [
        PositionRow(
            index=number,
            symbol=p.symbol,
            underlying=p.underlying_symbol,
            instrument_type=p.instrument_type,
            quantity=p.signed_quantity,
            average_open_price=p.average_open_price,
            mark=p.mark_price,
            unrealized_pnl=p.unrealized_pnl,
            multiplier=p.multiplier,
        )
        for number, p in enumerate(ordered, start=1)
        if p.quantity != 0
    ]


def order_row(order: Order, chasing: bool) -> OrderRow:
    price = order.signed_price  # the stored effect carries the sign; one rule decides it
    return OrderRow(
        order_id=str(order.order_id),
        status=order.status,
        underlying=order.underlying_symbol or "",
        legs=[
            LegLine(
                action=leg.action,
                quantity=int(leg.quantity or 0),
                symbol=leg.symbol,
                instrument_type=leg.instrument_type,
            )
            for leg in order.legs
        ],
        order_type=order.order_type,
        price=price,
        time_in_force=order.time_in_force,
        filled_quantity=int(order.filled_quantity),
        size=int(order.size or 0),
        updated_at=order.updated_at,
        chasing=chasing,
    )


class AccountViews:
    def __init__(
        self,
        db: Database,
        *,
        builder: Callable[[Environment], OrderBuilder],
        today: Callable[[], object],
    ) -> None:
        self._db = db
        self._builder = builder
        self._today = today

    async def positions(self, context: BrokerContext) -> Scoped[list[PositionRow]]:
        rows = await self._db.positions.for_account(
            context.environment.value, context.account_number
        )
        return Scoped(context.environment, context.account_number, position_rows(rows))

    async def open_orders(
        self, context: BrokerContext, chased_order_ids: set[int]
    ) -> Scoped[list[OrderRow]]:
        orders = await self._db.orders.open_for_account(
            context.environment.value, context.account_number
        )
        rows = [order_row(o, o.order_id in chased_order_ids) for o in orders]
        return Scoped(context.environment, context.account_number, rows)

    async def balance(self, context: BrokerContext) -> Scoped[BalanceSummary]:
        latest = await self._db.balances.latest(context.environment.value, context.account_number)
        if latest is None:
            raise ServiceError("No balances stored yet: run `!tt sync` first.")
        summary = BalanceSummary(
            net_liquidating_value=latest.net_liquidating_value,
            cash_balance=latest.cash_balance,
            equity_buying_power=latest.equity_buying_power,
            derivative_buying_power=latest.derivative_buying_power,
            maintenance_requirement=latest.maintenance_requirement,
            as_of=latest.taken_at,
        )
        return Scoped(context.environment, context.account_number, summary)

    async def history(self, context: BrokerContext) -> Scoped[list[TransactionRow]]:
        rows = await self._db.transactions.recent(
            context.environment.value, context.account_number, HISTORY_LIMIT
        )
        data = [
            TransactionRow(
                transaction_id=str(t.transaction_id),
                executed_at=t.executed_at,
                type=t.transaction_type,
                description=t.description,
                symbol=t.symbol,
                action=t.action,
                quantity=t.quantity,
                price=t.price,
                value=t.value,
                fees=t.fees,
            )
            for t in rows
        ]
        return Scoped(context.environment, context.account_number, data)

    async def quote(self, context: BrokerContext, text: str) -> Scoped[QuoteSummary]:
        """Quote anything the order language can name: `SPY`, `/ESZ6`, `SPY 12/18 590P`."""
        cleaned = " ".join(text.split())
        if not cleaned:
            raise ServiceError("Name a symbol, e.g. `!tt quote SPY` or `!tt quote SPY 12/18 590P`.")
        try:
            ticket = parse_ticket(f"buy 1 {cleaned}", today=self._today())  # type: ignore[arg-type]
        except TicketError as exc:
            raise ServiceError(exc.message.replace("buy 1 ", "")) from None
        if len(ticket.legs) != 1:
            raise ServiceError("Quote one instrument at a time.")
        builder = self._builder(context.environment)
        try:
            resolved = await builder.resolver.resolve(context.session, ticket.legs[0])
        except BuildError as exc:
            raise ServiceError(exc.message) from None
        except BrokerError as exc:
            raise ServiceError(f"Couldn't look that up: {exc.message}") from None
        kind = resolved.instrument_type
        symbol = resolved.symbol
        try:
            items = await context.session.read(
                lambda s: get_market_data_by_type(
                    s,
                    equities=[symbol] if kind is InstrumentType.EQUITY else None,
                    options=[symbol] if kind is InstrumentType.EQUITY_OPTION else None,
                    futures=[symbol] if kind is InstrumentType.FUTURE else None,
                    future_options=[symbol] if kind is InstrumentType.FUTURE_OPTION else None,
                )
            )
        except BrokerError as exc:
            raise ServiceError(f"No quote for {symbol}: {exc.message}") from None
        item = next((i for i in items if i.symbol == symbol), None)
        if item is None:
            raise ServiceError(f"No quote for {symbol}.")
        mid = None
        if item.bid is not None and item.ask is not None:
            mid = (item.bid + item.ask) / Decimal(2)
        quote = QuoteSummary(
            symbol=symbol,
            instrument_type=kind.value,
            bid=item.bid,
            ask=item.ask,
            mid=mid,
            last=item.last,
            mark=item.mark,
            as_of=item.updated_at if isinstance(item.updated_at, datetime) else None,
        )
        return Scoped(context.environment, context.account_number, quote)
