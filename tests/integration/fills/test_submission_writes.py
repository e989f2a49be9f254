"""The database writes around a submission: one round trip before the POST, all-or-nothing.

Between ``ChaseEngine.submit`` and the order's POST the engine writes once: the key (left
``submitted``), the chase row and its ``chase_created`` entry, in one transaction. A crash
at any later point therefore leaves a ``submitted`` key with its chase, which the restart
reconciles with the exchange, never resending.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from broker.events import OrderPlaced
from broker.fills import ChaseParams, ChaseRecord, ChaseStatus
from broker.fills.sqlite_store import SqliteChaseStore
from broker.service.guilds import GuildSettingsStore
from broker.session import Environment
from tests.integration.fills.support import GUILD, Rig, make_engine, rig, settle
from tests.integration.storage.hops import HopCounter

ORDERS_PATH = "/accounts/*/orders"
NO_CHASE = ChaseParams(interval_s=5.0, ticks=1, max_steps=0)


def order_posts(r: Rig) -> int:
    return len([p for m, p in r.exchange.requests if m == "POST" and p.endswith("/orders")])


async def wait_until(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def test_one_round_trip_from_submit_to_the_post(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        # The halt check as the bot wires it: cached guild settings, no database read once
        # the guild has been seen (its commands were already checked against them).
        guilds = GuildSettingsStore(r.db, Environment.PAPER)
        await guilds.get(GUILD)

        async def is_halted(guild_id: int) -> bool:
            return (await guilds.get(guild_id)).halted

        engine = await r.new_engine(is_halted=is_halted)
        order = r.equity_order("SPY", "100.00", "101.00")
        with HopCounter(r.db, probe=lambda: order_posts(r)) as hops:
            handle = await engine.submit(r.request(order, "hop-1", params=NO_CHASE))
            await wait_until(lambda: order_posts(r) == 1, "the order's POST")
            result = await handle.wait()
        await engine.shutdown()

        assert hops.marks.count(0) == 1  # round trips queued before the POST arrived
        assert result.status is ChaseStatus.PLACED and len(result.order_chain) == 1
        key = await r.db.idempotency.get("hop-1")
        assert key is not None and key.status == "placed"
        assert key.order_id == result.current_order_id
        events = [entry.event for entry in await r.db.audit.for_key("hop-1")]
        assert events == ["chase_created", "order_placed", "chase_concluded"]
        [link] = await r.db.chases.links(result.chase_id)
        assert link.order_id == result.current_order_id and link.step == 0


async def test_a_crash_before_the_post_is_reconciled_on_restart_never_sent(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        order = r.equity_order("SPY", "100.00", "101.00")
        stored: dict[str, object] = {}

        async def crash_before_sending(guild_id: int) -> bool:
            # Asked inside the chase's task after the submission was written and before the
            # POST: record what is stored, then die here as a killed process would.
            stored["key"] = await r.db.idempotency.get("crash-1")
            stored["chase"] = await r.db.chases.by_idempotency_key("crash-1")
            stored["audit"] = [e.event for e in await r.db.audit.for_key("crash-1")]
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            await asyncio.sleep(0)
            raise AssertionError("unreachable: the task was cancelled")

        engine = await r.new_engine(is_halted=crash_before_sending)
        handle = await engine.submit(r.request(order, "crash-1", params=NO_CHASE))
        stopped = await handle.wait()
        await engine.shutdown()
        assert stopped.status is ChaseStatus.SUBMITTING and order_posts(r) == 0

        key, chase = stored["key"], stored["chase"]
        assert key is not None and key.status == "submitted"  # type: ignore[attr-defined]
        assert chase is not None and chase.status == "working"  # type: ignore[attr-defined]
        assert chase.current_order_id is None  # type: ignore[attr-defined]
        assert stored["audit"] == ["chase_created"]

        restarted = make_engine(r.db, r.bus, r.tracker, r.clock)
        [resumed] = await restarted.resume_open({("paper", r.account): r.session})
        result = await resumed.wait()
        await restarted.shutdown()

        assert result.status is ChaseStatus.NOT_PLACED
        assert "it was not resubmitted" in result.message
        assert order_posts(r) == 0 and r.exchange_orders() == []
        reconciled = await r.db.idempotency.get("crash-1")
        assert reconciled is not None and reconciled.status == "not_placed"


class CrashAfterAccept(SqliteChaseStore):
    """The process dies after the exchange accepted the order, before its answer is stored."""

    async def record_placement(self, record: ChaseRecord, *, order_id: int, adopted: bool) -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)


async def test_a_crash_after_the_accept_is_adopted_on_restart_never_resent(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        order = r.equity_order("SPY", "100.00", "101.00")
        engine = make_engine(r.db, r.bus, r.tracker, r.clock, store=CrashAfterAccept(r.db))
        await (await engine.submit(r.request(order, "accepted-1", params=NO_CHASE))).wait()
        await engine.shutdown()
        assert order_posts(r) == 1 and len(r.exchange_orders()) == 1
        key = await r.db.idempotency.get("accepted-1")
        assert key is not None and key.status == "submitted"
        chase = await r.db.chases.by_idempotency_key("accepted-1")
        assert chase is not None and chase.current_order_id is None

        restarted = make_engine(r.db, r.bus, r.tracker, r.clock)
        [resumed] = await restarted.resume_open({("paper", r.account): r.session})
        result = await resumed.wait()
        await settle(r)
        await restarted.shutdown()

        [exchange_order] = r.exchange_orders()
        assert result.adopted and result.current_order_id == exchange_order.id
        assert result.status is ChaseStatus.PLACED
        assert order_posts(r) == 1  # found again, not resent
        placed = await r.db.idempotency.get("accepted-1")
        assert placed is not None and placed.status == "placed"
        assert placed.order_id == exchange_order.id
        adopted = r.recorder.of(OrderPlaced)
        assert len(adopted) == 1 and adopted[0].adopted


def placement_as_the_desk_reads_it(record: ChaseRecord | None) -> int | None:
    """`OrderDesk.placement_for_key`'s rule over the full record (``store.by_key``)."""
    if record is None:
        return None
    order_id = record.current_order_id or (record.chain[-1] if record.chain else None)
    if order_id is None or record.status is ChaseStatus.NOT_PLACED:
        return None
    return order_id


async def test_placed_order_for_key_matches_the_full_record_in_one_round_trip(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        store = r.engine.store
        resting = r.equity_order("SPY", "100.00", "101.00")
        placed = await (
            await r.engine.submit(r.request(resting, "placed-1", params=NO_CHASE))
        ).wait()
        marketable = r.equity_order("QQQ", "200.00", "200.04")
        filled = await (await r.engine.submit(r.request(marketable, "filled-1"))).wait()
        r.exchange.faults.fail("POST", ORDERS_PATH, 422, times=1, code="margin_check_failed")
        rejected = await (await r.engine.submit(r.request(resting, "rejected-1"))).wait()
        r.exchange.faults.fail("POST", ORDERS_PATH, 503, times=1)
        lost = await (await r.engine.submit(r.request(resting, "lost-1"))).wait()
        halting = await r.new_engine(is_halted=lambda guild_id: True)
        halted = await (await halting.submit(r.request(resting, "halted-1"))).wait()
        await halting.shutdown()
        assert [res.status for res in (placed, filled, rejected, lost, halted)] == [
            ChaseStatus.PLACED,
            ChaseStatus.FILLED,
            ChaseStatus.REJECTED,
            ChaseStatus.NOT_PLACED,
            ChaseStatus.NOT_PLACED,
        ]
        expected = {
            "placed-1": placed.current_order_id,
            "filled-1": filled.current_order_id,
            "rejected-1": None,
            "lost-1": None,
            "halted-1": None,
            "never-seen": None,
        }
        for key, order_id in expected.items():
            with HopCounter(r.db) as hops:
                found = await store.placed_order_for_key(key)
            assert hops.count == 1, key
            assert found == order_id, key
            assert found == placement_as_the_desk_reads_it(await store.by_key(key)), key
        assert filled.current_order_id is not None and len(filled.order_chain) > 1
