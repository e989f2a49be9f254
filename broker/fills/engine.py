"""The fill-retry ("chase") engine.

Price matters: a market order pays the whole spread, and a limit at the mid often never fills.
The engine starts a limit at the (net) mid, rounded onto the tick schedule toward the passive
side, then every ``interval_s`` re-reads the order and, unless it is filled, uses cancel-replace
to move it ``ticks`` ticks toward the far side, never beyond the current natural price. After
``max_steps`` replacements the order is left working (as placed: a DAY order by default).

Safety contract:
* **Idempotency.** The caller's key (Discord message/interaction id) is claimed and the chase
  row is written *before* the order is sent, in one transaction that leaves the key
  ``submitted`` (so a crash at any later point is reconciled with the broker on restart,
  never resent); a re-delivered or edited command finds the claim and gets the existing
  chase back (``handle.duplicate``), never a second order.
* **No blind resubmission.** A submission or replace that times out or loses its connection
  is reconciled against the account's live orders (``external-identifier`` = the key, else
  legs + quantity + price + time window) before anything else; if it is there it is adopted,
  if not the user is told "not placed". Nothing is ever sent twice automatically.
* **Replace, never cancel + new.** A fill between our status read and a replace makes the
  exchange refuse the replace (422); we re-read and conclude. Partial fills stay on the old
  order and the replacement carries the remaining quantity.
* **Chain tracking.** Every replace yields a new order id; each link is persisted at once, so
  ``cancel``, notifications and sync always act on the current order.
* **Restart.** ``resume_open`` reconciles every open chase with the broker and resumes or
  concludes it; none is left orphaned or doubled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING

import structlog
from tastytrade.order import PlacedOrder

from broker.events import (
    BrokerEvent,
    EventBus,
    NotificationContext,
    OrderFilled,
    OrderTerminal,
    Subscription,
)
from broker.fills.broker_ops import OrderOps
from broker.fills.clock import Clock, RealClock
from broker.fills.locks import KeyedLocks
from broker.fills.model import (
    ChaseNotFound,
    ChaseRecord,
    ChaseRequest,
    ChaseResult,
    ChaseStatus,
)
from broker.fills.policy import ChaseParamsError, PriceLadder, effect_of
from broker.fills.run import MAX_CHAIN_FOLLOW, ChaseRun, HaltCheck, OrderObserver
from broker.fills.store import ChaseStore
from broker.orders.pricing import split_signed_price
from broker.session import BrokerError, BrokerSession

if TYPE_CHECKING:
    from storage.database import Database

__all__ = ["ChaseEngine", "ChaseHandle", "SessionLookup", "WorkingOrder"]

log = structlog.get_logger(__name__)

#: ``(environment, account_number) -> session`` for chases found at restart.
SessionLookup = Mapping[tuple[str, str], BrokerSession] | Callable[[str, str], BrokerSession | None]

_OPEN = frozenset({ChaseStatus.SUBMITTING, ChaseStatus.WORKING})
_SETTLEABLE = frozenset({ChaseStatus.LEFT_WORKING, ChaseStatus.PLACED, ChaseStatus.UNKNOWN})
_LATE_ADOPTABLE = frozenset({ChaseStatus.NOT_PLACED, ChaseStatus.UNKNOWN, ChaseStatus.SUBMITTING})
_TERMINAL = {
    "Cancelled": ChaseStatus.CANCELLED,
    "Expired": ChaseStatus.EXPIRED,
    "Rejected": ChaseStatus.REJECTED,
}
_ORDER_MAY_WORK = frozenset(s for s in ChaseStatus if s.order_may_work)


@dataclass(frozen=True, slots=True)
class WorkingOrder:
    """A chase's order that may still work at the exchange (for fill tracking at start-up)."""

    chase_id: int
    environment: str
    account_number: str
    order_id: int
    session: BrokerSession
    context: NotificationContext


class ChaseHandle:
    """A submitted chase. ``await handle.wait()`` gives its :class:`ChaseResult`."""

    def __init__(
        self,
        chase_id: int,
        result: asyncio.Future[ChaseResult],
        *,
        duplicate: bool = False,
        submission: asyncio.Future[None] | None = None,
    ) -> None:
        self.chase_id = chase_id
        self.duplicate = duplicate
        self._result = result
        if submission is None:  # nothing to send (a duplicate): already settled
            submission = asyncio.get_running_loop().create_future()
            submission.set_result(None)
        #: Settles once the new order's submission is over: the exchange answered, the send
        #: failed or was refused, or the chase ended. Never raises.
        self.submission = submission

    def done(self) -> bool:
        return self._result.done()

    async def wait(self) -> ChaseResult:
        result = await asyncio.shield(self._result)
        if self.duplicate and not result.duplicate:
            result = _with_duplicate(result)
        return result

    def __repr__(self) -> str:
        return f"ChaseHandle(chase_id={self.chase_id}, duplicate={self.duplicate})"


def _with_duplicate(result: ChaseResult) -> ChaseResult:
    return replace(result, duplicate=True)


@dataclass(slots=True)
class _Services:
    store: ChaseStore
    clock: Clock
    observer: OrderObserver | None
    reconcile_attempts: int
    reconcile_delay_s: float
    cancel_settle_attempts: int
    cancel_settle_delay_s: float
    bus: EventBus
    is_halted: HaltCheck | None = None

    def publish(self, event: BrokerEvent) -> None:
        self.bus.publish(event)


class ChaseEngine:
    """Runs chases as tasks; all state is persisted through a :class:`ChaseStore`.

    ``db`` is the project's ``storage.Database`` (wrapped in ``SqliteChaseStore``) unless an
    explicit ``store`` is given. ``observer`` receives every order state the engine reads (the
    fill-notification tracker), so fills seen by the engine are notified exactly once too.

    ``is_halted(guild_id)`` (optional, sync or async) is asked inside every new chase's task
    just before its order is sent. A guild-wide halt sets the flag and then calls
    :meth:`halt`; a submission racing it either sees the flag (nothing is sent, "not
    placed") or is already registered and is stopped by the halt. If the check raises,
    nothing is sent.
    """

    def __init__(
        self,
        db: Database | None,
        events: EventBus,
        clock: Clock | None = None,
        *,
        store: ChaseStore | None = None,
        observer: OrderObserver | None = None,
        reconcile_attempts: int = 3,
        reconcile_delay_s: float = 1.0,
        cancel_settle_attempts: int = 5,
        cancel_settle_delay_s: float = 0.2,
        is_halted: HaltCheck | None = None,
    ) -> None:
        if store is None:
            if db is None:
                raise ValueError("ChaseEngine needs a database or an explicit store")
            from broker.fills.sqlite_store import SqliteChaseStore

            store = SqliteChaseStore(db)
        self._services = _Services(
            store=store,
            clock=clock or RealClock(),
            observer=observer,
            reconcile_attempts=reconcile_attempts,
            reconcile_delay_s=reconcile_delay_s,
            cancel_settle_attempts=cancel_settle_attempts,
            cancel_settle_delay_s=cancel_settle_delay_s,
            bus=events,
            is_halted=is_halted,
        )
        if observer is not None and hasattr(observer, "unlinked_order_hook"):
            # The tracker hands us orders that carry a chase's key but no chase link yet.
            observer.unlinked_order_hook = self.adopt_late_order
        self._runs: dict[int, ChaseRun] = {}
        self._sessions: dict[tuple[str, str], BrokerSession] = {}
        self._locks = KeyedLocks()
        #: Fill/terminal events of chases that were still running, settled when they end.
        self._deferred: dict[int, OrderFilled | OrderTerminal] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False
        self._subscription: Subscription | None = None

    @property
    def store(self) -> ChaseStore:
        return self._services.store

    @property
    def clock(self) -> Clock:
        return self._services.clock

    def register_session(
        self, environment: str, account_number: str, session: BrokerSession
    ) -> None:
        """Make ``session`` the one used to cancel chases of this account (e.g. after restart)."""
        self._sessions[(environment, account_number)] = session

    # ------------------------------------------------------------------------- submit

    async def submit(self, request: ChaseRequest) -> ChaseHandle:
        """Persist, place and start chasing ``request`` (idempotent on its key)."""
        if self._closed:
            raise RuntimeError("the chase engine is shut down")
        self._listen()
        order = request.order
        order.effect  # noqa: B018 - refuses an order with no debit/credit effect up front
        start = self._start_price(request)
        store = self._services.store
        context = request.context
        self.register_session(context.environment, request.account_number, request.session)
        record = ChaseRecord(
            id=0,
            idempotency_key=request.idempotency_key,
            context=context,
            account_number=request.account_number,
            order=order,
            params=request.params,
            status=ChaseStatus.SUBMITTING,
            start_price=start,
            last_price=start,
            natural_at_submission=order.natural,
            created_at=self._services.clock.now(),
        )
        # The only database round trip before the order is sent: key claimed (left
        # "submitted"), chase row and its audit entry, all in one transaction.
        chase_id = await store.begin_submission(
            record,
            command_text=request.command_text,
            details={
                "start_price": str(start),
                "natural": str(order.natural),
                "mid": str(order.mid),
                "max_steps": request.params.max_steps,
                "ticks": request.params.ticks,
                "interval_s": request.params.interval_s,
            },
        )
        if chase_id is None:
            return await self._duplicate(request)
        record.id = chase_id
        # Registered at once (no await in between), so a halt that lists this chase finds it.
        run = self._start(record, request.session, resume=False)
        return ChaseHandle(record.id, run.result, submission=run.submission)

    def _start_price(self, request: ChaseRequest) -> Decimal:
        order = request.order
        if order.is_market:
            return order.natural
        if order.quantity <= 0 or not order.legs:
            raise ChaseParamsError("an order needs legs and a positive quantity")
        if order.limit_price is not None:
            ladder = PriceLadder(order.schedule, effect_of(order.limit_price))
            if not ladder.is_valid(order.limit_price):
                below, above = order.schedule.nearest_valid(abs(order.limit_price))
                raise ChaseParamsError(
                    f"{abs(order.limit_price)} is not a valid price (ticks of "
                    f"{order.schedule.describe()}); nearest: {below} or {above}"
                )
            return order.limit_price
        return PriceLadder(order.schedule, order.effect).start(order.mid, order.natural)

    async def _duplicate(self, request: ChaseRequest) -> ChaseHandle:
        store = self._services.store
        existing = await store.by_key(request.idempotency_key)
        loop = asyncio.get_running_loop()
        if existing is None:
            future: asyncio.Future[ChaseResult] = loop.create_future()
            future.set_result(
                ChaseResult(
                    chase_id=0,
                    status=ChaseStatus.NOT_PLACED,
                    message="this command was already processed; nothing new was placed",
                    order_chain=(),
                    current_order_id=None,
                    filled_quantity=Decimal(0),
                    total_quantity=request.order.quantity,
                    average_price=None,
                    effect=request.order.effect.value,
                    start_price=Decimal(0),
                    final_price=Decimal(0),
                    steps=0,
                    natural_at_submission=request.order.natural,
                    improvement=None,
                    duplicate=True,
                )
            )
            return ChaseHandle(0, future, duplicate=True)
        log.info("duplicate_submission", chase_id=existing.id, guild_id=existing.guild_id)
        run = self._runs.get(existing.id)
        if run is not None:
            return ChaseHandle(existing.id, run.result, duplicate=True)
        future = loop.create_future()
        if (
            existing.chain
            and existing.account_number == request.account_number
            and existing.environment == request.context.environment
        ):
            described = await ChaseRun(self._services, existing, request.session).describe()
            future.set_result(replace(described, duplicate=True))
        else:
            future.set_result(_record_result(existing, duplicate=True))
        return ChaseHandle(existing.id, future, duplicate=True)

    def _start(self, record: ChaseRecord, session: BrokerSession, *, resume: bool) -> ChaseRun:
        run = ChaseRun(self._services, record, session)
        self._runs[record.id] = run
        flow = run.run_resume() if resume else run.run_new()
        run.task = asyncio.get_running_loop().create_task(flow, name=f"chase-{record.id}")
        chase_id = record.id

        def forget(_task: asyncio.Task[ChaseResult]) -> None:
            if self._runs.get(chase_id) is run:
                del self._runs[chase_id]
            self._settle_later(chase_id)

        run.task.add_done_callback(forget)
        return run

    # ------------------------------------------------------------------------ control

    async def cancel(
        self,
        guild_id: int,
        target: int | str,
        *,
        status: ChaseStatus = ChaseStatus.CANCELLED,
    ) -> list[ChaseResult]:
        """Stop chase(s) and cancel their current order: a chase id, any order id of a chain,
        or ``"all"`` (every chase of the guild whose order may still be working)."""
        records = await self._targets(guild_id, target)
        results = await asyncio.gather(*(self._cancel_one(r, status) for r in records))
        return list(results)

    async def halt(self, guild_id: int) -> list[ChaseResult]:
        """Guild-wide halt: stop every chase and cancel every working order of the guild."""
        log.warning("guild_halt", guild_id=guild_id)
        return await self.cancel(guild_id, "all", status=ChaseStatus.HALTED)

    async def _targets(self, guild_id: int, target: int | str) -> list[ChaseRecord]:
        store = self._services.store
        if isinstance(target, str) and target.strip().lower() == "all":
            return await store.with_status(_ORDER_MAY_WORK, guild_id=guild_id)
        try:
            wanted = int(str(target).strip().lstrip("#"))
        except ValueError:
            raise ChaseNotFound(
                f"'{target}' is not a chase or order id (use a number or 'all')"
            ) from None
        record = await store.get(wanted)
        if record is not None and record.guild_id == guild_id:
            return [record]
        for environment in ("paper", "sandbox", "live"):
            record = await store.by_order(environment, wanted)
            if record is not None and record.guild_id == guild_id:
                return [record]
        record = await self._successor_of_chase(guild_id, wanted)
        if record is not None:
            return [record]
        raise ChaseNotFound(f"no chase or chase order #{wanted} in this server")

    async def _successor_of_chase(self, guild_id: int, order_id: int) -> ChaseRecord | None:
        """An order id we never recorded may replace a chase's order (a replace made in the
        Tastytrade app, or one whose answer was lost): walk its ``replaces-order-id`` back."""
        store = self._services.store
        accounts = {
            (r.environment, r.account_number)
            for r in await store.with_status(_ORDER_MAY_WORK, guild_id=guild_id)
        }
        for environment, account in sorted(accounts):
            session = self._sessions.get((environment, account))
            if session is None:
                continue
            ops = OrderOps(session, account)
            current = order_id
            for _ in range(MAX_CHAIN_FOLLOW):
                try:
                    order = await ops.get(current)
                except BrokerError:
                    break
                if order.replaces_order_id is None:
                    break
                record = await store.by_order(environment, order.replaces_order_id)
                if record is not None and record.guild_id == guild_id:
                    return record
                current = order.replaces_order_id
        return None

    async def _cancel_one(self, record: ChaseRecord, status: ChaseStatus) -> ChaseResult:
        run = self._runs.get(record.id)
        if run is not None and run.task is not None and not run.task.done():
            run.request_stop(status)
            return await asyncio.shield(run.result)
        async with self._locks.hold(("chase", record.id)):
            fresh = await self._services.store.get(record.id) or record
            if fresh.status not in _ORDER_MAY_WORK:
                return _record_result(fresh, message=f"already {fresh.status.value}")
            session = self._sessions.get((fresh.environment, fresh.account_number))
            if session is None:
                return _record_result(
                    fresh,
                    message=(
                        f"cannot cancel: no {fresh.environment} session for account "
                        f"{fresh.account_number} is active"
                    ),
                )
            return await ChaseRun(self._services, fresh, session).cancel_working(status)

    # ------------------------------------------------------------- after the chase

    def _listen(self) -> None:
        """Follow fills and ends of orders whose chase is over (left working, placed)."""
        if self._subscription is None:
            self._subscription = self._services.bus.subscribe(
                self._on_order_event, kinds=(OrderFilled, OrderTerminal), name="chase-engine"
            )

    async def _on_order_event(self, event: OrderFilled | OrderTerminal) -> None:
        if event.chase_id is None or (isinstance(event, OrderFilled) and not event.complete):
            return
        run = self._runs.get(event.chase_id)
        if run is not None and run.task is not None and not run.task.done():
            # The running chase concludes on its own; what it leaves open is settled when it
            # ends (never wait for it here: that would hold up this subscription's queue).
            previous = self._deferred.get(event.chase_id)
            if not (isinstance(previous, OrderFilled) and isinstance(event, OrderTerminal)):
                self._deferred[event.chase_id] = event
            return
        await self._settle(event)

    def _settle_later(self, chase_id: int) -> None:
        event = self._deferred.pop(chase_id, None)
        if event is None or self._closed:
            return

        async def settle() -> None:
            try:
                await self._settle(event)
            except Exception:
                log.exception("chase_settle_failed", chase_id=chase_id)

        task = asyncio.get_running_loop().create_task(settle(), name=f"chase-settle-{chase_id}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _settle(self, event: OrderFilled | OrderTerminal) -> None:
        """Conclude a chase left open (left working, placed, cancel pending) by its order's
        fill or end."""
        assert event.chase_id is not None
        async with self._locks.hold(("chase", event.chase_id)):
            record = await self._services.store.get(event.chase_id)
            if record is None or record.status not in _SETTLEABLE:
                return
            if record.current_order_id not in (None, event.order_id) and (
                event.order_id not in record.chain
            ):
                return
            if isinstance(event, OrderFilled):
                status, message = ChaseStatus.FILLED, "filled after the chase ended"
            else:
                status = _TERMINAL.get(event.status, ChaseStatus.CANCELLED)
                message = event.status.lower() + (f": {event.reason}" if event.reason else "")
                if event.filled_quantity > 0:
                    status = ChaseStatus.PARTIALLY_FILLED
                    message += f" after filling {event.filled_quantity.normalize():f}"
            record.status = status
            record.message = message
            await self._services.store.save(record)
            await self._services.store.audit(
                record, "chase_concluded", {"status": status.value, "message": message}
            )
            log.info("chase_settled", chase_id=record.id, status=status.value)

    async def adopt_late_order(
        self, session: BrokerSession, environment: str, order: PlacedOrder
    ) -> bool:
        """An order carrying a chase's key turned up after the chase reported it lost.

        It is linked to its chase (so cancel, sync and notifications find it) and announced
        as placed; the chase is then left working, since its chance to step has passed.
        """
        key = order.external_identifier
        if not key:
            return False
        async with self._locks.hold(("late-order", order.id)):
            record = await self._services.store.by_key(key)
            if (
                record is None
                or record.environment != environment
                or record.account_number != order.account_number
                or record.chain
                or record.id in self._runs
                or record.status not in _LATE_ADOPTABLE
            ):
                return False
            self.register_session(environment, record.account_number, session)
            run = ChaseRun(self._services, record, session)
            await run.adopt_late(order)
            return True

    # ---------------------------------------------------------------------- lifecycle

    async def resume_open(self, sessions: SessionLookup) -> list[ChaseHandle]:
        """After a restart: reconcile every open chase with the broker, resume or conclude it.

        Chases that are concluded but whose order may still work (left working, placed) only
        get their session registered so ``cancel`` works; notifications track their orders.
        """
        self._listen()
        lookup = _session_lookup(sessions)
        handles: list[ChaseHandle] = []
        store = self._services.store
        for record in await store.with_status(_ORDER_MAY_WORK):
            session = lookup(record.environment, record.account_number)
            if session is None:
                log.warning(
                    "resume_no_session",
                    chase_id=record.id,
                    environment=record.environment,
                    account_number=record.account_number,
                )
                continue
            self.register_session(record.environment, record.account_number, session)
            if record.status not in _OPEN or record.id in self._runs:
                continue
            run = self._start(record, session, resume=True)
            handles.append(ChaseHandle(record.id, run.result))
        return handles

    async def working_orders(self) -> list[WorkingOrder]:
        """Current orders of every chase whose order may still work and whose account has a
        registered session (after :meth:`resume_open`): what fill tracking must follow."""
        found: list[WorkingOrder] = []
        for record in await self._services.store.with_status(_ORDER_MAY_WORK):
            session = self._sessions.get((record.environment, record.account_number))
            if record.current_order_id is None or session is None:
                continue
            found.append(
                WorkingOrder(
                    chase_id=record.id,
                    environment=record.environment,
                    account_number=record.account_number,
                    order_id=record.current_order_id,
                    session=session,
                    context=record.context,
                )
            )
        return found

    async def shutdown(self, grace_s: float = 10.0) -> None:
        """Stop every chase at its next wait; the state stays persisted for ``resume_open``.

        Chases still busy after ``grace_s`` (a hung request) are cancelled outright; a
        replace whose answer is lost that way is found again by following the chain.
        """
        self._closed = True
        runs = list(self._runs.values())
        for run in runs:
            run.request_pause()
        tasks = [run.task for run in runs if run.task is not None and not run.task.done()]
        if tasks:
            # Chases stop at their next wait; a request in flight is finished and recorded.
            _done, late = await asyncio.wait(tasks, timeout=grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        settling = list(self._background)
        for pending in settling:
            pending.cancel()
        await asyncio.gather(*settling, return_exceptions=True)
        self._deferred.clear()
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None

    def running(self) -> list[int]:
        """Ids of the chases with a live task (for status displays and tests)."""
        return [cid for cid, run in self._runs.items() if run.task and not run.task.done()]


def _effect_label(record: ChaseRecord) -> str:
    """The chase's Debit/Credit, fixed at submission (the one sign rule decides it)."""
    try:
        return record.order.effect.value
    except ChaseParamsError:
        return split_signed_price(record.last_price)[1].value


def _session_lookup(sessions: SessionLookup) -> Callable[[str, str], BrokerSession | None]:
    if callable(sessions):
        return sessions
    mapping = sessions
    return lambda environment, account: mapping.get((environment, account))


def _record_result(
    record: ChaseRecord, *, duplicate: bool = False, message: str | None = None
) -> ChaseResult:
    return ChaseResult(
        chase_id=record.id,
        status=record.status,
        message=message or record.message,
        order_chain=tuple(record.chain),
        current_order_id=record.current_order_id,
        filled_quantity=Decimal(0),
        total_quantity=record.order.quantity,
        average_price=None,
        effect=_effect_label(record),
        start_price=record.start_price,
        final_price=record.last_price,
        steps=record.steps_done,
        natural_at_submission=record.natural_at_submission,
        improvement=None,
        duplicate=duplicate,
    )
