"""Idempotency keys: at most one order per trading command (e.g. per Discord message id).

`claim` is atomic (``INSERT ... ON CONFLICT DO NOTHING`` under the write lock): exactly one
caller wins a key, every other caller gets the existing record back, so a redelivered or
double-clicked command can never submit twice. The status then moves forward only:

    pending -> submitted -> placed | not_placed | failed
    pending -> not_placed | failed

``submitted`` means the request may have reached the broker: after a crash or timeout,
reconcile with the broker (external identifier / live orders) before doing anything else.
A chase submission claims its key directly as ``submitted``, in the same transaction as
the chase row it guards (`storage.submissions`): nobody ever sees that key ``pending``.

Every method is one worker round trip (`Database.run_transaction` / `run_on_connection`).
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final

from storage import codec
from storage.errors import InvalidValueError, NotFoundError, StorageError

if TYPE_CHECKING:
    from storage.database import Database

STATUSES: Final = ("pending", "submitted", "placed", "not_placed", "failed")
_NEXT: Final[dict[str, frozenset[str]]] = {
    "pending": frozenset({"submitted", "not_placed", "failed"}),
    "submitted": frozenset({"placed", "not_placed", "failed"}),
    "placed": frozenset(),
    "not_placed": frozenset(),
    "failed": frozenset(),
}
#: status -> the statuses a key may move to it from (derived from _NEXT, never edited).
_PREVIOUS: Final[dict[str, tuple[str, ...]]] = {
    status: tuple(before for before in STATUSES if status in _NEXT[before]) for status in STATUSES
}


def command_hash(command_text: str) -> str:
    return hashlib.sha256(command_text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    key: str
    guild_id: int
    user_id: int
    command_hash: str
    status: str
    environment: str | None
    account_number: str | None
    order_id: int | None
    detail: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def resolved(self) -> bool:
        return self.status in ("placed", "not_placed", "failed")


@dataclass(frozen=True, slots=True)
class Claim:
    won: bool  # True: this caller owns the key and may submit
    record: IdempotencyRecord
    same_command: bool  # False: the key was first claimed for a different command text


_COLUMNS: Final = (
    "key, guild_id, user_id, command_hash, status, environment, account_number, order_id, "
    "detail, created_at, updated_at"
)


def _record(row: sqlite3.Row) -> IdempotencyRecord:
    return IdempotencyRecord(
        key=row[0],
        guild_id=row[1],
        user_id=row[2],
        command_hash=row[3],
        status=row[4],
        environment=row[5],
        account_number=row[6],
        order_id=row[7],
        detail=row[8],
        created_at=codec.from_ts(row[9]),
        updated_at=codec.from_ts(row[10]),
    )


_CLAIM_SQL: Final = (
    f"INSERT INTO idempotency_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?) "
    "ON CONFLICT (key) DO NOTHING"
)
_SELECT_SQL: Final = f"SELECT {_COLUMNS} FROM idempotency_keys WHERE key = ?"


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise InvalidValueError(
            f"unknown idempotency status {status!r}; use one of {', '.join(STATUSES)}"
        )


def _refused_move(key: str, current: str, status: str) -> StorageError:
    return StorageError(f"idempotency key {key!r} cannot go from {current} to {status}")


def claim_row(
    key: str,
    *,
    status: str,
    guild_id: int,
    user_id: int,
    command_text: str,
    environment: str | None,
    account_number: str | None,
    now: datetime,
) -> tuple[object, ...]:
    """The validated parameters of `insert_claim` (built before the worker round trip)."""
    if not key:
        raise InvalidValueError("idempotency key must not be empty")
    if status not in ("pending", "submitted"):
        raise InvalidValueError(f"a key is claimed as pending or submitted, not {status!r}")
    env = None if environment is None else codec.environment(environment)
    stamp = codec.ts(now, "now")
    return (
        key,
        guild_id,
        user_id,
        command_hash(command_text),
        status,
        env,
        account_number,
        stamp,
        stamp,
    )


def _move_sql(from_statuses: int, *, returning: str = "") -> str:
    """UPDATE of one key's status (order id and detail kept unless given), allowed only from
    `from_statuses` statuses: parameters status, order_id, detail, now, key, *statuses."""
    marks = ", ".join("?" for _ in range(from_statuses))
    return (
        "UPDATE idempotency_keys SET status = ?, order_id = COALESCE(?, order_id), "
        f"detail = COALESCE(?, detail), updated_at = ? WHERE key = ? AND status IN ({marks})"
        + (f" RETURNING {returning}" if returning else "")
    )


def insert_claim(raw: sqlite3.Connection, row: tuple[object, ...]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING (inside a unit of work): True if this call won."""
    return raw.execute(_CLAIM_SQL, row).rowcount == 1


def advance_key(
    raw: sqlite3.Connection,
    key: str,
    status: str,
    *,
    order_id: int | None,
    detail: str | None,
    now: str,
    via_submitted: bool = False,
) -> bool:
    """Move an unresolved key to `status` (inside a unit of work): one UPDATE whose WHERE
    clause admits only the allowed previous statuses.

    False, changing nothing, when the key is missing, already at `status`, or resolved;
    `StorageError` when it is unresolved but the move is not allowed. `via_submitted` also
    takes a ``pending`` key to ``placed`` (an order that reached the broker was submitted:
    pending -> submitted -> placed, two allowed moves in one statement).
    """
    previous = _PREVIOUS[status]
    if via_submitted and "submitted" in previous and "pending" not in previous:
        previous = (*previous, "pending")
    changed = raw.execute(
        _move_sql(len(previous)), (status, order_id, detail, now, key, *previous)
    ).rowcount
    if changed:
        return True
    row = raw.execute("SELECT status FROM idempotency_keys WHERE key = ?", (key,)).fetchone()
    if row is None or row[0] == status or not _NEXT[row[0]]:
        return False
    raise _refused_move(key, row[0], status)


class IdempotencyRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim(
        self,
        key: str,
        *,
        guild_id: int,
        user_id: int,
        command_text: str,
        environment: str | None = None,
        account_number: str | None = None,
    ) -> Claim:
        """Atomically claim `key` (as ``pending``); `Claim.won` tells whether this caller got it."""
        row = claim_row(
            key,
            status="pending",
            guild_id=guild_id,
            user_id=user_id,
            command_text=command_text,
            environment=environment,
            account_number=account_number,
            now=self._db.clock(),
        )

        def claim(raw: sqlite3.Connection) -> tuple[bool, sqlite3.Row]:
            won = insert_claim(raw, row)
            stored: sqlite3.Row = raw.execute(_SELECT_SQL, (key,)).fetchone()
            return won, stored  # inserted or already present

        won, stored = await self._db.run_transaction(claim)
        record = _record(stored)
        return Claim(won=won, record=record, same_command=record.command_hash == row[3])

    async def get(self, key: str) -> IdempotencyRecord | None:
        row = await self._db.fetch_one(_SELECT_SQL, (key,))
        return None if row is None else _record(row)

    async def mark(
        self,
        key: str,
        status: str,
        *,
        order_id: int | None = None,
        detail: str | None = None,
    ) -> IdempotencyRecord:
        """Move the key forward (see the module docstring); order id and detail are kept.

        One UPDATE (its WHERE clause admits only allowed moves); when it matches no row,
        the same worker round trip reads the key to say why.
        """
        _check_status(status)
        params = (status, order_id, detail, codec.ts(self._db.clock(), "now"), key)
        allowed = (status, *_PREVIOUS[status])  # staying put only updates order id / detail
        sql = _move_sql(len(allowed), returning=_COLUMNS)

        def mark(raw: sqlite3.Connection) -> sqlite3.Row:
            updated: list[sqlite3.Row] = raw.execute(
                sql, (*params, *allowed)
            ).fetchall()  # read to the end: the statement finishes (and commits) here
            if updated:
                return updated[0]
            current = raw.execute(_SELECT_SQL, (key,)).fetchone()
            if current is None:
                raise NotFoundError(f"idempotency key {key!r} was never claimed")
            raise _refused_move(key, current[4], status)

        return _record(await self._db.run_on_connection(mark))

    async def advance(
        self,
        key: str,
        status: str,
        *,
        order_id: int | None = None,
        detail: str | None = None,
    ) -> bool:
        """Move an unresolved key forward (one statement, see `advance_key`).

        False, changing nothing, when the key is missing, already at `status` or resolved
        (resolved keys never move again); `StorageError` for a move the rules forbid.
        """
        _check_status(status)
        now = codec.ts(self._db.clock(), "now")
        return await self._db.run_on_connection(
            lambda raw: advance_key(raw, key, status, order_id=order_id, detail=detail, now=now)
        )

    async def unresolved(self, older_than: datetime | None = None) -> list[IdempotencyRecord]:
        """Keys still pending or submitted (to reconcile at start-up), oldest first."""
        cutoff = codec.ts(older_than or self._db.clock(), "older_than")
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM idempotency_keys WHERE status IN ('pending', 'submitted') "
            "AND created_at <= ? ORDER BY created_at",
            (cutoff,),
        )
        return [_record(row) for row in rows]
