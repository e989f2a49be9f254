"""Account-sync benchmark against the paper exchange on loopback.

    .venv/bin/python benchmarks/sync.py [--transactions N] [--orders N] [--positions N]
                                        [--rounds N] [--in-process]

0. Starts the exchange in its own process (`python -m broker.paper`, as a real broker is
   on another machine), or in this one with `--in-process`, and seeds it (default 100,000
   transactions, 10,000 orders, 1,000 positions).
1. Full `SyncService` sync into a fresh database file.
2. Baseline, same round: the raw HTTP transfer of exactly the pages the sync requested
   (same URLs, bodies read, not parsed) plus a raw ``executemany`` of the same rows (read
   back from the synced database) into another fresh database with the same schema.
   Steps 1-2 run `--rounds` times (default 2); the ratio is best sync / best baseline, as
   other load on the machine only ever adds time.
3. A no-change incremental sync (median of 7 back to back, with what the exchange alone
   needs to answer the same requests); for comparison, the same after the market moved
   (each run a market tick later, so marks changed: median of 5); then the positions
   query (grouped by underlying, median of 21) over the stored positions.

Last line: ``sync ratio R, incremental T_ms ms, positions Q_ms ms``.
Targets: R <= 2.0, incremental <= 100 ms, positions query <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import structlog
from tastytrade.account import CurrentPosition
from tastytrade.account import Transaction as SdkTransaction
from tastytrade.order import PlacedOrder

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
from broker.sync.pages import envelope_of, parse_page  # noqa: E402
from storage import Database  # noqa: E402

PROVIDER_SECRET = "benchmark-provider-secret"
REFRESH_TOKEN = "benchmark-refresh-token"
ACCOUNT = "5WT00001"  # the exchange's default funded account
#: Tables the sync fills from paginated lists and snapshots, in foreign-key order.
TABLES = ("orders", "order_legs", "order_fills", "transactions", "positions", "balance_snapshots")
INCREMENTAL_RUNS = 7
MOVED_RUNS = 5
TICK_SECONDS = 1.0  # the exchange's default market grid (PaperConfig.market.grid_seconds)
QUERY_RUNS = 21


def _quiet_logs() -> None:
    logging.basicConfig(level=logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


class Exchange:
    """The paper exchange, by default in its own process (`python -m broker.paper`).

    A real broker never shares the bot's CPU; with the exchange in-process its page
    rendering would run on the same core as the sync and hide the sync's own pipelining.
    `--in-process` runs it in this process instead (for comparison).
    """

    def __init__(self, api_url: str, streamer_url: str, account_number: str = ACCOUNT) -> None:
        self.api_url = api_url
        self.streamer_url = streamer_url
        self.account_number = account_number
        self._admin = httpx2.AsyncClient(base_url=api_url, timeout=600)

    async def seed(self, transactions: int, orders: int, positions: int) -> None:
        response = await self._admin.post(
            "/_admin/seed",
            json={"transactions": transactions, "orders": orders, "positions": positions},
        )
        response.raise_for_status()

    async def request_count(self) -> int:
        return len(await self.requests())

    async def requests(self) -> list[tuple[str, str]]:
        response = await self._admin.get("/_admin/requests")
        response.raise_for_status()
        return [(method, path) for method, path in response.json()["requests"]]

    async def aclose(self) -> None:
        await self._admin.aclose()


@contextlib.asynccontextmanager
async def exchange_process(seed: int) -> AsyncIterator[Exchange]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "broker.paper",
        "--seed",
        str(seed),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        urls: dict[str, str] = {}
        while len(urls) < 2:
            line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
            if not line:
                raise RuntimeError("the paper exchange process exited before it was ready")
            name, _, value = line.strip().partition(": ")
            if name in ("api", "streamer"):
                urls[name] = value
        exchange = Exchange(urls["api"], urls["streamer"])
        try:
            yield exchange
        finally:
            await exchange.aclose()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await process.wait()


@contextlib.asynccontextmanager
async def exchange_in_process(seed: int) -> AsyncIterator[Exchange]:
    async with PaperExchange(PaperConfig(seed=seed)) as paper:
        exchange = Exchange(paper.api_url, paper.streamer_url, paper.account_number)
        try:
            yield exchange
        finally:
            await exchange.aclose()


async def _session(manager: SessionManager, ex: Exchange) -> BrokerSession:
    return await manager.get(
        Credentials(
            environment=Environment.PAPER,
            provider_secret=Secret(PROVIDER_SECRET),
            refresh_token=Secret(REFRESH_TOKEN),
            api_url=ex.api_url,
            streamer_url=ex.streamer_url,
        )
    )


async def _raw_transfer(ex: Exchange, paths: list[str]) -> tuple[float, list[tuple[str, bytes]]]:
    """GET every path with a bare HTTP client (bodies read, not parsed): seconds, bodies."""
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
        bodies: list[tuple[str, bytes]] = []
        started = time.perf_counter()
        for path in paths:
            response = await client.get(path, headers=headers)
            response.raise_for_status()
            bodies.append((path, response.content))
        return time.perf_counter() - started, bodies


def _parse_with_sdk_models(bodies: list[tuple[str, bytes]]) -> float:
    """Seconds the SDK's models alone need for the list pages (the floor of any SDK sync)."""
    models: list[tuple[str, type[Any]]] = [
        ("/transactions", SdkTransaction),
        ("/orders", PlacedOrder),
        ("/orders/live", PlacedOrder),
        ("/positions", CurrentPosition),
    ]
    started = time.perf_counter()
    for path, body in bodies:
        route = path.split("?", 1)[0]
        for suffix, model in models:
            if route.endswith(suffix):
                parse_page(envelope_of(model), body)
                break
    return time.perf_counter() - started


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


async def main(
    transactions: int, orders: int, positions: int, in_process: bool, rounds: int
) -> str:
    _quiet_logs()
    workdir = Path(tempfile.mkdtemp(prefix="tt-sync-bench-"))
    timeouts = Timeouts(reads=120.0, validate=30.0, refresh=30.0)
    exchange = exchange_in_process if in_process else exchange_process
    async with exchange(7) as ex, SessionManager(timeouts=timeouts) as manager:
        started = time.perf_counter()
        await ex.seed(transactions, orders, positions)
        where = "in this process" if in_process else "in its own process"
        print(
            f"exchange {where}, seeded in {time.perf_counter() - started:.1f} s: "
            f"{transactions:,} transactions, {orders:,} orders, {positions:,} positions"
        )
        session = await _session(manager, ex)
        sync_times: list[float] = []
        baseline_times: list[float] = []
        parse_times: list[float] = []
        for round_number in range(1, rounds + 1):
            # Each round: a full sync into a fresh file, then the baseline for its pages.
            db = await Database.open(workdir / f"synced-{round_number}.sqlite3")
            sync = SyncService(db)
            first_request = await ex.request_count()
            started = time.perf_counter()
            result = await sync.run(session, "paper", ex.account_number, kind="full")
            sync_times.append(time.perf_counter() - started)
            served = (await ex.requests())[first_request:]
            paths = [path for method, path in served if method == "GET"]
            transfer_seconds, bodies = await _raw_transfer(ex, paths)
            size = sum(len(body) for _, body in bodies)
            parse_times.append(_parse_with_sdk_models(bodies))
            del bodies
            await db.checkpoint()
            target = workdir / f"baseline-{round_number}.sqlite3"
            await _fresh_schema(target)
            insert_seconds, rows = await asyncio.to_thread(_raw_insert, db.path, target)
            baseline_times.append(transfer_seconds + insert_seconds)
            print(
                f"round {round_number}: full sync {sync_times[-1]:.2f} s ({len(paths)} requests, "
                f"{result.transactions_written:,} transactions, {result.orders_written:,} "
                f"orders, {result.positions:,} positions); baseline {baseline_times[-1]:.2f} s "
                f"(HTTP {transfer_seconds:.2f} s for {size / 1e6:.1f} MB, executemany "
                f"{insert_seconds:.2f} s for {rows:,} rows); the SDK models alone parse "
                f"those pages in {parse_times[-1]:.2f} s"
            )
            if round_number < rounds:
                await db.close()
        # Best of the rounds on each side: other work on the machine only ever adds time.
        sync_seconds, baseline = min(sync_times), min(baseline_times)
        ratio = sync_seconds / baseline
        floor = (baseline + min(parse_times)) / baseline
        print(
            f"full sync {sync_seconds:.2f} s, baseline {baseline:.2f} s, ratio {ratio:.2f} "
            f"(baseline + SDK parsing alone, run one after the other: {floor:.2f})"
        )
        try:
            incremental: list[float] = []
            for _ in range(INCREMENTAL_RUNS):
                first_request = await ex.request_count()
                started = time.perf_counter()
                await sync.run(session, "paper", ex.account_number, kind="auto")
                incremental.append(time.perf_counter() - started)
            served = (await ex.requests())[first_request:]
            incremental_ms = statistics.median(incremental) * 1000
            # What the exchange alone needs for the same requests (bare client, one by one).
            answer_seconds, _ = await _raw_transfer(ex, [path for _, path in served])
            print(
                f"no-change incremental sync: median {incremental_ms:.1f} ms, {len(served)} "
                f"requests; the exchange alone answers them in {answer_seconds * 1000:.1f} ms"
            )
            moved: list[float] = []
            for _ in range(MOVED_RUNS):
                await asyncio.sleep(TICK_SECONDS)  # a new market tick: marks move
                started = time.perf_counter()
                await sync.run(session, "paper", ex.account_number, kind="auto")
                moved.append(time.perf_counter() - started)
            print(
                "incremental sync after the market moved (new marks to parse and store): "
                f"median {statistics.median(moved) * 1000:.1f} ms"
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
    parser.add_argument(
        "--in-process", action="store_true", help="run the exchange in this process"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="full sync + baseline rounds (best of each)"
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    print(
        asyncio.run(
            main(args.transactions, args.orders, args.positions, args.in_process, args.rounds)
        )
    )
