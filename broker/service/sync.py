"""The sync layer (`broker.sync`) seen through the service's `AccountSync` port."""

from __future__ import annotations

import importlib
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from broker.service.brokers import BrokerContext
from broker.service.errors import ServiceError
from broker.service.models import SyncProgress, SyncSummary
from broker.session import BrokerError
from storage.database import Database

__all__ = ["SyncAdapter"]

ProgressCallback = Callable[[SyncProgress], Awaitable[None]]


class SyncAdapter:
    """Runs `broker.sync` for a guild's account and reports progress in service terms."""

    def __init__(self, db: Database, *, now: Callable[[], datetime], service: Any = None) -> None:
        self._db = db
        self._service = service

    @property
    def service(self) -> Any:
        if self._service is None:
            self._service = importlib.import_module("broker.sync").SyncService(self._db)
        return self._service

    async def sync(
        self, context: BrokerContext, *, kind: str, progress: ProgressCallback | None
    ) -> SyncSummary:
        started = time.monotonic()

        async def report(update: Any) -> None:
            if progress is None:
                return
            await progress(
                SyncProgress(
                    pages_done=int(getattr(update, "pages_done", 0)),
                    rows_written=int(getattr(update, "rows_written", 0)),
                    estimated_total=getattr(update, "estimated_total", None),
                    stage=str(getattr(update, "stage", "")),
                )
            )

        try:
            result = await self.service.run(
                context.session,
                context.environment.value,
                context.account_number,
                kind=kind,
                progress=report,
                guild_id=context.guild_id,
            )
        except BrokerError as exc:
            raise ServiceError(f"Sync failed ({exc.category.value}): {exc.message}") from None
        positions = await self._db.positions.for_account(
            context.environment.value, context.account_number
        )
        orders = await self._db.orders.open_for_account(
            context.environment.value, context.account_number
        )
        return SyncSummary(
            kind=str(getattr(result, "kind", kind)),
            rows_written=int(getattr(result, "rows_written", 0)),
            pages=int(getattr(result, "pages_done", 0)),
            positions=len(positions),
            open_orders=len(orders),
            duration_seconds=time.monotonic() - started,
            attached=bool(getattr(result, "attached", False)),
        )
