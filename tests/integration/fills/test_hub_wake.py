"""When a new order is placed, the poller re-reads the account's live orders only if the
account streamer is down (with it up, the order's events arrive on the stream)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from broker.notify import NotificationHub
from tests.integration.fills.support import eventually, place_plain, rig, settle


async def test_placement_wakes_the_poller_only_while_the_streamer_is_down(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        hub = NotificationHub(
            r.tracker,
            r.bus,
            poll_interval_s=60.0,
            reconnect_base_s=5.0,
            reconnect_cap_s=5.0,
            heartbeat_s=None,
        )
        watch = await hub.watch(r.session, "paper", r.account, r.context())
        assert watch.streamer is not None
        await asyncio.wait_for(watch.streamer.connected.wait(), 5)

        first = await place_plain(r, "wake-1")
        assert first.current_order_id is not None
        # The first working order starts the idle poller, streamer or not.
        await eventually(lambda: watch.poller.polls >= 1, "the first poll")
        polls = watch.poller.polls

        second = await place_plain(r, "wake-2")
        assert second.current_order_id is not None
        hub.order_placed("paper", r.account, second.current_order_id)
        await asyncio.sleep(0.2)
        assert watch.poller.polls == polls  # the streamer is up: no extra read

        r.exchange.faults.streamer_error("down", times=10_000)
        await r.exchange.close_streamers()
        await eventually(lambda: not watch.streamer.connected.is_set(), "the disconnect")
        third = await place_plain(r, "wake-3")
        assert third.current_order_id is not None
        hub.order_placed("paper", r.account, third.current_order_id)
        await eventually(lambda: watch.poller.polls > polls, "a poll while the streamer is down")

        await settle(r)
        await hub.close()
