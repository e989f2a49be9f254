"""One sync run of one account: transactions, order history, live orders, positions, balances.

Consistency rules:
- Every page is written in its own database transaction together with the watermark it
  reaches and the run's progress, so a run stopped at any point (error, cancellation,
  process killed) leaves only whole pages behind and a watermark that matches them. The
  next run starts at that watermark (minus the overlap) and completes the history;
  upserts keyed on the broker's ids make re-read rows replace themselves, never duplicate.
- The write of page k runs (on the database worker thread) while page k+1 is fetched and
  parsed; page k+1 is written only after page k committed, so watermarks only move on
  committed pages.
- Positions are a full snapshot (closed positions disappear); balances add a snapshot row.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import structlog
from tastytrade import Account as SdkAccount
from tastytrade.account import CurrentPosition
from tastytrade.account import Transaction as SdkTransaction
from tastytrade.order import PlacedOrder

from broker.secrets import redact
from broker.session import BrokerError, BrokerSession, ErrorCategory
from broker.sync.mapping import (
    account_record,
    balance_record,
    order_record,
    position_record,
    transaction_row_of,
)
from broker.sync.models import Stage, SyncProgress, SyncResult, SyncSettings
from broker.sync.pages import (
    ListQuery,
    WalkedPage,
    collector_paused,
    fetch_body,
    walk_by_cursor,
    walk_by_offset,
)
from broker.sync.replies import ItemMemo
from storage import Database, InvalidValueError, Order, Position

__all__ = ["SyncRunner"]

log = structlog.get_logger(__name__)

M = TypeVar("M")
Publish = Callable[[SyncProgress], None]
Clock = Callable[[], datetime]

# The SDK's default page sizes (`Account.get_history`, `Account.get_order_history`).
SDK_TRANSACTIONS_PER_PAGE = 250
SDK_ORDERS_PER_PAGE = 50

_RELINK_CATEGORIES = frozenset({ErrorCategory.AUTH, ErrorCategory.TOKEN_REVOKED})


@dataclass
class _Counters:
    pages: int = 0
    rows: int = 0
    transactions: int = 0
    orders: int = 0
    live_orders: int = 0
    positions: int = 0
    new_transactions: int = 0
    beyond: tuple[datetime, int] | None = None  # the watermark the run started from
    # Rows each paginated list still has to deliver (from the broker's totals).
    remaining: dict[Stage, int | None] = field(default_factory=dict)

    @property
    def estimate(self) -> int | None:
        known = [value for value in self.remaining.values() if value is not None]
        return self.rows + sum(known) if known else None


class SyncRunner:
    """Runs one sync of one account; `SyncService` makes sure only one runs per account."""

    def __init__(
        self,
        db: Database,
        session: BrokerSession,
        environment: str,
        account_number: str,
        *,
        settings: SyncSettings,
        clock: Clock,
        publish: Publish,
        guild_id: int | None = None,
        account: SdkAccount | None = None,
        positions_memo: ItemMemo[CurrentPosition, Position] | None = None,
    ) -> None:
        self._db = db
        self._session = session
        self._env = environment
        self._number = account_number
        self._settings = settings
        self._clock = clock
        self._publish = publish
        self._guild_id = guild_id
        self.account = account
        self._positions_memo = positions_memo or positions_memo_for(environment)
        self._counters = _Counters()
        self._run_id = 0
        self._kind = "full"
        self._stage = Stage.STARTING

    async def run(self, requested: str) -> SyncResult:
        started = self._clock()
        mark = await self._db.sync.watermark(self._env, self._number)
        full = requested == "full" or (
            requested == "auto"
            and (
                mark is None
                or (
                    mark.last_transaction_executed_at is None and mark.last_order_updated_at is None
                )
            )
        )
        self._kind = "full" if full else "incremental"
        run = await self._db.sync.start_run(self._env, self._number, self._kind)
        self._run_id = run.run_id
        self._announce(Stage.STARTING)
        try:
            account = await self._ensure_account()
            overlap = self._settings.overlap
            tx_start = (
                None if full or mark is None else _minus(mark.last_transaction_executed_at, overlap)
            )
            order_start = (
                None if full or mark is None else _minus(mark.last_order_updated_at, overlap)
            )
            if mark is not None and mark.last_transaction_executed_at is not None:
                assert mark.last_transaction_id is not None  # stored as a pair
                self._counters.beyond = (
                    mark.last_transaction_executed_at,
                    mark.last_transaction_id,
                )
            # Independent lists: fetched concurrently (one round trip of latency instead of
            # five); each page still commits on its own, in order within its list. The
            # positions snapshot goes first: it is the largest reply of an incremental sync
            # (the broker prepares it while this side handles the others).
            await _together(
                self._positions(account),
                self._balances(account),
                self._live_orders(account),
                self._transactions(tx_start),
                self._orders(order_start),
            )
            finished = self._clock()
            await self._db.accounts.mark_synced(self._env, self._number, finished)
            await self._db.sync.finish(self._run_id, "succeeded")
        except BaseException as exc:
            await self._fail(exc)
            if isinstance(exc, InvalidValueError):
                raise BrokerError(
                    ErrorCategory.CONTRACT, f"The broker sent data that cannot be stored: {exc}"
                ) from None
            raise
        counters = self._counters
        counters.remaining = {Stage.DONE: 0}  # the estimate is now exact
        self._announce(Stage.DONE)
        return SyncResult(
            run_id=self._run_id,
            environment=self._env,
            account_number=self._number,
            kind=self._kind,
            pages_done=counters.pages,
            rows_written=counters.rows,
            transactions_written=counters.transactions,
            new_transactions=counters.new_transactions,
            orders_written=counters.orders,
            live_orders=counters.live_orders,
            positions=counters.positions,
            started_at=started,
            finished_at=finished,
        )

    # ------------------------------------------------------------------ stages

    async def _ensure_account(self) -> SdkAccount:
        """The SDK account (fetched once per service) and its row (needed by foreign keys)."""
        if self.account is None:
            number = self._number
            self.account = await self._session.read(
                lambda sdk: SdkAccount.get(sdk, number), kind="validate"
            )
        guild_id = self._guild_id
        if guild_id is not None and await self._db.guilds.get(guild_id) is None:
            guild_id = None  # the account row keeps whatever guild link it already has
        await self._db.accounts.upsert(account_record(self._env, self.account, guild_id))
        return self.account

    async def _transactions(self, start: datetime | None) -> None:
        query: ListQuery[SdkTransaction] = ListQuery(
            path=f"/accounts/{self._number}/transactions",
            model=SdkTransaction,
            per_page=self._settings.transactions_per_page,
            key=lambda tx: tx.executed_at,
            row_id=lambda tx: tx.id,
            fallback_per_page=SDK_TRANSACTIONS_PER_PAGE,
        )
        env = self._env

        def prepare(page: WalkedPage[SdkTransaction]) -> Callable[[], Awaitable[None]]:
            with collector_paused():
                rows = [transaction_row_of(env, tx) for tx in page.items]
                keys = [(tx.executed_at, tx.id) for tx in page.items]
            last = max(keys)
            beyond = self._counters.beyond
            new = len(keys) if beyond is None else sum(1 for key in keys if key > beyond)

            async def write() -> None:
                async with self._db.transaction():
                    await self._db.transactions.upsert_rows(rows)
                    await self._db.sync.set_watermark(
                        env,
                        self._number,
                        last_transaction_executed_at=last[0],
                        last_transaction_id=last[1],
                    )
                    await self._count_page(Stage.TRANSACTIONS, len(rows), page.estimated_remaining)
                self._counters.transactions += len(rows)
                self._counters.new_transactions += new

            return write

        await self._pipeline(
            Stage.TRANSACTIONS, walk_by_offset(self._session, query, start), prepare
        )

    async def _orders(self, start: datetime | None) -> None:
        query: ListQuery[PlacedOrder] = ListQuery(
            path=f"/accounts/{self._number}/orders",
            model=PlacedOrder,
            per_page=self._settings.orders_per_page,
            key=lambda order: order.updated_at,
            row_id=lambda order: order.id,
            fallback_per_page=SDK_ORDERS_PER_PAGE,
        )
        env = self._env

        def prepare(page: WalkedPage[PlacedOrder]) -> Callable[[], Awaitable[None]]:
            with collector_paused():
                records = [order_record(env, order) for order in page.items]
            newest = max(order.updated_at for order in records)

            async def write() -> None:
                async with self._db.transaction():
                    await self._db.orders.upsert_many(records)
                    await self._db.sync.set_watermark(
                        env, self._number, last_order_updated_at=newest
                    )
                    await self._count_page(Stage.ORDERS, len(records), page.estimated_remaining)
                self._counters.orders += len(records)

            return write

        await self._pipeline(Stage.ORDERS, walk_by_cursor(self._session, query, start), prepare)

    async def _live_orders(self, account: SdkAccount) -> None:
        """Today's orders and working GTC orders (also those the history has not caught up on)."""
        orders = await self._session.read(account.get_live_orders)
        records: list[Order] = [order_record(self._env, order) for order in orders]
        async with self._db.transaction():
            await self._db.orders.upsert_many(records)
            await self._count_page(Stage.LIVE_ORDERS, len(records))
        self._counters.live_orders = len(records)

    async def _positions(self, account: SdkAccount) -> None:
        # `Account.get_positions`' request; unchanged positions reuse last run's records.
        body = await fetch_body(
            self._session,
            f"/accounts/{account.account_number}/positions",
            {"include-marks": self._settings.include_marks or None},
        )
        with collector_paused():
            records = self._positions_memo.records(body)
        async with self._db.transaction():
            await self._db.positions.replace_for_account(self._env, self._number, records)
            await self._count_page(Stage.POSITIONS, len(records))
        self._counters.positions = len(records)

    async def _balances(self, account: SdkAccount) -> None:
        balance = await self._session.read(account.get_balances)
        async with self._db.transaction():
            await self._db.balances.add_snapshot(balance_record(self._env, balance))
            await self._count_page(Stage.BALANCES, 1)

    # ------------------------------------------------------------------ helpers

    async def _pipeline(
        self,
        stage: Stage,
        pages: AsyncGenerator[WalkedPage[M], None],
        prepare: Callable[[WalkedPage[M]], Callable[[], Awaitable[None]]],
    ) -> None:
        """Write each page while the next one is fetched and parsed, in page order."""
        pending: asyncio.Task[None] | None = None
        try:
            async for page in pages:
                write = prepare(page) if page.items else None
                if pending is not None:
                    await asyncio.shield(pending)  # a stop lets the write in progress finish
                    pending = None
                if write is not None:
                    pending = asyncio.ensure_future(write())
            if pending is not None:
                await asyncio.shield(pending)
                pending = None
            self._counters.remaining[stage] = 0
        finally:
            if pending is not None:
                # The walk failed or was cancelled: let the page already handed to the
                # database commit (or roll back as a whole), never half-write it.
                with contextlib.suppress(BaseException):
                    await asyncio.shield(pending)
            await pages.aclose()

    async def _count_page(self, stage: Stage, rows: int, remaining: int | None = 0) -> None:
        """Inside the page's transaction: the run's progress row moves with the page."""
        counters = self._counters
        counters.remaining[stage] = remaining
        estimate = counters.estimate
        if estimate is not None:
            estimate += rows
        await self._db.sync.progress(self._run_id, pages=1, rows=rows, estimated_total=estimate)
        counters.pages += 1
        counters.rows += rows
        self._announce(stage)

    def _announce(self, stage: Stage) -> None:
        self._stage = stage
        counters = self._counters
        self._publish(
            SyncProgress(
                run_id=self._run_id,
                kind=self._kind,
                stage=stage,
                pages_done=counters.pages,
                rows_written=counters.rows,
                estimated_total=counters.estimate,
            )
        )

    async def _fail(self, exc: BaseException) -> None:
        """Close the run as failed (secret-free message) and flag an account to re-link."""
        if isinstance(exc, BrokerError):
            category, message = exc.category.value, exc.message
            await self._note_auth_failure(exc)
        elif isinstance(exc, asyncio.CancelledError):
            category, message = "cancelled", "the sync was stopped before it finished"
        elif isinstance(exc, InvalidValueError):
            category, message = ErrorCategory.CONTRACT.value, f"unusable broker data: {exc}"
        else:
            category, message = "internal", f"{type(exc).__name__}: {exc}"
        log.warning(
            "sync failed",
            environment=self._env,
            account=self._number,
            run_id=self._run_id,
            stage=self._stage.value,
            category=category,
        )
        self._announce(Stage.FAILED)
        with contextlib.suppress(Exception):
            await asyncio.shield(
                self._db.sync.finish(
                    self._run_id, "failed", error_category=category, error_message=redact(message)
                )
            )

    async def _note_auth_failure(self, exc: BrokerError) -> None:
        if exc.category in _RELINK_CATEGORIES:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._db.accounts.mark_needs_relink(self._env, self._number))


def positions_memo_for(environment: str) -> ItemMemo[CurrentPosition, Position]:
    """A memo of one account's positions replies (kept by `SyncService` between runs)."""
    return ItemMemo(CurrentPosition, partial(position_record, environment), key="symbol")


def _minus(moment: datetime | None, overlap: timedelta) -> datetime | None:
    return None if moment is None else moment - overlap


async def _together(*jobs: Coroutine[Any, Any, None]) -> None:
    """Run the jobs concurrently; the first failure stops the others and is raised.

    A stopped job finishes the page write it started (pages commit or roll back whole).
    """
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        if task in done and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
