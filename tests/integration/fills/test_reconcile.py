"""Reconciliation after a lost answer, against real orders at the paper exchange."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from broker.fills.broker_ops import OrderOps
from broker.fills.reconcile import (
    ReplaceOutcome,
    reconcile_replacement,
    reconcile_submission,
)
from tests.integration.fills.support import D, rig


async def test_submission_found_by_external_identifier(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        order = r.equity_order("SPY", "100.00", "101.00")
        ops = OrderOps(r.session, r.account)
        placed = await ops.place(order.limit_order(D("-100.50"), "key-1"))
        await ops.place(order.limit_order(D("-100.50"), "key-2"))  # same order, other key
        found = await reconcile_submission(
            ops,
            key="key-1",
            legs=order.legs,
            price=D("-100.50"),
            window_start=r.exchange.clock.now(),
            delay_s=0.01,
        )
        assert found.certain and found.order is not None
        assert found.order.id == placed.id and found.matched_by == "external_identifier"


async def test_submission_found_by_legs_price_and_window_without_an_echo(
    tmp_path: Path,
) -> None:
    """An exchange that does not echo external-identifier: legs + quantity + price + time."""
    async with rig(tmp_path) as r:
        order = r.equity_order("SPY", "100.00", "101.00")
        ops = OrderOps(r.session, r.account)
        start = r.exchange.clock.now()
        old = await ops.place(order.limit_order(D("-100.40"), None))  # same legs, other price
        placed = await ops.place(order.limit_order(D("-100.50"), None))
        found = await reconcile_submission(
            ops,
            key="lost-key",
            legs=order.legs,
            price=D("-100.50"),
            window_start=start,
            delay_s=0.01,
        )
        assert found.certain and found.order is not None
        assert found.order.id == placed.id != old.id
        assert found.matched_by == "legs_quantity_price_window"

        # An order of an earlier chase is excluded, and the same order placed long before
        # the submission (outside the window) is not taken for it.
        excluded = await reconcile_submission(
            ops,
            key="lost-key",
            legs=order.legs,
            price=D("-100.50"),
            window_start=start,
            delay_s=0.01,
            exclude=[placed.id],
        )
        assert excluded.certain and excluded.order is None
        r.exchange.clock.advance(3600)
        too_old = await reconcile_submission(
            ops,
            key="lost-key",
            legs=order.legs,
            price=D("-100.50"),
            window_start=r.exchange.clock.now() - timedelta(seconds=5),
            delay_s=0.01,
        )
        assert too_old.certain and too_old.order is None


async def test_two_identical_candidates_are_never_guessed(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        order = r.equity_order("SPY", "100.00", "101.00")
        ops = OrderOps(r.session, r.account)
        start = r.exchange.clock.now()
        await ops.place(order.limit_order(D("-100.50"), None))
        await ops.place(order.limit_order(D("-100.50"), None))
        found = await reconcile_submission(
            ops,
            key="lost-key",
            legs=order.legs,
            price=D("-100.50"),
            window_start=start,
            delay_s=0.01,
        )
        assert found.order is None and not found.certain
        assert "several orders match" in found.detail


async def test_unreadable_account_leaves_the_outcome_unknown(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        r.exchange.faults.fail("GET", "/accounts/*/orders/live", 503, times=50)
        order = r.equity_order("SPY", "100.00", "101.00")
        found = await reconcile_submission(
            OrderOps(r.session, r.account),
            key="k",
            legs=order.legs,
            price=D("-100.50"),
            window_start=r.exchange.clock.now(),
            attempts=2,
            delay_s=0.01,
        )
        assert found.order is None and not found.certain


async def test_replace_reconciliation(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        order = r.equity_order("SPY", "100.00", "101.00")
        ops = OrderOps(r.session, r.account)
        first = await ops.place(order.limit_order(D("-100.50"), "k"))
        # Not replaced (still live after every look) -> the old order stays current.
        kept = await reconcile_replacement(ops, old_order_id=first.id, attempts=2, delay_s=0.01)
        assert kept.outcome is ReplaceOutcome.NOT_REPLACED and kept.order is not None
        assert kept.order.id == first.id
        # Replaced -> the new order is found through the chain.
        second = await ops.replace(first.id, order.limit_order(D("-100.52"), "k"))
        found = await reconcile_replacement(ops, old_order_id=first.id, delay_s=0.01)
        assert found.outcome is ReplaceOutcome.REPLACED and found.order is not None
        assert found.order.id == second.id and found.order.replaces_order_id == first.id


async def test_orders_owned_by_other_chases_or_keys_are_never_adopted(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        order = r.equity_order("SPY", "100.00", "101.00")
        ops = OrderOps(r.session, r.account)
        start = r.exchange.clock.now()
        other_chase = await ops.place(order.limit_order(D("-100.50"), None))
        await ops.place(order.limit_order(D("-100.50"), "someone-else"))
        mine = await ops.place(order.limit_order(D("-100.50"), None))

        async def owned_elsewhere(order_id: int) -> bool:
            return order_id == other_chase.id

        found = await reconcile_submission(
            ops,
            key="lost-key",
            legs=order.legs,
            price=D("-100.50"),
            window_start=start,
            delay_s=0.01,
            owned_elsewhere=owned_elsewhere,
        )
        assert found.certain and found.order is not None and found.order.id == mine.id
