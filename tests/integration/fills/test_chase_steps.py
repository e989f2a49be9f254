"""The chase against the paper exchange: fill at the mid, after 1/2/3 steps, or left working.

Resting orders never fill here (hazard 0): an order fills only when it is marketable, so the
step at which it fills is exactly determined by the pinned quotes.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from pathlib import Path

import pytest

from broker.events import ChaseLeftWorking, ChaseStepped, OrderFilled, OrderPlaced
from broker.fills import ChaseParams, ChaseStatus
from tests.integration.fills.support import CHANNEL, GUILD, D, ScriptedClock, rig, settle


@pytest.mark.parametrize("steps", [1, 2, 3])
async def test_fills_after_n_steps(tmp_path: Path, steps: int) -> None:
    async with rig(tmp_path) as r:
        # ask is 2 ticks per step above the mid: the N-th replacement reaches the natural.
        ask = D("100.00") + D("0.04") * steps
        order = r.equity_order("SPY", "100.00", str(ask))
        handle = await r.engine.submit(r.request(order, f"steps-{steps}"))
        result = await handle.wait()
        await settle(r)

        assert result.status is ChaseStatus.FILLED
        assert result.steps == steps
        assert len(result.order_chain) == steps + 1
        mid = D("100.00") + D("0.02") * steps
        assert result.start_price == -mid
        assert result.final_price == -ask
        assert result.average_price == -ask
        assert result.improvement == 0  # filled at the natural
        assert result.filled_quantity == 1

        # The exchange holds one filled order and `steps` replaced ones, every price on tick,
        # each replacement pointing back at its predecessor.
        orders = sorted(r.exchange_orders(), key=lambda o: o.id)
        assert [o.id for o in orders] == list(result.order_chain)
        assert [o.status for o in orders] == ["Cancelled"] * steps + ["Filled"]
        for previous, current in itertools.pairwise(orders):
            assert current.replaces_order_id == previous.id
            assert previous.replacing_order_id == current.id
        prices = [o.price for o in orders]  # the exchange's prices are SDK-signed too
        assert prices == [-(mid + D("0.02") * k) for k in range(steps + 1)]
        assert all(o.external_identifier == f"steps-{steps}" for o in orders)
        assert await r.position("SPY") == 1

        stepped = r.recorder.of(ChaseStepped)
        assert [e.step for e in stepped] == list(range(1, steps + 1))
        assert all(e.context.channel_id == CHANNEL for e in stepped)
        placed = r.recorder.of(OrderPlaced)
        assert len(placed) == 1 and placed[0].price == -mid and placed[0].effect == "Debit"
        fills = r.recorder.of(OrderFilled)
        assert len(fills) == 1
        fill = fills[0]
        assert fill.complete and fill.filled_quantity == 1 and fill.total_quantity == 1
        assert fill.average_price == -ask and fill.effect == "Debit"
        assert fill.context.guild_id == GUILD and fill.context.channel_id == CHANNEL
        assert fill.chase is not None
        assert fill.chase.steps == steps
        assert fill.chase.start_price == -mid and fill.chase.final_price == -ask
        assert fill.chase.natural_at_submission == -ask
        assert fill.fees is not None and fill.fees >= 0


async def test_fill_at_the_mid(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        order = r.equity_order("AAPL", "200.00", "200.20")

        def ask_drops_to_mid(clock: ScriptedClock, index: int, seconds: float) -> None:
            clock.exchange.market.set_quote("AAPL", "199.98", "200.10")

        r.clock.hooks[0] = ask_drops_to_mid
        result = await (await r.engine.submit(r.request(order, "mid-1"))).wait()
        await settle(r)

        assert result.status is ChaseStatus.FILLED
        assert result.steps == 0 and result.order_chain == (result.current_order_id,)
        assert result.start_price == D("-200.10")
        assert result.average_price == D("-200.10")
        # Paid 0.10 less than the natural (200.20) seen at submission.
        assert result.improvement == D("0.10")
        fills = r.recorder.of(OrderFilled)
        assert len(fills) == 1 and fills[0].chase is not None
        assert fills[0].chase.improvement == D("0.10")
        assert fills[0].chase.improvement_total == D("0.10")
        assert len(r.exchange_orders()) == 1


async def test_sell_steps_down_toward_the_bid(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        order = r.equity_order("QQQ", "300.00", "300.08", buy=False)
        result = await (await r.engine.submit(r.request(order, "sell-1"))).wait()
        assert result.status is ChaseStatus.FILLED
        prices = [o.price for o in sorted(r.exchange_orders(), key=lambda o: o.id)]
        # credit: 300.04 (mid), 300.02, 300.00 (the bid) — fills at the natural after 2 steps
        assert prices == [D("300.04"), D("300.02"), D("300.00")]  # positive = Credit
        assert result.average_price == D("300.00") and result.effect == "Credit"


async def test_no_fill_leaves_a_day_order_working(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        order = r.equity_order("IWM", "150.00", "151.00")
        params = ChaseParams(interval_s=5.0, ticks=3, max_steps=3)
        result = await (await r.engine.submit(r.request(order, "day-1", params=params))).wait()
        await settle(r)

        assert result.status is ChaseStatus.LEFT_WORKING
        assert result.steps == 3
        assert result.final_price == D("-150.59")  # 150.50 + 3 steps x 3 ticks
        assert "left working" in result.message and "Day" in result.message
        working = [o for o in r.exchange_orders() if o.status == "Live"]
        assert len(working) == 1
        assert working[0].id == result.current_order_id
        assert working[0].time_in_force == "Day"
        left = r.recorder.of(ChaseLeftWorking)
        assert len(left) == 1 and left[0].order_id == result.current_order_id
        assert left[0].time_in_force == "Day" and left[0].steps == 3
        # 4 waits: after the placement and after each of the 3 replacements
        assert r.clock.sleeps == [5.0] * 4


async def test_chase_zero_places_a_plain_limit(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        order = r.equity_order("SPY", "100.00", "100.50")
        params = ChaseParams(interval_s=5.0, ticks=2, max_steps=0)
        result = await (await r.engine.submit(r.request(order, "plain-1", params=params))).wait()
        assert result.status is ChaseStatus.PLACED
        assert result.steps == 0 and len(r.exchange_orders()) == 1
        assert r.clock.sleeps == []
        assert r.exchange_orders()[0].price == D("-100.25")


async def test_explicit_limit_off_tick_is_refused_before_sending(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        order = r.equity_order("SPY", "100.00", "100.50", limit=Decimal("-100.255"))
        with pytest.raises(ValueError, match=r"nearest: 100\.25 or 100\.26"):
            await r.engine.submit(r.request(order, "offtick-1"))
        assert r.exchange_orders() == []
        assert await r.db.idempotency.get("offtick-1") is None
