"""The event bus: isolated subscribers, delivery callbacks, and payload round trips."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from broker.events import (
    BrokerEvent,
    ChaseSummary,
    EventBus,
    LegInfo,
    NotificationContext,
    OrderFilled,
    OrderPlaced,
    OrderTerminal,
    PositionChanged,
    SubmissionNotPlaced,
    event_from_payload,
    event_to_payload,
)

CONTEXT = NotificationContext(guild_id=1, environment="paper", channel_id=2, author_id=3)
AT = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def placed(order_id: int) -> OrderPlaced:
    return OrderPlaced(
        context=CONTEXT,
        account_number="5WT00001",
        at=AT,
        chase_id=1,
        order_id=order_id,
        legs=(LegInfo("SPY", "Buy to Open", Decimal(1), "Equity"),),
        quantity=Decimal(1),
        price=Decimal("-100.05"),
        effect="Debit",
        time_in_force="Day",
    )


async def test_a_slow_or_failing_subscriber_never_blocks_the_others() -> None:
    bus = EventBus()
    fast: list[int] = []
    release = asyncio.Event()

    async def slow(event: OrderPlaced) -> None:
        await release.wait()

    async def failing(event: OrderPlaced) -> None:
        raise RuntimeError("discord is down")

    async def quick(event: OrderPlaced) -> None:
        fast.append(event.order_id)

    bus.subscribe(slow, name="slow")
    bus.subscribe(failing, name="failing")
    bus.subscribe(quick, name="quick")
    for order_id in range(5):
        bus.publish(placed(order_id))  # returns at once
    for _ in range(100):
        if len(fast) == 5:
            break
        await asyncio.sleep(0.01)
    assert fast == [0, 1, 2, 3, 4]
    release.set()
    await bus.drain()
    await bus.close()


async def test_on_delivered_runs_once_every_subscriber_handled_it() -> None:
    bus = EventBus()
    handled: list[str] = []
    delivered: list[int] = []

    async def first(event: OrderPlaced) -> None:
        await asyncio.sleep(0.02)
        handled.append("first")

    async def second(event: OrderPlaced) -> None:
        handled.append("second")
        raise ValueError("a failure still counts as handled")

    async def mark(event: object) -> None:
        assert isinstance(event, OrderPlaced)
        delivered.append(event.order_id)

    bus.subscribe(first)
    bus.subscribe(second)
    bus.publish(placed(7), on_delivered=mark)
    await bus.drain()
    await asyncio.sleep(0)
    assert sorted(handled) == ["first", "second"] and delivered == [7]
    await bus.close()

    lonely = EventBus()
    lonely.publish(placed(8), on_delivered=mark)  # nobody listening: delivered at once
    await asyncio.sleep(0.01)
    assert delivered == [7, 8]


async def test_subscribers_can_filter_by_kind() -> None:
    bus = EventBus()
    seen: list[str] = []

    async def only_not_placed(event: SubmissionNotPlaced) -> None:
        seen.append(event.reason)

    bus.subscribe(only_not_placed, kinds=(SubmissionNotPlaced,))
    bus.publish(placed(1))
    bus.publish(
        SubmissionNotPlaced(
            context=CONTEXT,
            account_number="5WT00001",
            at=AT,
            chase_id=1,
            idempotency_key="k",
            reason="not placed: refused",
            rejected=True,
            codes=("margin_check_failed",),
        )
    )
    await bus.drain()
    await bus.close()
    assert seen == ["not placed: refused"]


def test_payload_round_trip_keeps_decimals_and_nested_summaries() -> None:
    summary = ChaseSummary(
        chase_id=4,
        start_price=Decimal("-1.25"),
        final_price=Decimal("-1.29"),
        steps=2,
        max_steps=3,
        natural_at_submission=Decimal("-1.30"),
        mid_at_submission=Decimal("-1.25"),
        order_chain=(10, 11, 12),
        improvement=Decimal("0.01"),
        improvement_total=Decimal("1.00"),
    )
    events = [
        OrderFilled(
            context=CONTEXT,
            account_number="5WT00001",
            at=AT,
            dedupe_key="paper:order=12:filled=1",
            order_id=12,
            chase_id=4,
            legs=(
                LegInfo("SPY   260320C00600000", "Buy to Open", Decimal(1), "Equity Option"),
                LegInfo("SPY   260320C00605000", "Sell to Open", Decimal(1), "Equity Option"),
            ),
            underlying_symbol="SPY",
            filled_quantity=Decimal(1),
            fill_quantity=Decimal(1),
            total_quantity=Decimal(1),
            average_price=Decimal("-1.29"),
            effect="Debit",
            fees=Decimal("2.28"),
            complete=True,
            chase=summary,
        ),
        OrderTerminal(
            context=CONTEXT,
            account_number="5WT00001",
            at=AT,
            dedupe_key="paper:order=13:terminal",
            order_id=13,
            chase_id=None,
            status="Rejected",
            reason="margin",
            legs=(),
            underlying_symbol="SPY",
            filled_quantity=Decimal(0),
            total_quantity=Decimal(2),
        ),
    ]
    for event in events:
        payload = event_to_payload(event)
        assert isinstance(payload["at"], str) and payload["__type__"] == type(event).__name__
        assert event_from_payload(payload) == event


def test_target_channel_falls_back_to_the_notifications_channel() -> None:
    assert CONTEXT.target_channel_id == 2
    guild_only = NotificationContext(guild_id=1, environment="paper", notify_channel_id=9)
    assert guild_only.target_channel_id == 9


def filled(order_id: int) -> OrderFilled:
    return OrderFilled(
        context=CONTEXT,
        account_number="5WT00001",
        at=AT,
        dedupe_key=f"paper:order={order_id}:filled=1",
        order_id=order_id,
        chase_id=None,
        legs=(LegInfo("SPY", "Buy to Open", Decimal(1), "Equity"),),
        underlying_symbol="SPY",
        filled_quantity=Decimal(1),
        fill_quantity=Decimal(1),
        total_quantity=Decimal(1),
        average_price=Decimal("-100.05"),
        effect="Debit",
        fees=None,
        complete=True,
    )


def position(quantity: int) -> PositionChanged:
    return PositionChanged(
        context=CONTEXT,
        account_number="5WT00001",
        at=AT,
        symbol="SPY",
        instrument_type="Equity",
        quantity=Decimal(quantity),
    )


async def test_a_stuck_subscriber_queue_is_bounded_and_drops_the_cheapest_first() -> None:
    bus = EventBus(max_queue=3)
    release = asyncio.Event()
    seen: list[object] = []
    quick_seen: list[object] = []
    dropped: list[tuple[object, str]] = []
    delivered: list[str] = []

    async def stuck(event: object) -> None:
        await release.wait()
        seen.append(event)

    async def quick(event: object) -> None:
        quick_seen.append(event)

    sub = bus.subscribe(stuck, name="stuck")
    bus.subscribe(quick, name="quick")
    bus.on_drop(lambda event, name: dropped.append((event, name)))
    bus.publish(placed(0))  # taken by the stuck handler at once; the queue is then empty
    await asyncio.sleep(0.01)

    def mark(event: object) -> None:
        delivered.append(getattr(event, "dedupe_key", ""))

    async def publish(
        event: BrokerEvent, on_delivered: Callable[[BrokerEvent], None] | None = None
    ) -> None:
        bus.publish(event, on_delivered=on_delivered)
        await asyncio.sleep(0.005)  # the quick subscriber keeps up

    await publish(position(1))
    await publish(filled(1), mark)
    await publish(placed(2))  # the stuck queue is full from here on
    await publish(position(2))  # the older snapshot goes (superseded)
    await publish(filled(3), mark)  # a snapshot is still the cheapest: position 2 goes
    await publish(position(3))  # cheaper than anything queued: the new snapshot goes
    await publish(placed(4))  # no snapshot left: the oldest fill goes (it is persisted)
    assert sub.queue.qsize() == 3 and sub.dropped == 4
    assert [(type(e).__name__, n) for e, n in dropped] == [
        ("PositionChanged", "stuck"),
        ("PositionChanged", "stuck"),
        ("PositionChanged", "stuck"),
        ("OrderFilled", "stuck"),
    ]
    assert getattr(dropped[3][0], "dedupe_key", None) == "paper:order=1:filled=1"

    release.set()
    await bus.drain()
    kinds = [(type(e).__name__, getattr(e, "order_id", None)) for e in seen]
    assert kinds == [
        ("OrderPlaced", 0),
        ("OrderPlaced", 2),
        ("OrderFilled", 3),
        ("OrderPlaced", 4),
    ]
    assert len(quick_seen) == 8  # the other subscriber lost nothing
    # The dropped fill is never reported delivered (it stays pending for redelivery).
    assert delivered == ["paper:order=3:filled=1"]
    await bus.close()


async def test_a_bus_refuses_a_queue_without_room() -> None:
    with pytest.raises(ValueError, match="max_queue"):
        EventBus(max_queue=0)
