"""Account-streamer listener with reconnect, REST re-sync and a heartbeat.

SDK 13.x's ``AlertStreamer`` never reconnects and sends no application heartbeat; a dead
socket or a malformed message ends it with an ``ExceptionGroup``. This loop:

* connects, subscribes the account, and after *every* (re)connect re-syncs over REST (the
  streamer does not replay what was sent while it was down);
* feeds ``Order`` messages to the tracker and drains ``AccountBalance`` / ``CurrentPosition``
  (the SDK queues are unbounded; undrained types pile up in memory) into events;
* keeps the account's live position book (``broker.positions.live``), when given one: seeded
  by a REST positions read after every subscription ack (retried with backoff while the
  connection lasts), fed every ``CurrentPosition`` and the fill times of every ``Order``
  directly (not through the bounded bus), and not live from the moment the connection ends;
* sends a ``heartbeat`` subscription every ``heartbeat_s``: its ack must arrive within the
  SDK's 10 s, so a silently dead connection is detected and replaced;
* reconnects with capped exponential backoff (equal jitter) on any failure, and also after a
  connection that ended cleanly but quickly (a server that keeps closing us is not hammered);
* stops for good once the session is closed (re-linked/unlinked: a new watch replaces it) or
  its refresh token is revoked: reconnecting would only repeat OAuth attempts that cannot
  succeed and risk an IP block.

Silence is not trusted either way: the poller (``broker.notify.poller``) keeps delivering
fills while the streamer is down or quiet.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import structlog
from tastytrade import Account, AlertStreamer
from tastytrade.account import AccountBalance, CurrentPosition
from tastytrade.order import PlacedOrder
from tastytrade.streamer import SubscriptionType

from broker.events import AccountBalanceChanged, EventBus, NotificationContext, PositionChanged
from broker.notify.tracker import FillTracker
from broker.positions.live import LiveBook, PositionUpdate, order_fill_times
from broker.secrets import redact
from broker.session import BrokerSession

__all__ = ["StreamerListener"]

log = structlog.get_logger(__name__)


class StreamerListener:
    """One account-streamer subscription for one (environment, account)."""

    def __init__(
        self,
        session: BrokerSession,
        environment: str,
        account_number: str,
        tracker: FillTracker,
        events: EventBus,
        context: NotificationContext,
        *,
        resync: Callable[[], Awaitable[object]],
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        heartbeat_s: float | None = 20.0,
        stable_after_s: float = 60.0,
        now: Callable[[], datetime] | None = None,
        positions: LiveBook | None = None,
    ) -> None:
        self._session = session
        self._environment = environment
        self._account_number = account_number
        self._tracker = tracker
        self._events = events
        self._context = context
        self._resync = resync
        self._backoff_base_s = backoff_base_s
        self._backoff_cap_s = backoff_cap_s
        self._heartbeat_s = heartbeat_s
        self._stable_after_s = stable_after_s
        self._now = now or (lambda: datetime.now(UTC))
        self._book = positions
        self.connections = 0
        self.connected = asyncio.Event()
        #: Why the listener stopped for good (None while it runs).
        self.stop_reason: str | None = None
        self.log = log.bind(environment=environment, account_number=account_number)

    async def run(self) -> None:
        """Run until cancelled, or until the session is closed or its grant revoked."""
        loop = asyncio.get_running_loop()
        failures = 0
        while (reason := self._session_gone()) is None:
            started = loop.time()
            try:
                await self._connect_once()
                # A clean end (the server closed normally): reconnect promptly, unless the
                # connection keeps ending soon after it started.
                stable = loop.time() - started >= self._stable_after_s
                failures = 0 if stable else failures + 1
            except Exception as exc:  # includes the SDK task group's ExceptionGroups
                failures += 1
                self.log.warning(
                    "account_streamer_disconnected", error=_describe(exc), failures=failures
                )
            finally:
                self.connected.clear()
            if self._session_gone() is not None:
                break
            await asyncio.sleep(self.backoff(failures))
        self.stop_reason = self._session_gone() or reason
        self.log.warning("account_streamer_stopped", reason=self.stop_reason)

    def backoff(self, failures: int) -> float:
        """Seconds before the next connection: the base after a stable connection, else an
        exponential delay capped at ``backoff_cap_s`` (equal jitter: never less than half)."""
        if failures <= 0:
            return self._backoff_base_s
        growth = float(2 ** min(failures - 1, 30))
        ceiling = min(self._backoff_cap_s, self._backoff_base_s * growth)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _session_gone(self) -> str | None:
        if self._session.closed:
            return "the session was closed"
        if self._session.health().token_revoked:
            return "the refresh token was revoked"
        return None

    async def _connect_once(self) -> None:
        streamer: AlertStreamer = self._session.alert_streamer()
        try:
            async with streamer:
                account = Account.model_construct(account_number=self._account_number)
                await streamer.subscribe_accounts([account])
                self.connections += 1
                self.connected.set()
                self.log.info("account_streamer_connected", connections=self.connections)
                observed: asyncio.Queue[PlacedOrder] = asyncio.Queue()
                async with asyncio.TaskGroup() as group:
                    # Both drained from now on, without waiting on anything else, so the book
                    # sees orders and positions in about the order they were received (the
                    # SDK splits them by type) and buffers what arrives during its seed read.
                    group.create_task(self._orders(streamer, observed))
                    group.create_task(self._positions(streamer))
                    if self._book is not None:
                        group.create_task(self._seed(self._book, account))
                    # Catch up on whatever happened while we were not listening, then tell
                    # the tracker about streamed orders.
                    await self._resync()
                    group.create_task(self._observe(observed))
                    group.create_task(self._balances(streamer))
                    if self._heartbeat_s:
                        group.create_task(self._heartbeat(streamer, self._heartbeat_s))
        finally:
            if self._book is not None:
                self._book.disconnected()

    async def _seed(self, book: LiveBook, account: Account) -> None:
        """Seed the book over REST; on failure retry (backoff) while the connection lasts."""
        failures = 0
        while True:
            token = book.begin_seed()
            try:
                positions = await self._session.read(lambda s: account.get_positions(s))
            except Exception as exc:
                book.seed_failed()
                failures += 1
                self.log.warning("position_seed_failed", error=_describe(exc), failures=failures)
                await asyncio.sleep(self.backoff(failures))
                continue
            if book.seeded([PositionUpdate.from_sdk(p) for p in positions], token):
                self.log.info("position_book_live", positions=len(positions))
            return

    async def _orders(self, streamer: AlertStreamer, observed: asyncio.Queue[PlacedOrder]) -> None:
        async for order in streamer.listen(PlacedOrder):
            if order.account_number != self._account_number:
                continue
            if self._book is not None:
                self._book.order_seen(order.id, order_fill_times(order))
            observed.put_nowait(order)

    async def _observe(self, observed: asyncio.Queue[PlacedOrder]) -> None:
        while True:
            order = await observed.get()
            try:
                await self._tracker.observe(self._session, self._environment, order)
            except Exception:
                self.log.exception("order_observation_failed", order_id=order.id)

    async def _balances(self, streamer: AlertStreamer) -> None:
        async for balance in streamer.listen(AccountBalance):
            self._events.publish(
                AccountBalanceChanged(
                    context=self._context,
                    account_number=balance.account_number,
                    at=self._now(),
                    net_liquidating_value=balance.net_liquidating_value,
                    cash_balance=balance.cash_balance,
                    equity_buying_power=balance.equity_buying_power,
                    derivative_buying_power=balance.derivative_buying_power,
                )
            )

    async def _positions(self, streamer: AlertStreamer) -> None:
        async for position in streamer.listen(CurrentPosition):
            if position.account_number != self._account_number:
                continue
            update = PositionUpdate.from_sdk(position)
            if self._book is not None:
                self._book.apply(update)
            self._events.publish(
                PositionChanged(
                    context=self._context,
                    account_number=position.account_number,
                    at=self._now(),
                    symbol=position.symbol,
                    instrument_type=position.instrument_type.value,
                    quantity=update.quantity,
                )
            )

    async def _heartbeat(self, streamer: AlertStreamer, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            # The SDK has no public keepalive; its subscribe waits up to 10 s for the ack and
            # raises TimeoutError otherwise, which ends this connection and triggers a reconnect.
            await streamer._subscribe(SubscriptionType.HEARTBEAT)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in exc.exceptions)
    return redact(f"{type(exc).__name__}: {exc}")[:300]
