"""Connection ownership, pragmas, transactions and migrations on real files."""

import asyncio
import contextlib
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from storage import Database, DatabaseInUseError, StorageError
from storage.migrate import load_migrations


async def test_pragmas_are_set(db: Database) -> None:
    settings = await db.settings()
    assert settings.journal_mode == "wal"
    assert settings.foreign_keys is True
    assert settings.busy_timeout_ms == 5000
    assert settings.synchronous == "NORMAL"
    assert settings.schema_version == len(load_migrations())


async def test_busy_timeout_is_configurable(tmp_path: Path) -> None:
    async with await Database.open(tmp_path / "t.db", busy_timeout=1.5) as db:
        assert (await db.settings()).busy_timeout_ms == 1500


async def test_one_owner_per_file(db: Database, db_path: Path) -> None:
    with pytest.raises(DatabaseInUseError, match="already open"):
        await Database.open(db_path)
    # The same file through another spelling of the path is still the same file.
    with pytest.raises(DatabaseInUseError):
        await Database.open(db_path.parent / "." / db_path.name)


async def test_file_can_be_reopened_after_close(db_path: Path) -> None:
    first = await Database.open(db_path)
    await first.close()
    await first.close()  # idempotent
    second = await Database.open(db_path)
    assert second.is_open
    await second.close()
    with pytest.raises(StorageError, match="closed"):
        await second.guilds.get(1)


async def test_concurrent_opens_of_one_file_have_one_winner(db_path: Path) -> None:
    results = await asyncio.gather(
        *(Database.open(db_path) for _ in range(5)), return_exceptions=True
    )
    opened = [r for r in results if isinstance(r, Database)]
    refused = [r for r in results if isinstance(r, DatabaseInUseError)]
    assert len(opened) == 1 and len(refused) == 4
    await opened[0].close()


async def test_bad_paths_are_explained(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        await Database.open(tmp_path / "missing-dir" / "t.db")
    with pytest.raises(StorageError, match="needs a file path"):
        await Database.open(":memory:")


async def test_exception_mid_transaction_leaves_nothing_written(account_db: Database) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with account_db.transaction():
            await account_db.guilds.update(1, halted=True)
            await account_db.idempotency.claim("k", guild_id=1, user_id=2, command_text="x")
            raise Boom
    assert (await account_db.guilds.require(1)).halted is False
    assert await account_db.idempotency.get("k") is None


async def test_failing_statement_rolls_back_the_whole_page(account_db: Database) -> None:
    # The second row violates the environment CHECK: the first must not survive.
    with pytest.raises(StorageError):
        async with account_db.transaction():
            await account_db.execute(
                "INSERT INTO sync_runs (environment, kind, status, started_at) "
                "VALUES ('paper', 'full', 'running', 'x')"
            )
            await account_db.execute(
                "INSERT INTO sync_runs (environment, kind, status, started_at) "
                "VALUES ('prod', 'full', 'running', 'x')"
            )
    assert await account_db.sync.running() == []


async def test_nested_transaction_is_a_savepoint(account_db: Database) -> None:
    async with account_db.transaction():
        await account_db.guilds.update(1, halted=True)
        with pytest.raises(RuntimeError):
            async with account_db.transaction():
                await account_db.guilds.update(1, max_loss=Decimal("500"))
                raise RuntimeError("inner only")
    settings = await account_db.guilds.require(1)
    assert settings.halted is True  # outer part committed
    assert settings.max_loss is None  # inner part rolled back


async def test_interleaved_coroutines_never_share_a_transaction(account_db: Database) -> None:
    """A failing transaction must not roll back another coroutine's committed write."""
    entered = asyncio.Event()

    async def failing() -> None:
        async with account_db.transaction():
            await account_db.guilds.update(1, halted=True)
            entered.set()
            await asyncio.sleep(0.02)  # let the other coroutine try to write meanwhile
            raise RuntimeError("abort")

    async def other_writer() -> None:
        await entered.wait()
        await account_db.audit.record("other", guild_id=1)

    results = await asyncio.gather(failing(), other_writer(), return_exceptions=True)
    assert isinstance(results[0], RuntimeError) and results[1] is None
    assert (await account_db.guilds.require(1)).halted is False
    assert [entry.event for entry in await account_db.audit.recent(1)] == ["other"]


async def test_readers_do_not_see_uncommitted_rows(account_db: Database) -> None:
    inside = asyncio.Event()
    seen: list[bool] = []

    async def writer() -> None:
        async with account_db.transaction():
            await account_db.guilds.update(1, halted=True)
            inside.set()
            await asyncio.sleep(0.02)
            raise RuntimeError("rolled back")

    async def reader() -> None:
        await inside.wait()
        seen.append((await account_db.guilds.require(1)).halted)

    await asyncio.gather(writer(), reader(), return_exceptions=True)
    assert seen == [False]


async def test_cancelled_transaction_rolls_back(account_db: Database) -> None:
    started = asyncio.Event()

    async def slow() -> None:
        async with account_db.transaction():
            await account_db.guilds.update(1, halted=True)
            started.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(slow())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await account_db.guilds.require(1)).halted is False
    await account_db.guilds.update(1, halted=True)  # the connection is usable afterwards
    assert (await account_db.guilds.require(1)).halted is True


async def test_migrations_from_empty_create_every_table(db: Database) -> None:
    rows = await db.fetch_all("SELECT name FROM sqlite_schema WHERE type = 'table'")
    tables = {row[0] for row in rows}
    assert {
        "guild_settings",
        "credentials",
        "accounts",
        "positions",
        "orders",
        "order_legs",
        "order_fills",
        "balance_snapshots",
        "transactions",
        "sync_runs",
        "sync_watermarks",
        "idempotency_keys",
        "audit_log",
        "chases",
        "chase_orders",
        "fill_events",
    } <= tables


async def test_money_columns_are_never_real(db: Database) -> None:
    """Only durations may be REAL; every other non-integer column is TEXT."""
    allowed_real = {("guild_settings", "chase_interval_seconds"), ("chases", "interval_seconds")}
    tables = [
        row[0]
        for row in await db.fetch_all(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    for table in tables:
        for column in await db.fetch_all(f"PRAGMA table_info({table})"):
            if column["type"].upper() == "REAL":
                assert (table, column["name"]) in allowed_real


async def test_upgrade_from_v1_keeps_data_and_adds_new_schema(db_path: Path) -> None:
    v1 = await Database.open(db_path, target_version=1)
    assert await v1.schema_version() == 1
    ts = "2026-01-02T15:04:05.123000+00:00"
    async with v1.transaction():
        await v1.execute(
            "INSERT INTO guild_settings (guild_id, environment, max_notional, halted, "
            "created_at, updated_at) VALUES (42, 'sandbox', '2500.50', 1, ?, ?)",
            (ts, ts),
        )
        await v1.execute(
            "INSERT INTO accounts (environment, account_number, guild_id, created_at, "
            "updated_at) VALUES ('sandbox', '5WT00009', 42, ?, ?)",
            (ts, ts),
        )
        await v1.execute(
            "INSERT INTO orders (environment, order_id, account_number, status, order_type, "
            "time_in_force, price, price_effect, updated_at, synced_at) "
            "VALUES ('sandbox', 5001, '5WT00009', 'Live', 'Limit', 'Day', '1.25', 'Debit', ?, ?)",
            (ts, ts),
        )
    tables_v1 = {r[0] for r in await v1.fetch_all("SELECT name FROM sqlite_schema")}
    assert "chases" not in tables_v1 and "audit_log" not in tables_v1
    await v1.close()

    current = await Database.open(db_path)
    try:
        assert await current.schema_version() == 2
        guild = await current.guilds.require(42)
        assert guild.environment == "sandbox"
        assert guild.max_notional == Decimal("2500.50")
        assert guild.halted is True
        # New columns exist with their defaults.
        assert (guild.chase_interval_seconds, guild.chase_ticks, guild.chase_max_steps) == (
            20.0,
            2,
            3,
        )
        order = await current.orders.get("sandbox", 5001)
        assert order is not None and order.signed_price == Decimal("-1.25")
        # New tables work.
        assert await current.audit.record("upgraded", guild_id=42) > 0
        assert await current.fill_events.claim("sandbox:order=5001:filled=1", {"qty": "1"})
    finally:
        await current.close()


async def test_newer_database_is_refused(db_path: Path) -> None:
    with sqlite3.connect(db_path) as raw:
        raw.execute("PRAGMA user_version = 99")
    raw.close()
    with pytest.raises(StorageError, match="newer than this code"):
        await Database.open(db_path)
    # The refused open released the file.
    with sqlite3.connect(db_path) as raw:
        raw.execute("PRAGMA user_version = 0")
    raw.close()
    db = await Database.open(db_path)
    await db.close()


async def test_failing_migration_rolls_back_to_the_previous_version(tmp_path: Path) -> None:
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_first.sql").write_text("CREATE TABLE a (x INTEGER) STRICT;")
    (migrations / "0002_broken.sql").write_text(
        "CREATE TABLE b (x INTEGER) STRICT;\nINSERT INTO no_such_table VALUES (1);"
    )
    path = tmp_path / "m.db"
    with pytest.raises(StorageError, match=r"0002_broken failed and was rolled back"):
        await Database.open(path, migrations_dir=migrations)
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 1
        names = {r[0] for r in raw.execute("SELECT name FROM sqlite_schema")}
    raw.close()
    assert "a" in names and "b" not in names


async def test_migration_numbering_gaps_are_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0003_c.sql").write_text("SELECT 1;")
    with pytest.raises(StorageError, match="expected 0002"):
        load_migrations(tmp_path)


async def test_checkpoint_empties_the_wal(account_db: Database, db_path: Path) -> None:
    await account_db.audit.record("x", guild_id=1)
    await account_db.checkpoint()
    wal = db_path.with_name(db_path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0


async def test_tasks_spawned_inside_a_transaction_join_it(account_db: Database) -> None:
    """asyncio.wait_for runs its coroutine in a new task on 3.11: no deadlock, same tx."""
    with pytest.raises(RuntimeError):
        async with account_db.transaction():
            await asyncio.wait_for(account_db.guilds.update(1, halted=True), timeout=2)
            settings = await asyncio.wait_for(account_db.guilds.require(1), timeout=2)
            assert settings.halted is True
            raise RuntimeError("roll back both")
    assert (await account_db.guilds.require(1)).halted is False


async def test_a_file_that_is_not_a_database_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match="cannot open database"):
        await Database.open(path)
    path.unlink()
    db = await Database.open(path)  # the failed open released the registry slot
    await db.close()


async def test_cancellation_while_beginning_leaves_no_open_transaction(
    account_db: Database,
) -> None:
    async def writer() -> None:
        async with account_db.transaction():
            await account_db.guilds.update(1, halted=True)

    task = asyncio.create_task(writer())
    await asyncio.sleep(0)  # the task is now awaiting its BEGIN on the worker thread
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with account_db.transaction():  # must not fail with "transaction within a transaction"
        await account_db.guilds.update(1, max_loss=Decimal("1"))
    settings = await account_db.guilds.require(1)
    assert settings.halted is False and settings.max_loss == Decimal("1")


async def test_cancellation_at_every_point_keeps_the_connection_clean(
    account_db: Database,
) -> None:
    """Cancel a nested write ever later (event-loop turns, then short sleeps) until it gets
    to commit: after every cancellation the state is all-or-nothing and the connection works."""

    async def writer() -> None:
        async with account_db.transaction():
            await account_db.guilds.update(1, halted=True)
            async with account_db.transaction():
                await account_db.audit.record("inner", guild_id=1)
            await account_db.idempotency.claim("k", guild_id=1, user_id=1, command_text="x")

    cancelled_points = 0
    for attempt in range(500):
        task = asyncio.create_task(writer())
        if attempt < 30:
            for _ in range(attempt):
                await asyncio.sleep(0)
        else:
            await asyncio.sleep(0.0002 * (attempt - 29))
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        committed = await account_db.idempotency.get("k") is not None
        halted = (await account_db.guilds.require(1)).halted
        assert halted == committed  # all of the transaction or none of it
        assert len(await account_db.audit.recent(1)) == (1 if committed else 0)
        if committed:
            break
        cancelled_points += 1
        async with account_db.transaction():  # the connection is usable again
            await account_db.execute("SELECT 1")
    else:
        pytest.fail("the writer never got to commit")
    assert cancelled_points > 0
