"""Find out what really happened after a submission or replace lost its answer.

A timeout or dropped connection after sending means the exchange may or may not have acted.
We never resend; we look:

* Submission: today's orders with our ``external-identifier`` (the idempotency key); if the
  exchange does not echo it, an order with the same legs, quantity and price received inside
  the submission's time window, not already owned by another chase. Exactly one candidate is
  adopted; none means "not placed"; if every look-up failed, the outcome stays *unknown*.
  The live list only holds today's orders (and those still working): when the submission
  was made on an earlier New York day (a restart the next morning), the order history since
  that day is searched too, and if it cannot be read the outcome is *unknown*, never a
  confident "not placed" (a DAY order that filled yesterday would otherwise be re-entered).
* Replace: the old order's ``replacing-order-id``, or a live order whose ``replaces-order-id``
  is the old id. If neither exists the replace did not happen and the old order (possibly
  filled meanwhile) is still the current one.

Look-ups are repeated a few times, ``delay_s`` apart, because an order that was in flight when
the connection dropped can take a moment to appear. These waits are *real* time (a request in
flight does not care about a simulated market clock).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

import structlog
from tastytrade.order import PlacedOrder

from broker.events import LegInfo
from broker.fills.broker_ops import OrderOps
from broker.fills.snapshot import OrderSnapshot, legs_of
from broker.session import BrokerError

__all__ = [
    "ReplaceOutcome",
    "ReplaceReconciliation",
    "SubmissionReconciliation",
    "reconcile_replacement",
    "reconcile_submission",
]

log = structlog.get_logger(__name__)

# Exchange and bot clocks are not the same clock: accept a little skew around the window.
CLOCK_SKEW = timedelta(seconds=30)
#: The exchange's day: its live-orders list holds the orders of the current New York day.
NEW_YORK = ZoneInfo("America/New_York")


def ny_date(moment: datetime) -> date:
    return moment.astimezone(NEW_YORK).date()


@dataclass(frozen=True, slots=True)
class SubmissionReconciliation:
    order: PlacedOrder | None
    #: False when no look-up succeeded: we do not know whether the order exists.
    certain: bool
    matched_by: str | None = None
    detail: str = ""


def _leg_key(legs: Sequence[LegInfo]) -> frozenset[tuple[str, str, Decimal]]:
    return frozenset((leg.symbol, leg.action, Decimal(leg.quantity)) for leg in legs)


def _match(
    orders: Sequence[PlacedOrder],
    *,
    key: str,
    legs: Sequence[LegInfo],
    price: Decimal | None,
    window_start: datetime,
    exclude: Collection[int],
) -> tuple[PlacedOrder | None, str | None, str]:
    by_key = [o for o in orders if o.external_identifier == key and o.id not in exclude]
    if by_key:
        # The original submission is the one that replaces nothing.
        originals = [o for o in by_key if o.replaces_order_id is None] or by_key
        return min(originals, key=lambda o: o.id), "external_identifier", ""
    wanted_legs = _leg_key(legs)
    earliest = window_start - CLOCK_SKEW
    candidates = [
        o
        for o in orders
        if o.id not in exclude
        and o.replaces_order_id is None
        # An order carrying someone else's identifier is theirs, whatever it looks like.
        and o.external_identifier in (None, key)
        and _leg_key(legs_of(o)) == wanted_legs
        and (price is None or o.price == price)
        and (o.received_at is None or o.received_at >= earliest)
    ]
    if len(candidates) == 1:
        return candidates[0], "legs_quantity_price_window", ""
    if len(candidates) > 1:
        ids = ", ".join(str(o.id) for o in candidates)
        return None, None, f"several orders match the lost submission ({ids}); adopted none"
    return None, None, ""


async def reconcile_submission(
    ops: OrderOps,
    *,
    key: str,
    legs: Sequence[LegInfo],
    price: Decimal | None,
    window_start: datetime,
    attempts: int = 3,
    delay_s: float = 1.0,
    exclude: Collection[int] = (),
    owned_elsewhere: Callable[[int], Awaitable[bool]] | None = None,
    now: datetime | None = None,
) -> SubmissionReconciliation:
    """Look for the order a lost submission may have created (never resubmits).

    ``owned_elsewhere(order_id)`` tells whether an order already belongs to another chase
    (so an identical order placed by a different command is never adopted). ``now`` (the
    engine's clock) decides whether the submission is from an earlier day, in which case
    the order history since ``window_start``'s New York date is searched as well.
    """
    since = ny_date(window_start)
    earlier_day = now is not None and since < ny_date(now)
    any_read_ok = False
    ambiguity = ""
    for attempt in range(attempts):
        if attempt:
            await asyncio.sleep(delay_s)
        try:
            orders = await _orders_since(ops, since if earlier_day else None)
        except BrokerError as exc:
            log.warning("reconcile_read_failed", attempt=attempt, error=str(exc))
            continue
        any_read_ok = True
        taken = set(exclude)
        if owned_elsewhere is not None:
            for order in orders:
                # Orders carrying another key are never candidates (see ``_match``).
                if order.external_identifier in (None, key) and await owned_elsewhere(order.id):
                    taken.add(order.id)
        found, matched_by, ambiguity = _match(
            orders, key=key, legs=legs, price=price, window_start=window_start, exclude=taken
        )
        if found is not None:
            return SubmissionReconciliation(order=found, certain=True, matched_by=matched_by)
        if ambiguity:
            return SubmissionReconciliation(order=None, certain=False, detail=ambiguity)
    if not any_read_ok:
        what = f"order history since {since.isoformat()}" if earlier_day else "orders"
        return SubmissionReconciliation(
            order=None,
            certain=False,
            detail=f"could not read the account's {what} to check whether it was placed",
        )
    return SubmissionReconciliation(order=None, certain=True, detail=ambiguity)


async def _orders_since(ops: OrderOps, since: date | None) -> list[PlacedOrder]:
    """Today's orders, plus the history since ``since`` when that is an earlier day.

    Both reads must succeed: a partial view could miss the order and wrongly say "not placed".
    """
    live = await ops.live()
    if since is None:
        return live
    history = await ops.history(since)
    merged = {order.id: order for order in history}
    merged.update((order.id, order) for order in live)  # the live copy is the freshest
    return list(merged.values())


class ReplaceOutcome(StrEnum):
    REPLACED = "replaced"  # the replacement exists: ``order`` is the new order
    NOT_REPLACED = "not_replaced"  # the old order is still current: ``order`` is the old one
    UNKNOWN = "unknown"  # nothing could be read


@dataclass(frozen=True, slots=True)
class ReplaceReconciliation:
    outcome: ReplaceOutcome
    order: PlacedOrder | None
    detail: str = ""


async def reconcile_replacement(
    ops: OrderOps,
    *,
    old_order_id: int,
    attempts: int = 3,
    delay_s: float = 1.0,
) -> ReplaceReconciliation:
    """After a replace lost its answer: did the exchange create the new order?"""
    last_old: PlacedOrder | None = None
    for attempt in range(attempts):
        if attempt:
            await asyncio.sleep(delay_s)
        try:
            old = await ops.get(old_order_id)
            last_old = old
            if old.replacing_order_id is not None:
                new = await ops.get(old.replacing_order_id)
                return ReplaceReconciliation(ReplaceOutcome.REPLACED, new)
            successors = [o for o in await ops.live() if o.replaces_order_id == old_order_id]
        except BrokerError as exc:
            log.warning("reconcile_replace_read_failed", attempt=attempt, error=str(exc))
            continue
        if successors:
            return ReplaceReconciliation(
                ReplaceOutcome.REPLACED, min(successors, key=lambda o: o.id)
            )
        if OrderSnapshot.of(old).is_terminal:
            # Filled (or cancelled) before the replace could act: nothing replaced it.
            return ReplaceReconciliation(ReplaceOutcome.NOT_REPLACED, old)
    if last_old is None:
        return ReplaceReconciliation(
            ReplaceOutcome.UNKNOWN, None, "could not read the order to check the replace"
        )
    return ReplaceReconciliation(ReplaceOutcome.NOT_REPLACED, last_old)
