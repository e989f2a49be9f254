"""Control: cancel during a chase, cancel a left-working order, guild-wide halt, late fills."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from broker.events import (
    ChaseStepped,
    NotificationContext,
    OrderFilled,
    OrderTerminal,
    SubmissionNotPlaced,
)
from broker.fills import ChaseNotFound, ChaseParams, ChaseResult, ChaseStatus
from broker.notify import NotificationHub
from tests.integration.fills.support import GUILD, D, Recorder, Rig, rig, settle

SLOW = ChaseParams(interval_s=5.0, ticks=1, max_steps=5)


async def wait_for(recorder: Recorder, kind: type, count: int = 1) -> None:
    for _ in range(500):
        if len(recorder.of(kind)) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {kind.__name__} event")


def live_orders(r: Rig) -> list[object]:
    return [o for o in r.exchange_orders() if o.status in ("Live", "Routed", "Contingent")]


async def test_cancel_during_a_chase_cancels_the_current_order(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        r.clock.real_delay = 0.1
        order = r.equity_order("SPY", "100.00", "101.00")
        handle = await r.engine.submit(r.request(order, "cancel-1", params=SLOW))
        await wait_for(r.recorder, ChaseStepped)
        stepped = r.recorder.of(ChaseStepped)[0]
        # `!tt cancel <order id>` may name any order of the chain, even a replaced one.
        [result] = await r.engine.cancel(GUILD, str(stepped.old_order_id))
        await settle(r)

        assert result.status is ChaseStatus.CANCELLED
        assert (await handle.wait()).status is ChaseStatus.CANCELLED
        assert live_orders(r) == []
        current = max(r.exchange_orders(), key=lambda o: o.id)
        assert current.id == result.current_order_id and current.status == "Cancelled"
        assert r.engine.running() == []
        terminal = r.recorder.of(OrderTerminal)
        assert len(terminal) == 1
        assert terminal[0].order_id == result.current_order_id
        assert terminal[0].status == "Cancelled" and terminal[0].chase is not None
        row = await r.db.chases.get(result.chase_id)
        assert row is not None and row.status == "cancelled"
        # Nothing left to do on a second cancel.
        [again] = await r.engine.cancel(GUILD, result.chase_id)
        assert again.status is ChaseStatus.CANCELLED and "already" in again.message


async def test_cancel_is_scoped_to_the_guild(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        order = r.equity_order("SPY", "100.00", "101.00")
        params = ChaseParams(interval_s=5.0, ticks=1, max_steps=0)
        result = await (await r.engine.submit(r.request(order, "scope-1", params=params))).wait()
        with pytest.raises(ChaseNotFound):
            await r.engine.cancel(GUILD + 1, result.chase_id)
        with pytest.raises(ChaseNotFound, match="not a chase or order id"):
            await r.engine.cancel(GUILD, "abc")
        assert len(live_orders(r)) == 1


async def test_cancel_a_left_working_order(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        order = r.equity_order("SPY", "100.00", "101.00")
        left = await (await r.engine.submit(r.request(order, "left-1"))).wait()
        assert left.status is ChaseStatus.LEFT_WORKING
        [result] = await r.engine.cancel(GUILD, left.current_order_id or 0)
        assert result.status is ChaseStatus.CANCELLED
        assert live_orders(r) == []
        row = await r.db.chases.get(left.chase_id)
        assert row is not None and row.status == "cancelled"


async def test_halt_stops_every_chase_of_the_guild(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        r.clock.real_delay = 0.05
        spy = r.equity_order("SPY", "100.00", "101.00")
        qqq = r.equity_order("QQQ", "200.00", "201.00")
        iwm = r.equity_order("IWM", "50.00", "51.00")
        chasing = await r.engine.submit(r.request(spy, "halt-spy", params=SLOW))
        plain = await r.engine.submit(
            r.request(qqq, "halt-qqq", params=ChaseParams(interval_s=5.0, ticks=1, max_steps=0))
        )
        other_request = r.request(iwm, "halt-iwm", params=SLOW)
        other_context = NotificationContext(guild_id=GUILD + 1, environment="paper")
        other = await r.engine.submit(
            type(other_request)(
                session=other_request.session,
                account_number=other_request.account_number,
                order=other_request.order,
                idempotency_key=other_request.idempotency_key,
                params=other_request.params,
                context=other_context,
            )
        )
        assert (await plain.wait()).status is ChaseStatus.PLACED
        await asyncio.sleep(0.2)

        results = await r.engine.halt(GUILD)
        assert sorted(res.status for res in results) == [ChaseStatus.HALTED, ChaseStatus.HALTED]
        assert (await chasing.wait()).status is ChaseStatus.HALTED
        symbols_working = {o.legs[0].symbol for o in live_orders(r)}
        assert symbols_working == {"IWM"}  # the other guild's chase is untouched
        assert not other.done()
        await r.engine.cancel(GUILD + 1, "all")
        assert (await other.wait()).status is ChaseStatus.CANCELLED
        assert live_orders(r) == []


async def test_left_working_order_that_fills_later_settles_the_chase(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        hub = NotificationHub(r.tracker, r.bus, poll_interval_s=0.05, use_streamer=False)
        await hub.watch(r.session, "paper", r.account, r.context())
        order = r.equity_order("SPY", "100.00", "101.00")
        left = await (await r.engine.submit(r.request(order, "late-fill-1"))).wait()
        assert left.status is ChaseStatus.LEFT_WORKING
        # Later the market comes to the order.
        r.exchange.market.set_quote("SPY", "99.00", "100.00")
        r.exchange.clock.advance(1.0)
        await wait_for(r.recorder, OrderFilled)
        await settle(r)
        await hub.close()
        fills = r.recorder.of(OrderFilled)
        assert len(fills) == 1 and fills[0].complete and fills[0].chase is not None
        assert fills[0].chase.steps == 3
        for _ in range(100):
            row = await r.db.chases.get(left.chase_id)
            if row is not None and row.status == "filled":
                break
            await asyncio.sleep(0.01)
        assert row is not None and row.status == "filled"


async def test_a_replace_made_elsewhere_is_followed(tmp_path: Path) -> None:
    """Someone replaces the working order from the Tastytrade app mid-chase: the engine
    follows `replacing-order-id`, records the link and keeps chasing the new order."""
    from broker.fills.broker_ops import OrderOps

    async with rig(tmp_path) as r:
        r.clock.real_delay = 0.1
        order = r.equity_order("SPY", "100.00", "100.40")
        handle = await r.engine.submit(r.request(order, "elsewhere-1", params=SLOW))
        for _ in range(200):
            if r.exchange_orders() and r.exchange_orders()[0].status == "Live":
                break
            await asyncio.sleep(0.01)
        first = r.exchange_orders()[0]
        ops = OrderOps(r.session, r.account)
        outside = await ops.replace(first.id, order.limit_order(D("-100.21"), None))
        [result] = await r.engine.cancel(GUILD, outside.id)  # found by the outside id
        assert (await handle.wait()).status is ChaseStatus.CANCELLED
        assert outside.id in result.order_chain
        assert result.order_chain[:2] == (first.id, outside.id)
        assert live_orders(r) == []
        links = await r.db.chases.links(result.chase_id)
        assert [link.order_id for link in links][:2] == [first.id, outside.id]


async def test_market_order_is_placed_without_a_chase(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        hub = NotificationHub(r.tracker, r.bus, poll_interval_s=0.05, use_streamer=False)
        await hub.watch(r.session, "paper", r.account, r.context())
        limit = r.equity_order("SPY", "100.00", "100.10")
        order = type(limit)(
            legs=limit.legs,
            quantity=limit.quantity,
            underlying_symbol=limit.underlying_symbol,
            natural=limit.natural,
            mid=limit.mid,
            schedule=limit.schedule,
            is_market=True,
        )
        result = await (await r.engine.submit(r.request(order, "market-1"))).wait()
        assert result.status is ChaseStatus.PLACED and r.clock.sleeps == []
        assert r.exchange_orders()[0].order_type == "Market"
        await wait_for(r.recorder, OrderFilled)
        await hub.close()
        [fill] = r.recorder.of(OrderFilled)
        assert fill.average_price == D("-100.10") and fill.complete


async def test_a_cancel_not_yet_confirmed_is_not_reported_as_cancelled(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        hub = NotificationHub(r.tracker, r.bus, poll_interval_s=0.05, use_streamer=False)
        await hub.watch(r.session, "paper", r.account, r.context())
        r.clock.real_delay = 0.05
        order = r.equity_order("SPY", "100.00", "101.00")
        handle = await r.engine.submit(r.request(order, "pending-1", params=SLOW))
        await wait_for(r.recorder, ChaseStepped)
        # The exchange takes longer to confirm the cancel than the engine waits for it.
        r.exchange.market.fills.cancel_delay = 0.8
        [result] = await r.engine.cancel(GUILD, handle.chase_id)

        assert result.status is ChaseStatus.LEFT_WORKING
        assert "not confirmed" in result.message and "may still fill" in result.message
        current = next(o for o in r.exchange_orders() if o.id == result.current_order_id)
        assert current.status == "Cancel Requested"
        row = await r.db.chases.get(result.chase_id)
        assert row is not None and row.status == "left_working"

        # Once the exchange confirms, the tracker reports it and the chase settles.
        await wait_for(r.recorder, OrderTerminal)
        for _ in range(200):
            row = await r.db.chases.get(result.chase_id)
            if row is not None and row.status == "cancelled":
                break
            await asyncio.sleep(0.01)
        await hub.close()
        assert row is not None and row.status == "cancelled"
        [terminal] = r.recorder.of(OrderTerminal)
        assert terminal.order_id == result.current_order_id and terminal.status == "Cancelled"
        [again] = await r.engine.cancel(GUILD, result.chase_id)
        assert again.status is ChaseStatus.CANCELLED and "already" in again.message


def live_count(r: Rig) -> int:
    return len(live_orders(r))


async def test_halt_is_checked_again_just_before_sending(tmp_path: Path) -> None:
    """The service checks the halt flag, then submits; a halt in between must still win."""
    async with rig(tmp_path) as r:
        halted: set[int] = set()
        engine = await r.new_engine(is_halted=lambda guild_id: guild_id in halted)
        order = r.equity_order("SPY", "100.00", "101.00")
        posts = len([m for m, _ in r.exchange.requests if m == "POST"])

        halted.add(GUILD)  # the halt landed after the service's own check
        refused = await (await engine.submit(r.request(order, "halt-race-1", params=SLOW))).wait()
        assert refused.status is ChaseStatus.NOT_PLACED
        assert "halted" in refused.message and refused.order_chain == ()
        assert len([m for m, _ in r.exchange.requests if m == "POST"]) == posts
        key = await r.db.idempotency.get("halt-race-1")
        assert key is not None and key.status == "not_placed"
        await settle(r)
        [not_placed] = r.recorder.of(SubmissionNotPlaced)
        assert "halted" in not_placed.reason

        # A halt arriving just after the check finds the registered chase and stops it.
        halted.clear()
        stops: list[asyncio.Task[list[ChaseResult]]] = []

        async def check_then_halt(guild_id: int) -> bool:
            was_halted = guild_id in halted
            halted.add(guild_id)
            stops.append(asyncio.create_task(racing.halt(guild_id)))
            return was_halted

        racing = await r.new_engine(is_halted=check_then_halt)
        handle = await racing.submit(r.request(order, "halt-race-2", params=SLOW))
        result = await handle.wait()
        [halt_results] = await asyncio.gather(*stops)
        assert result.status is ChaseStatus.HALTED
        assert [res.status for res in halt_results] == [ChaseStatus.HALTED]
        assert live_count(r) == 0

        # If the halt flag cannot be read, nothing is sent.
        def broken(guild_id: int) -> bool:
            raise RuntimeError("settings unavailable")

        failing = await r.new_engine(is_halted=broken)
        unsure = await (await failing.submit(r.request(order, "halt-race-3"))).wait()
        assert unsure.status is ChaseStatus.NOT_PLACED and "could not check" in unsure.message
        for extra in (engine, racing, failing):
            await extra.shutdown()
        assert live_count(r) == 0


async def test_an_event_for_a_running_chase_does_not_hold_up_other_settlements(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        hub = NotificationHub(r.tracker, r.bus, poll_interval_s=0.05, use_streamer=False)
        await hub.watch(r.session, "paper", r.account, r.context())
        qqq = r.equity_order("QQQ", "200.00", "201.00")
        left_params = ChaseParams(interval_s=5.0, ticks=1, max_steps=1)
        left = await (await r.engine.submit(r.request(qqq, "other-1", params=left_params))).wait()
        assert left.status is ChaseStatus.LEFT_WORKING

        r.clock.real_delay = 0.3  # the next chase runs for a while (5 steps)
        spy = r.equity_order("SPY", "100.00", "101.00")
        running = await r.engine.submit(r.request(spy, "running-1", params=SLOW))
        await wait_for(r.recorder, ChaseStepped, count=2)
        # An end of the running chase's order reaches the engine while it still runs...
        r.bus.publish(
            OrderTerminal(
                context=r.context(),
                account_number=r.account,
                at=r.exchange.clock.now(),
                dedupe_key="paper:order=0:terminal",
                order_id=0,
                chase_id=running.chase_id,
                status="Cancelled",
                reason=None,
                legs=spy.legs,
                underlying_symbol="SPY",
                filled_quantity=D(0),
                total_quantity=D(1),
            )
        )
        # ...and the left-working order then fills: it settles without waiting for that chase.
        r.exchange.market.set_quote("QQQ", "199.00", "200.00")
        r.exchange.clock.advance(1.0)
        for _ in range(300):
            row = await r.db.chases.get(left.chase_id)
            if row is not None and row.status == "filled":
                break
            await asyncio.sleep(0.01)
        assert row is not None and row.status == "filled"
        assert running.chase_id in r.engine.running()

        [stopped] = await r.engine.cancel(GUILD, running.chase_id)
        await hub.close()
        assert stopped.status is ChaseStatus.CANCELLED
        await settle(r)
        final = await r.db.chases.get(running.chase_id)
        assert final is not None and final.status == "cancelled"
