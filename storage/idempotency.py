"""Idempotency keys: at most one order per trading command (e.g. per Discord message id).

`claim` is atomic (``INSERT ... ON CONFLICT DO NOTHING`` under the write lock): exactly one
caller wins a key, every other caller gets the existing record back, so a redelivered or
double-clicked command can never submit twice. The status then moves forward only:

    pending -> submitted -> placed | not_placed | failed
    pending -> not_placed | failed

``submitted`` means the request may have reached the broker: after a crash or timeout,
reconcile with the broker (external identifier / live orders) before doing anything else.
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
        """Atomically claim `key`; `Claim.won` tells whether this caller got it."""
        if not key:
            raise InvalidValueError("idempotency key must not be empty")
        env = None if environment is None else codec.environment(environment)
        digest = command_hash(command_text)
        now = codec.ts(self._db.clock(), "now")
        async with self._db.transaction():
            inserted = await self._db.execute(
                f"INSERT INTO idempotency_keys ({_COLUMNS}) "
                "VALUES (?, ?, ?, ?, 'pending', ?, ?, NULL, NULL, ?, ?) "
                "ON CONFLICT (key) DO NOTHING",
                (key, guild_id, user_id, digest, env, account_number, now, now),
            )
            record = await self.get(key)
        assert record is not None  # inserted or already present
        return Claim(won=inserted == 1, record=record, same_command=record.command_hash == digest)

    async def get(self, key: str) -> IdempotencyRecord | None:
        row = await self._db.fetch_one(
            f"SELECT {_COLUMNS} FROM idempotency_keys WHERE key = ?", (key,)
        )
        return None if row is None else _record(row)

    async def mark(
        self,
        key: str,
        status: str,
        *,
        order_id: int | None = None,
        detail: str | None = None,
    ) -> IdempotencyRecord:
        """Move the key forward (see the module docstring); order id and detail are kept."""
        if status not in STATUSES:
            raise InvalidValueError(
                f"unknown idempotency status {status!r}; use one of {', '.join(STATUSES)}"
            )
        async with self._db.transaction():
            current = await self.get(key)
            if current is None:
                raise NotFoundError(f"idempotency key {key!r} was never claimed")
            if status != current.status and status not in _NEXT[current.status]:
                raise StorageError(
                    f"idempotency key {key!r} cannot go from {current.status} to {status}"
                )
            await self._db.execute(
                "UPDATE idempotency_keys SET status = ?, order_id = COALESCE(?, order_id), "
                "detail = COALESCE(?, detail), updated_at = ? WHERE key = ?",
                (status, order_id, detail, codec.ts(self._db.clock(), "now"), key),
            )
            updated = await self.get(key)
        assert updated is not None
        return updated

    async def unresolved(self, older_than: datetime | None = None) -> list[IdempotencyRecord]:
        """Keys still pending or submitted (to reconcile at start-up), oldest first."""
        cutoff = codec.ts(older_than or self._db.clock(), "older_than")
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM idempotency_keys WHERE status IN ('pending', 'submitted') "
            "AND created_at <= ? ORDER BY created_at",
            (cutoff,),
        )
        return [_record(row) for row in rows]
