"""`Database.run_transaction` / `run_on_connection`: a unit of work in one worker round trip."""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
import threading
import time
from pathlib import Path

import aiosqlite
import pytest

from storage import Database, DuplicateError, StorageError

from .hops import HopCounter


async def test_aiosqlite_still_queues_callables_on_its_worker(db: Database) -> None:
    """Pins the one private aiosqlite API the primitive relies on (`Connection._execute`)."""
    assert inspect.iscoroutinefunction(aiosqlite.Connection._execute)
    loop_thread = threading.get_ident()

    def where(raw: sqlite3.Connection) -> tuple[int, bool]:
        return threading.get_ident(), isinstance(raw, sqlite3.Connection)

    with HopCounter(db) as hops:
        thread, is_raw = await db.run_on_connection(where)
    assert is_raw and thread != loop_thread
    assert thread == db._conn._thread.ident  # type: ignore[union-attr]
    assert hops.count == 1


async def make_table(db: Database) -> None:
    await db.execute("CREATE TABLE things (name TEXT PRIMARY KEY, size INTEGER NOT NULL)")


def count_things(raw: sqlite3.Connection) -> int:
    return int(raw.execute("SELECT COUNT(*) FROM things").fetchone()[0])


async def things(db: Database) -> list[tuple[str, int]]:
    return [(row[0], row[1]) for row in await db.fetch_all("SELECT * FROM things ORDER BY 1")]


async def test_a_unit_of_work_commits_in_one_round_trip(db: Database) -> None:
    await make_table(db)

    def write(raw: sqlite3.Connection) -> int:
        assert raw.in_transaction  # BEGIN IMMEDIATE ran first
        raw.execute("INSERT INTO things VALUES ('a', 1)")
        raw.execute("INSERT INTO things VALUES ('b', 2)")
        raw.execute("UPDATE things SET size = size * 10")
        return count_things(raw)

    with HopCounter(db) as hops:
        assert await db.run_transaction(write) == 2
    assert hops.count == 1
    assert await things(db) == [("a", 10), ("b", 20)]
    assert not await db.run_on_connection(lambda raw: raw.in_transaction)


async def test_an_exception_rolls_everything_back(db: Database) -> None:
    await make_table(db)

    def half_done(raw: sqlite3.Connection) -> None:
        raw.execute("INSERT INTO things VALUES ('a', 1)")
        raise ValueError("changed my mind")

    with pytest.raises(ValueError, match="changed my mind"):
        await db.run_transaction(half_done)
    assert await things(db) == []
    assert not await db.run_on_connection(lambda raw: raw.in_transaction)


async def test_sqlite_errors_map_to_storage_errors(db: Database) -> None:
    await make_table(db)
    await db.run_transaction(lambda raw: raw.execute("INSERT INTO things VALUES ('a', 1)"))

    def duplicate(raw: sqlite3.Connection) -> None:
        raw.execute("INSERT INTO things VALUES ('b', 2)")
        raw.execute("INSERT INTO things VALUES ('a', 3)")

    with pytest.raises(DuplicateError, match=r"UNIQUE constraint failed: things\.name"):
        await db.run_transaction(duplicate)
    with pytest.raises(StorageError, match="NOT NULL constraint failed"):
        await db.run_transaction(lambda raw: raw.execute("INSERT INTO things VALUES ('c', NULL)"))
    with pytest.raises(StorageError, match="database error: no such table: missing_table"):
        await db.run_on_connection(lambda raw: raw.execute("SELECT * FROM missing_table"))
    assert await things(db) == [("a", 1)]  # 'b' went with the failed unit


async def test_inside_a_transaction_it_joins_as_a_savepoint(db: Database) -> None:
    await make_table(db)

    def fails(raw: sqlite3.Connection) -> None:
        raw.execute("INSERT INTO things VALUES ('inner', 2)")
        raise ValueError("inner failure")

    async with db.transaction():
        await db.execute("INSERT INTO things VALUES ('outer', 1)")
        with HopCounter(db) as hops:
            with pytest.raises(ValueError):
                await db.run_transaction(fails)
            await db.run_transaction(
                lambda raw: raw.execute("INSERT INTO things VALUES ('kept', 3)")
            )
        assert hops.count == 2  # still one round trip each
    assert await things(db) == [("kept", 3), ("outer", 1)]

    with pytest.raises(RuntimeError):
        async with db.transaction():
            await db.run_transaction(
                lambda raw: raw.execute("INSERT INTO things VALUES ('undone', 4)")
            )
            raise RuntimeError("the caller rolls back")
    assert [name for name, _ in await things(db)] == ["kept", "outer"]


async def test_a_cancelled_caller_leaves_all_or_nothing(db: Database) -> None:
    """A cancelled await does not stop the worker: the unit commits (or rolls back) whole."""
    await make_table(db)
    started = threading.Event()

    def slow(raw: sqlite3.Connection) -> None:
        raw.execute("INSERT INTO things VALUES ('a', 1)")
        started.set()
        time.sleep(0.05)  # on the worker thread, not the event loop
        raw.execute("INSERT INTO things VALUES ('b', 2)")

    task = asyncio.create_task(db.run_transaction(slow))
    assert await asyncio.to_thread(started.wait, 5.0)  # the worker is inside the unit
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Queued behind the unit, so it reads what the unit committed: both rows.
    assert await things(db) == [("a", 1), ("b", 2)]
    await db.run_transaction(lambda raw: raw.execute("INSERT INTO things VALUES ('c', 3)"))
    assert len(await things(db)) == 3


async def test_execute_and_insert_are_one_round_trip_each(db: Database) -> None:
    await make_table(db)
    with HopCounter(db) as hops:
        assert await db.insert("INSERT INTO things VALUES ('a', 1)") == 1
        assert await db.execute("UPDATE things SET size = 2") == 1
    assert hops.count == 2


async def test_a_closed_database_is_reported(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "closed.sqlite3")
    await db.close()
    with pytest.raises(StorageError, match="is closed"):
        await db.run_transaction(lambda raw: None)
