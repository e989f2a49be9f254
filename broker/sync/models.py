"""Value types of account sync: settings, progress updates, results, scheduler targets."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from broker.session import BrokerError, BrokerSession, ErrorCategory

#: What the caller asks for; "auto" is incremental when a watermark exists, else full.
RequestedKind = Literal["auto", "full", "incremental"]


class Stage(StrEnum):
    """What a running sync is doing (shown in the live progress message)."""

    STARTING = "starting"
    TRANSACTIONS = "transactions"
    ORDERS = "orders"
    LIVE_ORDERS = "live_orders"
    POSITIONS = "positions"
    BALANCES = "balances"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class SyncSettings:
    """Tunables. Page sizes are capped by the broker (the paper exchange allows 2,000).

    `overlap` re-reads that much history before each watermark so rows that arrive late
    (posted after newer rows were already synced) are still picked up; re-read rows are
    upserted, never duplicated. `manual_interval` is the minimum time between two manual
    syncs started for the same guild (attaching to a running sync is always allowed).
    """

    transactions_per_page: int = 2000
    orders_per_page: int = 2000
    overlap: timedelta = timedelta(hours=1)
    manual_interval: float = 30.0
    include_marks: bool = True

    def __post_init__(self) -> None:
        for name in ("transactions_per_page", "orders_per_page"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"SyncSettings.{name} must be a positive integer")
        if self.overlap < timedelta(0):
            raise ValueError("SyncSettings.overlap must not be negative")
        if self.manual_interval < 0:
            raise ValueError("SyncSettings.manual_interval must not be negative")


@dataclass(frozen=True, slots=True)
class SyncProgress:
    """One progress update. `estimated_total` counts the rows the run expects to write
    (transactions and orders, from the broker's pagination totals); None until known."""

    run_id: int
    kind: str  # "full" | "incremental"
    stage: Stage
    pages_done: int
    rows_written: int
    estimated_total: int | None

    @property
    def fraction_done(self) -> float | None:
        if not self.estimated_total:
            return None
        return min(1.0, self.rows_written / self.estimated_total)


ProgressCallback = Callable[[SyncProgress], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class SyncResult:
    """A finished, successful sync. `attached` is True for callers that joined a sync
    another caller had already started for the same account.

    `transactions_written` counts every transaction row upserted (rows re-read in the
    overlap window included); `new_transactions` those beyond the watermark the run started
    from (all of them for a first sync).
    """

    run_id: int
    environment: str
    account_number: str
    kind: str  # "full" | "incremental"
    pages_done: int
    rows_written: int
    transactions_written: int
    new_transactions: int
    orders_written: int
    live_orders: int
    positions: int
    started_at: datetime
    finished_at: datetime
    attached: bool = False

    @property
    def duration_seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True, slots=True)
class SyncTarget:
    """One account the scheduler keeps in sync."""

    session: BrokerSession
    environment: str
    account_number: str
    guild_id: int | None = None


class SyncRateLimited(BrokerError):
    """A manual sync asked for too soon after the previous one in the same guild."""

    def __init__(self, retry_after: float) -> None:
        seconds = max(1, round(retry_after))
        super().__init__(
            ErrorCategory.RATE_LIMIT,
            f"This server synced moments ago; try again in {seconds} s.",
        )
        self.retry_after = retry_after
