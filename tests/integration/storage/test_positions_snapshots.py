"""Repeated position snapshots: applied as differences, always ending as the new snapshot.

`replace_for_account` diffs a snapshot against the one this handle last committed. These
tests check that whatever the sequence (unchanged, a few marks moved, positions opened and
closed, most things changed, a write rolled back, rows changed behind the handle's back),
the table ends up holding exactly the latest snapshot, with its snapshot time.
"""

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from storage import Account, Database, InvalidValueError, Position, StorageError

from .conftest import ACCOUNT
from .test_positions import position

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


async def _open(path: Path, clock: Clock) -> Database:
    db = await Database.open(path, clock=clock)
    await db.guilds.get_or_create(1, "paper")
    await db.accounts.upsert(Account("paper", ACCOUNT, guild_id=1))
    return db


def _book(count: int) -> list[Position]:
    return [
        position(f"SYM{i:04d}", f"U{i % 7}", mark_price=Decimal("5.00") + i % 13)
        for i in range(count)
    ]


def _evolve(rng: random.Random, book: list[Position], serial: int) -> list[Position]:
    """The next snapshot: a few marks move, a few positions close, a few open; sometimes
    (a new trading day) nearly everything changes."""
    share = 0.9 if rng.random() < 0.2 else 0.05
    moved = [
        replace(p, mark_price=(p.mark_price or Decimal(0)) + Decimal("0.05"))
        if rng.random() < share
        else p
        for p in book
        if rng.random() > 0.02
    ]
    opened = [
        position(f"NEW{serial}-{i}", f"U{i % 7}", quantity=Decimal(i + 1))
        for i in range(rng.randrange(3))
    ]
    return moved + opened


async def _stored(db: Database) -> list[Position]:
    return await db.positions.for_account("paper", ACCOUNT)


def _ordered(book: list[Position]) -> list[Position]:
    return sorted(book, key=lambda p: (p.underlying_symbol, p.symbol))


async def test_every_snapshot_in_a_sequence_is_stored_exactly(tmp_path: Path) -> None:
    clock = Clock()
    db = await _open(tmp_path / "db.sqlite3", clock)
    try:
        rng = random.Random(5)
        book = _book(300)
        for serial in range(25):
            clock.now += timedelta(minutes=1)
            assert await db.positions.replace_for_account("paper", ACCOUNT, book) == len(book)
            assert await _stored(db) == _ordered(book)
            assert await db.positions.snapshot_time("paper", ACCOUNT) == clock.now
            oldest = await db.fetch_one(
                "SELECT MIN(snapshot_at) FROM positions WHERE account_number = ?", (ACCOUNT,)
            )
            assert oldest is not None and oldest[0] == clock.now.isoformat(timespec="microseconds")
            book = _evolve(rng, book, serial)
    finally:
        await db.close()


async def test_an_unchanged_snapshot_only_moves_the_snapshot_time(account_db: Database) -> None:
    book = _book(50)
    await account_db.positions.replace_for_account("paper", ACCOUNT, book)
    first = await account_db.positions.snapshot_time("paper", ACCOUNT)
    # Equal values, new objects: nothing but the snapshot time is written.
    await account_db.positions.replace_for_account("paper", ACCOUNT, [replace(p) for p in book])
    assert await _stored(account_db) == _ordered(book)
    assert first is not None
    assert (await account_db.positions.snapshot_time("paper", ACCOUNT) or first) >= first


async def test_a_rolled_back_snapshot_is_not_the_base_of_the_next(account_db: Database) -> None:
    book = _book(40)
    await account_db.positions.replace_for_account("paper", ACCOUNT, book)
    changed = [replace(p, quantity=p.quantity + 1) if i < 5 else p for i, p in enumerate(book)]
    with pytest.raises(RuntimeError):
        async with account_db.transaction():
            await account_db.positions.replace_for_account("paper", ACCOUNT, changed)
            raise RuntimeError("the page write failed after the snapshot")
    assert await _stored(account_db) == _ordered(book)
    # The same change again is written (not taken for already stored), and so is the old.
    await account_db.positions.replace_for_account("paper", ACCOUNT, changed)
    assert await _stored(account_db) == _ordered(changed)
    await account_db.positions.replace_for_account("paper", ACCOUNT, book)
    assert await _stored(account_db) == _ordered(book)


async def test_a_rolled_back_savepoint_does_not_leak_its_snapshot(account_db: Database) -> None:
    book = _book(20)
    await account_db.positions.replace_for_account("paper", ACCOUNT, book)
    changed = [replace(p, mark_price=Decimal(1)) if i < 3 else p for i, p in enumerate(book)]
    async with account_db.transaction():
        with pytest.raises(InvalidValueError):
            async with account_db.transaction():  # a savepoint
                await account_db.positions.replace_for_account("paper", ACCOUNT, changed)
                await account_db.positions.replace_for_account(
                    "paper", ACCOUNT, [position("BAD", "BAD", quantity=1.5)]
                )
    assert await _stored(account_db) == _ordered(book)
    await account_db.positions.replace_for_account("paper", ACCOUNT, changed)
    assert await _stored(account_db) == _ordered(changed)


async def test_rows_written_behind_the_handle_are_replaced(account_db: Database) -> None:
    book = _book(10)
    await account_db.positions.replace_for_account("paper", ACCOUNT, book)
    # Another writer (not through this repository) adds a row and edits one.
    await account_db.execute(
        "INSERT INTO positions SELECT environment, account_number, 'ZZZ', instrument_type, "
        "'ZZZ', quantity, quantity_direction, average_open_price, multiplier, close_price, "
        "mark_price, cost_effect, realized_day_gain, expires_at, broker_updated_at, snapshot_at "
        "FROM positions WHERE symbol = 'SYM0000'"
    )
    await account_db.positions.replace_for_account("paper", ACCOUNT, book)
    assert await _stored(account_db) == _ordered(book)


async def test_after_commit_runs_only_for_committed_work(account_db: Database) -> None:
    ran: list[str] = []
    async with account_db.transaction():
        account_db.after_commit(lambda: ran.append("outer"))
        with pytest.raises(ValueError):
            async with account_db.transaction():
                account_db.after_commit(lambda: ran.append("rolled back savepoint"))
                raise ValueError
        async with account_db.transaction():
            account_db.after_commit(lambda: ran.append("released savepoint"))
        assert ran == []
    assert ran == ["outer", "released savepoint"]
    with pytest.raises(ValueError):
        async with account_db.transaction():
            account_db.after_commit(lambda: ran.append("rolled back"))
            raise ValueError
    assert ran == ["outer", "released savepoint"]
    with pytest.raises(StorageError, match="running transaction"):
        account_db.after_commit(lambda: None)
