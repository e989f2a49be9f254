"""Positions from the local database, in the shape the order builder asks for."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from storage.database import Database

__all__ = ["StoredPositions"]


class StoredPositions:
    """`PositionSource` over the last synced snapshot (no network)."""

    def __init__(self, db: Database, environment: str, account_number: str) -> None:
        self._db = db
        self._environment = environment
        self._account_number = account_number

    async def quantities(self, symbols: Sequence[str]) -> Mapping[str, Decimal]:
        wanted = set(symbols)
        held: dict[str, Decimal] = {}
        for position in await self._db.positions.for_account(
            self._environment, self._account_number
        ):
            if position.symbol in wanted:
                held[position.symbol] = held.get(position.symbol, Decimal(0)) + (
                    position.signed_quantity
                )
        return held
