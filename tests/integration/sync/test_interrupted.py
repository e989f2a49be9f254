"""Syncs that fail or are stopped half-way leave a consistent database; the next run completes."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

import pytest
from tastytrade import Account

from broker.paper import PaperExchange
from broker.session import BrokerError, BrokerSession, ErrorCategory
from broker.sync import Stage, SyncProgress, SyncService
from storage import Database

from .conftest import (
    ENV,
    broker_orders,
    broker_transactions,
    stored_order_ids,
    stored_transaction_keys,
)


async def _assert_consistent_prefix(
    db: Database, number: str, truth: list[tuple[object, int]], run_id: int
) -> int:
    """Stored rows are exactly the first N broker rows (whole pages), and the watermark
    and the run's progress row agree with them. Returns N."""
    stored = await stored_transaction_keys(db, number)
    assert 0 < len(stored) < len(truth)
    assert stored == truth[: len(stored)]
    mark = await db.sync.watermark(ENV, number)
    assert mark is not None
    assert (mark.last_transaction_executed_at, mark.last_transaction_id) == stored[-1]
    run = await db.sync.get(run_id)
    assert run.rows_written >= len(stored)  # the progress row commits with each page
    return len(stored)


async def test_failure_on_page_n_keeps_committed_pages_and_the_next_run_completes(
    exchange: PaperExchange,
    broker: BrokerSession,
    account: Account,
    sync: SyncService,
    db: Database,
) -> None:
    exchange.seed_history(transactions=5000, orders=400, positions=5)
    number = exchange.account_number
    truth = [(tx.executed_at, tx.id) for tx in await broker_transactions(broker, account)]

    injected = False

    def fail_a_later_page(update: SyncProgress) -> None:
        nonlocal injected
        if not injected and update.stage is Stage.TRANSACTIONS and update.pages_done >= 3:
            injected = True
            # From now on every transactions request (first tries and retries) gets a 503.
            exchange.faults.fail("GET", "/accounts/*/transactions", 503, times=1000)

    with pytest.raises(BrokerError) as failure:
        await sync.run(broker, ENV, number, progress=fail_a_later_page)
    assert failure.value.category is ErrorCategory.SERVER

    run = await db.sync.latest_run(ENV, number)
    assert run is not None and run.status == "failed" and run.kind == "full"
    assert run.error_category == "server" and run.error_message
    assert run.pages_done >= 3
    kept = await _assert_consistent_prefix(db, number, truth, run.run_id)
    # The order history walked alongside: whatever it committed is a whole prefix too.
    orders = await broker_orders(broker, account)
    stored_orders = await stored_order_ids(db, number)
    assert stored_orders <= {o.id for o in orders}
    mark = await db.sync.watermark(ENV, number)
    assert mark is not None
    if mark.last_order_updated_at is not None:
        assert {o.id for o in orders if o.updated_at <= mark.last_order_updated_at} <= stored_orders
    account_row = await db.accounts.require(ENV, number)
    assert account_row.last_synced_at is None and not account_row.needs_relink

    exchange.faults.clear()
    first = len(exchange.requests)
    result = await sync.run(broker, ENV, number)

    assert result.kind == "incremental"  # resumes at the watermark, not from scratch
    assert await stored_transaction_keys(db, number) == truth
    assert result.new_transactions == len(truth) - kept
    assert await stored_order_ids(db, number) == {
        o.id for o in await broker_orders(broker, account)
    }
    first_tx = next(raw for method, raw in exchange.requests[first:] if "/transactions" in raw)
    assert "start-at" in parse_qs(urlsplit(first_tx).query)
    assert (await db.sync.get(result.run_id)).status == "succeeded"


async def test_a_stopped_sync_leaves_whole_pages_and_is_completed_next_time(
    exchange: PaperExchange,
    broker: BrokerSession,
    account: Account,
    sync: SyncService,
    db: Database,
) -> None:
    exchange.seed_history(transactions=4000, orders=100)
    number = exchange.account_number
    truth = [(tx.executed_at, tx.id) for tx in await broker_transactions(broker, account)]
    two_pages = asyncio.Event()
    transaction_pages = 0

    def watch(update: SyncProgress) -> None:
        nonlocal transaction_pages
        if update.stage is Stage.TRANSACTIONS:
            transaction_pages += 1
            if transaction_pages >= 2:
                two_pages.set()

    running = asyncio.create_task(sync.run(broker, ENV, number, progress=watch))
    await asyncio.wait_for(two_pages.wait(), 10)
    await sync.stop()  # like a shutdown in the middle of the walk
    with pytest.raises(asyncio.CancelledError):
        await running

    run = await db.sync.latest_run(ENV, number)
    assert run is not None and run.status == "failed" and run.error_category == "cancelled"
    await _assert_consistent_prefix(db, number, truth, run.run_id)

    await sync.run(broker, ENV, number)
    assert await stored_transaction_keys(db, number) == truth


async def test_runs_left_running_by_a_dead_process_are_closed(
    exchange: PaperExchange, broker: BrokerSession, db: Database
) -> None:
    number = exchange.account_number
    orphan = await db.sync.start_run(ENV, number, "full")  # the process died mid-run
    sync = SyncService(db)
    try:
        result = await sync.run(broker, ENV, number)
    finally:
        await sync.stop()
    closed = await db.sync.get(orphan.run_id)
    assert closed.status == "failed" and closed.error_category == "interrupted"
    assert (await db.sync.get(result.run_id)).status == "succeeded"


@pytest.mark.parametrize("status", [401, 403])
async def test_an_auth_failure_marks_the_account_for_relinking(
    status: int,
    exchange: PaperExchange,
    broker: BrokerSession,
    sync: SyncService,
    db: Database,
) -> None:
    number = exchange.account_number
    await sync.run(broker, ENV, number)
    exchange.faults.fail("GET", "/accounts/*/transactions", status, times=5)

    with pytest.raises(BrokerError) as failure:
        await sync.run(broker, ENV, number)

    assert failure.value.category is ErrorCategory.AUTH
    assert (await db.accounts.require(ENV, number)).needs_relink
    run = await db.sync.latest_run(ENV, number)
    assert run is not None and run.status == "failed" and run.error_category == "auth"

    exchange.faults.clear()
    await sync.run(broker, ENV, number)  # a working sync clears the flag
    assert not (await db.accounts.require(ENV, number)).needs_relink


async def test_a_revoked_grant_marks_the_account_for_relinking(
    exchange: PaperExchange, broker: BrokerSession, sync: SyncService, db: Database
) -> None:
    number = exchange.account_number
    await sync.run(broker, ENV, number)
    exchange.revoke_refresh_token("sync-test-refresh-token")
    exchange.clock.advance(3600)  # the access token expires: the next call must refresh

    with pytest.raises(BrokerError) as failure:
        await sync.run(broker, ENV, number)

    assert failure.value.category is ErrorCategory.TOKEN_REVOKED
    assert (await db.accounts.require(ENV, number)).needs_relink
    run = await db.sync.latest_run(ENV, number)
    assert run is not None and run.error_category == "token_revoked"
    assert "sync-test-refresh-token" not in (run.error_message or "")


async def test_a_sync_that_outlives_its_access_token_carries_on(
    exchange: PaperExchange,
    broker: BrokerSession,
    account: Account,
    sync: SyncService,
    db: Database,
) -> None:
    """The SDK refreshes only before its own page loop; every page here re-checks the
    token, and a 401 mid-walk is answered by one refresh and a retry."""
    exchange.seed_history(transactions=3000, orders=200)
    number = exchange.account_number
    truth = [(tx.executed_at, tx.id) for tx in await broker_transactions(broker, account)]
    grants_before = exchange.oauth_grants
    expired = False

    def expire_the_token(update: SyncProgress) -> None:
        nonlocal expired
        if not expired and update.stage is Stage.TRANSACTIONS:
            expired = True
            exchange.clock.advance(3600)  # every access token issued so far is now stale

    result = await sync.run(broker, ENV, number, progress=expire_the_token)

    assert expired and exchange.oauth_grants > grants_before
    assert await stored_transaction_keys(db, number) == truth
    assert (await db.sync.get(result.run_id)).status == "succeeded"
