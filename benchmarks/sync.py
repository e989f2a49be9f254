"""Account-sync benchmark against the paper exchange on loopback.

    .venv/bin/python benchmarks/sync.py [--transactions N] [--orders N] [--positions N]

1. Seeds the exchange (default 100,000 transactions, 10,000 orders, 1,000 positions) and
   runs a full `SyncService` sync into a fresh database file.
2. Baseline, same run: the raw HTTP transfer of exactly the pages the sync requested (same
   URLs, bodies read, not parsed) plus a raw ``executemany`` of the same rows (read back
   from the synced database) into another fresh database with the same schema.
3. Prints both times and their ratio, then a no-change incremental sync, then a
   positions query (grouped by underlying) over the stored positions.

Last line: ``sync ratio R, incremental T_ms ms, positions Q_ms ms``.
Targets: R <= 2.0, incremental <= 100 ms, positions query <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx2
import structlog

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from broker.paper import PaperConfig, PaperExchange  # noqa: E402
from broker.session import (  # noqa: E402
    BrokerSession,
    Credentials,
    Environment,
    Secret,
    SessionManager,
    Timeouts,
)
from broker.sync import SyncService  # noqa: E402
from storage import Database  # noqa: E402

PROVIDER_SECRET = "benchmark-provider-secret"
REFRESH_TOKEN = "benchmark-refresh-token"
#: Tables the sync fills from paginated lists and snapshots, in foreign-key order.
TABLES = ("orders", "order_legs", "order_fills", "transactions", "positions", "balance_snapshots")
INCREMENTAL_RUNS = 7
QUERY_RUNS = 21


def _quiet_logs() -> None:
    logging.basicConfig(level=logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


async def _session(manager: SessionManager, ex: PaperExchange) -> BrokerSession:
    return await manager.get(
        Credentials(
            environment=Environment.PAPER,
            provider_secret=Secret(PROVIDER_SECRET),
            refresh_token=Secret(REFRESH_TOKEN),
            api_url=ex.api_url,
            streamer_url=ex.streamer_url,
        )
    )


async def _raw_transfer(ex: PaperExchange, paths: list[str]) -> tuple[float, int]:
    """GET every path with a bare HTTP client (bodies read, not parsed): seconds, bytes."""
    async with httpx2.AsyncClient(base_url=ex.api_url, timeout=120) as client:
        grant = await client.post(
            "/oauth/token",
            json={
                "grant_type": "refresh_token",
                "client_secret": PROVIDER_SECRET,
                "refresh_token": REFRESH_TOKEN,
            },
        )
        grant.raise_for_status()
        headers = {"Authorization": f"Bearer {grant.json()['access_token']}"}
        size = 0
        started = time.perf_counter()
        for path in paths:
            response = await client.get(path, headers=headers)
            response.raise_for_status()
            size += len(response.content)
        return time.perf_counter() - started, size


def _raw_insert(source: Path, target: Path) -> tuple[float, int]:
    """Insert the synced rows into `target` (same schema) with plain executemany calls."""
    with sqlite3.connect(source) as reader:
        tables = {
            table: (
                [row[1] for row in reader.execute(f"PRAGMA table_info({table})")],
                reader.execute(f"SELECT * FROM {table}").fetchall(),
            )
            for table in TABLES
        }
        accounts = reader.execute("SELECT * FROM accounts").fetchall()
    writer = sqlite3.connect(target, isolation_level=None)
    try:
        writer.execute("PRAGMA journal_mode = WAL")
        writer.execute("PRAGMA synchronous = NORMAL")
        writer.execute("PRAGMA foreign_keys = ON")
        writer.execute("BEGIN")
        writer.executemany(f"INSERT INTO accounts VALUES ({', '.join('?' * 10)})", accounts)
        writer.execute("COMMIT")
        rows = 0
        started = time.perf_counter()
        for table, (columns, data) in tables.items():
            placeholders = ", ".join("?" for _ in columns)
            writer.execute("BEGIN")
            writer.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", data
            )
            writer.execute("COMMIT")
            rows += len(data)
        return time.perf_counter() - started, rows
    finally:
        writer.close()


async def _fresh_schema(path: Path) -> None:
    db = await Database.open(path)
    await db.close()


async def main(transactions: int, orders: int, positions: int) -> str:
    _quiet_logs()
    workdir = Path(tempfile.mkdtemp(prefix="tt-sync-bench-"))
    timeouts = Timeouts(reads=120.0, validate=30.0, refresh=30.0)
    async with PaperExchange(PaperConfig(seed=7)) as ex, SessionManager(timeouts=timeouts) as m:
        started = time.perf_counter()
        ex.seed_history(transactions=transactions, orders=orders, positions=positions)
        print(
            f"seeded in {time.perf_counter() - started:.1f} s: {transactions:,} transactions, "
            f"{orders:,} orders, {positions:,} positions"
        )
        session = await _session(m, ex)
        db = await Database.open(workdir / "synced.sqlite3")
        try:
            sync = SyncService(db)
            first_request = len(ex.requests)
            started = time.perf_counter()
            result = await sync.run(session, "paper", ex.account_number, kind="full")
            sync_seconds = time.perf_counter() - started
            paths = [path for method, path in ex.requests[first_request:] if method == "GET"]
            print(
                f"full sync: {sync_seconds:.2f} s, {len(paths)} requests, {result.pages_done} "
                f"pages, {result.transactions_written:,} transactions, "
                f"{result.orders_written:,} orders, {result.positions:,} positions"
            )

            transfer_seconds, size = await _raw_transfer(ex, paths)
            await db.checkpoint()
            target = workdir / "baseline.sqlite3"
            await _fresh_schema(target)
            insert_seconds, rows = await asyncio.to_thread(_raw_insert, db.path, target)
            baseline = transfer_seconds + insert_seconds
            ratio = sync_seconds / baseline
            print(
                f"baseline: {baseline:.2f} s (HTTP {transfer_seconds:.2f} s for "
                f"{size / 1e6:.1f} MB, executemany {insert_seconds:.2f} s for {rows:,} rows)"
            )
            print(f"sync / baseline: {ratio:.2f}")

            incremental: list[float] = []
            for _ in range(INCREMENTAL_RUNS):
                first_request = len(ex.requests)
                started = time.perf_counter()
                await sync.run(session, "paper", ex.account_number, kind="auto")
                incremental.append(time.perf_counter() - started)
            requests = len(ex.requests) - first_request
            incremental_ms = statistics.median(incremental) * 1000
            print(
                f"no-change incremental sync: median {incremental_ms:.1f} ms, {requests} requests"
            )

            query: list[float] = []
            groups = []
            for _ in range(QUERY_RUNS):
                started = time.perf_counter()
                groups = await sync.positions_by_underlying("paper", ex.account_number)
                query.append(time.perf_counter() - started)
            query_ms = statistics.median(query) * 1000
            stored = sum(len(group.positions) for group in groups)
            print(
                f"positions query: median {query_ms:.1f} ms for {stored:,} positions in "
                f"{len(groups)} underlyings"
            )
        finally:
            await db.close()
    return (
        f"sync ratio {ratio:.2f}, incremental {incremental_ms:.1f} ms, positions {query_ms:.1f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--positions", type=int, default=1_000)
    args = parser.parse_args()
    print(asyncio.run(main(args.transactions, args.orders, args.positions)))
