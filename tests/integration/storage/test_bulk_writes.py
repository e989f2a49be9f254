"""Multi-row page writes behave exactly like an executemany of the one-row statements.

Pages are written with multi-row INSERTs (`Database.insert_rows`); these tests compare
the stored tables with what a plain sqlite3 ``executemany`` of each statement's
`single_row` form leaves behind, for pages with repeated ids, older and newer versions,
replace links inside and across pages, and pages larger than one statement.
"""

import random
import sqlite3
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from storage import Account, Database, Order, StorageError, Transaction
from storage.bulk import MAX_ROWS_PER_STATEMENT, RowsInsert, rows_per_statement
from storage.orders import _INSERT_FILL, _LINK, _UPSERT_LEG, _UPSERT_ORDER, _order_params
from storage.orders import _fill_rows as order_fill_rows
from storage.orders import _leg_rows as order_leg_rows
from storage.transactions import _UPSERT as UPSERT_TRANSACTION
from storage.transactions import _row as transaction_row

from .conftest import ACCOUNT
from .test_orders import T0, spread
from .test_transactions_balances import trade

NOW = "2026-01-02T00:00:00.000000+00:00"
TABLES = {
    "transactions": "environment, transaction_id",
    "orders": "environment, order_id",
    "order_legs": "environment, order_id, leg_index",
    "order_fills": "environment, fill_id",
}


async def _fresh(path: Path) -> None:
    async with await Database.open(path) as db:
        await db.guilds.get_or_create(1, "paper")
        await db.accounts.upsert(Account("paper", ACCOUNT, guild_id=1))


def _dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(path) as conn:
        dump = {}
        for table, key in TABLES.items():
            columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
            kept = ", ".join(column for column in columns if column != "synced_at")
            dump[table] = conn.execute(f"SELECT {kept} FROM {table} ORDER BY {key}").fetchall()
    return dump


Statements = list[tuple[RowsInsert | str, list[tuple[object, ...]]]]


def _executemany(path: Path, statements: Statements) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("BEGIN IMMEDIATE")
        for statement, rows in statements:
            if rows:
                sql = statement if isinstance(statement, str) else statement.single_row
                conn.executemany(sql, rows)
        conn.execute("COMMIT")
    finally:
        conn.close()


def _order_statements(page: list[Order]) -> Statements:
    """What `upsert_many` runs for `page`, one row at a time."""
    params = [_order_params(order, NOW) for order in page]
    legs = [r for o, p in zip(page, params, strict=True) for r in order_leg_rows(o, "paper", p[15])]
    fills = [r for o in page for r in order_fill_rows(o, "paper")]
    links: list[tuple[object, ...]] = []
    for order in page:
        if order.replaces_order_id is not None:
            links.append(("paper", order.replaces_order_id, order.order_id))
        if order.replaced_by_order_id is not None:
            links.append(("paper", order.order_id, order.replaced_by_order_id))
    return [(_UPSERT_ORDER, params), (_UPSERT_LEG, legs), (_INSERT_FILL, fills), (_LINK, links)]


def _order_pages(seed: int) -> list[list[Order]]:
    """Orders in several versions (working, then filled or cancelled), arriving in a random
    order across pages, some pages repeating an id, with replace links on either side."""
    rng = random.Random(seed)
    versions: list[Order] = []
    for order_id in range(1, 301):
        at = T0 + timedelta(seconds=order_id)
        versions.append(spread(order_id, "Live", at))
        final = rng.choice(["Filled", "Cancelled", "Live"])
        versions.append(spread(order_id, final, at + timedelta(minutes=1)))
        if order_id % 7 == 0:  # the replacement names the order it replaces
            versions[-1] = replace(versions[-1], replaces_order_id=order_id - 1)
        if order_id % 11 == 0:  # or the replaced order names its replacement
            versions[-1] = replace(versions[-1], replaced_by_order_id=order_id + 1)
    rng.shuffle(versions)
    return [versions[i : i + 150] for i in range(0, len(versions), 150)]


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_order_pages_store_what_executemany_stores(tmp_path: Path, seed: int) -> None:
    ours, raw = tmp_path / "ours.db", tmp_path / "raw.db"
    await _fresh(ours)
    await _fresh(raw)
    pages = _order_pages(seed)
    async with await Database.open(ours) as db:
        for page in pages:
            await db.orders.upsert_many(page)
    for page in pages:
        _executemany(raw, _order_statements(page))
    stored = _dump(ours)
    assert len(stored["orders"]) == 300
    assert stored == _dump(raw)


async def test_transaction_pages_larger_than_one_statement(tmp_path: Path) -> None:
    ours, raw = tmp_path / "ours.db", tmp_path / "raw.db"
    await _fresh(ours)
    await _fresh(raw)
    size = MAX_ROWS_PER_STATEMENT * 2 + 17  # three statements
    first = [trade(i, T0 + timedelta(seconds=i), order_id=i) for i in range(1, size + 1)]
    # A later version of every other row (final fees) plus a repeated id inside the page.
    second = [replace(tx, is_estimated_fee=False, fees=Decimal("-1.10")) for tx in first[::2]] + [
        replace(first[5], description="repeated in the same page")
    ]
    async with await Database.open(ours) as db:
        assert await db.transactions.upsert_page(first) == size
        await db.transactions.upsert_page(second)
        assert await db.transactions.count("paper", ACCOUNT) == size
    for page in (first, second):
        _executemany(raw, [(UPSERT_TRANSACTION, [transaction_row(tx) for tx in page])])
    stored = _dump(ours)
    assert stored == _dump(raw)
    by_id = {row[1]: row for row in stored["transactions"]}
    assert by_id[6][5] == "repeated in the same page"


async def test_a_failing_chunk_rolls_back_the_whole_page(account_db: Database) -> None:
    size = MAX_ROWS_PER_STATEMENT + 10
    page: list[Transaction] = [
        trade(i, T0 + timedelta(seconds=i), order_id=i) for i in range(1, size + 1)
    ]
    # The last row, in the second statement, names an account that is not stored.
    page[-1] = replace(page[-1], account_number="5WT99999")
    with pytest.raises(StorageError, match="FOREIGN KEY"):
        await account_db.transactions.upsert_page(page)
    assert await account_db.transactions.count("paper", ACCOUNT) == 0


async def test_rows_of_the_wrong_width_are_refused(account_db: Database) -> None:
    statement = RowsInsert("INSERT INTO guild_settings (guild_id, environment) VALUES", "(?, ?)")
    with pytest.raises(StorageError, match="needs 2 values"):
        await account_db.insert_rows(statement, [(2, "paper"), (3,)])
    assert await account_db.guilds.get(2) is None


def test_statements_respect_sqlites_variable_limit() -> None:
    limit = sqlite3.connect(":memory:").getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    for width in (1, 8, 19, 25, 999):
        rows = rows_per_statement(width)
        assert 1 <= rows <= MAX_ROWS_PER_STATEMENT
        assert rows * width <= limit
    assert rows_per_statement(limit + 1) == 1


async def test_atomic_is_a_transaction_alone_and_joins_a_running_one(
    account_db: Database,
) -> None:
    page = [trade(i, T0 + timedelta(seconds=i), order_id=i) for i in range(1, 4)]
    with pytest.raises(RuntimeError):
        async with account_db.atomic():  # alone: its own transaction, rolled back
            await account_db.transactions.upsert_page(page)
            raise RuntimeError
    assert await account_db.transactions.count("paper", ACCOUNT) == 0
    with pytest.raises(RuntimeError):
        async with account_db.transaction():  # joined: the caller's rollback covers it
            await account_db.transactions.upsert_page(page)
            assert await account_db.transactions.count("paper", ACCOUNT) == 3
            raise RuntimeError
    assert await account_db.transactions.count("paper", ACCOUNT) == 0
    async with account_db.transaction(), account_db.atomic():
        await account_db.transactions.upsert_page(page)
    assert await account_db.transactions.count("paper", ACCOUNT) == 3
