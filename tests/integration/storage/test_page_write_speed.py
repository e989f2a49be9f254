"""Page writes stay close to a raw sqlite3 executemany of the same rows.

Guards the sync benchmark's budget: a regression such as a per-row query or a
transaction per row shows up as a ratio of 5-50x. Timings are min-of-3 per side to
ride out a busy machine; the printed figures are the real ones.
"""

import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from storage import Account, Database
from storage.orders import _INSERT_FILL, _UPSERT_LEG, _UPSERT_ORDER, Order, _order_params
from storage.orders import _fill_rows as order_fill_rows
from storage.orders import _leg_rows as order_leg_rows
from storage.transactions import _UPSERT as UPSERT_TRANSACTION
from storage.transactions import _row as transaction_row

from .conftest import ACCOUNT
from .test_orders import T0, spread
from .test_transactions_balances import trade

TRANSACTIONS = 5000
TRANSACTION_PAGE = 250
ORDERS = 1000
ORDER_PAGE = 50
MAX_RATIO = 8.0  # loose on purpose (noisy CI); a transaction per row costs 20-50x


async def _fresh(path: Path) -> None:
    async with await Database.open(path) as db:
        await db.guilds.get_or_create(1, "paper")
        await db.accounts.upsert(Account("paper", ACCOUNT, guild_id=1))


def _raw(path: Path, pages: Sequence[Sequence[tuple[str, list[tuple[object, ...]]]]]) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    start = time.perf_counter()
    for page in pages:
        conn.execute("BEGIN IMMEDIATE")
        for sql, rows in page:
            conn.executemany(sql, rows)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


async def _measure(
    tmp_path: Path,
    name: str,
    write: Callable[[Database], Awaitable[None]],
    raw_pages: Sequence[Sequence[tuple[str, list[tuple[object, ...]]]]],
) -> float:
    ours, raw = [], []
    for attempt in range(3):
        ours_path, raw_path = (
            tmp_path / f"{name}-ours{attempt}.db",
            tmp_path / f"{name}-raw{attempt}.db",
        )
        await _fresh(ours_path)
        await _fresh(raw_path)
        async with await Database.open(ours_path) as db:
            start = time.perf_counter()
            await write(db)
            ours.append(time.perf_counter() - start)
        raw.append(_raw(raw_path, raw_pages))
    ratio = min(ours) / min(raw)
    print(
        f"\n{name}: storage {min(ours) * 1000:.0f} ms vs raw executemany "
        f"{min(raw) * 1000:.0f} ms (x{ratio:.2f})"
    )
    return ratio


async def test_transaction_pages_stay_close_to_raw(tmp_path: Path) -> None:
    transactions = [
        trade(i, T0 + timedelta(seconds=i), order_id=i) for i in range(1, TRANSACTIONS + 1)
    ]
    pages = [
        transactions[i : i + TRANSACTION_PAGE] for i in range(0, TRANSACTIONS, TRANSACTION_PAGE)
    ]

    async def write(db: Database) -> None:
        for page in pages:
            await db.transactions.upsert_page(page)

    raw_pages = [
        [(UPSERT_TRANSACTION.single_row, [transaction_row(tx) for tx in page])] for page in pages
    ]
    assert await _measure(tmp_path, "transactions", write, raw_pages) < MAX_RATIO


async def test_order_pages_stay_close_to_raw(tmp_path: Path) -> None:
    orders: list[Order] = [
        spread(i, "Filled", T0 + timedelta(seconds=i), price=Decimal("1.25"))
        for i in range(1, ORDERS + 1)
    ]
    orders = [
        replace(o, replaces_order_id=o.order_id - 1) if o.order_id % 10 == 0 else o for o in orders
    ]
    pages = [orders[i : i + ORDER_PAGE] for i in range(0, ORDERS, ORDER_PAGE)]

    async def write(db: Database) -> None:
        for page in pages:
            await db.orders.upsert_many(page)

    raw_pages = []
    for page in pages:
        params = [_order_params(order, "2026-01-02T00:00:00.000000+00:00") for order in page]
        raw_pages.append(
            [
                (_UPSERT_ORDER.single_row, params),
                (
                    _UPSERT_LEG.single_row,
                    [
                        r
                        for o, p in zip(page, params, strict=True)
                        for r in order_leg_rows(o, "paper", str(p[15]))
                    ],
                ),
                (_INSERT_FILL.single_row, [r for o in page for r in order_fill_rows(o, "paper")]),
            ]
        )
    assert await _measure(tmp_path, "orders", write, raw_pages) < MAX_RATIO
