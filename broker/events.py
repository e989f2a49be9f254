"""Typed broker events and the in-process bus that carries them to subscribers.

The broker layer (fill-retry engine, fill notifications) only *emits* these frozen dataclasses;
the Discord layer subscribes and renders them. Nothing here imports discord.

Delivery rules:
* ``publish`` never blocks and never raises: each subscriber has its own queue and worker task,
  so a slow subscriber only delays itself, and an exception in a handler is logged and dropped.
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
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


@dataclass(eq=False, slots=True)
class Subscription:
    """A live subscription; ``close()`` stops it after the queued events are handled."""

    name: str
    handler: Handler
    kinds: tuple[type, ...] | None
    queue: asyncio.Queue[_Delivery | None] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    _bus: EventBus | None = None

    def wants(self, event: BrokerEvent) -> bool:
        return self.kinds is None or isinstance(event, self.kinds)

    async def close(self) -> None:
        if self._bus is not None:
            self._bus._subscriptions.discard(self)
        self.queue.put_nowait(None)
        if self.task is not None:
            await self.task


class EventBus:
    """Fan-out of broker events to async handlers, isolated per subscriber."""

    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        self._background: set[asyncio.Task[None]] = set()

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
            _bus=self,
        )
        sub.task = asyncio.get_running_loop().create_task(
            self._run(sub), name=f"event-subscriber:{sub.name}"
        )
        self._subscriptions.add(sub)
        return sub

    def publish(
        self,
        event: BrokerEvent,
        *,
        on_delivered: Callable[[BrokerEvent], Awaitable[None] | None] | None = None,
    ) -> None:
        """Queue ``event`` for every interested subscriber; never blocks, never raises."""
        targets = [sub for sub in self._subscriptions if sub.wants(event)]
        tracker = None
        if on_delivered is not None:
            if not targets:
                self._call_soon(on_delivered, event)
                return
            tracker = _DeliveryTracker(len(targets), on_delivered, event)
        for sub in targets:
            sub.queue.put_nowait(_Delivery(event, tracker))

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
            try:
                if delivery is None:
                    return
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
