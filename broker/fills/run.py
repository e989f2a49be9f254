"""One chase: place at the mid, then step toward the far side with cancel-replace.

``ChaseRun`` is the only code that mutates a chase's orders at the exchange, and it does so
from a single task, so a cancel request never races a replace: the request sets a flag, the
task finishes whatever call is in flight (recording its result), then cancels the *current*
order of the chain.

Invariants (see the module docstring of :mod:`broker.fills.engine` for the full contract):
* The chase row exists before the submission is sent; each chain link is stored as soon as
  the exchange answers, before anything else happens.
* Nothing is ever resubmitted: a lost answer is reconciled against the live orders first.
* Every price sent is on the tick schedule and never beyond the current natural price.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

import structlog
from tastytrade.order import OrderStatus, PlacedOrder
from tastytrade.utils import PriceEffect

from broker.events import (
    BrokerEvent,
    ChaseLeftWorking,
    ChaseStepped,
    OrderPlaced,
    SubmissionNotPlaced,
)
from broker.fills.broker_ops import OrderOps
from broker.fills.model import ChaseRecord, ChaseResult, ChaseStatus, OrderDrift
from broker.fills.policy import PriceLadder
from broker.fills.quotes import QuoteUnavailable, current_net_quote
from broker.fills.reconcile import (
    ReplaceOutcome,
    reconcile_replacement,
    reconcile_submission,
)
from broker.fills.snapshot import OrderSnapshot
from broker.orders.pricing import split_signed_price
from broker.session import BrokerError, BrokerSession, ErrorCategory

if TYPE_CHECKING:
    from broker.fills.clock import Clock
    from broker.fills.store import ChaseStore

__all__ = ["ChaseRun", "EngineServices", "HaltCheck", "OrderObserver"]

log = structlog.get_logger(__name__)

# Replacements seen on the exchange that we did not make (e.g. a lost replace answer adopted
# later) are followed, but never more than this many links in one read.
MAX_CHAIN_FOLLOW = 20


class OrderObserver(Protocol):
    """Receives every order state the engine reads (the fill-notification tracker)."""

    async def observe(
        self, session: BrokerSession, environment: str, order: PlacedOrder
    ) -> None: ...

    async def fees_for(
        self,
        session: BrokerSession,
        account_number: str,
        order_ids: list[int],
        underlying_symbol: str | None = None,
    ) -> Decimal | None: ...


class EngineServices(Protocol):
    """What a run needs from its engine (kept small so runs are testable and explicit)."""

    store: ChaseStore
    clock: Clock
    observer: OrderObserver | None
    reconcile_attempts: int
    reconcile_delay_s: float
    cancel_settle_attempts: int
    cancel_settle_delay_s: float
    is_halted: HaltCheck | None

    def publish(self, event: BrokerEvent) -> None: ...


#: ``is_halted(guild_id)``: whether the guild's trading is halted (sync or async).
HaltCheck = Callable[[int], Awaitable[bool] | bool]


class _Paused(Exception):
    """The engine is shutting down: leave the chase persisted as it is."""


_TERMINAL_TO_STATUS = {
    OrderStatus.CANCELLED: ChaseStatus.CANCELLED,
    OrderStatus.EXPIRED: ChaseStatus.EXPIRED,
    OrderStatus.REJECTED: ChaseStatus.REJECTED,
    OrderStatus.REMOVED: ChaseStatus.CANCELLED,
    OrderStatus.PARTIALLY_REMOVED: ChaseStatus.CANCELLED,
}


class ChaseRun:
    def __init__(self, services: EngineServices, record: ChaseRecord, session: BrokerSession):
        self.services = services
        self.record = record
        self.session = session
        self.ops = OrderOps(session, record.account_number)
        self.ladder = (
            None
            if record.order.is_market
            else PriceLadder(record.order.schedule, record.order.effect)
        )
        self.snapshots: dict[int, OrderSnapshot] = {}
        self.stop_event = asyncio.Event()
        self.pause_event = asyncio.Event()
        self.stop_status = ChaseStatus.CANCELLED
        self.rounds = record.steps_done
        self.adopted = False
        self.codes: tuple[str, ...] = ()
        self.fees: Decimal | None = None
        self.task: asyncio.Task[ChaseResult] | None = None
        self.result: asyncio.Future[ChaseResult] = asyncio.get_running_loop().create_future()
        #: Settled when a new chase's submission is over (answered, failed or refused).
        self.submission: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.log = log.bind(
            guild_id=record.guild_id,
            user_id=record.context.author_id,
            chase_id=record.id,
            environment=record.environment,
        )

    # ------------------------------------------------------------------------- public

    def request_stop(self, status: ChaseStatus) -> None:
        self.stop_status = status
        self.stop_event.set()

    def request_pause(self) -> None:
        """Stop at the next wait, leaving the chase persisted as working (bot shutdown)."""
        self.pause_event.set()

    async def run_new(self) -> ChaseResult:
        try:
            return await self._guarded(self._run_new)
        finally:
            self._submission_over()

    def _submission_over(self) -> None:
        if not self.submission.done():
            self.submission.set_result(None)

    async def run_resume(self) -> ChaseResult:
        return await self._guarded(self._run_resume)

    async def describe(self) -> ChaseResult:
        """The outcome of a concluded chase, with its fills read back from the broker."""
        for order_id in self.record.chain:
            try:
                self.snapshots[order_id] = OrderSnapshot.of(await self.ops.get(order_id))
            except BrokerError as exc:
                self.log.warning("chain_read_failed", order_id=order_id, error=exc.message)
        return self._result(self.record.message)

    async def cancel_working(self, status: ChaseStatus) -> ChaseResult:
        """Cancel the current order of a chase that has no running task (left working)."""
        return await self._guarded(lambda: self._cancel_and_conclude(status))

    # -------------------------------------------------------------------------- flows

    async def _guarded(self, flow: Callable[[], Awaitable[ChaseResult]]) -> ChaseResult:
        try:
            result = await flow()
        except _Paused:
            self.log.info("chase_paused", order_id=self.record.current_order_id)
            result = self._result("the bot stopped; the chase resumes when it restarts")
        except asyncio.CancelledError:
            # Engine shutdown: the state stays persisted and the chase resumes on restart.
            if not self.result.done():
                self.result.set_result(
                    self._result("the bot stopped; the chase resumes when it restarts")
                )
            raise
        except Exception as exc:
            self.log.exception("chase_failed")
            message = f"the chase stopped on an internal error ({type(exc).__name__})"
            with contextlib.suppress(Exception):
                self.record.message = message
                await self.services.store.save(self.record)
            result = self._result(message)
        if not self.result.done():
            self.result.set_result(result)
        return result

    async def _run_new(self) -> ChaseResult:
        # The key, the chase row and its chase_created entry are already stored (submitted).
        refused = await self._refuse_before_sending()
        if refused is not None:
            self._submission_over()
            return await self._conclude(ChaseStatus.NOT_PLACED, refused)
        try:
            concluded = await self._place()
        finally:
            self._submission_over()
        if concluded is not None:
            return concluded
        return await self._work(read_first=False)

    async def _run_resume(self) -> ChaseResult:
        self.log.info("chase_resuming", order_id=self.record.current_order_id)
        if self.record.current_order_id is None:
            concluded = await self._reconcile_lost_submission()
            if concluded is not None:
                return concluded
        return await self._work(read_first=True)

    # -------------------------------------------------------------------- submission

    async def _refuse_before_sending(self) -> str | None:
        """Why the order must not be sent after all (a halt or cancel since it was accepted).

        The halt is checked here, inside the chase's own task: the engine registered this run
        before the check, so a halt either is seen here or finds this run and stops it.
        """
        if self.stop_event.is_set():
            verb = "halted" if self.stop_status is ChaseStatus.HALTED else "cancelled"
            return f"not placed: {verb} before the order was sent"
        is_halted = self.services.is_halted
        if is_halted is None:
            return None
        try:
            halted = is_halted(self.record.guild_id)
            if inspect.isawaitable(halted):
                halted = await halted
        except Exception as exc:
            self.log.exception("halt_check_failed")
            return (
                "not placed: could not check whether trading is halted in this server "
                f"({type(exc).__name__}); nothing was sent"
            )
        if halted:
            return "not placed: trading is halted in this server"
        return None

    async def _place(self) -> ChaseResult | None:
        record = self.record
        key = record.idempotency_key
        try:
            order = (
                record.order.market_order(key)
                if record.order.is_market
                else record.order.limit_order(record.start_price, key)
            )
        except OrderDrift as exc:
            self.log.error("confirmed_order_drift", error=str(exc))
            return await self._conclude(ChaseStatus.NOT_PLACED, f"not placed: {exc}")
        self.log.info("chase_submitting", price=str(record.start_price))
        try:
            placed = await self.ops.place(order)
        except BrokerError as exc:
            if exc.outcome_unknown:
                self.log.warning("submission_outcome_unknown", error=exc.message)
                return await self._reconcile_lost_submission()
            status = (
                ChaseStatus.REJECTED
                if exc.category is ErrorCategory.REJECTED
                else ChaseStatus.NOT_PLACED
            )
            self.codes = exc.codes
            return await self._conclude(status, f"not placed: {exc.message}")
        await self._adopt_placed(placed, adopted=False)
        return None

    async def _reconcile_lost_submission(self) -> ChaseResult | None:
        record = self.record
        found = await reconcile_submission(
            self.ops,
            key=record.idempotency_key,
            legs=record.order.legs,
            price=None if record.order.is_market else record.start_price,
            window_start=record.created_at,
            attempts=self.services.reconcile_attempts,
            delay_s=self.services.reconcile_delay_s,
            owned_elsewhere=self._owned_elsewhere,
            now=self.services.clock.now(),
        )
        if found.order is not None:
            self.log.info("submission_adopted", order_id=found.order.id, by=found.matched_by)
            await self._adopt_placed(found.order, adopted=True)
            return None
        if found.certain:
            return await self._conclude(
                ChaseStatus.NOT_PLACED,
                "not placed: the connection dropped before Tastytrade answered, and the order "
                "is not among the account's orders; it was not resubmitted",
            )
        return await self._conclude(
            ChaseStatus.UNKNOWN,
            "outcome unknown: the connection dropped before Tastytrade answered and "
            f"{found.detail or 'the orders could not be checked'}; nothing was resubmitted. "
            "Check the account's orders before trying again",
        )

    async def _owned_elsewhere(self, order_id: int) -> bool:
        owner = await self.services.store.by_order(self.record.environment, order_id)
        return owner is not None and owner.id != self.record.id

    async def _adopt_placed(
        self, placed: PlacedOrder, *, adopted: bool, late: bool = False
    ) -> None:
        record = self.record
        self.adopted = adopted
        record.current_order_id = placed.id
        if placed.id not in record.chain:
            record.chain.append(placed.id)
        if placed.price is not None and not record.order.is_market:
            record.last_price = placed.price
        # A late arrival is not chased any more: it is left working as it is.
        record.status = ChaseStatus.LEFT_WORKING if late else ChaseStatus.WORKING
        # Link, chase row, key "placed" and the audit entry: one transaction.
        await self.services.store.record_placement(record, order_id=placed.id, adopted=adopted)
        self.services.publish(
            OrderPlaced(
                context=record.context,
                account_number=record.account_number,
                at=self.services.clock.now(),
                chase_id=record.id,
                order_id=placed.id,
                legs=record.order.legs,
                quantity=record.order.quantity,
                price=record.last_price,
                effect=self._effect,
                time_in_force=record.order.time_in_force.value,
                adopted=adopted,
                max_steps=0 if record.order.is_market else record.params.max_steps,
            )
        )
        await self._observe(placed)

    async def adopt_late(self, order: PlacedOrder) -> None:
        """Link an order that surfaced after its submission was reported lost."""
        self.log.warning("late_order_adopted", order_id=order.id)
        await self._adopt_placed(order, adopted=True, late=True)
        snap = self.snapshots[order.id]
        if (outcome := self._terminal_outcome(snap)) is not None:
            await self._conclude(*outcome)
        else:
            await self._conclude(
                ChaseStatus.LEFT_WORKING,
                f"order {order.id} reached Tastytrade after all (it was reported not placed); "
                "it is working and was not chased",
            )

    # ---------------------------------------------------------------------- the chase

    async def _work(self, *, read_first: bool) -> ChaseResult:
        record = self.record
        if record.order.is_market or record.params.max_steps == 0:
            # No chase: the order works on its own; fills are reported by the tracker.
            if self.stop_event.is_set():
                return await self._cancel_and_conclude(self.stop_status)
            if read_first:
                snap = await self._refresh_current()
                if snap is not None and (outcome := self._terminal_outcome(snap)) is not None:
                    return await self._conclude(*outcome)
            what = "market order" if record.order.is_market else "limit order (no chase)"
            return await self._conclude(ChaseStatus.PLACED, f"{what} placed")
        first = True
        while True:
            if not (first and read_first) and await self._wait(record.params.interval_s):
                return await self._cancel_and_conclude(self.stop_status)
            first = False
            if self.stop_event.is_set():
                return await self._cancel_and_conclude(self.stop_status)
            if self.pause_event.is_set():
                raise _Paused
            snap = await self._refresh_current()
            if snap is not None and (outcome := self._terminal_outcome(snap)) is not None:
                return await self._conclude(*outcome)
            if self.rounds >= record.params.max_steps:
                return await self._conclude_left_working()
            self.rounds += 1
            if snap is None:
                continue  # could not read the order: never replace blind
            try:
                settled = await self._step()
            except OrderDrift as exc:
                self.log.error("confirmed_order_drift", error=str(exc))
                return await self._conclude_left_working(
                    f"order {record.current_order_id} left working at "
                    f"{_price(record.last_price)}: {exc}"
                )
            if settled is not None and (outcome := self._terminal_outcome(settled)) is not None:
                return await self._conclude(*outcome)

    async def _wait(self, seconds: float) -> bool:
        """Sleep on the engine clock; True as soon as a stop is requested.

        Raises ``_Paused`` when the engine shuts down: waits are the only points where a
        chase stops for a shutdown, so no request is ever abandoned half-way.
        """
        if not (self.stop_event.is_set() or self.pause_event.is_set()):
            waiters = [
                asyncio.ensure_future(self.services.clock.sleep(seconds)),
                asyncio.ensure_future(self.stop_event.wait()),
                asyncio.ensure_future(self.pause_event.wait()),
            ]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in waiters:
                    if not task.done():
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
        if self.stop_event.is_set():
            return True
        if self.pause_event.is_set():
            raise _Paused
        return False

    async def _refresh_current(self) -> OrderSnapshot | None:
        """Read the current order, following any replacement we have not recorded yet."""
        order_id = self.record.current_order_id
        if order_id is None:
            return None
        for _ in range(MAX_CHAIN_FOLLOW):
            try:
                order = await self.ops.get(order_id)
            except BrokerError as exc:
                self.log.warning("order_read_failed", order_id=order_id, error=exc.message)
                return None
            snap = await self._observe(order)
            if not snap.was_replaced or snap.replacing_order_id is None:
                return snap
            try:
                successor = await self.ops.get(snap.replacing_order_id)
            except BrokerError as exc:
                self.log.warning("order_read_failed", order_id=order_id, error=exc.message)
                return None
            await self._record_replacement(order_id, successor, natural=None)
            order_id = successor.id
        return None

    def _terminal_outcome(self, snap: OrderSnapshot) -> tuple[ChaseStatus, str] | None:
        filled = self._filled_total()
        total = self.record.order.quantity
        if snap.is_fully_filled or filled >= total:
            return ChaseStatus.FILLED, "filled"
        if not snap.is_terminal:
            return None
        ended = _TERMINAL_TO_STATUS.get(snap.status, ChaseStatus.CANCELLED)
        reason = f": {snap.reject_reason}" if snap.reject_reason else ""
        what = f"{snap.status.value.lower()}{reason}"
        if filled > 0:
            return (
                ChaseStatus.PARTIALLY_FILLED,
                f"{what} after filling {_qty(filled)} of {_qty(total)}",
            )
        return ended, what

    async def _step(self) -> OrderSnapshot | None:
        """One replacement toward the far side. Returns a snapshot if the order settled."""
        record = self.record
        assert self.ladder is not None and record.current_order_id is not None
        try:
            quote = await current_net_quote(self.session, record.order.legs)
        except (BrokerError, QuoteUnavailable) as exc:
            self.log.warning("quote_unavailable_holding_price", error=str(exc))
            return None
        new_price = self.ladder.next(record.last_price, quote.natural, record.params.ticks)
        if new_price is None:
            self.log.info("at_natural_holding", price=str(record.last_price))
            return None
        old_id = record.current_order_id
        replacement = record.order.limit_order(new_price, record.idempotency_key)
        try:
            new = await self.ops.replace(old_id, replacement)
        except BrokerError as exc:
            return await self._after_failed_replace(exc, old_id, quote.natural)
        await self._record_replacement(old_id, new, natural=quote.natural)
        return None

    async def _after_failed_replace(
        self, exc: BrokerError, old_id: int, natural: Decimal
    ) -> OrderSnapshot | None:
        if exc.outcome_unknown or exc.category in (ErrorCategory.TIMEOUT, ErrorCategory.NETWORK):
            self.log.warning("replace_outcome_unknown", order_id=old_id, error=exc.message)
            found = await reconcile_replacement(
                self.ops,
                old_order_id=old_id,
                attempts=self.services.reconcile_attempts,
                delay_s=self.services.reconcile_delay_s,
            )
            if found.outcome is ReplaceOutcome.REPLACED and found.order is not None:
                await self._record_replacement(old_id, found.order, natural=natural)
                return None
            if found.outcome is ReplaceOutcome.NOT_REPLACED and found.order is not None:
                return await self._observe(found.order)
            return None
        if exc.category is ErrorCategory.REJECTED:
            # Usually the order filled (or was cancelled) between our read and the replace:
            # read it again and let the caller conclude. No second order is ever created.
            self.log.info("replace_refused", order_id=old_id, error=exc.message, codes=exc.codes)
            snap = await self._refresh_current()
            if snap is not None and self._terminal_outcome(snap) is None:
                self.record.message = f"a replace was refused: {exc.message}"
            return snap
        self.log.warning("replace_failed", order_id=old_id, error=exc.message)
        return None

    async def _record_replacement(
        self, old_id: int, new: PlacedOrder, *, natural: Decimal | None
    ) -> None:
        record = self.record
        if new.id in record.chain:
            return
        old_price = record.last_price
        record.chain.append(new.id)
        record.current_order_id = new.id
        record.steps_done = min(record.steps_done + 1, record.params.max_steps)
        self.rounds = max(self.rounds, record.steps_done)
        if new.price is not None:
            record.last_price = new.price
        store = self.services.store
        await store.add_link(
            record.id,
            order_id=new.id,
            replaces_order_id=old_id,
            step=record.steps_done,
            price=record.last_price,
        )
        await store.save(record)
        await store.audit(
            record,
            "chase_stepped",
            {"old_order_id": old_id, "new_order_id": new.id, "price": str(record.last_price)},
        )
        self.log.info(
            "chase_stepped", old_order_id=old_id, order_id=new.id, price=str(record.last_price)
        )
        self.services.publish(
            ChaseStepped(
                context=record.context,
                account_number=record.account_number,
                at=self.services.clock.now(),
                chase_id=record.id,
                step=record.steps_done,
                max_steps=record.params.max_steps,
                old_order_id=old_id,
                new_order_id=new.id,
                old_price=old_price,
                new_price=record.last_price,
                natural=natural if natural is not None else record.natural_at_submission,
                effect=self._effect,
            )
        )
        await self._observe(new)

    # ------------------------------------------------------------------- cancellation

    async def _cancel_and_conclude(self, status: ChaseStatus) -> ChaseResult:
        record = self.record
        if record.current_order_id is None:
            return await self._conclude(
                record.status, "nothing to cancel: the order's placement was never confirmed"
            )
        for _ in range(MAX_CHAIN_FOLLOW):
            order_id = record.current_order_id
            try:
                await self.ops.cancel(order_id)
            except BrokerError as exc:
                if exc.category is not ErrorCategory.REJECTED and not exc.outcome_unknown:
                    snap = await self._refresh_current()
                    if snap is not None and (outcome := self._terminal_outcome(snap)):
                        return await self._conclude(*outcome)
                    return await self._conclude_left_working(
                        f"could not cancel order {order_id}: {exc.message}; it is still working"
                    )
                # Refused (filled, already cancelled, or replaced meanwhile) or unknown: look.
            snap = await self._settle_after_cancel()
            if snap is None:
                return await self._conclude(
                    ChaseStatus.UNKNOWN,
                    f"cancel of order {order_id} sent, but its state could not be read",
                )
            if record.current_order_id != order_id and not snap.is_terminal:
                continue  # a replacement took its place before the cancel: cancel that one
            outcome = self._terminal_outcome(snap)
            if outcome is None:
                return await self._conclude_cancel_pending(status, order_id, snap.status.value)
            ended, message = outcome
            if ended in (ChaseStatus.CANCELLED, ChaseStatus.EXPIRED, ChaseStatus.REJECTED):
                ended = status
                message = "halted" if status is ChaseStatus.HALTED else "cancelled"
            elif ended is ChaseStatus.PARTIALLY_FILLED and status is ChaseStatus.HALTED:
                message = message.replace("cancelled", "halted", 1)
            return await self._conclude(ended, message)
        return await self._conclude_cancel_pending(status, record.current_order_id, None)

    async def _conclude_cancel_pending(
        self, status: ChaseStatus, order_id: int, order_status: str | None
    ) -> ChaseResult:
        """A cancel sent but not confirmed is not a cancel: the order may still fill.

        The chase is left *working* (settleable: the order's fill or its confirmed end,
        reported by the notification tracker, concludes it), never reported as cancelled.
        """
        verb = "halt" if status is ChaseStatus.HALTED else "cancel"
        state = f" (status {order_status})" if order_status else ""
        return await self._conclude(
            ChaseStatus.LEFT_WORKING,
            f"{verb} requested for order {order_id}, but Tastytrade has not confirmed it "
            f"yet{state}; the order may still fill. You will be told when it ends",
        )

    async def _settle_after_cancel(self) -> OrderSnapshot | None:
        snap: OrderSnapshot | None = None
        cancelled_id = self.record.current_order_id
        for attempt in range(self.services.cancel_settle_attempts):
            if attempt:
                # Real time: the exchange completes a cancel on its own schedule.
                await asyncio.sleep(self.services.cancel_settle_delay_s)
            snap = await self._refresh_current()
            if snap is not None and (snap.is_terminal or snap.order_id != cancelled_id):
                return snap
        return snap

    # --------------------------------------------------------------------- conclusion

    async def _conclude_left_working(self, message: str | None = None) -> ChaseResult:
        record = self.record
        snap = self.snapshots.get(record.current_order_id or -1)
        text = message or (
            f"no fill after {record.steps_done} step(s); order {record.current_order_id} "
            f"left working at {_price(record.last_price)} ({record.order.time_in_force.value})"
        )
        result = await self._conclude(ChaseStatus.LEFT_WORKING, text)
        self.services.publish(
            ChaseLeftWorking(
                context=record.context,
                account_number=record.account_number,
                at=self.services.clock.now(),
                chase_id=record.id,
                order_id=record.current_order_id or 0,
                price=record.last_price,
                effect=self._effect,
                time_in_force=(snap.time_in_force if snap else record.order.time_in_force.value),
                steps=record.steps_done,
                natural=record.natural_at_submission,
                filled_quantity=self._filled_total(),
                total_quantity=record.order.quantity,
            )
        )
        return result

    async def _conclude(self, status: ChaseStatus, message: str) -> ChaseResult:
        record = self.record
        await self._finalize_chain()
        record.status = status
        record.message = message
        store = self.services.store
        await store.save(record)
        if status in (ChaseStatus.NOT_PLACED, ChaseStatus.REJECTED) and not record.chain:
            await store.mark_key(record.idempotency_key, "not_placed", detail=message)
        elif status is ChaseStatus.UNKNOWN and not record.chain:
            await store.mark_key(record.idempotency_key, "failed", detail=message)
        await store.audit(record, "chase_concluded", {"status": status.value, "message": message})
        self.log.info("chase_concluded", status=status.value, message=message)
        if status in (ChaseStatus.NOT_PLACED, ChaseStatus.REJECTED) and not record.chain:
            self.services.publish(
                SubmissionNotPlaced(
                    context=record.context,
                    account_number=record.account_number,
                    at=self.services.clock.now(),
                    chase_id=record.id,
                    idempotency_key=record.idempotency_key,
                    reason=message,
                    rejected=status is ChaseStatus.REJECTED,
                    codes=self.codes,
                )
            )
        if record.chain and self.services.observer is not None and self._filled_total() > 0:
            try:
                self.fees = await self.services.observer.fees_for(
                    self.session,
                    record.account_number,
                    list(record.chain),
                    record.order.underlying_symbol,
                )
            except Exception:
                self.log.exception("fees_lookup_failed")
        result = self._result(message)
        if not self.result.done():
            self.result.set_result(result)
        return result

    async def _finalize_chain(self) -> None:
        """Re-read replaced links whose last known state was not final (late partial fills)."""
        for order_id in self.record.chain:
            if order_id == self.record.current_order_id:
                continue
            snap = self.snapshots.get(order_id)
            if snap is not None and snap.is_terminal:
                continue
            try:
                await self._observe(await self.ops.get(order_id))
            except BrokerError as exc:
                self.log.warning("chain_read_failed", order_id=order_id, error=exc.message)

    # ---------------------------------------------------------------------- helpers

    async def _observe(self, order: PlacedOrder) -> OrderSnapshot:
        snap = OrderSnapshot.of(order)
        self.snapshots[order.id] = snap
        observer = self.services.observer
        if observer is not None:
            try:
                await observer.observe(self.session, self.record.environment, order)
            except Exception:
                self.log.exception("order_observer_failed", order_id=order.id)
        return snap

    def _filled_total(self) -> Decimal:
        total = sum(
            (
                snap.filled_quantity
                for oid, snap in self.snapshots.items()
                if oid in self.record.chain
            ),
            Decimal(0),
        )
        return min(total, self.record.order.quantity)

    def _average_price(self) -> Decimal | None:
        value = Decimal(0)
        quantity = Decimal(0)
        for order_id in self.record.chain:
            snap = self.snapshots.get(order_id)
            if snap is None or snap.average_price is None or not snap.filled_quantity:
                continue
            value += snap.average_price * snap.filled_quantity
            quantity += snap.filled_quantity
        return value / quantity if quantity else None

    @property
    def _effect(self) -> str:
        # Fixed at submission: a replace never changes the effect.
        return self.record.order.effect.value

    def _result(self, message: str) -> ChaseResult:
        record = self.record
        average = self._average_price()
        return ChaseResult(
            chase_id=record.id,
            status=record.status,
            message=message,
            order_chain=tuple(record.chain),
            current_order_id=record.current_order_id,
            filled_quantity=self._filled_total(),
            total_quantity=record.order.quantity,
            average_price=average,
            effect=self._effect,
            start_price=record.start_price,
            final_price=record.last_price,
            steps=record.steps_done,
            natural_at_submission=record.natural_at_submission,
            improvement=None if average is None else average - record.natural_at_submission,
            fees=self.fees,
            adopted=self.adopted,
            codes=self.codes,
        )


def _qty(quantity: Decimal) -> str:
    return f"{quantity.normalize():f}"


def _price(signed: Decimal) -> str:
    magnitude, effect = split_signed_price(signed)
    if effect is PriceEffect.NONE:
        return f"{magnitude}"
    return f"{magnitude} {effect.value.lower()}"
