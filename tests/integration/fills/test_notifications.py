"""Fill notifications from the account streamer and the polling loop, each delivered once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from broker.events import (
    AccountBalanceChanged,
    NotificationContext,
    OrderFilled,
    OrderTerminal,
    PositionChanged,
)
from broker.fills import ChaseParams, ChaseStatus
from broker.fills.broker_ops import OrderOps
from broker.notify import NotificationHub
from broker.session import BrokerError, ErrorCategory
from tests.integration.fills.support import (
    CHANNEL,
    GUILD,
    D,
    Rig,
    eventually,
    place_plain,
    rig,
    settle,
)


def trade_through(r: Rig, symbol: str = "SPY") -> None:
    """The market comes down through the resting 100.50 bid."""
    r.exchange.market.set_quote(symbol, "99.50", "100.40")
    r.exchange.clock.advance(1.0)


async def test_streamer_delivers_fills_balances_and_positions(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        hub = NotificationHub(r.tracker, r.bus, poll_interval_s=60.0, heartbeat_s=None)
        watch = await hub.watch(r.session, "paper", r.account, r.context())
        assert watch.streamer is not None
        await asyncio.wait_for(watch.streamer.connected.wait(), 5)
        placed = await place_plain(r, "stream-1")
        await eventually(lambda: watch.poller.polls >= 1, "the first poll")
        polls_before_fill = watch.poller.polls
        trade_through(r)
        await eventually(lambda: bool(r.recorder.of(OrderFilled)), "the fill notification")
        await eventually(lambda: bool(r.recorder.of(PositionChanged)), "the position message")
        await settle(r)
        await hub.close()

        assert watch.poller.polls == polls_before_fill  # the streamer, not a poll, told us
        [fill] = r.recorder.of(OrderFilled)
        assert fill.order_id == placed.current_order_id and fill.complete
        assert fill.average_price == D("-100.40") and fill.effect == "Debit"
        assert fill.context.channel_id == CHANNEL and fill.chase is not None
        assert fill.chase.improvement == D("0.60")  # natural was 101.00 at submission
        assert any(b.account_number == r.account for b in r.recorder.of(AccountBalanceChanged))
        position = r.recorder.of(PositionChanged)[-1]
        assert position.symbol == "SPY" and position.quantity == 1


async def test_streamer_closed_mid_chase_fill_notified_once_through_polling(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        hub = NotificationHub(
            r.tracker,
            r.bus,
            poll_interval_s=0.05,
            reconnect_base_s=0.05,
            reconnect_cap_s=0.1,
            heartbeat_s=None,
        )
        watch = await hub.watch(r.session, "paper", r.account, r.context())
        assert watch.streamer is not None
        await asyncio.wait_for(watch.streamer.connected.wait(), 5)

        # A chase is running (slowly, in real time) when the streamer goes silent for good.
        r.clock.real_delay = 0.3
        order = r.equity_order("SPY", "100.00", "101.00")
        handle = await r.engine.submit(
            r.request(order, "silent-1", params=ChaseParams(interval_s=5.0, ticks=1, max_steps=3))
        )
        r.exchange.faults.streamer_error("down", times=10_000)
        await r.exchange.close_streamers()
        await eventually(lambda: not watch.streamer.connected.is_set(), "the disconnect")
        trade_through(r)  # fills the working order while the streamer is down
        await eventually(lambda: bool(r.recorder.of(OrderFilled)), "the fill notification")
        polls_at_fill = watch.poller.polls
        result = await handle.wait()
        assert result.status is ChaseStatus.FILLED

        # The streamer comes back; its re-sync sees the same fill and says nothing more.
        connections = watch.streamer.connections
        r.exchange.faults.clear()
        await eventually(lambda: watch.streamer.connections > connections, "the reconnect")
        await asyncio.sleep(0.2)
        await settle(r)
        await hub.close()

        assert polls_at_fill >= 1
        fills = r.recorder.of(OrderFilled)
        assert len(fills) == 1 and fills[0].complete
        rows = await r.db.fill_events.for_order("paper", fills[0].order_id)
        assert len(rows) == 1 and rows[0].delivered


async def test_order_cancelled_elsewhere_is_reported_once(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        hub = NotificationHub(r.tracker, r.bus, poll_interval_s=0.05, heartbeat_s=None)
        watch = await hub.watch(r.session, "paper", r.account, r.context())
        assert watch.streamer is not None
        await asyncio.wait_for(watch.streamer.connected.wait(), 5)
        placed = await place_plain(r, "elsewhere-1")
        assert placed.current_order_id is not None
        # Cancelled from the Tastytrade app, not through the bot.
        await OrderOps(r.session, r.account).cancel(placed.current_order_id)
        await eventually(lambda: bool(r.recorder.of(OrderTerminal)), "the terminal event")
        await asyncio.sleep(0.2)  # both the streamer and the poller have seen it by now
        await settle(r)
        await hub.close()
        [terminal] = r.recorder.of(OrderTerminal)
        assert terminal.status == "Cancelled" and terminal.order_id == placed.current_order_id
        assert terminal.context.channel_id == CHANNEL and terminal.filled_quantity == 0
        for _ in range(100):  # the engine settles the chase from the event
            row = await r.db.chases.get(placed.chase_id)
            if row is not None and row.status == "cancelled":
                break
            await asyncio.sleep(0.01)
        assert row is not None and row.status == "cancelled"


async def test_orders_placed_outside_the_bot_notify_the_guild_channel(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        hub = NotificationHub(r.tracker, r.bus, poll_interval_s=0.05, use_streamer=False)
        guild_context = NotificationContext(
            guild_id=GUILD, environment="paper", notify_channel_id=555
        )
        await hub.watch(r.session, "paper", r.account, guild_context)
        order = r.equity_order("QQQ", "100.00", "101.00")
        # Placed with the SDK directly (e.g. from the Tastytrade app): no chase, no key.
        placed = await OrderOps(r.session, r.account).place(order.limit_order(D("-101.00"), None))
        hub.order_placed("paper", r.account, placed.id)
        await eventually(lambda: bool(r.recorder.of(OrderFilled)), "the fill notification")
        await settle(r)
        await hub.close()
        [fill] = r.recorder.of(OrderFilled)
        assert fill.chase_id is None and fill.chase is None
        assert fill.context.channel_id is None and fill.context.target_channel_id == 555
        assert fill.average_price == D("-101.00") and fill.total_quantity == 1


async def test_heartbeat_keeps_the_connection_and_a_dead_one_is_replaced(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        hub = NotificationHub(
            r.tracker, r.bus, poll_interval_s=60.0, heartbeat_s=0.05, reconnect_base_s=0.05
        )
        watch = await hub.watch(r.session, "paper", r.account, r.context())
        assert watch.streamer is not None
        await asyncio.wait_for(watch.streamer.connected.wait(), 5)
        await asyncio.sleep(0.4)  # several heartbeats, each acknowledged
        assert watch.streamer.connections == 1
        # The server drops every socket: the listener reconnects and re-syncs over REST.
        polls = watch.poller.polls
        await r.exchange.close_streamers()
        await eventually(lambda: watch.streamer.connections == 2, "the reconnect")
        await eventually(lambda: watch.poller.polls > polls, "the re-sync poll")
        await hub.close()


async def test_day_order_expiring_at_the_close_is_reported_once(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        hub = NotificationHub(r.tracker, r.bus, poll_interval_s=0.05, use_streamer=False)
        await hub.watch(r.session, "paper", r.account, r.context())
        placed = await place_plain(r, "expire-1")
        r.exchange.clock.advance(3 * 24 * 3600)  # past the next session close
        await eventually(lambda: bool(r.recorder.of(OrderTerminal)), "the expiry")
        await asyncio.sleep(0.2)
        await settle(r)
        await hub.close()
        [terminal] = r.recorder.of(OrderTerminal)
        assert terminal.status == "Expired" and terminal.order_id == placed.current_order_id
        for _ in range(100):
            row = await r.db.chases.get(placed.chase_id)
            if row is not None and row.status == "cancelled":
                break
            await asyncio.sleep(0.01)
        assert row is not None and row.status == "cancelled"
        stored = await r.engine.store.get(placed.chase_id)
        assert stored is not None and stored.status is ChaseStatus.EXPIRED


async def test_streamer_and_poller_stop_once_the_grant_is_revoked(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        hub = NotificationHub(
            r.tracker, r.bus, poll_interval_s=0.05, heartbeat_s=None, reconnect_base_s=0.01
        )
        watch = await hub.watch(r.session, "paper", r.account, r.context())
        assert watch.streamer is not None
        await asyncio.wait_for(watch.streamer.connected.wait(), 5)
        await place_plain(r, "revoked-1")  # keeps the poller polling

        r.exchange.revoke_refresh_token("paper-refresh")
        try:
            await r.session.refresh()
        except BrokerError as exc:
            assert exc.category is ErrorCategory.TOKEN_REVOKED
        else:
            raise AssertionError("a revoked grant refreshed")
        grants = r.exchange.oauth_grants
        await r.exchange.close_streamers()
        await eventually(lambda: all(t.done() for t in watch.tasks), "both loops to stop")
        await asyncio.sleep(0.1)
        assert watch.streamer.stop_reason == "the refresh token was revoked"
        assert watch.streamer.connections == 1  # never reconnected
        assert r.exchange.oauth_grants == grants  # and never retried OAuth
        await hub.close()
        # Between failed connections the wait doubles from the base up to the cap.
        assert watch.streamer.backoff(0) == 0.01
        for failures, ceiling in ((1, 0.01), (2, 0.02), (5, 0.16), (13, 30.0), (500, 30.0)):
            for _ in range(20):
                assert ceiling / 2 <= watch.streamer.backoff(failures) <= ceiling


async def test_streamer_stops_when_its_session_is_closed(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        hub = NotificationHub(r.tracker, r.bus, poll_interval_s=0.05, reconnect_base_s=0.01)
        watch = await hub.watch(r.session, "paper", r.account, r.context())
        assert watch.streamer is not None
        await asyncio.wait_for(watch.streamer.connected.wait(), 5)
        await r.session.aclose()  # e.g. the credentials were re-linked: a new watch takes over
        await r.exchange.close_streamers()
        await eventually(lambda: watch.tasks[0].done(), "the streamer to stop")
        assert watch.streamer.stop_reason == "the session was closed"
        assert watch.streamer.connections == 1
        await hub.close()
