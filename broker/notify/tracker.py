"""Turns order observations into fill and terminal notifications, each delivered once.

Three sources feed :meth:`FillTracker.observe`: the account streamer, the polling
reconciliation loop and the chase engine's own reads. Whatever the source, an event is
published only after its dedupe key was claimed in SQLite (``fill_events``), so a fill seen
twice (two sources, a reconnect, a restart) is notified once:

* fill: ``<env>:order=<id>:filled=<cumulative quantity of that order>``
* terminal (cancelled / expired / rejected, not a replace): ``<env>:order=<id>:terminal``

Acknowledgement (when is a notice "delivered"?):

* default (``explicit_ack=False``): once every bus subscriber's handler returned. Only right
  when the handler itself posts the notice.
* ``explicit_ack=True``: only when :meth:`acknowledge` is called with the event's
  ``dedupe_key``. The Discord layer calls it *after* ``channel.send`` succeeded (or when the
  notice can never be posted: no channel, no permission), so a notice queued in memory when
  the process stops is not lost.

Either way, events claimed but never acknowledged are re-published by
:meth:`redeliver_pending`; call it once at start-up, after the notice subscriber is
subscribed (events published to nobody stay pending until the next start).

Orders of a chase carry the chase's context (originating channel, author) and a summary of
the chase (start price, steps, final price, improvement versus the natural at submission);
other orders use the account's default context (the guild's notifications channel).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import structlog
from tastytrade import Account, Session
from tastytrade.account import Transaction
from tastytrade.order import PlacedOrder
from tastytrade.utils import PriceEffect

from broker.events import (
    BrokerEvent,
    ChaseSummary,
    EventBus,
    NotificationContext,
    OrderFilled,
    OrderTerminal,
    event_from_payload,
    event_to_payload,
)
from broker.fills.model import ChaseRecord
from broker.fills.snapshot import OrderSnapshot
from broker.orders.pricing import split_signed_price
from broker.session import BrokerError, BrokerSession
from storage.errors import NotFoundError

if TYPE_CHECKING:
    from broker.fills.clock import Clock
    from broker.fills.store import ChaseStore
    from storage.database import Database

__all__ = ["FillTracker", "SnapshotCache"]

log = structlog.get_logger(__name__)


def _fill_key(environment: str, order_id: int, filled: Decimal) -> str:
    return f"{environment}:order={order_id}:filled={format(filled.normalize(), 'f')}"


def _terminal_key(environment: str, order_id: int) -> str:
    return f"{environment}:order={order_id}:terminal"


class SnapshotCache:
    """Last seen state per order: every working order, and the newest ``max_finished``
    finished ones (older finished orders are forgotten; seeing one again costs a database
    look-up of its dedupe key, never a second notification)."""

    def __init__(self, *, max_finished: int) -> None:
        if max_finished < 1:
            raise ValueError("max_finished must be at least 1")
        self._max_finished = max_finished
        self._working: dict[tuple[str, int], OrderSnapshot] = {}
        self._finished: OrderedDict[tuple[str, int], OrderSnapshot] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._working or key in self._finished

    def __len__(self) -> int:
        return len(self._working) + len(self._finished)

    def get(self, key: tuple[str, int]) -> OrderSnapshot | None:
        return self._working.get(key) or self._finished.get(key)

    def put(self, key: tuple[str, int], snap: OrderSnapshot) -> None:
        if snap.is_working:
            self._finished.pop(key, None)
            self._working[key] = snap
            return
        self._working.pop(key, None)
        self._finished[key] = snap
        self._finished.move_to_end(key)
        while len(self._finished) > self._max_finished:
            self._finished.popitem(last=False)


class FillTracker:
    """Exactly-once fill/terminal events from any number of order observations.

    ``db`` is the project's ``storage.Database``; ``store`` defaults to the chase store over
    it. ``fees`` turns on the fee look-up (one transactions request per fill event).
    """

    def __init__(
        self,
        db: Database,
        events: EventBus,
        *,
        store: ChaseStore | None = None,
        clock: Clock | None = None,
        fees: bool = True,
        explicit_ack: bool = False,
        max_finished_snapshots: int = 5000,
    ) -> None:
        if store is None:
            from broker.fills.sqlite_store import SqliteChaseStore

            store = SqliteChaseStore(db)
        self._db = db
        self._store = store
        self._events = events
        self._now = clock.now if clock is not None else (lambda: datetime.now(UTC))
        self._fees = fees
        self._explicit_ack = explicit_ack
        #: Keys published in this process and not acknowledged yet (never re-sent meanwhile).
        self._in_flight: set[str] = set()
        self._snapshots = SnapshotCache(max_finished=max_finished_snapshots)
        self._working: dict[tuple[str, str], set[int]] = {}
        self._contexts: dict[tuple[str, str], NotificationContext] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._working_changed: dict[tuple[str, str], asyncio.Event] = {}
        #: Called (session, environment, order) for an order carrying an external identifier
        #: that no chase has linked yet: the engine adopts orders reported lost that
        #: surfaced late (``ChaseEngine.adopt_late_order``).
        events.on_drop(self._dropped)
        self.unlinked_order_hook: (
            Callable[[BrokerSession, str, PlacedOrder], Awaitable[object]] | None
        ) = None

    # ------------------------------------------------------------------ configuration

    def set_account_context(
        self, environment: str, account_number: str, context: NotificationContext
    ) -> None:
        """Where notifications for orders that are not chases go (the guild's channel)."""
        self._contexts[(environment, account_number)] = context

    def working_orders(self, environment: str, account_number: str) -> set[int]:
        """Order ids last seen working (the poller polls while this is non-empty)."""
        return set(self._working.get((environment, account_number), ()))

    def expect_order(self, environment: str, account_number: str, order_id: int) -> None:
        """Mark an order as working before it is observed (e.g. left-working chases)."""
        self._working.setdefault((environment, account_number), set()).add(order_id)
        self._changed(environment, account_number).set()

    def _changed(self, environment: str, account_number: str) -> asyncio.Event:
        return self._working_changed.setdefault((environment, account_number), asyncio.Event())

    async def wait_for_working(self, environment: str, account_number: str) -> None:
        """Return when the account's set of working orders may have changed."""
        event = self._changed(environment, account_number)
        await event.wait()
        event.clear()

    # ------------------------------------------------------------------------ observe

    async def observe(self, session: BrokerSession, environment: str, order: PlacedOrder) -> None:
        snap = OrderSnapshot.of(order)
        account_key = (environment, snap.account_number)
        lock = self._locks.setdefault(account_key, asyncio.Lock())
        first_sight = (environment, snap.order_id) not in self._snapshots
        async with lock:
            await self._observe_locked(session, environment, snap, account_key)
        hook = self.unlinked_order_hook
        # Outside the lock: the hook (engine adoption) observes the order again.
        if (
            first_sight
            and snap.external_identifier
            and hook is not None
            and await self._store.by_order(environment, snap.order_id) is None
        ):
            try:
                await hook(session, environment, order)
            except Exception:
                log.exception("unlinked_order_hook_failed", order_id=snap.order_id)

    async def _observe_locked(
        self,
        session: BrokerSession,
        environment: str,
        snap: OrderSnapshot,
        account_key: tuple[str, str],
    ) -> None:
        previous = self._snapshots.get((environment, snap.order_id))
        self._snapshots.put((environment, snap.order_id), snap)
        self._track_working(account_key, snap)
        unchanged = (
            previous is not None
            and previous.status == snap.status
            and previous.filled_quantity == snap.filled_quantity
        )
        if unchanged:
            return
        if snap.filled_quantity > 0 and (
            previous is None or previous.filled_quantity != snap.filled_quantity
        ):
            await self._fill_event(session, environment, snap)
        if snap.is_terminal and not snap.is_fully_filled and not snap.was_replaced:
            await self._terminal_event(session, environment, snap)

    def _track_working(self, account_key: tuple[str, str], snap: OrderSnapshot) -> None:
        working = self._working.setdefault(account_key, set())
        before = snap.order_id in working
        if snap.is_working:
            working.add(snap.order_id)
        else:
            working.discard(snap.order_id)
        if before != (snap.order_id in working):
            self._changed(*account_key).set()

    # ------------------------------------------------------------------------- events

    async def _chase_for(self, environment: str, snap: OrderSnapshot) -> ChaseRecord | None:
        chase = await self._store.by_order(environment, snap.order_id)
        if chase is None and snap.replaces_order_id is not None:
            # The replacement may be observed before the engine stored the new link.
            chase = await self._store.by_order(environment, snap.replaces_order_id)
        if chase is None and snap.external_identifier:
            chase = await self._store.by_key(snap.external_identifier)
            if chase is not None and (
                chase.environment != environment or chase.account_number != snap.account_number
            ):
                chase = None
        return chase

    def _context(
        self, environment: str, snap: OrderSnapshot, chase: ChaseRecord | None
    ) -> NotificationContext | None:
        if chase is not None:
            return chase.context
        return self._contexts.get((environment, snap.account_number))

    async def _chain_fills(
        self,
        session: BrokerSession,
        environment: str,
        chase: ChaseRecord,
        current: OrderSnapshot,
    ) -> tuple[Decimal, Decimal | None, list[int]]:
        """Cumulative filled quantity and average price over the whole replace chain."""
        chain = list(dict.fromkeys([*chase.chain, current.order_id]))
        filled = Decimal(0)
        value = Decimal(0)
        for order_id in chain:
            snap = current if order_id == current.order_id else None
            snap = snap or self._snapshots.get((environment, order_id))
            if snap is None or not snap.is_terminal:
                snap = await self._read(session, chase.account_number, order_id) or snap
                if snap is not None:
                    self._snapshots.put((environment, order_id), snap)
            if snap is None or not snap.filled_quantity or snap.average_price is None:
                continue
            filled += snap.filled_quantity
            value += snap.average_price * snap.filled_quantity
        filled = min(filled, chase.order.quantity)
        return filled, (value / filled if filled else None), chain

    async def _read(
        self, session: BrokerSession, account_number: str, order_id: int
    ) -> OrderSnapshot | None:
        account = Account.model_construct(account_number=account_number)

        async def call(sdk: Session) -> PlacedOrder:
            return await account.get_order(sdk, order_id)

        try:
            return OrderSnapshot.of(await session.read(call, kind="orders"))
        except BrokerError as exc:
            log.warning("chain_order_read_failed", order_id=order_id, error=exc.message)
            return None

    async def _fill_event(
        self, session: BrokerSession, environment: str, snap: OrderSnapshot
    ) -> None:
        key = _fill_key(environment, snap.order_id, snap.filled_quantity)
        if await self._db.fill_events.get(key) is not None:
            return
        chase = await self._chase_for(environment, snap)
        context = self._context(environment, snap, chase)
        if context is None:
            log.warning("fill_without_context", order_id=snap.order_id, environment=environment)
            return
        reported = await self._reported_quantity(environment, snap.order_id)
        fill_quantity = snap.filled_quantity - reported
        if chase is not None:
            filled, average, chain = await self._chain_fills(session, environment, chase, snap)
            total = chase.order.quantity
            legs = chase.order.legs
            underlying = chase.order.underlying_symbol
            summary = _summary(chase, chain, average, filled, snap)
            complete = filled >= total
        else:
            filled, average, chain = snap.filled_quantity, snap.average_price, [snap.order_id]
            total = snap.size
            legs = snap.legs
            underlying = snap.underlying_symbol
            summary = None
            complete = snap.is_fully_filled
        fees = None
        if self._fees:
            fees = await self.fees_for(session, snap.account_number, chain, underlying)
        event = OrderFilled(
            context=context,
            account_number=snap.account_number,
            at=self._now(),
            dedupe_key=key,
            order_id=snap.order_id,
            chase_id=None if chase is None else chase.id,
            legs=legs,
            underlying_symbol=underlying,
            filled_quantity=filled,
            fill_quantity=fill_quantity,
            total_quantity=total,
            average_price=average,
            effect=_effect_of(average),
            fees=fees,
            complete=complete,
            chase=summary,
        )
        await self._claim_and_publish(event, environment, snap.order_id)

    async def _reported_quantity(self, environment: str, order_id: int) -> Decimal:
        events = await self._db.fill_events.for_order(environment, order_id)
        quantities = [
            Decimal(str(e.payload.get("order_filled_quantity", "0")))
            for e in events
            if e.payload.get("__type__") == "OrderFilled"
        ]
        if quantities:
            return max(quantities)
        return Decimal(0)

    async def _terminal_event(
        self, session: BrokerSession, environment: str, snap: OrderSnapshot
    ) -> None:
        key = _terminal_key(environment, snap.order_id)
        if await self._db.fill_events.get(key) is not None:
            return
        chase = await self._chase_for(environment, snap)
        context = self._context(environment, snap, chase)
        if context is None:
            log.warning("terminal_without_context", order_id=snap.order_id)
            return
        if chase is not None:
            filled, average, chain = await self._chain_fills(session, environment, chase, snap)
            summary: ChaseSummary | None = _summary(chase, chain, average, filled, snap)
            total = chase.order.quantity
            legs = chase.order.legs
            underlying = chase.order.underlying_symbol
        else:
            filled, summary, total = snap.filled_quantity, None, snap.size
            legs, underlying = snap.legs, snap.underlying_symbol
        event = OrderTerminal(
            context=context,
            account_number=snap.account_number,
            at=self._now(),
            dedupe_key=key,
            order_id=snap.order_id,
            chase_id=None if chase is None else chase.id,
            status=snap.status.value,
            reason=snap.reject_reason,
            legs=legs,
            underlying_symbol=underlying,
            filled_quantity=filled,
            total_quantity=total,
            chase=summary,
        )
        await self._claim_and_publish(event, environment, snap.order_id)

    async def _claim_and_publish(
        self, event: OrderFilled | OrderTerminal, environment: str, order_id: int
    ) -> None:
        payload = event_to_payload(event)
        if isinstance(event, OrderFilled):
            snap = self._snapshots.get((environment, order_id))
            payload["order_filled_quantity"] = str(snap.filled_quantity if snap else "0")
        won = await self._db.fill_events.claim(
            event.dedupe_key, payload, environment=environment, order_id=order_id
        )
        if not won:
            return
        log.info(
            "fill_event" if isinstance(event, OrderFilled) else "terminal_event",
            order_id=order_id,
            guild_id=event.context.guild_id,
            key=event.dedupe_key,
        )
        self._publish(event)

    def _publish(self, event: OrderFilled | OrderTerminal) -> None:
        if self._explicit_ack:
            self._in_flight.add(event.dedupe_key)
            self._events.publish(event)
        else:
            self._events.publish(event, on_delivered=self._mark_delivered)

    def _dropped(self, event: BrokerEvent, subscriber: str) -> None:
        """A subscriber's queue overflowed: the event may be re-sent by ``redeliver_pending``."""
        key = getattr(event, "dedupe_key", None)
        if key:
            self._in_flight.discard(key)

    async def _mark_delivered(self, event: BrokerEvent) -> None:
        key = getattr(event, "dedupe_key", None)
        if key:
            await self._db.fill_events.mark_delivered(key)

    async def acknowledge(self, dedupe_key: str) -> bool:
        """The notice with ``dedupe_key`` was posted (or can never be): it is not re-sent.

        Returns False (and logs) for a key that was never claimed. Idempotent.
        """
        self._in_flight.discard(dedupe_key)
        try:
            await self._db.fill_events.mark_delivered(dedupe_key)
        except NotFoundError:
            log.warning("acknowledged_unknown_fill_event", key=dedupe_key)
            return False
        return True

    async def redeliver_pending(self, *, max_age: timedelta | None = None) -> int:
        """Re-publish events claimed but never acknowledged (e.g. before a restart).

        Events still in flight in this process are skipped (they were published and wait for
        their acknowledgement); with ``max_age``, older events are left alone (logged).
        Returns the number re-published.
        """
        count = 0
        stale = 0
        horizon = None if max_age is None else self._now() - max_age
        for stored in await self._db.fill_events.undelivered():
            if stored.dedupe_key in self._in_flight:
                continue
            if horizon is not None and stored.created_at < horizon:
                stale += 1
                continue
            try:
                event = event_from_payload(stored.payload)
            except (KeyError, TypeError, ValueError):
                log.warning("undeliverable_fill_event", key=stored.dedupe_key)
                continue
            if not isinstance(event, OrderFilled | OrderTerminal):
                log.warning("unexpected_fill_event_type", key=stored.dedupe_key)
                continue
            self._publish(event)
            count += 1
        if stale:
            log.warning("fill_events_too_old_to_redeliver", count=stale)
        if count:
            log.info("fill_events_redelivered", count=count)
        return count

    # ---------------------------------------------------------------------------- fees

    async def fees_for(
        self,
        session: BrokerSession,
        account_number: str,
        order_ids: Sequence[int],
        underlying_symbol: str | None = None,
    ) -> Decimal | None:
        """Total fees charged (positive = cost) on the trades of ``order_ids``; None if unknown.

        Reads the last day's trade transactions (of ``underlying_symbol`` when given).
        """
        wanted = set(order_ids)
        account = Account.model_construct(account_number=account_number)
        since = (self._now() - timedelta(days=1)).date()

        async def call(sdk: Session) -> list[Transaction]:
            return await account.get_history(
                sdk,
                start_date=since,
                page_offset=None,
                types=["Trade"],
                underlying_symbol=underlying_symbol,
            )

        try:
            transactions = await session.read(call)
        except BrokerError as exc:
            log.warning("fees_lookup_failed", error=exc.message)
            return None
        total = Decimal(0)
        found = False
        for tx in transactions:
            if tx.order_id not in wanted:
                continue
            found = True
            for fee in (
                tx.commission,
                tx.clearing_fees,
                tx.regulatory_fees,
                tx.proprietary_index_option_fees,
                tx.other_charge,
            ):
                if fee is not None:
                    total += -fee  # debit fees come back negative
        return total if found else None


def _effect_of(average: Decimal | None) -> str | None:
    """Debit/Credit of a signed average fill price (None when there is none or it is 0)."""
    if average is None:
        return None
    effect = split_signed_price(average)[1]
    return None if effect is PriceEffect.NONE else effect.value


def _summary(
    chase: ChaseRecord,
    chain: list[int],
    average: Decimal | None,
    filled: Decimal,
    current: OrderSnapshot,
) -> ChaseSummary:
    # The newest order of the chain carries the chase's latest price (the stored chase may
    # not have recorded a replacement the exchange already reported).
    newest = current.order_id == chain[-1] and current.price is not None
    final = current.price if newest and current.price is not None else chase.last_price
    improvement = None if average is None else average - chase.natural_at_submission
    return ChaseSummary(
        chase_id=chase.id,
        start_price=chase.start_price,
        final_price=final,
        steps=max(len(chain) - 1, chase.steps_done),
        max_steps=chase.params.max_steps,
        natural_at_submission=chase.natural_at_submission,
        mid_at_submission=chase.order.mid,
        order_chain=tuple(chain),
        improvement=improvement,
        improvement_total=(
            None if improvement is None else improvement * filled * chase.order.multiplier
        ),
    )
