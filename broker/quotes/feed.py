"""A DXLink quote feed for one broker session: streamed quotes kept warm per symbol.

``QuoteFeed.want(symbols)`` asks for symbols (non-blocking); ``QuoteFeed.quote(symbol)``
answers with a trusted quote or None (see ``broker.quotes.book`` for the trust rule). A
supervisor task:

* connects the SDK's ``DXLinkStreamer`` (through ``BrokerSession.quote_streamer``), within
  ``connect_timeout_s`` from the token request to the server's AUTHORIZED;
* subscribes every wanted symbol on each new connection, then follows ``want`` (adds) and
  the book's LRU evictions (removes);
* feeds every Quote record into the book, in order (one-sided ones withdraw the quote);
* pings the websocket every ``ping_interval_s``: a pong later than ``pong_timeout_s`` ends the
  connection (the book is not live past ``ping_interval_s + pong_timeout_s`` without a pong
  anyway), since the SDK has no liveness check of its own;
* in the live environment, trusts nothing from a delayed feed (the DXLink URL says so, as the
  sandbox's does): a live order is never priced from 15-minute-old quotes;
* reconnects with capped exponential backoff (equal jitter), also after a connection that
  ended cleanly but quickly;
* stops for good once the session is closed (credentials re-linked, shutdown) or its refresh
  token revoked, as the account streamer does.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import structlog
from tastytrade.dxfeed import Quote

from broker.quotes.book import BookState, QuoteBook, StreamedQuote
from broker.quotes.sdk import BookStreamer, is_delayed
from broker.secrets import default_redactor, redact
from broker.session import BrokerSession, Environment

__all__ = ["FeedSettings", "FeedState", "QuoteFeed", "backoff_delay"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class FeedSettings:
    """Feed timing and size (tests shorten the intervals)."""

    ping_interval_s: float = 5.0
    pong_timeout_s: float = 5.0
    max_symbols: int = 500
    connect_timeout_s: float = 15.0
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    #: A connection that lasted this long resets the backoff.
    stable_after_s: float = 60.0
    #: DXLink aggregation period (seconds) asked for on the Quote channel.
    aggregation_s: float = 0.1

    def __post_init__(self) -> None:
        if self.ping_interval_s <= 0 or self.pong_timeout_s <= 0:
            raise ValueError("ping interval and pong timeout must be positive")
        if self.max_symbols < 1:
            raise ValueError("max_symbols must be at least 1")

    @property
    def stale_after_s(self) -> float:
        return self.ping_interval_s + self.pong_timeout_s


@dataclass(frozen=True, slots=True)
class FeedState:
    """For ``!tt status``: the book, connections so far, and why the feed stopped."""

    book: BookState
    connections: int
    stop_reason: str | None
    #: The current connection serves delayed quotes (None before the first connection).
    delayed: bool | None = None


def backoff_delay(failures: int, base_s: float, cap_s: float) -> float:
    """Seconds before the next connection: ``base_s`` after a stable one, else exponential,
    capped at ``cap_s``, with equal jitter (never less than half)."""
    if failures <= 0:
        return base_s
    ceiling = min(cap_s, base_s * float(2 ** min(failures - 1, 30)))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


class _PongLate(Exception):
    """The server did not answer a ping in time: the connection is presumed dead."""


class _SessionGone(Exception):
    """The session was closed or its grant revoked while connected."""


class QuoteFeed:
    """One DXLink connection (kept up) for one ``BrokerSession``; see the module doc."""

    def __init__(
        self,
        session: BrokerSession,
        settings: FeedSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.session = session
        self.settings = settings or FeedSettings()
        self.book = QuoteBook(
            max_symbols=self.settings.max_symbols,
            stale_after_s=self.settings.stale_after_s,
            clock=clock,
            now=now,
        )
        self.connections = 0
        #: Why the feed stopped for good (None while it runs).
        self.stop_reason: str | None = None
        #: Whether the last connection serves delayed quotes (None before one).
        self.delayed: bool | None = None
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.log = log.bind(environment=session.environment.value, session=session.label)

    # -- public ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the supervisor (idempotent; needs a running loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self.run(), name=f"quote-feed:{self.session.label}"
            )

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.book.disconnected()
        if self.stop_reason is None:
            self.stop_reason = "the feed was closed"

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def live(self) -> bool:
        return self.book.live

    def want(self, symbols: Iterable[str]) -> None:
        """Keep ``symbols`` (streamer symbols) subscribed; returns at once."""
        if self.book.want(symbols):
            self._changed.set()

    def quote(self, symbol: str) -> StreamedQuote | None:
        """The symbol's trusted quote, else None (never one from an earlier connection)."""
        quote = self.book.quote(symbol)
        return None if self.refuses_delayed else quote

    @property
    def refuses_delayed(self) -> bool:
        """A live-environment session on a delayed feed: none of its quotes are used."""
        return bool(self.delayed) and self.session.environment is Environment.LIVE

    def state(self) -> FeedState:
        return FeedState(self.book.state(), self.connections, self.stop_reason, self.delayed)

    # -- supervisor --------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect and stay connected until cancelled or the session is gone."""
        loop = asyncio.get_running_loop()
        failures = 0
        try:
            while self._session_gone() is None:
                started = loop.time()
                try:
                    await self._connect_once()
                    stable = loop.time() - started >= self.settings.stable_after_s
                    failures = 0 if stable else failures + 1
                except _SessionGone:
                    break
                except Exception as exc:  # includes the SDK task groups' ExceptionGroups
                    if _contains(exc, _SessionGone):
                        break
                    failures += 1
                    self.log.warning(
                        "quote_feed_disconnected", error=_describe(exc), failures=failures
                    )
                finally:
                    self.book.disconnected()
                if self._session_gone() is not None:
                    break
                await asyncio.sleep(
                    backoff_delay(
                        failures, self.settings.backoff_base_s, self.settings.backoff_cap_s
                    )
                )
        finally:
            self.book.disconnected()
        self.stop_reason = self._session_gone() or "stopped"
        self.log.warning("quote_feed_stopped", reason=self.stop_reason)

    def _session_gone(self) -> str | None:
        if self.session.closed:
            return "the session was closed"
        if self.session.health().token_revoked:
            return "the refresh token was revoked"
        return None

    async def _connect_once(self) -> None:
        # Refresh under the session's own rules first; the SDK then fetches the DXLink token.
        await self.session.ensure_fresh()
        streamer = self.session.quote_streamer(BookStreamer)
        connection = self.connections + 1
        streamer.on_quote = lambda symbol, bid, ask: self.book.received(
            connection, symbol, bid, ask
        )
        async with asyncio.timeout(self.settings.connect_timeout_s) as deadline:
            async with streamer:
                deadline.reschedule(None)
                token = streamer.auth_token
                default_redactor.add(token)
                try:
                    self.connections = connection
                    self.delayed = is_delayed(streamer.dxlink_url)
                    self.book.connected(connection)
                    self.log.info(
                        "quote_feed_connected", connections=connection, delayed=self.delayed
                    )
                    async with asyncio.TaskGroup() as group:
                        group.create_task(self._keep_alive(streamer, connection))
                        group.create_task(self._subscriptions(streamer))
                finally:
                    self.book.disconnected(connection)
                    default_redactor.discard(token)

    async def _subscriptions(self, streamer: BookStreamer) -> None:
        """Subscribe what is wanted on this connection, then follow changes."""
        subscribed: set[str] = set()
        while True:
            self._changed.clear()
            wanted = self.book.wanted()
            removed = subscribed - wanted
            if removed:
                await streamer.unsubscribe(Quote, sorted(removed))
                subscribed -= removed
            added = wanted - subscribed
            if added:
                await streamer.subscribe(
                    Quote, sorted(added), refresh_interval=self.settings.aggregation_s
                )
                subscribed |= added
            await self._changed.wait()

    async def _keep_alive(self, streamer: BookStreamer, connection: int) -> None:
        """Ping every interval; a late pong (or a session gone) ends the connection."""
        settings = self.settings
        while True:
            await asyncio.sleep(settings.ping_interval_s)
            if (reason := self._session_gone()) is not None:
                raise _SessionGone(reason)
            pong = await streamer.ping()
            try:
                async with asyncio.timeout(settings.pong_timeout_s):
                    await pong.wait()
            except TimeoutError:
                raise _PongLate(f"no pong within {settings.pong_timeout_s:g} s") from None
            self.book.alive(connection)


def _contains(exc: BaseException, kind: type[BaseException]) -> bool:
    if isinstance(exc, kind):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(_contains(inner, kind) for inner in exc.exceptions)
    return False


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in exc.exceptions)
    return redact(f"{type(exc).__name__}: {exc}")[:300]
