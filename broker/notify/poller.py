"""Polling reconciliation: delivers fills even when the account streamer is silent.

Account streamers are known to go quiet without disconnecting (tastyware/tastytrade #222,
#265). While the tracker knows of any working order for the account, this loop reads the
account's live orders every ``interval_s`` and feeds each one to the tracker; orders it
expected but that no longer appear in the list are read one by one. When nothing is working
it sleeps until the tracker reports a new working order. Every observation goes through the
tracker's persisted dedupe, so polling and streaming never notify a fill twice.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from tastytrade.order import PlacedOrder

from broker.fills.broker_ops import OrderOps
from broker.notify.tracker import FillTracker
from broker.session import BrokerError, BrokerSession

__all__ = ["OrderPoller"]

log = structlog.get_logger(__name__)


class OrderPoller:
    def __init__(
        self,
        session: BrokerSession,
        environment: str,
        account_number: str,
        tracker: FillTracker,
        *,
        interval_s: float = 3.0,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("poll interval must be positive")
        self._ops = OrderOps(session, account_number)
        self._session = session
        self._environment = environment
        self._account_number = account_number
        self._tracker = tracker
        self._interval_s = interval_s
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self.polls = 0
        self.log = log.bind(environment=environment, account_number=account_number)

    def wake(self) -> None:
        """Poll now (e.g. right after an order was placed)."""
        self._wake.set()

    async def run(self) -> None:
        """Run until cancelled, or until the session is closed or its grant revoked."""
        while not self._session_gone():
            working = self._tracker.working_orders(self._environment, self._account_number)
            if working:
                await self.poll_once()
                await self._sleep(self._interval_s)
            else:
                await self._idle()
        self.log.warning("order_poller_stopped", reason="session closed or token revoked")

    def _session_gone(self) -> bool:
        return self._session.closed or self._session.health().token_revoked

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        self._wake.clear()

    async def _idle(self) -> None:
        """Wait until the tracker sees a working order or someone wakes us."""
        waiters = [
            asyncio.ensure_future(
                self._tracker.wait_for_working(self._environment, self._account_number)
            ),
            asyncio.ensure_future(self._wake.wait()),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter
        self._wake.clear()

    async def poll_once(self) -> int:
        """One reconciliation pass; returns the number of orders observed."""
        async with self._lock:
            self.polls += 1
            expected = self._tracker.working_orders(self._environment, self._account_number)
            try:
                orders = await self._ops.live()
            except BrokerError as exc:
                self.log.warning("order_poll_failed", error=exc.message)
                return 0
            seen = 0
            for order in orders:
                if order.account_number != self._account_number:
                    continue
                await self._observe(order)
                seen += 1
                expected.discard(order.id)
            for order_id in sorted(expected):
                try:
                    order = await self._ops.get(order_id)
                except BrokerError as exc:
                    self.log.warning("order_read_failed", order_id=order_id, error=exc.message)
                    continue
                await self._observe(order)
                seen += 1
            return seen

    async def _observe(self, order: PlacedOrder) -> None:
        try:
            await self._tracker.observe(self._session, self._environment, order)
        except Exception:
            self.log.exception("order_observation_failed", order_id=order.id)
