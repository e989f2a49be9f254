"""What the account holds, as the order builder needs it (to tell opening from closing).

Served from the last synced snapshot, cached in memory for a few seconds: no network and
almost no database work on the order path. After a fill the snapshot is known to be stale
until the next sync, so until then the broker is asked directly (one extra request). When the
answer decides open versus close (a plain buy/sell), the caller asks for a fresh read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal

from broker.orders.build import AccountPositions, PositionSource
from broker.service.brokers import BrokerContext
from storage.database import Database

__all__ = ["PositionBook", "SnapshotPositions"]

CACHE_SECONDS = 15.0


class SnapshotPositions:
    """A `PositionSource` over an in-memory snapshot (signed quantities by symbol)."""

    def __init__(self, held: Mapping[str, Decimal]) -> None:
        self._held = held

    async def quantities(self, symbols: Sequence[str]) -> Mapping[str, Decimal]:
        return {symbol: self._held[symbol] for symbol in symbols if symbol in self._held}


class PositionBook:
    def __init__(
        self,
        db: Database,
        *,
        cache_seconds: float = CACHE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._cache_seconds = cache_seconds
        self._monotonic = monotonic
        self._cache: dict[tuple[str, str], tuple[float, dict[str, Decimal]]] = {}
        self._stale: set[tuple[str, str]] = set()

    async def source(self, context: BrokerContext, *, fresh: bool = False) -> PositionSource:
        """Where to read held quantities; `fresh` = from the broker (one request), always."""
        key = (context.environment.value, context.account_number)
        if fresh or key in self._stale:
            return AccountPositions(context.session, context.account)
        cached = self._cache.get(key)
        if cached is not None and self._monotonic() - cached[0] < self._cache_seconds:
            return SnapshotPositions(cached[1])
        account = await self._db.accounts.get(*key)
        if account is None or account.last_synced_at is None:
            return AccountPositions(context.session, context.account)
        held: dict[str, Decimal] = {}
        for position in await self._db.positions.for_account(*key):
            held[position.symbol] = held.get(position.symbol, Decimal(0)) + (
                position.signed_quantity
            )
        self._cache[key] = (self._monotonic(), held)
        return SnapshotPositions(held)

    def changed(self, environment: str, account_number: str) -> None:
        """A fill happened: the stored snapshot is stale until the next sync."""
        key = (environment, account_number)
        self._stale.add(key)
        self._cache.pop(key, None)

    def synced(self, environment: str, account_number: str) -> None:
        key = (environment, account_number)
        self._stale.discard(key)
        self._cache.pop(key, None)
