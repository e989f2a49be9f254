"""What the account holds, as the order builder needs it (to tell opening from closing).

Two sources:

* ``fresh=True`` (a plain buy/sell decides open vs close from what is held *now*): the
  account's live book (``broker.positions.live``, kept by the account streamer) when it is
  live and every asked symbol is confirmed — no request — otherwise one REST positions read,
  whose answer also refreshes the live book.
* ``fresh=False``: the last synced snapshot, cached in memory for a few seconds (no network,
  almost no database work). After a fill the snapshot is stale until the next sync, so until
  then the broker is asked directly (one request).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal

from tastytrade import Account

from broker.orders.build import AccountPositions, PositionSource
from broker.positions.live import LiveBook, LiveBooks, PositionUpdate
from broker.service.brokers import BrokerContext
from broker.session import BrokerSession
from storage.database import Database

__all__ = ["LivePositions", "PositionBook", "SnapshotPositions"]

CACHE_SECONDS = 15.0


class SnapshotPositions:
    """A `PositionSource` over an in-memory snapshot (signed quantities by symbol)."""

    def __init__(self, held: Mapping[str, Decimal]) -> None:
        self._held = held

    async def quantities(self, symbols: Sequence[str]) -> Mapping[str, Decimal]:
        return {symbol: self._held[symbol] for symbol in symbols if symbol in self._held}


class LivePositions:
    """A `PositionSource` answering from a live book when it can, else with one REST read
    (which is then given to the book, so the next answer needs no request)."""

    def __init__(self, book: LiveBook | None, broker: BrokerSession, account: Account) -> None:
        self._book = book
        self._broker = broker
        self._account = account
        #: Whether the last answer came from the live book (no request).
        self.from_book = False

    async def quantities(self, symbols: Sequence[str]) -> Mapping[str, Decimal]:
        book = self._book
        if book is not None:
            held = book.quantities(symbols)
            if held is not None:
                self.from_book = True
                return held
        self.from_book = False
        token = book.begin_read() if book is not None else 0
        positions = await self._broker.read(lambda s: self._account.get_positions(s))
        updates = [PositionUpdate.from_sdk(p) for p in positions]
        if book is not None:
            book.read(updates, token)
        wanted = set(symbols)
        answer: dict[str, Decimal] = {}
        for update in updates:
            if update.symbol in wanted and update.quantity != 0:
                answer[update.symbol] = answer.get(update.symbol, Decimal(0)) + update.quantity
        return answer


class PositionBook:
    def __init__(
        self,
        db: Database,
        *,
        cache_seconds: float = CACHE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        live: LiveBooks | None = None,
    ) -> None:
        self._db = db
        self._cache_seconds = cache_seconds
        self._monotonic = monotonic
        self._cache: dict[tuple[str, str], tuple[float, dict[str, Decimal]]] = {}
        self._stale: set[tuple[str, str]] = set()
        #: The account streamers' live books (see ``broker.notify.hub.NotificationHub``).
        self.live = live if live is not None else LiveBooks()

    def live_book(self, context: BrokerContext) -> LiveBook | None:
        """The live book fed by this context's session, if its account is being streamed."""
        return self.live.find(context.session, context.environment.value, context.account_number)

    async def source(self, context: BrokerContext, *, fresh: bool = False) -> PositionSource:
        """Where to read held quantities; `fresh` = what is held now: the live book when it
        can answer, else the broker (one request)."""
        key = (context.environment.value, context.account_number)
        if fresh:
            return LivePositions(self.live_book(context), context.session, context.account)
        if key in self._stale:
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

    def distrust(self, context: BrokerContext, symbols: Sequence[str]) -> None:
        """The exchange contradicted the live book about ``symbols``: read them over REST
        next time (which also corrects the book)."""
        book = self.live_book(context)
        if book is not None:
            book.distrust(symbols)

    def filled(
        self, environment: str, account_number: str, order_id: int, symbols: Sequence[str]
    ) -> None:
        """A fill of ``order_id`` on ``symbols`` was seen: the snapshot is stale until the next
        sync, and the live book does not answer for those symbols until it has caught up."""
        self.changed(environment, account_number)
        self.live.fill_reported(environment, account_number, order_id, symbols)

    def changed(self, environment: str, account_number: str) -> None:
        """A fill happened: the stored snapshot is stale until the next sync."""
        key = (environment, account_number)
        self._stale.add(key)
        self._cache.pop(key, None)

    def synced(self, environment: str, account_number: str) -> None:
        key = (environment, account_number)
        self._stale.discard(key)
        self._cache.pop(key, None)
