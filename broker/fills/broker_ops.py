"""The few SDK order calls the engine makes, each through the managed session.

Reads go through ``BrokerSession.read`` (retried with backoff); place / replace / cancel go
through ``BrokerSession.submit`` (never retried: a lost answer is reconciled by the caller).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from tastytrade import Account, Session
from tastytrade.order import (
    LimitOrder,
    MarketOrder,
    PlacedOrder,
    PlacedOrderResponse,
)

from broker.session import BrokerSession

__all__ = ["OrderOps"]


class OrderOps:
    """Order calls for one account over one managed session."""

    def __init__(self, session: BrokerSession, account_number: str) -> None:
        self.session = session
        self.account_number = account_number
        # The order endpoints only need the account number; building the model without a
        # round trip keeps a submission at one request (validation would need every field).
        self._account = Account.model_construct(account_number=account_number)

    async def place(self, order: LimitOrder | MarketOrder) -> PlacedOrder:
        """Place ``order``; returns the placed order (the response's ``order``)."""
        account = self._account

        async def call(sdk: Session) -> PlacedOrder:
            response: PlacedOrderResponse[Any] = await account.place_order(
                sdk, order, dry_run=False
            )
            placed: PlacedOrder = response.order
            return placed

        return await self.session.submit(call)

    async def replace(self, order_id: int, order: LimitOrder) -> PlacedOrder:
        account = self._account

        async def call(sdk: Session) -> PlacedOrder:
            return await account.replace_order(sdk, order_id, order)

        return await self.session.submit(call)

    async def cancel(self, order_id: int) -> None:
        account = self._account

        async def call(sdk: Session) -> None:
            await account.delete_order(sdk, order_id)

        await self.session.submit(call)

    async def get(self, order_id: int) -> PlacedOrder:
        account = self._account

        async def call(sdk: Session) -> PlacedOrder:
            return await account.get_order(sdk, order_id)

        return await self.session.read(call, kind="orders")

    async def history(self, start_date: date) -> list[PlacedOrder]:
        """Every order updated since ``start_date`` (all pages; the live list only has today's)."""
        account = self._account

        async def call(sdk: Session) -> list[PlacedOrder]:
            return await account.get_order_history(sdk, start_date=start_date, page_offset=None)

        return await self.session.read(call, kind="orders")

    async def live(self) -> list[PlacedOrder]:
        account = self._account

        async def call(sdk: Session) -> list[PlacedOrder]:
            return await account.get_live_orders(sdk)

        return await self.session.read(call, kind="orders")
