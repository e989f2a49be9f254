"""Fill notifications for every linked account: one streamer and one poller per account.

``NotificationHub.watch(session, environment, account, context)`` starts (once) the account
streamer subscription and the polling reconciliation loop for that (environment, account);
``context`` says where notifications for orders that are not chases go. The tracker turns
what they see into exactly-once ``OrderFilled`` / ``OrderTerminal`` events on the bus.
At start-up, ``NotificationHub.resume(engine)`` (after ``engine.resume_open``) watches the
accounts of every chase order that may still work. Each streamer keeps the account's live
position book, registered in ``positions`` (``broker.positions.LiveBooks``, shared with the
order desk) while the watch lasts.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import structlog

from broker.events import EventBus, NotificationContext
from broker.fills.engine import ChaseEngine
from broker.notify.poller import OrderPoller
from broker.notify.streamer import StreamerListener
from broker.notify.tracker import FillTracker
from broker.positions.live import LiveBook, LiveBooks
from broker.session import BrokerSession

__all__ = ["AccountWatch", "NotificationHub"]

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class AccountWatch:
    environment: str
    account_number: str
    session: BrokerSession
    poller: OrderPoller
    streamer: StreamerListener | None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    #: The account's live position book (fed by the streamer; None without one).
    positions: LiveBook | None = None


class NotificationHub:
    def __init__(
        self,
        tracker: FillTracker,
        events: EventBus,
        *,
        poll_interval_s: float = 3.0,
        use_streamer: bool = True,
        reconnect_base_s: float = 0.5,
        reconnect_cap_s: float = 30.0,
        heartbeat_s: float | None = 20.0,
        positions: LiveBooks | None = None,
    ) -> None:
        self.tracker = tracker
        #: Where each streamer's live position book is registered; pass the order desk's
        #: registry (`bot.runtime` does) so its open/close decisions can use them.
        self.positions = positions if positions is not None else LiveBooks()
        self._events = events
        self._poll_interval_s = poll_interval_s
        self._use_streamer = use_streamer
        self._reconnect_base_s = reconnect_base_s
        self._reconnect_cap_s = reconnect_cap_s
        self._heartbeat_s = heartbeat_s
        self._watches: dict[tuple[str, str], AccountWatch] = {}

    def watch_of(self, environment: str, account_number: str) -> AccountWatch | None:
        return self._watches.get((environment, account_number))

    async def watch(
        self,
        session: BrokerSession,
        environment: str,
        account_number: str,
        context: NotificationContext,
    ) -> AccountWatch:
        """Start notifications for an account (idempotent; a new session replaces the old)."""
        key = (environment, account_number)
        self.tracker.set_account_context(environment, account_number, context)
        existing = self._watches.get(key)
        if existing is not None and existing.session is session:
            return existing
        if existing is not None:
            await self._stop(existing)
        poller = OrderPoller(
            session, environment, account_number, self.tracker, interval_s=self._poll_interval_s
        )
        streamer = None
        book = None
        if self._use_streamer:
            book = self.positions.open(session, environment, account_number)
            streamer = StreamerListener(
                session,
                environment,
                account_number,
                self.tracker,
                self._events,
                context,
                resync=poller.poll_once,
                backoff_base_s=self._reconnect_base_s,
                backoff_cap_s=self._reconnect_cap_s,
                heartbeat_s=self._heartbeat_s,
                positions=book,
            )
        watch = AccountWatch(environment, account_number, session, poller, streamer, positions=book)
        loop = asyncio.get_running_loop()
        label = f"{environment}:{account_number}"
        if streamer is not None:
            watch.tasks.append(loop.create_task(streamer.run(), name=f"account-streamer:{label}"))
        else:
            # Without a streamer, start with one full pass so existing orders are known.
            await poller.poll_once()
        watch.tasks.append(loop.create_task(poller.run(), name=f"order-poller:{label}"))
        self._watches[key] = watch
        log.info("notifications_started", environment=environment, account_number=account_number)
        return watch

    async def resume(self, engine: ChaseEngine) -> int:
        """At start-up, after ``engine.resume_open(...)``: follow every chase order that may
        still work (left working, placed, cancel pending, resumed), so its fill or end is
        notified even if nobody places a new order. Returns the number of accounts watched.

        Accounts already watched keep their context; others get the chase's guild
        notifications channel for orders that are not chases (``watch`` replaces it later).
        """
        accounts: set[tuple[str, str]] = set()
        for working in await engine.working_orders():
            key = (working.environment, working.account_number)
            if self.watch_of(*key) is None:
                chase = working.context
                default = NotificationContext(
                    guild_id=chase.guild_id,
                    environment=chase.environment,
                    channel_id=chase.notify_channel_id,
                    notify_channel_id=chase.notify_channel_id,
                )
                await self.watch(working.session, *key, default)
            self.order_placed(*key, working.order_id)
            accounts.add(key)
        if accounts:
            log.info("notifications_resumed", accounts=len(accounts))
        return len(accounts)

    def order_placed(self, environment: str, account_number: str, order_id: int) -> None:
        """Tell the poller a new order is working.

        An idle poller starts at once (the tracker now expects an order). A poller already
        on its interval is woken only while the streamer is down: with the streamer up, the
        order's events arrive there, and an extra poll would re-read every live order of
        the account after each placement.
        """
        self.tracker.expect_order(environment, account_number, order_id)
        watch = self._watches.get((environment, account_number))
        if watch is None:
            return
        if watch.streamer is None or not watch.streamer.connected.is_set():
            watch.poller.wake()

    async def unwatch(self, environment: str, account_number: str) -> None:
        watch = self._watches.pop((environment, account_number), None)
        if watch is not None:
            await self._stop(watch)

    async def close(self) -> None:
        for key in list(self._watches):
            await self.unwatch(*key)

    async def _stop(self, watch: AccountWatch) -> None:
        for task in watch.tasks:
            task.cancel()
        for task in watch.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if watch.positions is not None:
            self.positions.close(watch.positions)
