"""Long-running state stays bounded: per-chase locks and the tracker's order snapshots."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from tastytrade.order import OrderStatus

from broker.fills.locks import KeyedLocks
from broker.fills.snapshot import OrderSnapshot
from broker.notify.tracker import SnapshotCache


async def test_keyed_locks_serialise_one_key_and_forget_it_afterwards() -> None:
    locks = KeyedLocks()
    order: list[str] = []

    async def work(key: int, name: str, pause: float) -> None:
        async with locks.hold(key):
            order.append(f"{name}+")
            await asyncio.sleep(pause)
            order.append(f"{name}-")

    await asyncio.gather(work(1, "a", 0.03), work(1, "b", 0.0), work(2, "c", 0.0))
    assert order.index("a-") < order.index("b+")  # same key: one at a time
    assert order.index("c-") < order.index("a-")  # another key is not held up
    assert len(locks) == 0  # nothing left behind once unused

    with pytest.raises(RuntimeError):
        async with locks.hold(3):
            raise RuntimeError("boom")
    assert len(locks) == 0
    for key in range(1000):
        async with locks.hold(key):
            pass
    assert len(locks) == 0


def snapshot(order_id: int, status: OrderStatus) -> OrderSnapshot:
    return OrderSnapshot(
        order_id=order_id,
        account_number="5WT00001",
        status=status,
        underlying_symbol="SPY",
        legs=(),
        size=Decimal(1),
        filled_quantity=Decimal(1 if status is OrderStatus.FILLED else 0),
        average_price=None,
        price=Decimal("-100.00"),
        time_in_force="Day",
        replaces_order_id=None,
        replacing_order_id=None,
        external_identifier=None,
        reject_reason=None,
    )


def test_snapshot_cache_keeps_working_orders_and_the_newest_finished_ones() -> None:
    cache = SnapshotCache(max_finished=3)
    cache.put(("paper", 1), snapshot(1, OrderStatus.LIVE))
    for order_id in range(10, 20):
        cache.put(("paper", order_id), snapshot(order_id, OrderStatus.FILLED))
    assert len(cache) == 4
    assert ("paper", 1) in cache  # working: never evicted
    assert [oid for oid in range(10, 20) if ("paper", oid) in cache] == [17, 18, 19]

    cache.put(("paper", 1), snapshot(1, OrderStatus.CANCELLED))  # it ends: now finished
    assert len(cache) == 3 and ("paper", 17) not in cache
    got = cache.get(("paper", 1))
    assert got is not None and got.status is OrderStatus.CANCELLED
    assert cache.get(("paper", 10)) is None
    with pytest.raises(ValueError):
        SnapshotCache(max_finished=0)
