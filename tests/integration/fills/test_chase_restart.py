"""Restart: open chases are reconciled with the broker and resumed or concluded, never doubled."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from broker.events import EventBus, OrderFilled, OrderPlaced
from broker.fills import ChaseParams, ChaseStatus
from broker.fills.broker_ops import OrderOps
from broker.notify import FillTracker, NotificationHub
from tests.integration.fills.support import D, Recorder, Rig, make_engine, rig, settle


async def wait_until(predicate: object, what: str) -> None:
    assert callable(predicate)
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def restarted(r: Rig) -> tuple[EventBus, Recorder, FillTracker]:
    """A fresh bus and tracker on the same database, as after a process restart."""
    bus = EventBus()
    recorder = Recorder()
    bus.subscribe(recorder, name="recorder-after-restart")
    tracker = FillTracker(r.db, bus)
    tracker.set_account_context("paper", r.account, r.context())
    return bus, recorder, tracker


async def test_restart_mid_chase_resumes_without_duplicates(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        r.clock.real_delay = 0.1
        order = r.equity_order("SPY", "100.00", "100.12")  # natural after 3 steps of 2 ticks
        handle = await r.engine.submit(r.request(order, "restart-1"))
        chase_id = handle.chase_id
        await wait_until(lambda: len(r.exchange_orders()) == 2, "the first replacement")
        await r.engine.shutdown()  # the process stops; nothing is cancelled at the exchange
        interrupted = await handle.wait()
        assert interrupted.status is ChaseStatus.WORKING
        row = await r.db.chases.get(chase_id)
        # Shutdown stops a chase at its next wait, so the row names the current order.
        assert row is not None and row.status == "working"
        live = [o for o in r.exchange_orders() if o.status in ("Live", "Contingent", "Routed")]
        assert [o.id for o in live] == [row.current_order_id]
        assert row.steps_done == len(r.exchange_orders()) - 1

        bus, recorder, tracker = await restarted(r)
        engine = make_engine(r.db, bus, tracker, r.clock)
        [resumed] = await engine.resume_open({("paper", r.account): r.session})
        result = await resumed.wait()
        await asyncio.sleep(0.05)
        await bus.drain()
        await engine.shutdown()
        await bus.close()

        assert result.status is ChaseStatus.FILLED
        assert result.steps == 3
        orders = sorted(r.exchange_orders(), key=lambda o: o.id)
        assert [o.id for o in orders] == list(result.order_chain)
        assert len([o for o in orders if o.replaces_order_id is None]) == 1
        assert await r.position("SPY") == 1
        assert recorder.of(OrderPlaced) == []  # resumed, not placed again
        fills = r.recorder.of(OrderFilled) + recorder.of(OrderFilled)
        assert len(fills) == 1 and fills[0].chase is not None and fills[0].chase.steps == 3


async def test_restart_after_a_lost_submission_adopts_the_order(tmp_path: Path) -> None:
    """The process lost the answer to its submission and could not check the orders before
    it stopped: after the restart the engine looks again, adopts the order and chases it."""
    async with rig(tmp_path) as r:
        r.exchange.faults.drop_after_accept("POST", "/accounts/*/orders", times=1)
        r.exchange.faults.fail("GET", "/accounts/*/orders/live", 500, times=100)
        order = r.equity_order("SPY", "100.00", "100.04")
        first = await (await r.engine.submit(r.request(order, "lost-1"))).wait()
        assert first.status is ChaseStatus.UNKNOWN
        assert "nothing was resubmitted" in first.message
        r.exchange.faults.clear()
        await r.engine.shutdown()

        bus, recorder, tracker = await restarted(r)
        engine = make_engine(r.db, bus, tracker, r.clock)
        [resumed] = await engine.resume_open(lambda env, acct: r.session)
        result = await resumed.wait()
        await asyncio.sleep(0.05)
        await bus.drain()
        await engine.shutdown()
        await bus.close()

        assert result.status is ChaseStatus.FILLED and result.adopted
        assert len([o for o in r.exchange_orders() if o.replaces_order_id is None]) == 1
        posts = [p for m, p in r.exchange.requests if m == "POST" and p.endswith("/orders")]
        assert len(posts) == 1
        placed = recorder.of(OrderPlaced)
        assert len(placed) == 1 and placed[0].adopted


async def test_restart_keeps_left_working_orders_cancellable(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        order = r.equity_order("SPY", "100.00", "101.00")
        params = ChaseParams(interval_s=5.0, ticks=1, max_steps=1)
        left = await (await r.engine.submit(r.request(order, "keep-1", params=params))).wait()
        assert left.status is ChaseStatus.LEFT_WORKING
        await r.engine.shutdown()

        bus, _recorder, tracker = await restarted(r)
        engine = make_engine(r.db, bus, tracker, r.clock)
        assert await engine.resume_open({("paper", r.account): r.session}) == []
        [cancelled] = await engine.cancel(r.context().guild_id, left.chase_id)
        await engine.shutdown()
        await bus.close()
        assert cancelled.status is ChaseStatus.CANCELLED
        assert [o.status for o in r.exchange_orders()] == ["Cancelled", "Cancelled"]


async def test_undelivered_fill_event_is_sent_after_restart(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        stuck = asyncio.Event()

        async def crashes_before_posting(event: object) -> None:
            await stuck.wait()  # the process dies while the notification is being posted

        r.bus.subscribe(crashes_before_posting, kinds=(OrderFilled,), name="stuck")
        order = r.equity_order("SPY", "100.00", "100.04")
        result = await (await r.engine.submit(r.request(order, "redeliver-1"))).wait()
        assert result.status is ChaseStatus.FILLED
        pending = await r.db.fill_events.undelivered()
        assert len(pending) == 1

        bus, recorder, tracker = await restarted(r)
        assert await tracker.redeliver_pending() == 1
        await asyncio.sleep(0.05)
        await bus.drain()
        fills = recorder.of(OrderFilled)
        assert len(fills) == 1 and fills[0].dedupe_key == pending[0].dedupe_key
        assert fills[0].average_price == result.average_price
        assert await r.db.fill_events.undelivered() == []
        # Observing the same order again (a new poll) does not notify twice.
        ops = OrderOps(r.session, r.account)
        for order_id in result.order_chain:
            await tracker.observe(r.session, "paper", await ops.get(order_id))
        await settle_bus(bus)
        assert len(recorder.of(OrderFilled)) == 1
        stuck.set()
        await bus.close()
        await settle(r)


async def settle_bus(bus: EventBus) -> None:
    await asyncio.sleep(0.05)
    await bus.drain()


async def lost_overnight(r: Rig, key: str) -> None:
    """A submission whose answer was lost and could not be checked; the bot restarts the
    next morning (the order it sent filled yesterday, so it is no longer in the live list)."""
    r.exchange.faults.drop_after_accept("POST", "/accounts/*/orders", times=1)
    r.exchange.faults.fail("GET", "/accounts/*/orders/live", 500, times=100)
    order = r.equity_order("SPY", "100.00", "100.04", limit=D("-100.04"))  # marketable
    first = await (await r.engine.submit(r.request(order, key))).wait()
    assert first.status is ChaseStatus.UNKNOWN
    r.exchange.faults.clear()
    await wait_until(
        lambda: [o.status for o in r.exchange_orders()] == ["Filled"], "the lost order's fill"
    )
    await r.engine.shutdown()
    r.exchange.clock.advance(24 * 3600)


async def test_next_day_restart_finds_yesterdays_lost_order_in_the_history(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        await lost_overnight(r, "overnight-1")
        live = await OrderOps(r.session, r.account).live()
        assert live == []  # the order is only in the history now

        bus, recorder, tracker = await restarted(r)
        engine = make_engine(r.db, bus, tracker, r.clock)
        [resumed] = await engine.resume_open(lambda env, acct: r.session)
        result = await resumed.wait()
        await settle_bus(bus)
        await engine.shutdown()
        await bus.close()

        assert result.status is ChaseStatus.FILLED and result.adopted
        assert result.order_chain == tuple(o.id for o in r.exchange_orders())
        assert await r.position("SPY") == 1
        posts = [p for m, p in r.exchange.requests if m == "POST" and p.endswith("/orders")]
        assert len(posts) == 1  # never re-sent
        placed = recorder.of(OrderPlaced)
        assert len(placed) == 1 and placed[0].adopted


async def test_next_day_restart_without_the_history_is_unknown_not_not_placed(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        await lost_overnight(r, "overnight-2")
        r.exchange.faults.fail("GET", "/accounts/*/orders", 500, times=1000)

        bus, _recorder, tracker = await restarted(r)
        engine = make_engine(r.db, bus, tracker, r.clock)
        [resumed] = await engine.resume_open(lambda env, acct: r.session)
        result = await resumed.wait()
        await engine.shutdown()
        await bus.close()
        r.exchange.faults.clear()

        assert result.status is ChaseStatus.UNKNOWN
        assert "order history since" in result.message
        assert "Check the account's orders" in result.message
        key = await r.db.idempotency.get("overnight-2")
        assert key is not None and key.status != "not_placed"


async def test_explicit_ack_resends_only_notices_never_acknowledged(tmp_path: Path) -> None:
    """The Discord layer only queues a notice when the bus hands it over; it acknowledges it
    after posting. A notice still queued when the process stops is sent after the restart."""
    async with rig(tmp_path) as r:
        bus = EventBus()
        queued: list[OrderFilled] = []

        async def enqueue(event: OrderFilled) -> None:
            queued.append(event)  # posted later by a worker that never gets to it

        bus.subscribe(enqueue, kinds=(OrderFilled,), name="notice-queue")
        tracker = FillTracker(r.db, bus, explicit_ack=True)
        engine = make_engine(r.db, bus, tracker, r.clock)
        order = r.equity_order("SPY", "100.00", "100.04")
        result = await (await engine.submit(r.request(order, "ack-1"))).wait()
        assert result.status is ChaseStatus.FILLED
        await settle_bus(bus)
        assert len(queued) == 1
        assert [e.dedupe_key for e in await r.db.fill_events.undelivered()] == [
            queued[0].dedupe_key
        ]
        assert await tracker.redeliver_pending() == 0  # in flight here: not sent twice
        await engine.shutdown()
        await bus.close()

        # After the restart the unacknowledged notice comes again, once.
        bus2 = EventBus()
        recorder = Recorder()
        bus2.subscribe(recorder, name="recorder-after-restart")
        tracker2 = FillTracker(r.db, bus2, explicit_ack=True)
        assert await tracker2.redeliver_pending(max_age=timedelta(0)) == 0  # too old: kept
        assert await tracker2.redeliver_pending() == 1
        assert await tracker2.redeliver_pending() == 0
        await settle_bus(bus2)
        [again] = recorder.of(OrderFilled)
        assert again.dedupe_key == queued[0].dedupe_key
        assert again.average_price == result.average_price

        assert await tracker2.acknowledge(again.dedupe_key)
        assert await tracker2.acknowledge(again.dedupe_key)  # idempotent
        assert await r.db.fill_events.undelivered() == []
        assert not await tracker2.acknowledge("paper:order=1:filled=9")
        bus3 = EventBus()
        assert await FillTracker(r.db, bus3, explicit_ack=True).redeliver_pending() == 0
        await bus2.close()
        await bus3.close()


async def test_orders_left_working_are_tracked_again_after_a_restart(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        order = r.equity_order("SPY", "100.00", "101.00")
        params = ChaseParams(interval_s=5.0, ticks=1, max_steps=1)
        left = await (await r.engine.submit(r.request(order, "track-1", params=params))).wait()
        assert left.status is ChaseStatus.LEFT_WORKING
        await r.engine.shutdown()

        bus, recorder, tracker = await restarted(r)
        engine = make_engine(r.db, bus, tracker, r.clock)
        hub = NotificationHub(tracker, bus, poll_interval_s=0.05, use_streamer=False)
        assert await engine.resume_open({("paper", r.account): r.session}) == []
        [working] = await engine.working_orders()
        assert working.order_id == left.current_order_id and working.chase_id == left.chase_id
        assert await hub.resume(engine) == 1
        assert tracker.working_orders("paper", r.account) == {left.current_order_id}

        # Nobody places anything after the restart; the market comes to the order.
        r.exchange.market.set_quote("SPY", "99.00", "100.00")
        r.exchange.clock.advance(1.0)
        await wait_until(lambda: recorder.of(OrderFilled) != [], "the fill notice")
        for _ in range(200):
            row = await r.db.chases.get(left.chase_id)
            if row is not None and row.status == "filled":
                break
            await asyncio.sleep(0.01)
        await hub.close()
        await engine.shutdown()
        await settle_bus(bus)
        await bus.close()

        [fill] = recorder.of(OrderFilled)
        assert fill.complete and fill.chase is not None and fill.chase.chase_id == left.chase_id
        assert fill.context.channel_id == r.context().channel_id  # the command's channel
        assert row is not None and row.status == "filled"
