"""Sync runs, forward-only watermarks, and accounts."""

from datetime import UTC, datetime, timedelta

import pytest

from storage import Account, Database, InvalidValueError, NotFoundError

from .conftest import ACCOUNT

T0 = datetime(2026, 1, 2, 15, 4, 5, tzinfo=UTC)


async def test_run_lifecycle(account_db: Database) -> None:
    run = await account_db.sync.start_run("paper", ACCOUNT, "full", estimated_total=1000)
    assert run.status == "running" and run.pages_done == 0
    await account_db.sync.progress(run.run_id, rows=250)
    await account_db.sync.progress(run.run_id, rows=250, estimated_total=2000)
    current = await account_db.sync.get(run.run_id)
    assert (current.pages_done, current.rows_written, current.estimated_total) == (2, 500, 2000)
    assert current.fraction_done == 0.25
    done = await account_db.sync.finish(run.run_id, "succeeded")
    assert done.status == "succeeded" and done.finished_at is not None
    with pytest.raises(NotFoundError, match="not running"):
        await account_db.sync.progress(run.run_id, rows=1)
    with pytest.raises(NotFoundError, match="already finished"):
        await account_db.sync.finish(run.run_id, "failed")
    assert (await account_db.sync.latest_run("paper", ACCOUNT)) == done


async def test_failed_run_keeps_category_and_bounded_message(account_db: Database) -> None:
    run = await account_db.sync.start_run("paper", None, "incremental")
    failed = await account_db.sync.finish(
        run.run_id, "failed", error_category="RATE_LIMIT", error_message="x" * 2000
    )
    assert failed.error_category == "RATE_LIMIT" and len(failed.error_message or "") == 500
    with pytest.raises(InvalidValueError, match="full or incremental"):
        await account_db.sync.start_run("paper", None, "partial")
    with pytest.raises(InvalidValueError, match="succeeded or failed"):
        await account_db.sync.finish(run.run_id, "running")


async def test_interrupted_runs_are_closed_at_startup(account_db: Database) -> None:
    await account_db.sync.start_run("paper", ACCOUNT, "full")
    await account_db.sync.start_run("paper", ACCOUNT, "incremental")
    assert await account_db.sync.fail_interrupted() == 2
    assert await account_db.sync.running() == []
    latest = await account_db.sync.latest_run("paper", ACCOUNT)
    assert latest is not None and latest.error_category == "interrupted"


async def test_watermarks_only_move_forward(account_db: Database) -> None:
    assert await account_db.sync.watermark("paper", ACCOUNT) is None
    mark = await account_db.sync.set_watermark(
        "paper",
        ACCOUNT,
        last_transaction_executed_at=T0,
        last_transaction_id=10,
        last_order_updated_at=T0,
    )
    assert mark.last_transaction_id == 10
    # Older values are ignored; a later id at the same instant advances.
    await account_db.sync.set_watermark(
        "paper", ACCOUNT, last_transaction_executed_at=T0 - timedelta(1), last_transaction_id=99
    )
    mark = await account_db.sync.set_watermark(
        "paper", ACCOUNT, last_transaction_executed_at=T0, last_transaction_id=11
    )
    assert (mark.last_transaction_executed_at, mark.last_transaction_id) == (T0, 11)
    assert mark.last_order_updated_at == T0  # untouched when not given
    mark = await account_db.sync.set_watermark(
        "paper", ACCOUNT, last_order_updated_at=T0 + timedelta(hours=1)
    )
    assert mark.last_order_updated_at == T0 + timedelta(hours=1)
    assert mark.last_transaction_id == 11
    with pytest.raises(InvalidValueError, match="both executed_at and the transaction id"):
        await account_db.sync.set_watermark("paper", ACCOUNT, last_transaction_id=12)
    await account_db.sync.reset_watermark("paper", ACCOUNT)
    assert await account_db.sync.watermark("paper", ACCOUNT) is None


async def test_accounts_upsert_and_queries(account_db: Database) -> None:
    await account_db.accounts.upsert(
        Account(
            "paper", ACCOUNT, nickname="Main", account_type="Individual", margin_or_cash="Margin"
        )
    )
    stored = await account_db.accounts.require("paper", ACCOUNT)
    assert stored.guild_id == 1  # a missing guild link keeps the stored one
    assert stored.nickname == "Main"
    await account_db.accounts.mark_synced("paper", ACCOUNT, T0)
    await account_db.accounts.mark_needs_relink("paper", ACCOUNT)
    stored = await account_db.accounts.require("paper", ACCOUNT)
    assert stored.last_synced_at == T0 and stored.needs_relink
    assert [a.account_number for a in await account_db.accounts.for_guild(1, "paper")] == [ACCOUNT]
    assert await account_db.accounts.for_guild(1, "live") == []
    with pytest.raises(NotFoundError):
        await account_db.accounts.mark_synced("paper", "NOPE", T0)
    with pytest.raises(InvalidValueError, match="empty"):
        await account_db.accounts.upsert(Account("paper", ""))
