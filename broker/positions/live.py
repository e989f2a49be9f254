"""Positions kept live from the account streamer, so the order path needs no positions request.

A ``LiveBook`` holds one account's signed quantities by symbol. It is

* **seeded** by a REST read made after the streamer's subscription was acknowledged;
  ``CurrentPosition`` messages received while that read is in flight are buffered and replayed
  after it (the websocket is ordered; ``updated-at`` keeps a replayed message from undoing a
  newer snapshot);
* **updated** by every ``CurrentPosition`` message (quantity 0 / direction ``Zero`` removes);
* **live** only from a successful seed until that connection ends (``disconnected``).

A fill reported by the tracker (from the streamer *or* the poller) leaves the fill's symbols
**unconfirmed** until the book holds a position message at least as new as that fill: the
streamer must have shown the order's fill (exchange ``filled-at``) and a position message for
the symbol stamped later, or stamped the same and received after the order message. A REST
read started after the report confirms too. An unconfirmed symbol is never answered from the
book (``quantities`` returns None and the caller reads over REST), which covers a streamer
that died silently while the poller still sees fills.

Pure logic, no I/O: the account streamer feeds it, ``broker.service.positions`` reads it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from tastytrade.account import CurrentPosition
from tastytrade.order import PlacedOrder

__all__ = [
    "BookState",
    "LiveBook",
    "LiveBooks",
    "PositionUpdate",
    "order_fill_times",
]

ZERO = Decimal(0)
#: Orders whose streamed fills are remembered (for confirming fills reported later).
ORDERS_REMEMBERED = 1000


@dataclass(frozen=True, slots=True)
class PositionUpdate:
    """One position as the exchange reported it; ``quantity`` is signed (short < 0)."""

    symbol: str
    quantity: Decimal
    updated_at: datetime | None

    @classmethod
    def from_sdk(cls, position: CurrentPosition) -> PositionUpdate:
        quantity = abs(Decimal(position.quantity))
        if position.quantity_direction == "Short":
            quantity = -quantity
        elif position.quantity_direction == "Zero":
            quantity = ZERO
        return cls(position.symbol, quantity, position.updated_at)


def order_fill_times(order: PlacedOrder) -> dict[str, datetime]:
    """The latest exchange fill time of each leg symbol of ``order`` (legs without fills
    are left out)."""
    times: dict[str, datetime] = {}
    for leg in order.legs:
        for fill in leg.fills or ():
            known = times.get(leg.symbol)
            if known is None or fill.filled_at > known:
                times[leg.symbol] = fill.filled_at
    return times


@dataclass(frozen=True, slots=True)
class BookState:
    """What ``!tt status`` may show about a book."""

    live: bool
    seeded_at: datetime | None
    symbols: int
    unconfirmed: int


@dataclass(frozen=True, slots=True)
class _Stamp:
    """Where the book's value for a symbol came from: the exchange's ``updated-at`` (None
    when a REST read showed no position) and the book sequence number it was received at."""

    updated_at: datetime | None
    seq: int


@dataclass(frozen=True, slots=True)
class _OrderSeen:
    seq: int
    fill_times: Mapping[str, datetime]


@dataclass(frozen=True, slots=True)
class _Doubt:
    """Why a symbol is unconfirmed: a fill of ``order_id`` reported at ``seq`` (or, with no
    order, a value replayed during a seed that the snapshot could not vouch for)."""

    order_id: int | None
    seq: int


class LiveBook:
    """One account's positions as the account streamer reports them (see the module doc)."""

    def __init__(
        self,
        environment: str,
        account_number: str,
        *,
        owner: object | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.environment = environment
        self.account_number = account_number
        #: The session whose streamer feeds the book; only its users may trust it.
        self.owner = owner
        self._now = now or (lambda: datetime.now(UTC))
        self._seq = 0
        self._held: dict[str, Decimal] = {}
        self._stamps: dict[str, _Stamp] = {}
        self._orders: OrderedDict[int, _OrderSeen] = OrderedDict()
        self._doubts: dict[str, list[_Doubt]] = {}
        self._buffer: list[tuple[PositionUpdate, int]] | None = None
        self._seed_token: int | None = None
        self._live = False
        self._closed = False
        self.seeded_at: datetime | None = None

    # -- connection lifecycle ------------------------------------------------------------

    @property
    def live(self) -> bool:
        return self._live

    def begin_seed(self) -> int:
        """A seed read is about to be sent: not live, buffer what arrives until ``seeded``.
        Returns the token ``seeded`` must be given."""
        self._live = False
        self._seq += 1
        self._buffer = []
        self._seed_token = self._seq
        return self._seq

    def seeded(self, positions: Iterable[PositionUpdate], token: int) -> bool:
        """The seed read (started at ``begin_seed() -> token``) answered ``positions``: apply
        it, replay what arrived meanwhile, and go live. False if the read is outdated (the
        connection ended or a newer seed began), in which case nothing changes."""
        if self._closed or self._buffer is None or token != self._seed_token:
            return False
        buffered, self._buffer = self._buffer, None
        self._seed_token = None
        self._held = {}
        self._stamps = {}
        for position in positions:
            self._stamps[position.symbol] = _Stamp(position.updated_at, token)
            if position.quantity != 0:
                self._held[position.symbol] = position.quantity
        self._clear_doubts_before(token, symbols=None)
        for update, seq in buffered:
            in_snapshot = update.symbol in self._stamps
            self._store(update, seq)
            if not in_snapshot and update.quantity != 0:
                # Sent before or after the snapshot was taken? The snapshot cannot say (it has
                # no stamp for a symbol it does not list): trust only a later message or read.
                self._doubt(update.symbol, _Doubt(None, seq))
        self._live = True
        self.seeded_at = self._now()
        return True

    def seed_failed(self) -> None:
        """The seed read failed: stay not live (a retry calls ``begin_seed`` again)."""
        self._live = False
        self._buffer = None
        self._seed_token = None

    def disconnected(self) -> None:
        """The streamer connection that fed the book ended: not live until re-seeded."""
        self._live = False
        self._buffer = None
        self._seed_token = None

    def close(self) -> None:
        self.disconnected()
        self._closed = True

    # -- what the streamer sends ---------------------------------------------------------

    def apply(self, update: PositionUpdate) -> None:
        """A ``CurrentPosition`` message (absolute quantity)."""
        seq = self._next()
        if self._buffer is not None:
            self._buffer.append((update, seq))
        elif self._live:
            self._store(update, seq)
        # Otherwise no seed covers this connection yet; the next seed read will.

    def order_seen(self, order_id: int, fill_times: Mapping[str, datetime]) -> None:
        """An ``Order`` message with fills (``order_fill_times``): a fill reported for it is
        confirmed by a position message received after this one (or stamped later)."""
        if not fill_times:
            return
        self._orders[order_id] = _OrderSeen(self._next(), dict(fill_times))
        self._orders.move_to_end(order_id)
        while len(self._orders) > ORDERS_REMEMBERED:
            self._orders.popitem(last=False)

    # -- fills and reads -----------------------------------------------------------------

    def fill_reported(self, order_id: int, symbols: Iterable[str]) -> None:
        """The tracker saw a fill of ``order_id`` on ``symbols`` (from the streamer or the
        poller): those symbols are unconfirmed until the book has caught up with it."""
        doubt = _Doubt(order_id, self._next())
        for symbol in symbols:
            if not self._satisfied(symbol, doubt):
                self._doubt(symbol, doubt)

    def distrust(self, symbols: Iterable[str]) -> None:
        """The exchange contradicted the book about ``symbols`` (e.g. a close of a position it
        says is not there): don't answer for them until a later message or read."""
        doubt = _Doubt(None, self._next())
        for symbol in symbols:
            self._doubt(symbol, doubt)

    def quantities(self, symbols: Sequence[str]) -> dict[str, Decimal] | None:
        """Signed quantities of the held ``symbols``, or None when the book can't answer for
        all of them (not live, or a symbol is unconfirmed): then ask the exchange."""
        if not self._live:
            return None
        for symbol in symbols:
            if not self._confirmed(symbol):
                return None
        return {symbol: self._held[symbol] for symbol in symbols if symbol in self._held}

    def begin_read(self) -> int:
        """A REST positions read is about to be sent; pass the token to ``read``."""
        return self._next()

    def read(self, positions: Iterable[PositionUpdate], token: int) -> None:
        """A complete REST positions read sent at ``begin_read() -> token``. Symbols with no
        message received since the read was sent take its value, and fills reported before
        it are confirmed for them; a message received during the read is kept (it may be
        newer), and so are its doubts."""
        if not self._live:
            return  # the next seed replaces everything anyway
        listed = {p.symbol: p for p in positions}
        for symbol in set(listed) | set(self._held) | set(self._doubts):
            stamp = self._stamps.get(symbol)
            if stamp is not None and stamp.seq > token:
                continue
            position = listed.get(symbol)
            if position is None:
                self._held.pop(symbol, None)
                self._stamps[symbol] = _Stamp(None, token)
            else:
                self._stamps[symbol] = _Stamp(position.updated_at, token)
                if position.quantity == 0:
                    self._held.pop(symbol, None)
                else:
                    self._held[symbol] = position.quantity
            self._clear_doubts_before(token, symbols=(symbol,))

    def state(self) -> BookState:
        unconfirmed = sum(1 for symbol in self._doubts if not self._confirmed(symbol))
        return BookState(self._live, self.seeded_at, len(self._held), unconfirmed)

    # -- internals -----------------------------------------------------------------------

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def _store(self, update: PositionUpdate, seq: int) -> None:
        stamp = self._stamps.get(update.symbol)
        if (
            stamp is not None
            and stamp.updated_at is not None
            and update.updated_at is not None
            and update.updated_at < stamp.updated_at
        ):
            return  # older than what the book has (a message replayed after its snapshot)
        self._stamps[update.symbol] = _Stamp(update.updated_at, seq)
        if update.quantity == 0:
            self._held.pop(update.symbol, None)
        else:
            self._held[update.symbol] = update.quantity

    def _doubt(self, symbol: str, doubt: _Doubt) -> None:
        self._doubts.setdefault(symbol, []).append(doubt)

    def _confirmed(self, symbol: str) -> bool:
        doubts = self._doubts.get(symbol)
        if not doubts:
            return True
        remaining = [d for d in doubts if not self._satisfied(symbol, d)]
        if remaining:
            self._doubts[symbol] = remaining
            return False
        del self._doubts[symbol]
        return True

    def _satisfied(self, symbol: str, doubt: _Doubt) -> bool:
        stamp = self._stamps.get(symbol)
        if stamp is None:
            return False
        if doubt.order_id is None:
            return stamp.seq > doubt.seq
        seen = self._orders.get(doubt.order_id)
        filled_at = None if seen is None else seen.fill_times.get(symbol)
        if seen is None or filled_at is None or stamp.updated_at is None:
            return False  # the stream has not shown this fill yet
        if stamp.updated_at > filled_at:
            return True
        # Same stamp (the exchange's clock resolution): only a message received after the
        # order's fill message can be the position that includes it.
        return stamp.updated_at == filled_at and stamp.seq > seen.seq

    def _clear_doubts_before(self, seq: int, *, symbols: Iterable[str] | None) -> None:
        for symbol in list(self._doubts if symbols is None else symbols):
            doubts = self._doubts.get(symbol)
            if doubts is None:
                continue
            kept = [d for d in doubts if d.seq > seq]
            if kept:
                self._doubts[symbol] = kept
            else:
                del self._doubts[symbol]


class LiveBooks:
    """The live books of every watched account, found by (session, environment, account).

    The notification hub opens one per account streamer; the order desk looks up the one fed
    by the session it trades with (another session's book — another exchange in tests, or a
    replaced watch — is never trusted); fills are reported to every book of the account.
    """

    def __init__(self) -> None:
        self._books: dict[tuple[str, str], list[LiveBook]] = {}

    def open(
        self,
        owner: object,
        environment: str,
        account_number: str,
        *,
        now: Callable[[], datetime] | None = None,
    ) -> LiveBook:
        book = LiveBook(environment, account_number, owner=owner, now=now)
        self._books.setdefault((environment, account_number), []).append(book)
        return book

    def close(self, book: LiveBook) -> None:
        book.close()
        key = (book.environment, book.account_number)
        books = [b for b in self._books.get(key, ()) if b is not book]
        if books:
            self._books[key] = books
        else:
            self._books.pop(key, None)

    def find(self, owner: object, environment: str, account_number: str) -> LiveBook | None:
        for book in self._books.get((environment, account_number), ()):
            if book.owner is owner:
                return book
        return None

    def fill_reported(
        self, environment: str, account_number: str, order_id: int, symbols: Iterable[str]
    ) -> None:
        wanted = tuple(symbols)
        for book in self._books.get((environment, account_number), ()):
            book.fill_reported(order_id, wanted)
