"""Submission safety: idempotency, lost answers, refused replaces, fills racing a replace."""

from __future__ import annotations

import asyncio
from pathlib import Path

from broker.events import (
    ChaseStepped,
    OrderFilled,
    OrderPlaced,
    SubmissionNotPlaced,
)
from broker.fills import ChaseParams, ChaseStatus
from broker.session import Timeouts
from tests.integration.fills.support import D, Rig, ScriptedClock, rig, settle

ORDERS_PATH = "/accounts/*/orders"


async def until_live(r: Rig) -> None:
    """Wait (real time) until the exchange has moved the newest order to Live."""
    for _ in range(200):
        orders = r.exchange_orders()
        if orders and max(orders, key=lambda o: o.id).status == "Live":
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the order never went live")


async def test_dropped_connection_after_accept_adopts_the_one_order(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        r.exchange.faults.drop_after_accept("POST", ORDERS_PATH, times=1)
        order = r.equity_order("SPY", "100.00", "100.08")
        result = await (await r.engine.submit(r.request(order, "drop-1"))).wait()
        await settle(r)

        # Exactly one order reached the exchange; the engine found it and chased it.
        posts = [p for m, p in r.exchange.requests if m == "POST" and p.endswith("/orders")]
        assert len(posts) == 1
        assert result.adopted
        assert result.status is ChaseStatus.FILLED
        assert result.steps == 2
        orders = r.exchange_orders()
        assert len(orders) == 3  # the original and its two replacements, one chain
        assert len([o for o in orders if o.replaces_order_id is None]) == 1
        assert await r.position("SPY") == 1
        placed = r.recorder.of(OrderPlaced)
        assert len(placed) == 1 and placed[0].adopted
        assert (await r.db.idempotency.get("drop-1")).status == "placed"  # type: ignore[union-attr]


async def test_server_error_on_submit_is_reconciled_to_not_placed(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        r.exchange.faults.fail("POST", ORDERS_PATH, 503, times=1)
        order = r.equity_order("SPY", "100.00", "100.08")
        result = await (await r.engine.submit(r.request(order, "gone-1"))).wait()
        await settle(r)

        assert result.status is ChaseStatus.NOT_PLACED
        assert "not placed" in result.message and "not resubmitted" in result.message
        assert r.exchange_orders() == []
        posts = [p for m, p in r.exchange.requests if m == "POST" and p.endswith("/orders")]
        assert len(posts) == 1  # never resubmitted
        events = r.recorder.of(SubmissionNotPlaced)
        assert len(events) == 1 and not events[0].rejected
        key = await r.db.idempotency.get("gone-1")
        assert key is not None and key.status == "not_placed"


async def test_rejection_reports_the_broker_reason(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        r.exchange.faults.fail(
            "POST",
            ORDERS_PATH,
            422,
            times=1,
            code="margin_check_failed",
            message="Not enough buying power.",
        )
        order = r.equity_order("SPY", "100.00", "100.08")
        result = await (await r.engine.submit(r.request(order, "rej-1"))).wait()
        await settle(r)
        assert result.status is ChaseStatus.REJECTED
        assert "buying power" in result.message.lower()
        assert "margin_check_failed" in result.codes
        events = r.recorder.of(SubmissionNotPlaced)
        assert len(events) == 1 and events[0].rejected
        assert events[0].codes == ("margin_check_failed",)
        assert r.exchange_orders() == []


async def test_timed_out_submission_is_checked_then_reported_not_placed(tmp_path: Path) -> None:
    """The client gives up before the exchange read the request (so nothing was created): the
    engine looks for the order before saying "not placed", and never sends it again."""
    async with rig(tmp_path, timeouts=Timeouts(orders=0.3, reads=3.0)) as r:
        r.exchange.faults.latency(0.5, "POST", ORDERS_PATH)
        order = r.equity_order("SPY", "100.00", "100.04")
        engine = await r.new_engine(reconcile_attempts=3, reconcile_delay_s=0.3)
        result = await (await engine.submit(r.request(order, "slow-1"))).wait()
        await asyncio.sleep(0.5)  # anything still in flight has landed by now
        await engine.shutdown()
        assert result.status is ChaseStatus.NOT_PLACED
        assert r.exchange_orders() == []
        posts = [p for m, p in r.exchange.requests if m == "POST" and p.endswith("/orders")]
        assert len(posts) == 1
        live_reads = [p for m, p in r.exchange.requests if m == "GET" and "/orders/live" in p]
        assert len(live_reads) == 3  # looked three times before concluding


async def test_redelivered_command_never_places_twice(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        order = r.equity_order("SPY", "100.00", "100.04")
        first, second = await asyncio.gather(
            r.engine.submit(r.request(order, "msg-123")),
            r.engine.submit(r.request(order, "msg-123")),
        )
        results = await asyncio.gather(first.wait(), second.wait())
        assert sorted([first.duplicate, second.duplicate]) == [False, True]
        assert results[0].chase_id == results[1].chase_id
        # A later redelivery (edited message, gateway replay) gets the stored outcome.
        third = await r.engine.submit(r.request(order, "msg-123"))
        again = await third.wait()
        assert third.duplicate and again.duplicate
        assert again.status is ChaseStatus.FILLED
        assert again.filled_quantity == 1 and again.average_price == D("-100.04")
        assert len([o for o in r.exchange_orders() if o.replaces_order_id is None]) == 1


async def test_fill_between_status_check_and_replace(tmp_path: Path) -> None:
    """The order fills after the engine read it as working and before its replace arrives:
    the exchange refuses the replace, the engine re-reads and reports the fill. One position,
    no second order."""
    async with rig(tmp_path) as r:
        order = r.equity_order("SPY", "100.00", "100.20")
        # Slow the quote request the engine makes between its read and its replace.
        r.exchange.faults.latency(0.3, "GET", "/market-data/*")

        async def fill_during_quote() -> None:
            for _ in range(500):  # the exchange logs requests; poll its log
                if any(p.startswith("/market-data") for _, p in r.exchange.requests):
                    break
                await asyncio.sleep(0.01)
            # The market trades through our bid while the engine waits for its quote, then
            # the ask goes back up, so the engine still wants to step and sends its replace.
            r.exchange.market.set_quote("SPY", "99.90", "100.10")
            r.exchange.clock.advance(1.0)
            r.exchange.market.set_quote("SPY", "100.00", "100.20")

        racer = asyncio.create_task(fill_during_quote())
        result = await (await r.engine.submit(r.request(order, "race-1"))).wait()
        await racer
        await settle(r)

        assert result.status is ChaseStatus.FILLED
        assert result.steps == 0 and len(result.order_chain) == 1
        assert len(r.exchange_orders()) == 1
        assert r.exchange_orders()[0].status == "Filled"
        puts = [p for m, p in r.exchange.requests if m == "PUT"]
        assert len(puts) == 1  # the refused replace
        assert await r.position("SPY") == 1
        assert r.recorder.of(ChaseStepped) == []
        assert len(r.recorder.of(OrderFilled)) == 1


async def test_dropped_replace_is_reconciled_from_the_chain(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        r.exchange.faults.drop_after_accept("PUT", "/accounts/*/orders/*", times=1)
        order = r.equity_order("SPY", "100.00", "100.08")
        result = await (await r.engine.submit(r.request(order, "putdrop-1"))).wait()
        await settle(r)
        assert result.status is ChaseStatus.FILLED
        orders = sorted(r.exchange_orders(), key=lambda o: o.id)
        assert [o.id for o in orders] == list(result.order_chain)
        assert len(orders) == 3
        assert [e.new_order_id for e in r.recorder.of(ChaseStepped)] == [o.id for o in orders[1:]]
        assert await r.position("SPY") == 1
        links = await r.db.chases.links(result.chase_id)
        assert [link.order_id for link in links] == list(result.order_chain)
        assert [link.replaces_order_id for link in links] == [None, orders[0].id, orders[1].id]


async def test_partial_fill_then_remainder_chased(tmp_path: Path) -> None:
    from broker.paper import FillModelConfig

    fills = FillModelConfig(hazard_per_second=0.0, partial_fill_ratio=D("0.5"))
    async with rig(tmp_path, fills=fills) as r:
        order = r.equity_order("SPY", "100.00", "100.20", quantity=2)

        async def trade_one_at_our_bid(clock: ScriptedClock, index: int, seconds: float) -> None:
            await until_live(r)
            market = clock.exchange.market
            market.set_quote("SPY", "99.95", "100.10")  # marketable for our 100.10 bid
            clock.exchange.clock.advance(0.5)  # one evaluation: half the order fills
            market.set_quote("SPY", "100.00", "100.16")  # the ask moves away again

        r.clock.hooks[0] = trade_one_at_our_bid
        params = ChaseParams(interval_s=5.0, ticks=3, max_steps=3)
        result = await (await r.engine.submit(r.request(order, "partial-1", params=params))).wait()
        await settle(r)

        assert result.status is ChaseStatus.FILLED
        assert result.filled_quantity == 2
        # 1 @ 100.10 on the first order, 1 @ 100.16 (the natural) after two steps
        assert result.average_price == D("-100.13")
        orders = sorted(r.exchange_orders(), key=lambda o: o.id)
        assert orders[0].status == "Cancelled" and orders[0].legs[0].remaining == 1
        assert all(o.legs[0].quantity == 1 for o in orders[1:])  # only the remainder chased
        assert await r.position("SPY") == 2
        fills_seen = r.recorder.of(OrderFilled)
        assert [(f.filled_quantity, f.complete) for f in fills_seen] == [
            (D(1), False),
            (D(2), True),
        ]
        assert fills_seen[0].fill_quantity == 1 and fills_seen[1].fill_quantity == 1
        assert fills_seen[1].average_price == D("-100.13")


async def test_order_reported_not_placed_that_surfaces_later_is_adopted(tmp_path: Path) -> None:
    """Belt and braces: if an order reported "not placed" turns up after all (a request the
    exchange processed late), the tracker hands it to the engine, which links it to its chase
    and announces it, so it is cancellable and its fills are reported."""
    from broker.fills.broker_ops import OrderOps
    from broker.notify import NotificationHub

    async with rig(tmp_path) as r:
        r.exchange.faults.fail("POST", ORDERS_PATH, 503, times=1)
        order = r.equity_order("SPY", "100.00", "101.00")
        lost = await (await r.engine.submit(r.request(order, "late-1"))).wait()
        assert lost.status is ChaseStatus.NOT_PLACED and r.exchange_orders() == []

        # The same submission lands at the exchange after all.
        surfaced = await OrderOps(r.session, r.account).place(
            order.limit_order(lost.start_price, "late-1")
        )
        hub = NotificationHub(r.tracker, r.bus, poll_interval_s=0.05, use_streamer=False)
        await hub.watch(r.session, "paper", r.account, r.context())
        for _ in range(200):
            if r.recorder.of(OrderPlaced):
                break
            await asyncio.sleep(0.01)
        await hub.close()
        await settle(r)

        [placed] = r.recorder.of(OrderPlaced)
        assert placed.adopted and placed.order_id == surfaced.id
        assert placed.chase_id == lost.chase_id
        row = await r.db.chases.get(lost.chase_id)
        assert row is not None and row.status == "left_working"
        assert row.current_order_id == surfaced.id
        [cancelled] = await r.engine.cancel(r.context().guild_id, surfaced.id)
        assert cancelled.status is ChaseStatus.CANCELLED
        assert r.exchange_orders()[0].status == "Cancelled"
