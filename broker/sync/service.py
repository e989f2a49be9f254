"""`SyncService`: one sync at a time per account, manual-sync rate limits, a scheduler,
and the database-only queries the Discord layer shows.

```python
sync = SyncService(db)
result = await sync.run(broker_session, "paper", "5WT00001", kind="auto", progress=show,
                        guild_id=guild_id, manual=True)
groups = await sync.positions_by_underlying("paper", "5WT00001")   # no network
```

A second `run` for an account whose sync is running attaches to it: it gets the same
result (``attached=True``) or the same error, and its progress callback receives the
running sync's updates. A caller that stops waiting (cancelled) does not stop the sync.
Progress callbacks never slow a sync down: each callback gets the latest update when it
is ready for one (intermediate updates are skipped) and its errors are logged, not raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import structlog
from tastytrade import Account as SdkAccount
from tastytrade.account import CurrentPosition

from broker.session import BrokerError, BrokerSession, Environment
from broker.sync.models import (
    ProgressCallback,
    SyncProgress,
    SyncRateLimited,
    SyncResult,
    SyncSettings,
    SyncTarget,
)
from broker.sync.replies import ItemMemo
from broker.sync.runner import SyncRunner, positions_memo_for
from storage import BalanceSnapshot, Database, Order, Position, Transaction, UnderlyingGroup

__all__ = ["SyncService"]

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]
Targets = Callable[[], Awaitable[Iterable[SyncTarget]]]
_KINDS = ("auto", "full", "incremental")
_FLUSH_SECONDS = 2.0  # how long a finishing run waits for its caller's last progress update


class _Subscriber:
    """Delivers the latest progress to one callback without ever blocking the sync."""

    def __init__(self, callback: ProgressCallback) -> None:
        self._callback = callback
        self._latest: SyncProgress | None = None
        self._task: asyncio.Task[None] | None = None

    def offer(self, progress: SyncProgress) -> None:
        self._latest = progress
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while self._latest is not None:
            progress, self._latest = self._latest, None
            try:
                outcome = self._callback(progress)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                log.exception("sync progress callback failed", stage=progress.stage.value)

    async def flush(self, within: float) -> None:
        """Wait (bounded) until the last update was handed over."""
        task = self._task
        if task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), within)


@dataclass
class _Running:
    task: asyncio.Task[SyncResult] | None = None
    subscribers: list[_Subscriber] = field(default_factory=list)
    last: SyncProgress | None = None

    def publish(self, progress: SyncProgress) -> None:
        self.last = progress
        for subscriber in self.subscribers:
            subscriber.offer(progress)

    def subscribe(self, callback: ProgressCallback | None) -> _Subscriber | None:
        if callback is None:
            return None
        subscriber = _Subscriber(callback)
        self.subscribers.append(subscriber)
        if self.last is not None:
            subscriber.offer(self.last)  # a late joiner sees where the sync is at once
        return subscriber


class SyncService:
    """Account sync for the whole bot. Create one per database."""

    def __init__(
        self,
        db: Database,
        clock: Clock | None = None,
        *,
        settings: SyncSettings | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._clock = clock or db.clock
        self.settings = settings or SyncSettings()
        self._monotonic = monotonic
        self._running: dict[tuple[str, str], _Running] = {}
        self._accounts: dict[tuple[str, str], SdkAccount] = {}
        # Per account: last run's positions reply and records (unchanged ones are reused).
        self._positions_memos: dict[tuple[str, str], ItemMemo[CurrentPosition, Position]] = {}
        self._last_manual: dict[int, float] = {}
        self._scheduler: asyncio.Task[None] | None = None
        self._recovery: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ syncing

    async def run(
        self,
        session: BrokerSession,
        environment: str,
        account_number: str,
        *,
        kind: str = "auto",
        progress: ProgressCallback | None = None,
        guild_id: int | None = None,
        manual: bool = False,
    ) -> SyncResult:
        """Sync one account (or attach to its running sync) and return the result.

        `kind`: "full" re-reads the whole history, "incremental" reads from the watermark,
        "auto" is incremental once a watermark exists. A request for an account whose sync
        is running attaches to that sync whatever its kind. `manual` marks a user's request,
        which is rate-limited per guild (`SyncRateLimited`); attaching is always allowed.
        Raises `BrokerError` when the sync fails (the run is stored as failed, with every
        page written before the failure kept).
        """
        if kind not in _KINDS:
            raise ValueError(f"sync kind must be one of {', '.join(_KINDS)}, got {kind!r}")
        env = Environment(environment).value  # ValueError names the bad environment
        if not account_number or not account_number.strip():
            raise ValueError("an account number is required to sync")
        if session.environment.value != env:
            raise ValueError(
                f"this session is for {session.environment.value}, not {env}: rows would be "
                "stored under the wrong environment"
            )
        if self._recovery is None:
            self._recovery = asyncio.get_running_loop().create_task(self._recover())
        try:
            await asyncio.shield(self._recovery)
        except Exception:
            self._recovery = None  # try again on the next request
            raise
        # No await from here until the run is registered: a concurrent request for the
        # same account either finds this run or registers its own first.
        key = (env, account_number)
        running = self._running.get(key)
        if running is not None and running.task is not None:
            subscriber = running.subscribe(progress)
            result = await asyncio.shield(running.task)
            if subscriber is not None:
                await subscriber.flush(_FLUSH_SECONDS)
            return replace(result, attached=True)
        if manual and guild_id is not None:
            wait = self.retry_after(guild_id)
            if wait > 0:
                raise SyncRateLimited(wait)
            self._last_manual[guild_id] = self._monotonic()
        running = _Running()
        subscriber = running.subscribe(progress)
        runner = SyncRunner(
            self._db,
            session,
            env,
            account_number,
            settings=self.settings,
            clock=self._clock,
            publish=running.publish,
            guild_id=guild_id,
            account=self._accounts.get(key),
            positions_memo=self._positions_memos.setdefault(key, positions_memo_for(env)),
        )
        task = asyncio.get_running_loop().create_task(
            self._execute(key, runner, kind), name=f"tt-sync:{env}:{account_number}"
        )
        task.add_done_callback(_retrieve)
        running.task = task
        self._running[key] = running
        result = await asyncio.shield(task)
        if subscriber is not None:
            await subscriber.flush(_FLUSH_SECONDS)
        return result

    async def _recover(self) -> None:
        """Close runs a previous process left running (this service owns the database's runs)."""
        closed = await self._db.sync.fail_interrupted()
        if closed:
            log.info("closed syncs interrupted by a previous process", runs=closed)

    async def _execute(self, key: tuple[str, str], runner: SyncRunner, kind: str) -> SyncResult:
        try:
            return await runner.run(kind)
        finally:
            if runner.account is not None:
                self._accounts[key] = runner.account
            self._running.pop(key, None)

    def is_running(self, environment: str, account_number: str) -> bool:
        return (str(environment), account_number) in self._running

    def retry_after(self, guild_id: int) -> float:
        """Seconds until the guild may start another manual sync (0: now)."""
        last = self._last_manual.get(guild_id)
        if last is None:
            return 0.0
        return max(0.0, last + self.settings.manual_interval - self._monotonic())

    def is_rate_limited(self, guild_id: int) -> bool:
        return self.retry_after(guild_id) > 0

    # ---------------------------------------------------------------- scheduler

    def start_scheduler(self, interval: float | None, targets: Targets) -> bool:
        """Sync every target every `interval` seconds (None or 0: off, the default).

        `targets` is called before each round (accounts come and go). Returns whether a
        scheduler runs. Failures are logged; the next round tries again.
        """
        if not interval or interval <= 0:
            return False
        if self._scheduler is not None and not self._scheduler.done():
            raise RuntimeError("the sync scheduler is already running")
        self._scheduler = asyncio.get_running_loop().create_task(
            self._schedule(interval, targets), name="tt-sync-scheduler"
        )
        return True

    async def _schedule(self, interval: float, targets: Targets) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                batch = list(await targets())
            except Exception:
                log.exception("sync scheduler could not list accounts")
                continue
            for target in batch:
                try:
                    await self.run(
                        target.session,
                        target.environment,
                        target.account_number,
                        kind="auto",
                        guild_id=target.guild_id,
                    )
                except BrokerError as exc:
                    log.warning(
                        "scheduled sync failed",
                        environment=target.environment,
                        account=target.account_number,
                        category=exc.category.value,
                    )
                except Exception:
                    log.exception(
                        "scheduled sync crashed",
                        environment=target.environment,
                        account=target.account_number,
                    )

    async def stop(self) -> None:
        """Stop the scheduler and any running sync (each keeps its committed pages)."""
        tasks: list[asyncio.Task[Any]] = []
        if self._scheduler is not None:
            self._scheduler.cancel()
            tasks.append(self._scheduler)
            self._scheduler = None
        for running in list(self._running.values()):
            if running.task is not None:
                running.task.cancel()
                tasks.append(running.task)
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ queries
    # Served from the database only: no network, whatever the broker's state.

    async def positions_by_underlying(
        self, environment: str, account_number: str
    ) -> list[UnderlyingGroup]:
        """Positions grouped by underlying; marks and P&L as of the last sync."""
        return await self._db.positions.by_underlying(environment, account_number)

    async def open_orders(self, environment: str, account_number: str) -> list[Order]:
        return await self._db.orders.open_for_account(environment, account_number)

    async def balances(self, environment: str, account_number: str) -> BalanceSnapshot | None:
        """The latest balance snapshot (None: never synced)."""
        return await self._db.balances.latest(environment, account_number)

    async def recent_transactions(
        self,
        environment: str,
        account_number: str,
        limit: int = 20,
        *,
        symbol: str | None = None,
    ) -> list[Transaction]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        return await self._db.transactions.recent(environment, account_number, limit, symbol=symbol)


def _retrieve(task: asyncio.Task[SyncResult]) -> None:
    """Mark a failed sync's error as seen even when every caller stopped waiting."""
    if not task.cancelled():
        task.exception()
