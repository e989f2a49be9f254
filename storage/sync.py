"""Sync bookkeeping: runs (progress for the status reply) and per-account watermarks.

A run is ``running`` until `finish` marks it ``succeeded`` or ``failed``; runs left
``running`` by a crashed process are closed by `fail_interrupted` at start-up.
Watermarks only move forward: an older value never overwrites a newer one, so a late
page or a retried sync cannot make the next incremental sync skip data. Because every
upsert is idempotent, a crash between a page write and the watermark update only costs
a re-fetch.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final

from storage import codec
from storage.errors import InvalidValueError, NotFoundError

if TYPE_CHECKING:
    from storage.database import Database

RUN_KINDS: Final = ("full", "incremental")
FINAL_STATUSES: Final = ("succeeded", "failed")
_MAX_ERROR_MESSAGE: Final = 500


@dataclass(frozen=True, slots=True)
class SyncRun:
    run_id: int
    environment: str
    account_number: str | None
    kind: str
    status: str
    pages_done: int
    rows_written: int
    estimated_total: int | None
    error_category: str | None
    error_message: str | None
    started_at: datetime
    finished_at: datetime | None

    @property
    def fraction_done(self) -> float | None:
        if not self.estimated_total:
            return None
        return min(1.0, self.rows_written / self.estimated_total)


@dataclass(frozen=True, slots=True)
class SyncWatermark:
    environment: str
    account_number: str
    last_transaction_executed_at: datetime | None
    last_transaction_id: int | None
    last_order_updated_at: datetime | None
    updated_at: datetime


_RUN_COLUMNS: Final = (
    "id, environment, account_number, kind, status, pages_done, rows_written, "
    "estimated_total, error_category, error_message, started_at, finished_at"
)


def _run(row: sqlite3.Row) -> SyncRun:
    return SyncRun(
        run_id=row[0],
        environment=row[1],
        account_number=row[2],
        kind=row[3],
        status=row[4],
        pages_done=row[5],
        rows_written=row[6],
        estimated_total=row[7],
        error_category=row[8],
        error_message=row[9],
        started_at=codec.from_ts(row[10]),
        finished_at=codec.from_ts_opt(row[11]),
    )


class SyncRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def start_run(
        self,
        environment: str,
        account_number: str | None,
        kind: str,
        *,
        estimated_total: int | None = None,
    ) -> SyncRun:
        if kind not in RUN_KINDS:
            raise InvalidValueError(f"sync kind must be full or incremental, got {kind!r}")
        run_id = await self._db.insert(
            "INSERT INTO sync_runs (environment, account_number, kind, status, "
            "estimated_total, started_at) VALUES (?, ?, ?, 'running', ?, ?)",
            (
                codec.environment(environment),
                account_number,
                kind,
                estimated_total,
                codec.ts(self._db.clock(), "now"),
            ),
        )
        return await self.get(run_id)

    async def progress(
        self,
        run_id: int,
        *,
        pages: int = 1,
        rows: int = 0,
        estimated_total: int | None = None,
    ) -> None:
        """Add `pages` and `rows` to a running run (and refresh its estimate)."""
        changed = await self._db.execute(
            "UPDATE sync_runs SET pages_done = pages_done + ?, rows_written = rows_written + ?, "
            "estimated_total = COALESCE(?, estimated_total) WHERE id = ? AND status = 'running'",
            (pages, rows, estimated_total, run_id),
        )
        if changed == 0:
            raise NotFoundError(f"sync run {run_id} does not exist or is not running")

    async def finish(
        self,
        run_id: int,
        status: str,
        *,
        error_category: str | None = None,
        error_message: str | None = None,
    ) -> SyncRun:
        """Close a run as succeeded or failed (the message must already be secret-free)."""
        if status not in FINAL_STATUSES:
            raise InvalidValueError(f"a sync run finishes as succeeded or failed, not {status!r}")
        message = None if error_message is None else error_message[:_MAX_ERROR_MESSAGE]
        changed = await self._db.execute(
            "UPDATE sync_runs SET status = ?, error_category = ?, error_message = ?, "
            "finished_at = ? WHERE id = ? AND status = 'running'",
            (status, error_category, message, codec.ts(self._db.clock(), "now"), run_id),
        )
        if changed == 0:
            raise NotFoundError(f"sync run {run_id} does not exist or already finished")
        return await self.get(run_id)

    async def get(self, run_id: int) -> SyncRun:
        row = await self._db.fetch_one(
            f"SELECT {_RUN_COLUMNS} FROM sync_runs WHERE id = ?", (run_id,)
        )
        if row is None:
            raise NotFoundError(f"sync run {run_id} does not exist")
        return _run(row)

    async def latest_run(
        self, environment: str, account_number: str | None = None
    ) -> SyncRun | None:
        row = await self._db.fetch_one(
            f"SELECT {_RUN_COLUMNS} FROM sync_runs WHERE environment = ? "
            "AND account_number IS ? ORDER BY started_at DESC, id DESC LIMIT 1",
            (codec.environment(environment), account_number),
        )
        return None if row is None else _run(row)

    async def running(self) -> list[SyncRun]:
        rows = await self._db.fetch_all(
            f"SELECT {_RUN_COLUMNS} FROM sync_runs WHERE status = 'running' ORDER BY id"
        )
        return [_run(row) for row in rows]

    async def fail_interrupted(self) -> int:
        """Close runs a previous process left running (call once at start-up)."""
        return await self._db.execute(
            "UPDATE sync_runs SET status = 'failed', error_category = 'interrupted', "
            "error_message = 'the process stopped before the sync finished', finished_at = ? "
            "WHERE status = 'running'",
            (codec.ts(self._db.clock(), "now"),),
        )

    async def watermark(self, environment: str, account_number: str) -> SyncWatermark | None:
        row = await self._db.fetch_one(
            "SELECT environment, account_number, last_transaction_executed_at, "
            "last_transaction_id, last_order_updated_at, updated_at FROM sync_watermarks "
            "WHERE environment = ? AND account_number = ?",
            (codec.environment(environment), account_number),
        )
        if row is None:
            return None
        return SyncWatermark(
            environment=row[0],
            account_number=row[1],
            last_transaction_executed_at=codec.from_ts_opt(row[2]),
            last_transaction_id=row[3],
            last_order_updated_at=codec.from_ts_opt(row[4]),
            updated_at=codec.from_ts(row[5]),
        )

    async def set_watermark(
        self,
        environment: str,
        account_number: str,
        *,
        last_transaction_executed_at: datetime | None = None,
        last_transaction_id: int | None = None,
        last_order_updated_at: datetime | None = None,
    ) -> SyncWatermark:
        """Advance the watermark; values older than the stored ones are ignored."""
        if (last_transaction_executed_at is None) != (last_transaction_id is None):
            raise InvalidValueError(
                "the transaction watermark needs both executed_at and the transaction id"
            )
        env = codec.environment(environment)
        tx_at = codec.ts_opt(last_transaction_executed_at, "last_transaction_executed_at")
        order_at = codec.ts_opt(last_order_updated_at, "last_order_updated_at")
        # The transaction mark is the pair (executed_at, id), compared as a tuple.
        tx_newer = (
            "(excluded.last_transaction_executed_at IS NOT NULL AND ("
            "sync_watermarks.last_transaction_executed_at IS NULL OR "
            "excluded.last_transaction_executed_at > sync_watermarks.last_transaction_executed_at"
            " OR (excluded.last_transaction_executed_at = "
            "sync_watermarks.last_transaction_executed_at AND "
            "excluded.last_transaction_id > sync_watermarks.last_transaction_id)))"
        )
        await self._db.execute(
            "INSERT INTO sync_watermarks (environment, account_number, "
            "last_transaction_executed_at, last_transaction_id, last_order_updated_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (environment, account_number) DO UPDATE SET "
            f"last_transaction_executed_at = CASE WHEN {tx_newer} "
            "THEN excluded.last_transaction_executed_at "
            "ELSE sync_watermarks.last_transaction_executed_at END, "
            f"last_transaction_id = CASE WHEN {tx_newer} THEN excluded.last_transaction_id "
            "ELSE sync_watermarks.last_transaction_id END, "
            "last_order_updated_at = CASE WHEN excluded.last_order_updated_at IS NOT NULL AND "
            "(sync_watermarks.last_order_updated_at IS NULL OR "
            "excluded.last_order_updated_at > sync_watermarks.last_order_updated_at) "
            "THEN excluded.last_order_updated_at ELSE sync_watermarks.last_order_updated_at END, "
            "updated_at = excluded.updated_at",
            (
                env,
                account_number,
                tx_at,
                last_transaction_id,
                order_at,
                codec.ts(self._db.clock(), "now"),
            ),
        )
        mark = await self.watermark(env, account_number)
        assert mark is not None  # just written
        return mark

    async def reset_watermark(self, environment: str, account_number: str) -> None:
        """Forget the watermark so the next sync is a full one."""
        await self._db.execute(
            "DELETE FROM sync_watermarks WHERE environment = ? AND account_number = ?",
            (codec.environment(environment), account_number),
        )
