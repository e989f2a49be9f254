"""The quote book of one DXLink feed: wanted symbols (LRU) and the current connection's quotes.

Pure logic, no I/O: ``broker.quotes.feed`` drives it from the streamer, the order builder and
the chase read it.

Trust rule (docs/architecture.md, "the quote feed"): ``quote(symbol)`` answers only with a
quote that

* was received on the **current** connection (every quote is dropped the moment a connection
  ends; a new connection starts empty),
* while that connection is **live**: its last sign of life (the handshake, then each pong) is
  at most ``stale_after_s`` old,
* is **two-sided** (a bid and an ask), and has not been withdrawn since: a later event for
  the symbol without a usable bid/ask removes it (the SDK alone would silently drop such an
  event and leave the older two-sided quote in place).

A symbol that never had an event (unknown to the feed, no market) simply has no quote.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

__all__ = ["BookState", "QuoteBook", "StreamedQuote"]


@dataclass(frozen=True, slots=True)
class StreamedQuote:
    """A two-sided quote as the feed received it (``received_at`` is the bot's clock)."""

    symbol: str  # the streamer symbol (SPY, .SPY261218C600, /ESZ26:XCME)
    bid: Decimal
    ask: Decimal
    received_at: datetime

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2


@dataclass(frozen=True, slots=True)
class BookState:
    """What ``!tt status`` may show about a feed's book."""

    connected: bool
    live: bool
    wanted: int
    quoted: int


class QuoteBook:
    """Wanted symbols (least recently used evicted beyond ``max_symbols``) and the quotes of
    the current connection, trusted per the module's rule."""

    def __init__(
        self,
        *,
        max_symbols: int,
        stale_after_s: float,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        if max_symbols < 1:
            raise ValueError("max_symbols must be at least 1")
        if stale_after_s <= 0:
            raise ValueError("stale_after_s must be positive")
        self.max_symbols = max_symbols
        self.stale_after_s = stale_after_s
        self._clock = clock
        self._now = now or (lambda: datetime.now(UTC))
        self._wanted: OrderedDict[str, None] = OrderedDict()
        self._quotes: dict[str, StreamedQuote] = {}
        self._connection: int | None = None
        self._alive_at = 0.0

    # -- wanted symbols ----------------------------------------------------------------------

    def want(self, symbols: Iterable[str]) -> bool:
        """Mark ``symbols`` wanted (most recently used); True when one was not wanted before.
        Beyond ``max_symbols`` the least recently used are dropped (with their quotes)."""
        added = False
        for symbol in symbols:
            if not symbol:
                continue
            if symbol in self._wanted:
                self._wanted.move_to_end(symbol)
            else:
                self._wanted[symbol] = None
                added = True
        while len(self._wanted) > self.max_symbols:
            evicted, _ = self._wanted.popitem(last=False)
            self._quotes.pop(evicted, None)
        return added

    def wanted(self) -> frozenset[str]:
        return frozenset(self._wanted)

    def is_wanted(self, symbol: str) -> bool:
        return symbol in self._wanted

    # -- connection and liveness -------------------------------------------------------------

    def connected(self, connection: int) -> None:
        """A new connection finished its handshake: start empty, alive as of now."""
        self._connection = connection
        self._quotes.clear()
        self._alive_at = self._clock()

    def alive(self, connection: int) -> None:
        """The connection answered (a pong): it is live for another ``stale_after_s``."""
        if connection == self._connection:
            self._alive_at = self._clock()

    def disconnected(self, connection: int | None = None) -> None:
        """The connection ended (or, with None, whatever connection there was): nothing from it
        is trusted any more."""
        if connection is None or connection == self._connection:
            self._connection = None
            self._quotes.clear()

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    @property
    def live(self) -> bool:
        return self._connection is not None and self._clock() - self._alive_at <= self.stale_after_s

    # -- quotes ------------------------------------------------------------------------------

    def received(
        self, connection: int, symbol: str, bid: Decimal | None, ask: Decimal | None
    ) -> None:
        """An event for ``symbol`` on ``connection``; without a bid or an ask (or with
        a non-finite one) the symbol's quote is withdrawn."""
        if connection != self._connection or symbol not in self._wanted:
            return
        if bid is None or ask is None or not bid.is_finite() or not ask.is_finite():
            self._quotes.pop(symbol, None)
            return
        self._quotes[symbol] = StreamedQuote(symbol, bid, ask, self._now())

    def quote(self, symbol: str) -> StreamedQuote | None:
        """The symbol's quote if trusted (module doc); asking keeps the symbol wanted."""
        if symbol in self._wanted:
            self._wanted.move_to_end(symbol)
        if not self.live:
            return None
        return self._quotes.get(symbol)

    def state(self) -> BookState:
        live = self.live
        return BookState(
            connected=self._connection is not None,
            live=live,
            wanted=len(self._wanted),
            quoted=len(self._quotes) if live else 0,
        )
