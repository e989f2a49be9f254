"""The event bus: isolated subscribers, delivery callbacks, and payload round trips."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

from broker.events import (
    ChaseSummary,
    EventBus,
    LegInfo,
    NotificationContext,
    OrderFilled,
    OrderPlaced,
    OrderTerminal,
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
