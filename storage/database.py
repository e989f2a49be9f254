"""The database handle: one aiosqlite connection per file, transactions, migrations.

Design:
- **One owner per file.** `Database.open(path)` registers the resolved path in a
  process-wide registry; a second open of the same file fails with `DatabaseInUseError`
  until the first is closed. The single connection runs on aiosqlite's worker thread, so
  nothing blocks the event loop.
- **Connection settings.** WAL journal (readers never block the writer), ``foreign_keys=ON``,
  a busy timeout (another process holding the write lock is waited for, not failed), and
  ``synchronous=NORMAL`` (durable at checkpoints, never corrupt).
- **Serialised access.** All statements go through an `asyncio.Lock`, so a coroutine's
  transaction never picks up another coroutine's statements (they share one connection)
  and reads never see another coroutine's uncommitted rows. `transaction()` takes the lock
  for its whole body; storage calls made from the body (including tasks it spawns, which
  inherit its context) run inside it, and a nested `transaction()` becomes a SAVEPOINT
  (an exception in it rolls back just that part). Coroutines started outside the body
  wait for the lock. Keep bodies short and don't run concurrent writers inside one.
- **Migrations** run at open (`storage.migrate`).
- **Page writes** (`insert_rows`) send many rows per INSERT statement instead of an
  ``executemany`` (which hands the GIL back and forth on every row; see `storage.bulk`).
- **One worker round trip per unit of work.** Every statement awaited through aiosqlite is a
  hop to its worker thread and back (~0.2-0.4 ms). `run_transaction(work)` runs a synchronous
  function against the raw connection on that thread inside BEGIN IMMEDIATE ... COMMIT, so a
  multi-statement write costs one hop; `run_on_connection(work)` does the same without a
  transaction of its own (one statement, or a statement plus the read that explains why it
  changed nothing). Repositories build such functions from their own SQL.

Repositories (``db.orders``, ``db.positions``...) hold all SQL; callers never write SQL.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from itertools import chain
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar

import aiosqlite

from storage.accounts import AccountsRepository
from storage.audit import AuditRepository
from storage.balances import BalancesRepository
from storage.bulk import RowsInsert, rows_per_statement, values_sql, variable_limit
from storage.chases import ChasesRepository
from storage.credentials import CredentialsRepository
from storage.crypto import Keyring
from storage.errors import DatabaseInUseError, DuplicateError, StorageError
from storage.fill_events import FillEventsRepository
from storage.guilds import GuildsRepository
from storage.idempotency import IdempotencyRepository
from storage.migrate import apply_migrations, load_migrations, schema_version
from storage.orders import OrdersRepository
from storage.positions import PositionsRepository
from storage.submissions import SubmissionsRepository
from storage.sync import SyncRepository
from storage.transactions import TransactionsRepository

_T = TypeVar("_T")
Clock = Callable[[], datetime]
Params = Sequence[Any]
#: A unit of work for one worker round trip: called on aiosqlite's thread with the raw
#: connection. It must not touch the event loop or await anything.
Work = Callable[[sqlite3.Connection], _T]

DEFAULT_BUSY_TIMEOUT_SECONDS: Final = 5.0
_MIN_SQLITE: Final = (3, 37, 0)  # STRICT tables

_open_files: dict[Path, Database | None] = {}


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """The live connection's pragmas, as SQLite reports them."""

    journal_mode: str
    foreign_keys: bool
    busy_timeout_ms: int
    synchronous: str
    schema_version: int


_SYNCHRONOUS_NAMES: Final = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


class Database:
    """An open tt-bot database. Create with `await Database.open(path)`; close with `close()`."""

    def __init__(
        self,
        path: Path,
        conn: aiosqlite.Connection,
        keyring: Keyring,
        clock: Clock,
    ) -> None:
        self._path = path
        self._conn: aiosqlite.Connection | None = conn
        self._lock = asyncio.Lock()
        # Who holds the lock is tracked in a context variable, not by task: a task created
        # inside a transaction body (asyncio.wait_for/gather on 3.11) inherits the context
        # and joins the transaction instead of deadlocking on the lock its parent holds.
        self._holder: ContextVar[object | None] = ContextVar(f"tt_bot_db_{id(self)}", default=None)
        self._hold: object | None = None
        self._depth = 0
        # after_commit callbacks of the running transaction, with the depth they joined at.
        self._on_commit: list[tuple[int, Callable[[], None]]] = []
        self.clock = clock
        self.guilds = GuildsRepository(self)
        self.credentials = CredentialsRepository(self, keyring)
        self.accounts = AccountsRepository(self)
        self.positions = PositionsRepository(self)
        self.orders = OrdersRepository(self)
        self.transactions = TransactionsRepository(self)
        self.balances = BalancesRepository(self)
        self.sync = SyncRepository(self)
        self.idempotency = IdempotencyRepository(self)
        self.audit = AuditRepository(self)
        self.chases = ChasesRepository(self)
        self.fill_events = FillEventsRepository(self)
        self.submissions = SubmissionsRepository(self)

    # ----------------------------------------------------------------- lifecycle

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        keyring: Keyring | None = None,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT_SECONDS,
        clock: Clock = utc_now,
        migrations_dir: Path | None = None,
        target_version: int | None = None,
    ) -> Database:
        """Open (creating if needed) and migrate the database file at `path`.

        `keyring` encrypts stored credentials (none: credentials are refused).
        `migrations_dir` / `target_version` exist for tests and tooling that need a
        specific schema version; normal callers leave them unset.
        """
        if sqlite3.sqlite_version_info < _MIN_SQLITE:
            raise StorageError(
                f"SQLite {sqlite3.sqlite_version} is too old; tt-bot needs 3.37 or newer"
            )
        if str(path) in ("", ":memory:") or str(path).startswith("file:"):
            raise StorageError("Database.open needs a file path (in-memory databases are not used)")
        resolved, parent_exists = await asyncio.to_thread(_resolve, path)
        if not parent_exists:
            raise StorageError(
                f"cannot open {resolved}: directory {resolved.parent} does not exist"
            )
        if resolved in _open_files:
            raise DatabaseInUseError(
                f"{resolved} is already open in this process; share that Database instead "
                "of opening the file twice"
            )
        _open_files[resolved] = None  # reserve before the first await
        conn: aiosqlite.Connection | None = None
        try:
            await asyncio.to_thread(variable_limit)  # cached for insert_rows
            migrations = await asyncio.to_thread(load_migrations, migrations_dir)
            conn = await aiosqlite.connect(resolved, timeout=busy_timeout, isolation_level=None)
            conn.row_factory = sqlite3.Row
            await _configure(conn, busy_timeout)
            await apply_migrations(conn, migrations, target_version)
            db = cls(resolved, conn, keyring or Keyring(), clock)
        except BaseException as exc:
            _open_files.pop(resolved, None)
            if conn is not None:
                await conn.close()
            if isinstance(exc, sqlite3.Error):
                raise StorageError(f"cannot open database {resolved}: {exc}") from exc
            raise
        _open_files[resolved] = db
        return db

    async def close(self) -> None:
        """Checkpoint and close; idempotent."""
        if self._conn is None:
            return
        async with self._lock:  # let a running transaction finish first
            conn, self._conn = self._conn, None
            if conn is None:
                return
            try:
                try:
                    await _run(conn, "PRAGMA optimize")
                finally:
                    await conn.close()
            finally:
                _open_files.pop(self._path, None)

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def path(self) -> Path:
        return self._path

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    def __repr__(self) -> str:
        return f"Database({str(self._path)!r}, open={self.is_open})"

    # -------------------------------------------------------------- transactions

    def _connection(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise StorageError(f"database {self._path} is closed")
        return self._conn

    def _held_here(self) -> bool:
        """True when the caller runs inside this database's current hold of the lock."""
        return self._hold is not None and self._holder.get() is self._hold

    @asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[aiosqlite.Connection]:
        """Hold the connection; re-entrant for code running inside the hold."""
        if self._held_here():
            yield self._connection()
            return
        async with self._lock:
            hold = object()
            self._hold = hold
            reset = self._holder.set(hold)
            try:
                yield self._connection()
            finally:
                self._holder.reset(reset)
                self._hold = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Run the body atomically: commit on success, roll back on any exception.

        Cancellation rolls back too; only a cancellation that lands while COMMIT itself is
        in flight can leave the work committed (the statement was already queued).
        """
        if self._held_here() and self._depth > 0:
            async with self._savepoint():
                yield
            return
        async with self._exclusive() as conn:
            self._depth = 1
            try:
                # Every failure path below ends in ROLLBACK, including a cancellation while
                # BEGIN or COMMIT is queued: aiosqlite still runs a queued statement, and
                # the ROLLBACK is queued behind it.
                try:
                    await _run(conn, "BEGIN IMMEDIATE")
                    yield
                    await _run(conn, "COMMIT")
                except BaseException:
                    self._on_commit.clear()
                    await _rollback(conn)
                    raise
                callbacks, self._on_commit = self._on_commit, []
                for _, callback in callbacks:
                    callback()
            finally:
                self._depth = 0
                self._on_commit.clear()

    async def run_transaction(self, work: Work[_T]) -> _T:
        """Run `work(connection)` atomically in one worker round trip; return its result.

        On its own: BEGIN IMMEDIATE, `work`, COMMIT, all queued to the worker thread as one
        call (ROLLBACK there on any exception, which is then raised here; sqlite errors map
        to `StorageError`/`DuplicateError` as for every statement). Inside a running
        `transaction()` it joins that transaction as a savepoint (same hop count: an
        exception in `work` undoes just its part, and the caller's commit or rollback
        decides the rest).

        Cancellation: a cancelled await does not stop the worker. Once queued, `work`
        runs to its end and its transaction commits or rolls back as a whole; the caller
        merely does not learn which (read the rows again to find out). Later statements
        queue behind it, so nothing interleaves with it.
        """
        joining = self._held_here() and self._depth > 0
        async with self._exclusive() as conn:
            return await _guarded(
                _on_worker(conn, partial(_savepoint_work if joining else _transaction_work, work))
            )

    async def run_on_connection(self, work: Work[_T]) -> _T:
        """Run `work(connection)` in one worker round trip, in no transaction of its own.

        For one statement (atomic by itself), optionally followed by reads (e.g. why an
        UPDATE matched no row); inside `transaction()` it is part of that transaction.
        Errors and cancellation as for `run_transaction`.
        """
        async with self._exclusive() as conn:
            return await _guarded(_on_worker(conn, work))

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback` (which must not raise) once the running transaction commits.

        It is dropped when the transaction, or the savepoint it was registered in, rolls
        back, and also when the commit's outcome is unknown (cancelled while COMMIT was in
        flight): use it to keep in-memory state that must match committed rows only.
        Must be called inside `transaction()`.
        """
        if not self._held_here() or self._depth == 0:
            raise StorageError("after_commit needs a running transaction")
        self._on_commit.append((self._depth, callback))

    @asynccontextmanager
    async def atomic(self) -> AsyncIterator[None]:
        """`transaction()`, unless the caller already runs one: then the body simply joins
        it (no savepoint; the caller's commit or rollback covers it). For page writes,
        which run inside the sync's page transaction: two worker round trips fewer."""
        if self._held_here() and self._depth > 0:
            yield
            return
        async with self.transaction():
            yield

    @asynccontextmanager
    async def _savepoint(self) -> AsyncIterator[None]:
        conn = self._connection()
        name = f"sp_{self._depth}"
        self._depth += 1
        try:
            try:
                await _run(conn, f"SAVEPOINT {name}")
                yield
                await _run(conn, f"RELEASE {name}")
            except BaseException:
                depth = self._depth
                self._on_commit = [entry for entry in self._on_commit if entry[0] < depth]
                await _rollback_to(conn, name)
                raise
        finally:
            self._depth -= 1

    # ---------------------------------------------------------------- statements

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; return the number of rows it changed (one round trip)."""
        return await self.run_on_connection(lambda raw: _changed_rows(raw, sql, params))

    async def insert(self, sql: str, params: Params = ()) -> int:
        """Run an INSERT; return the new row id (one round trip)."""
        return await self.run_on_connection(lambda raw: _insert_row(raw, sql, params))

    async def execute_many(self, sql: str, rows: Iterable[Params]) -> int:
        """Run one statement for every parameter row (one round trip); return rows changed."""
        async with self._exclusive() as conn:
            cursor = await _guarded(conn.executemany(sql, rows))
            try:
                return cursor.rowcount
            finally:
                await cursor.close()

    async def insert_rows(self, statement: RowsInsert, rows: Sequence[Params]) -> None:
        """Run `statement` for every row, as many rows per statement as SQLite allows.

        Same effect as ``execute_many(statement.single_row, rows)``: rows are inserted (and
        upserted) in order, each seeing the ones before it. Every row must have
        ``statement.parameters_per_row`` values. Wrap the call in `transaction()` when
        the rows must land together (more than one statement may run).
        """
        if not rows:
            return
        width = statement.parameters_per_row
        per_statement = rows_per_statement(width)
        async with self._exclusive() as conn:
            for start in range(0, len(rows), per_statement):
                chunk = rows[start : start + per_statement]
                if any(len(row) != width for row in chunk):
                    raise StorageError(f"every row of this insert needs {width} values")
                params = list(chain.from_iterable(chunk))
                # execute_fetchall: one worker round trip (the cursor closes on the worker).
                await _guarded(conn.execute_fetchall(values_sql(statement, len(chunk)), params))

    async def fetch_all(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        async with self._exclusive() as conn:
            rows = await _guarded(conn.execute_fetchall(sql, params))
        return list(rows)

    async def fetch_one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None

    # ------------------------------------------------------------------ diagnostics

    async def settings(self) -> ConnectionSettings:
        """The pragmas in effect on the live connection."""
        async with self._exclusive() as conn:
            values: list[Any] = []
            for pragma in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous"):
                async with conn.execute(f"PRAGMA {pragma}") as cursor:
                    row = await cursor.fetchone()
                values.append(row[0] if row is not None else None)
            version = await schema_version(conn)
        return ConnectionSettings(
            journal_mode=str(values[0]).lower(),
            foreign_keys=bool(values[1]),
            busy_timeout_ms=int(values[2]),
            synchronous=_SYNCHRONOUS_NAMES.get(int(values[3]), str(values[3])),
            schema_version=version,
        )

    async def schema_version(self) -> int:
        async with self._exclusive() as conn:
            return await schema_version(conn)

    async def checkpoint(self) -> None:
        """Copy the WAL into the main file and truncate it (e.g. before a file backup)."""
        async with self._exclusive() as conn:
            await _run(conn, "PRAGMA wal_checkpoint(TRUNCATE)")


def _resolve(path: str | Path) -> tuple[Path, bool]:
    resolved = Path(path).expanduser().resolve()
    return resolved, resolved.parent.is_dir()


async def _configure(conn: aiosqlite.Connection, busy_timeout: float) -> None:
    async with conn.execute("PRAGMA journal_mode = WAL") as cursor:
        row = await cursor.fetchone()
    if row is None or str(row[0]).lower() != "wal":
        raise StorageError("the database file does not support WAL journaling")
    await _run(conn, f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    await _run(conn, "PRAGMA foreign_keys = ON")
    await _run(conn, "PRAGMA synchronous = NORMAL")


async def _on_worker(conn: aiosqlite.Connection, work: Work[_T]) -> _T:
    """Queue `work(raw connection)` on aiosqlite's worker thread: one round trip.

    aiosqlite 0.22 has no public way to run a callable on its thread; `Connection._execute`
    is the queueing primitive every public call goes through (it puts the call on the
    worker's queue and awaits its future). `tests/integration/storage/test_one_hop.py`
    fails loudly if a new aiosqlite changes that. The raw connection is only touched on
    the worker thread, the one it was created on.
    """
    result: _T = await conn._execute(lambda: work(conn._conn))  # type: ignore[no-untyped-call]
    return result


_HOP_SAVEPOINT: Final = "tt_hop"


def _transaction_work(work: Work[_T], raw: sqlite3.Connection) -> _T:
    raw.execute("BEGIN IMMEDIATE")
    try:
        result = work(raw)
        raw.execute("COMMIT")
    except BaseException:
        if raw.in_transaction:  # a failed COMMIT may already have ended it
            raw.execute("ROLLBACK")
        raise
    return result


def _savepoint_work(work: Work[_T], raw: sqlite3.Connection) -> _T:
    raw.execute(f"SAVEPOINT {_HOP_SAVEPOINT}")
    try:
        result = work(raw)
    except BaseException:
        raw.execute(f"ROLLBACK TO {_HOP_SAVEPOINT}")
        raw.execute(f"RELEASE {_HOP_SAVEPOINT}")
        raise
    raw.execute(f"RELEASE {_HOP_SAVEPOINT}")
    return result


def _changed_rows(raw: sqlite3.Connection, sql: str, params: Params) -> int:
    return raw.execute(sql, params).rowcount


def _insert_row(raw: sqlite3.Connection, sql: str, params: Params) -> int:
    """Run an INSERT on the raw connection; return the new row id."""
    rowid = raw.execute(sql, params).lastrowid
    if rowid is None:
        raise StorageError("insert did not produce a row id")
    return rowid


async def _run(conn: aiosqlite.Connection, sql: str) -> None:
    # execute_fetchall is one worker round trip (the cursor is closed on the worker);
    # execute + close would be two, and BEGIN/COMMIT run for every page written.
    await _guarded(conn.execute_fetchall(sql))


async def _rollback(conn: aiosqlite.Connection) -> None:
    # Queued behind whatever statement the body was awaiting (aiosqlite runs one FIFO
    # thread), so even after a cancellation the ROLLBACK runs after that statement.
    try:
        await conn.execute_fetchall("ROLLBACK")
    except sqlite3.OperationalError as exc:
        if "no transaction is active" not in str(exc):
            raise StorageError(f"rollback failed: {exc}") from exc


async def _rollback_to(conn: aiosqlite.Connection, name: str) -> None:
    try:
        await conn.execute_fetchall(f"ROLLBACK TO {name}")
        await conn.execute_fetchall(f"RELEASE {name}")
    except sqlite3.OperationalError as exc:
        # Already released (the failure was in RELEASE) or the outer transaction is gone.
        if "no such savepoint" not in str(exc):
            raise StorageError(f"rollback to savepoint failed: {exc}") from exc


async def _guarded(awaitable: Awaitable[_T]) -> _T:
    """Await a driver call, turning sqlite errors into StorageError subclasses."""
    try:
        return await awaitable
    except sqlite3.Error as exc:
        raise _storage_error(exc) from exc


def _storage_error(exc: sqlite3.Error) -> StorageError:
    if isinstance(exc, sqlite3.IntegrityError):
        message = str(exc)
        if message.startswith("UNIQUE constraint failed"):
            return DuplicateError(message)
        if "FOREIGN KEY" in message:
            return StorageError(
                f"{message}: the referenced row (guild settings, account or order) must be "
                "stored first"
            )
        return StorageError(message)
    return StorageError(f"database error: {exc}")
