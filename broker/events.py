"""Typed broker events and the in-process bus that carries them to subscribers.

The broker layer (fill-retry engine, fill notifications) only *emits* these frozen dataclasses;
the Discord layer subscribes and renders them. Nothing here imports discord.

Delivery rules:
* ``publish`` never blocks and never raises: each subscriber has its own bounded queue and
  worker task, so a slow subscriber only delays itself, and an exception in a handler is
  logged and dropped. A full queue drops (and logs) the event cheapest to lose; see
  :class:`EventBus`.
* Exactly-once is decided *before* publishing (the persisted dedupe key on fill and terminal
  events); ``publish(..., on_delivered=...)`` reports when every subscriber has handled the
  event so the producer can mark it delivered.

Prices are signed in the SDK convention (negative = Debit) and also come with their
``effect`` so renderers never have to guess.
"""

from __future__ import annotations

import asyncio
import dataclasses
import typing
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeAlias

import structlog

__all__ = [
    "AccountBalanceChanged",
    "BrokerEvent",
    "ChaseLeftWorking",
    "ChaseStepped",
    "ChaseSummary",
    "EventBus",
    "LegInfo",
    "NotificationContext",
    "OrderFilled",
    "OrderPlaced",
    "OrderTerminal",
    "PositionChanged",
    "SubmissionNotPlaced",
    "Subscription",
    "event_from_payload",
    "event_to_payload",
]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class NotificationContext:
    """Where and for whom a notification is meant.

    ``channel_id`` is the command's originating channel, ``notify_channel_id`` the guild's
    configured notifications channel; renderers post to ``target_channel_id``.
    """

    guild_id: int
    environment: str
    channel_id: int | None = None
    author_id: int | None = None
    author_name: str | None = None
    notify_channel_id: int | None = None

    @property
    def target_channel_id(self) -> int | None:
        return self.channel_id if self.channel_id is not None else self.notify_channel_id


@dataclass(frozen=True, slots=True)
class LegInfo:
    """One leg as ordered: OCC/futures symbol, action (``Buy to Open``…) and quantity."""

    symbol: str
    action: str
    quantity: Decimal
    instrument_type: str


@dataclass(frozen=True, slots=True)
class ChaseSummary:
    """How the fill-retry engine got to its price.

    ``improvement`` is per unit versus the natural price at submission (positive = better than
    a marketable order); ``improvement_total`` multiplies by the filled quantity and contract
    multiplier when those are known.
    """

    chase_id: int
    start_price: Decimal
    final_price: Decimal
    steps: int
    max_steps: int
    natural_at_submission: Decimal
    mid_at_submission: Decimal
    order_chain: tuple[int, ...]
    improvement: Decimal | None = None
    improvement_total: Decimal | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Event:
    context: NotificationContext
    account_number: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderPlaced(_Event):
    """The order is at the exchange (``adopted``: found by reconciliation after a lost reply)."""

    chase_id: int | None
    order_id: int
    legs: tuple[LegInfo, ...]
    quantity: Decimal
    price: Decimal
    effect: str
    time_in_force: str
    adopted: bool = False
    max_steps: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ChaseStepped(_Event):
    """A cancel-replace moved the limit toward the far side; the order id changed."""

    chase_id: int
    step: int
    max_steps: int
    old_order_id: int
    new_order_id: int
    old_price: Decimal
    new_price: Decimal
    natural: Decimal
    effect: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderFilled(_Event):
    """A (partial or complete) fill. Delivered once per ``dedupe_key``.

    ``filled_quantity`` is cumulative for the chase/order; ``fill_quantity`` is what this event
    adds. ``average_price`` is the signed per-unit net price over all fills so far.
    ``fees`` is the total charged so far (positive = cost), when known.
    """

    dedupe_key: str
    order_id: int
    chase_id: int | None
    legs: tuple[LegInfo, ...]
    underlying_symbol: str
    filled_quantity: Decimal
    fill_quantity: Decimal
    total_quantity: Decimal
    average_price: Decimal | None
    effect: str | None
    fees: Decimal | None
    complete: bool
    chase: ChaseSummary | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderTerminal(_Event):
    """The order (chain) ended without (completely) filling: cancelled, expired or rejected."""

    dedupe_key: str
    order_id: int
    chase_id: int | None
    status: str
    reason: str | None
    legs: tuple[LegInfo, ...]
    underlying_symbol: str
    filled_quantity: Decimal
    total_quantity: Decimal
    chase: ChaseSummary | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChaseLeftWorking(_Event):
    """All replacements used up: the order stays working at its last price."""

    chase_id: int
    order_id: int
    price: Decimal
    effect: str
    time_in_force: str
    steps: int
    natural: Decimal | None
    filled_quantity: Decimal
    total_quantity: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmissionNotPlaced(_Event):
    """The submission did not reach the exchange (or was refused). Nothing is working."""

    chase_id: int | None
    idempotency_key: str
    reason: str
    rejected: bool = False
    codes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountBalanceChanged(_Event):
    """Drained from the account streamer (it sends one after every fill)."""

    net_liquidating_value: Decimal
    cash_balance: Decimal
    equity_buying_power: Decimal
    derivative_buying_power: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionChanged(_Event):
    """Drained from the account streamer; ``quantity`` is signed (negative = short)."""

    symbol: str
    instrument_type: str
    quantity: Decimal


BrokerEvent: TypeAlias = (
    OrderPlaced
    | ChaseStepped
    | OrderFilled
    | OrderTerminal
    | ChaseLeftWorking
    | SubmissionNotPlaced
    | AccountBalanceChanged
    | PositionChanged
)
Handler: TypeAlias = Callable[[Any], Awaitable[None]]


@dataclass(slots=True)
class _Delivery:
    event: BrokerEvent
    tracker: _DeliveryTracker | None


@dataclass(slots=True)
class _DeliveryTracker:
    remaining: int
    on_delivered: Callable[[BrokerEvent], Awaitable[None] | None]
    event: BrokerEvent

    async def done(self) -> None:
        self.remaining -= 1
        if self.remaining == 0:
            result = self.on_delivered(self.event)
            if result is not None:
                await result


#: Default number of events a subscriber may have waiting before the overflow policy applies.
DEFAULT_MAX_QUEUE = 1000

# What losing an event from memory costs (lowest is dropped first on overflow):
# 0: account snapshots, superseded by the next one;
# 1: fill and terminal events, persisted before publishing and re-sent by the tracker's
#    ``redeliver_pending`` (their delivery is never acknowledged when dropped);
# 2: everything else (progress messages), lost for good.
_SUPERSEDED = 0
_RECOVERABLE = 1
_UNRECOVERABLE = 2


def _loss_cost(event: BrokerEvent) -> int:
    if isinstance(event, AccountBalanceChanged | PositionChanged):
        return _SUPERSEDED
    if isinstance(event, OrderFilled | OrderTerminal):
        return _RECOVERABLE
    return _UNRECOVERABLE


class _Inbox:
    """A subscriber's bounded FIFO (see :class:`EventBus` for the overflow policy)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: deque[_Delivery] = deque()
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._unfinished = 0
        self._closed = False

    def qsize(self) -> int:
        return len(self._items)

    def put(self, delivery: _Delivery) -> _Delivery | None:
        """Queue ``delivery``; on overflow returns the delivery that was dropped for it."""
        dropped: _Delivery | None = None
        if len(self._items) >= self.limit:
            dropped = self._victim(delivery)
            if dropped is delivery:
                return dropped
            self._items.remove(dropped)
            self._finish()
        self._items.append(delivery)
        self._unfinished += 1
        self._idle.clear()
        self._ready.set()
        return dropped

    def _victim(self, incoming: _Delivery) -> _Delivery:
        """The cheapest delivery to lose: the oldest queued one of the lowest cost, or the
        incoming one if it costs less than anything queued."""
        oldest = min(self._items, key=lambda d: _loss_cost(d.event))  # min keeps the oldest
        if _loss_cost(incoming.event) < _loss_cost(oldest.event):
            return incoming
        return oldest

    async def get(self) -> _Delivery | None:
        """The next delivery; None once closed and empty."""
        while not self._items:
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    def task_done(self) -> None:
        self._finish()

    def _finish(self) -> None:
        self._unfinished -= 1
        if self._unfinished <= 0:
            self._unfinished = 0
            self._idle.set()

    async def join(self) -> None:
        """Wait until everything queued so far has been handled (or dropped)."""
        await self._idle.wait()

    def close(self) -> None:
        self._closed = True
        self._ready.set()


@dataclass(eq=False, slots=True)
class Subscription:
    """A live subscription; ``close()`` stops it after the queued events are handled.

    ``dropped`` counts events lost to the overflow policy (each one is logged).
    """

    name: str
    handler: Handler
    kinds: tuple[type, ...] | None
    queue: _Inbox
    task: asyncio.Task[None] | None = None
    dropped: int = 0
    _bus: EventBus | None = None

    def wants(self, event: BrokerEvent) -> bool:
        return self.kinds is None or isinstance(event, self.kinds)

    async def join(self) -> None:
        """Wait until this subscriber has handled everything queued so far."""
        await self.queue.join()

    async def close(self) -> None:
        if self._bus is not None:
            self._bus._subscriptions.discard(self)
        self.queue.close()
        if self.task is not None:
            await self.task


DropListener: TypeAlias = Callable[[BrokerEvent, str], None]


class EventBus:
    """Fan-out of broker events to async handlers, isolated per subscriber.

    Each subscriber has a bounded queue (``max_queue`` events). When a slow subscriber's queue
    is full, one event is dropped *for that subscriber only*, cheapest first: an account
    balance/position snapshot (superseded by the next), else a fill/terminal event (already
    persisted and never acknowledged when dropped, so the tracker's ``redeliver_pending``
    sends it again), else the oldest progress event. Every drop is logged (with the event's
    dedupe key) and counted on ``Subscription.dropped``; listeners added with
    :meth:`on_drop` are told too. Memory stays bounded and no fill is lost silently.
    """

    def __init__(self, *, max_queue: int = DEFAULT_MAX_QUEUE) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self._max_queue = max_queue
        self._subscriptions: set[Subscription] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._drop_listeners: list[DropListener] = []

    def subscribe(
        self,
        handler: Handler,
        *,
        kinds: tuple[type, ...] | None = None,
        name: str | None = None,
    ) -> Subscription:
        """Call ``handler(event)`` for every published event (of ``kinds``, if given)."""
        sub = Subscription(
            name=name or str(getattr(handler, "__qualname__", "subscriber")),
            handler=handler,
            kinds=kinds,
            queue=_Inbox(self._max_queue),
            _bus=self,
        )
        sub.task = asyncio.get_running_loop().create_task(
            self._run(sub), name=f"event-subscriber:{sub.name}"
        )
        self._subscriptions.add(sub)
        return sub

    def on_drop(self, listener: DropListener) -> None:
        """``listener(event, subscriber_name)`` is called for every event dropped on overflow."""
        self._drop_listeners.append(listener)

    def publish(
        self,
        event: BrokerEvent,
        *,
        on_delivered: Callable[[BrokerEvent], Awaitable[None] | None] | None = None,
    ) -> None:
        """Queue ``event`` for every interested subscriber; never blocks, never raises.

        ``on_delivered`` runs once every subscriber has handled the event (never, if the
        event was dropped for one of them).
        """
        targets = [sub for sub in self._subscriptions if sub.wants(event)]
        tracker = None
        if on_delivered is not None:
            if not targets:
                self._call_soon(on_delivered, event)
                return
            tracker = _DeliveryTracker(len(targets), on_delivered, event)
        for sub in targets:
            dropped = sub.queue.put(_Delivery(event, tracker))
            if dropped is not None:
                self._dropped(sub, dropped.event)

    def _dropped(self, sub: Subscription, event: BrokerEvent) -> None:
        sub.dropped += 1
        recoverable = _loss_cost(event) < _UNRECOVERABLE
        report = log.warning if recoverable else log.error
        report(
            "event_dropped_subscriber_overflow",
            subscriber=sub.name,
            event_type=type(event).__name__,
            dedupe_key=getattr(event, "dedupe_key", None),
            recoverable=recoverable,
            dropped_total=sub.dropped,
        )
        for listener in self._drop_listeners:
            try:
                listener(event, sub.name)
            except Exception:
                log.exception("event_drop_listener_failed")

    async def drain(self) -> None:
        """Wait until every subscriber has handled everything queued so far (tests, shutdown)."""
        for sub in list(self._subscriptions):
            await sub.queue.join()

    async def close(self) -> None:
        for sub in list(self._subscriptions):
            await sub.close()

    def _call_soon(
        self, callback: Callable[[BrokerEvent], Awaitable[None] | None], event: BrokerEvent
    ) -> None:
        async def run() -> None:
            try:
                result = callback(event)
                if result is not None:
                    await result
            except Exception:
                log.exception("event_delivery_callback_failed", event_type=type(event).__name__)

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _run(self, sub: Subscription) -> None:
        while True:
            delivery = await sub.queue.get()
            if delivery is None:
                return
            try:
                try:
                    await sub.handler(delivery.event)
                except Exception:
                    log.exception(
                        "event_subscriber_failed",
                        subscriber=sub.name,
                        event_type=type(delivery.event).__name__,
                    )
                if delivery.tracker is not None:
                    try:
                        await delivery.tracker.done()
                    except Exception:
                        log.exception(
                            "event_delivery_callback_failed",
                            event_type=type(delivery.event).__name__,
                        )
            finally:
                sub.queue.task_done()


# -- persistence of events (for re-delivery after a restart) ----------------------------------

_EVENT_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        OrderPlaced,
        ChaseStepped,
        OrderFilled,
        OrderTerminal,
        ChaseLeftWorking,
        SubmissionNotPlaced,
        AccountBalanceChanged,
        PositionChanged,
    )
}


def event_to_payload(event: BrokerEvent) -> dict[str, Any]:
    """JSON-safe dict of an event (Decimals and datetimes as strings)."""

    def encode(value: Any) -> Any:
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, tuple | list):
            return [encode(item) for item in value]
        if hasattr(value, "__dataclass_fields__"):
            return {name: encode(getattr(value, name)) for name in value.__dataclass_fields__}
        return value

    payload = encode(event)
    payload["__type__"] = type(event).__name__
    return dict(payload)


def event_from_payload(payload: dict[str, Any]) -> BrokerEvent:
    """Inverse of :func:`event_to_payload`."""
    cls = _EVENT_TYPES[payload["__type__"]]

    def decode(tp: Any, value: Any) -> Any:
        if value is None:
            return None
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (typing.Union, type(int | None)):
            inner = [a for a in args if a is not type(None)]
            return decode(inner[0], value) if inner else value
        if origin is tuple:
            return tuple(decode(args[0], item) for item in value)
        if tp is Decimal:
            return Decimal(value)
        if tp is datetime:
            return datetime.fromisoformat(value)
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            hints = typing.get_type_hints(tp)
            return tp(
                **{
                    f.name: decode(hints[f.name], value[f.name])
                    for f in dataclasses.fields(tp)
                    if f.name in value
                }
            )
        return value

    return typing.cast(BrokerEvent, decode(cls, payload))
