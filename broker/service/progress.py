"""Broker events → what the Discord layer shows: preview-message progress and fill notices.

The engine and the fill tracker publish typed events on the `EventBus`; this module turns
them into `OrderProgress` (streamed to whoever watches a preview) and `FillNotice` (handed
to the notification subscribers). Subscribers never block the bus: each gets a queue.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog

from broker.events import (
    BrokerEvent,
    ChaseLeftWorking,
    ChaseStepped,
    LegInfo,
    OrderFilled,
    OrderPlaced,
    OrderTerminal,
    SubmissionNotPlaced,
)
from broker.orders.pricing import split_signed_price
from broker.service.models import (
    Environment,
    FillNotice,
    LegLine,
    OrderProgress,
    ProgressStage,
)

__all__ = ["FillCallback", "ProgressHub", "fill_notice"]

log = structlog.get_logger(__name__)

FillCallback = Callable[[FillNotice], Awaitable[None]]

# Stages after which nothing more will happen to the order (the watch ends).
_FINAL = {
    ProgressStage.FILLED,
    ProgressStage.CANCELLED,
    ProgressStage.EXPIRED,
    ProgressStage.REJECTED,
    ProgressStage.NOT_PLACED,
    ProgressStage.HALTED,
}


def _legs(legs: tuple[LegInfo, ...]) -> list[LegLine]:
    return [
        LegLine(
            action=leg.action,
            quantity=int(leg.quantity),
            symbol=leg.symbol,
            instrument_type=leg.instrument_type,
        )
        for leg in legs
    ]


def _terminal_stage(status: str) -> ProgressStage:
    lowered = status.lower()
    if "halt" in lowered:
        return ProgressStage.HALTED
    if "expire" in lowered:
        return ProgressStage.EXPIRED
    if "reject" in lowered:
        return ProgressStage.REJECTED
    return ProgressStage.CANCELLED


def fill_notice(event: OrderFilled | OrderTerminal) -> FillNotice:
    context = event.context
    chase = event.chase
    if isinstance(event, OrderFilled):
        status = "filled" if event.complete else "partially filled"
        average = event.average_price
        fees = -event.fees if event.fees is not None else None  # shown as money out
        reason = ""
    else:
        status = event.status.lower()
        average = None
        fees = None
        reason = event.reason or ""
    return FillNotice(
        dedupe_key=event.dedupe_key,
        environment=Environment(context.environment),
        guild_id=context.guild_id,
        channel_id=context.target_channel_id,
        author_id=context.author_id,
        order_id=str(event.order_id),
        legs=_legs(event.legs),
        filled_quantity=int(event.filled_quantity),
        total_quantity=int(event.total_quantity),
        average_price=average,
        fees=fees,
        status=status,
        reason=reason,
        start_price=abs(chase.start_price) if chase is not None else None,
        final_price=abs(chase.final_price) if chase is not None else None,
        steps=chase.steps if chase is not None else 0,
        improvement=chase.improvement if chase is not None else None,
    )


class ProgressHub:
    """Routes events to preview watchers (by chase id) and fill subscribers."""

    def __init__(self) -> None:
        self._chase_to_preview: dict[int, str] = {}
        self._queues: dict[str, asyncio.Queue[OrderProgress]] = {}
        self._last: dict[str, OrderProgress] = {}
        self._fill_subscribers: list[FillCallback] = []
        self._on_fill_hooks: list[Callable[[OrderFilled], None]] = []
        self._on_placed_hooks: list[Callable[[OrderPlaced | ChaseStepped], None]] = []

    # -- registration ---------------------------------------------------------------------

    def track(self, chase_id: int, progress: OrderProgress) -> None:
        """Start routing a chase's events to `watch(progress.preview_id)`."""
        self._chase_to_preview[chase_id] = progress.preview_id
        self._queues.setdefault(progress.preview_id, asyncio.Queue())
        self._last[progress.preview_id] = progress

    def subscribe_fills(self, callback: FillCallback) -> Callable[[], None]:
        self._fill_subscribers.append(callback)
        return lambda: self._fill_subscribers.remove(callback)

    def on_fill(self, hook: Callable[[OrderFilled], None]) -> None:
        """A synchronous hook for every fill (e.g. mark positions stale)."""
        self._on_fill_hooks.append(hook)

    def on_placed(self, hook: Callable[[OrderPlaced | ChaseStepped], None]) -> None:
        """A synchronous hook for every new working order id (placement or replace)."""
        self._on_placed_hooks.append(hook)

    # -- watching -------------------------------------------------------------------------

    async def watch(self, preview_id: str, *, limit_s: float) -> AsyncIterator[OrderProgress]:
        """Progress updates for a placed preview until the order is done or `limit_s` passes."""
        queue = self._queues.get(preview_id)
        if queue is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_s
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return
                try:
                    progress = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    return
                yield progress
                if progress.stage in _FINAL:
                    return
        finally:
            self._queues.pop(preview_id, None)

    # -- the bus handler ------------------------------------------------------------------

    async def handle(self, event: BrokerEvent) -> None:
        """The bus subscriber: never raises (a failure is logged and the event dropped)."""
        try:
            await self._handle(event)
        except Exception:
            log.exception("progress_handler_failed", event_type=type(event).__name__)

    async def _handle(self, event: BrokerEvent) -> None:
        if isinstance(event, OrderPlaced | ChaseStepped):
            for placed_hook in self._on_placed_hooks:
                placed_hook(event)
        if isinstance(event, OrderFilled):
            for hook in self._on_fill_hooks:
                hook(event)
        if isinstance(event, OrderFilled | OrderTerminal):
            notice = fill_notice(event)
            for callback in list(self._fill_subscribers):
                try:
                    await callback(notice)
                except Exception:
                    log.exception("fill_subscriber_failed", order_id=notice.order_id)
        self._route_progress(event)

    def _route_progress(self, event: BrokerEvent) -> None:
        chase_id = getattr(event, "chase_id", None)
        if chase_id is None:
            return
        preview_id = self._chase_to_preview.get(chase_id)
        if preview_id is None:
            return
        last = self._last.get(preview_id)
        if last is None:
            return
        progress = _progress(last, event)
        if progress is None:
            return
        self._last[preview_id] = progress
        queue = self._queues.get(preview_id)
        if queue is not None:
            queue.put_nowait(progress)
        if progress.stage in _FINAL:
            self._chase_to_preview.pop(chase_id, None)
            self._last.pop(preview_id, None)


def _progress(last: OrderProgress, event: BrokerEvent) -> OrderProgress | None:
    def updated(stage: ProgressStage, **changes: Any) -> OrderProgress:
        changes.setdefault("detail", "")
        return dataclasses.replace(last, stage=stage, **changes)

    if isinstance(event, OrderPlaced):
        detail = "Found at the exchange after a lost reply." if event.adopted else ""
        stage = ProgressStage.WORKING
        return updated(
            stage,
            order_id=str(event.order_id),
            price=abs(event.price),
            price_effect=event.effect,
            max_steps=event.max_steps,
            detail=detail,
        )
    if isinstance(event, ChaseStepped):
        return updated(
            ProgressStage.STEPPED,
            order_id=str(event.new_order_id),
            price=abs(event.new_price),
            price_effect=event.effect,
            steps_done=event.step,
            max_steps=event.max_steps,
        )
    if isinstance(event, OrderFilled):
        average = event.average_price
        detail = ""
        if average is not None:
            magnitude, effect = split_signed_price(average)
            detail = f"Average fill {magnitude:,.2f} {effect.value.lower()}."
        return updated(
            ProgressStage.FILLED if event.complete else ProgressStage.PARTIALLY_FILLED,
            order_id=str(event.order_id),
            filled_quantity=int(event.filled_quantity),
            total_quantity=int(event.total_quantity),
            detail=detail,
        )
    if isinstance(event, OrderTerminal):
        return updated(
            _terminal_stage(event.status),
            order_id=str(event.order_id),
            filled_quantity=int(event.filled_quantity),
            detail=event.reason or "",
        )
    if isinstance(event, ChaseLeftWorking):
        return updated(
            ProgressStage.LEFT_WORKING,
            order_id=str(event.order_id),
            price=abs(event.price),
            price_effect=event.effect,
            steps_done=event.steps,
            filled_quantity=int(event.filled_quantity),
            detail="All chase steps used: the order stays working as a DAY order.",
        )
    if isinstance(event, SubmissionNotPlaced):
        return updated(
            ProgressStage.REJECTED if event.rejected else ProgressStage.NOT_PLACED,
            detail=event.reason,
        )
    return None
