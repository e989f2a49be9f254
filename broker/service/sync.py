"""The sync layer (`broker.sync`) seen through the service's `AccountSync` port."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from broker.service.brokers import BrokerContext
from broker.service.errors import ServiceError
from broker.service.models import SyncProgress, SyncSummary
from broker.session import BrokerError
from broker.sync import SyncProgress as RawProgress
from broker.sync import SyncRateLimited, SyncService
from storage.database import Database

__all__ = ["SyncAdapter"]

ProgressCallback = Callable[[SyncProgress], Awaitable[None]]

_STAGE_NAMES = {
    "starting": "starting",
    "transactions": "transactions",
    "orders": "orders",
    "live_orders": "working orders",
    "positions": "positions",
    "balances": "balances",
    "done": "done",
    "failed": "failed",
}


class SyncAdapter:
    """Runs `broker.sync` for a guild's account and reports progress in service terms."""

    def __init__(self, db: Database, service: SyncService) -> None:
        self._db = db
        self.service = service

    def check_manual(self, context: BrokerContext) -> None:
        """Refuse a manual sync that would be rate-limited (joining a running one is fine)."""
        if self.service.is_running(context.environment.value, context.account_number):
            return
        wait = self.service.retry_after(context.guild_id)
        if wait > 0:
            raise ServiceError(SyncRateLimited(wait).message)

    async def sync(
        self,
        context: BrokerContext,
        *,
        kind: str,
        progress: ProgressCallback | None,
        manual: bool = False,
    ) -> SyncSummary:
        started = time.monotonic()

        async def report(update: RawProgress) -> None:
            if progress is not None:
                await progress(
                    SyncProgress(
                        pages_done=update.pages_done,
                        rows_written=update.rows_written,
                        estimated_total=update.estimated_total,
                        stage=_STAGE_NAMES.get(update.stage.value, update.stage.value),
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
                manual=manual,
            )
        except SyncRateLimited as exc:
            raise ServiceError(exc.message) from None
        except BrokerError as exc:
            raise ServiceError(f"Sync failed ({exc.category.value}): {exc.message}") from None
        except ValueError as exc:
            raise ServiceError(f"Sync refused: {exc}") from None
        open_orders = await self._db.orders.open_for_account(
            context.environment.value, context.account_number
        )
        return SyncSummary(
            kind=result.kind,
            rows_written=result.rows_written,
            pages=result.pages_done,
            positions=result.positions,
            open_orders=len(open_orders),
            duration_seconds=time.monotonic() - started,
            attached=result.attached,
        )
