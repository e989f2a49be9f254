"""Audit log: every trading command, decision and broker response.

Details are JSON. Secrets are never stored: values under secret-looking keys (token,
secret, password, authorization, api key, credential...) and any object exposing
``reveal()`` (a wrapped secret) are replaced by ``***`` before writing, at any depth.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from storage import codec
from storage.errors import InvalidValueError, StorageError

if TYPE_CHECKING:
    from storage.database import Database

REDACTED: Final = "***"
_SECRET_KEY = re.compile(
    r"(secret|token|password|passwd|authorization|api[_-]?key|private[_-]?key|"
    r"encryption[_-]?key|credential|cookie)",
    re.IGNORECASE,
)


def scrub(value: Any) -> Any:
    """A copy of `value` with secrets replaced by ``***``."""
    if hasattr(value, "reveal"):
        return REDACTED
    if isinstance(value, Mapping):
        return {
            key: REDACTED if isinstance(key, str) and _SECRET_KEY.search(key) else scrub(item)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        return [scrub(item) for item in value]
    return value


@dataclass(frozen=True, slots=True)
class AuditEntry:
    entry_id: int
    recorded_at: datetime
    guild_id: int | None
    user_id: int | None
    environment: str | None
    command: str | None
    event: str
    idempotency_key: str | None
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AuditNote:
    """An entry to append as part of a larger unit of work (see `storage.submissions`)."""

    event: str
    guild_id: int | None = None
    user_id: int | None = None
    environment: str | None = None
    command: str | None = None
    idempotency_key: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


_INSERT_COLUMNS: Final = (
    "recorded_at, guild_id, user_id, environment, command, event, idempotency_key, details"
)
_COLUMNS: Final = f"id, {_INSERT_COLUMNS}"
_INSERT_SQL: Final = f"INSERT INTO audit_log ({_INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"


def audit_row(note: AuditNote, now: str) -> tuple[object, ...]:
    """The validated, secret-scrubbed parameters of `insert_entry`; `now` is an encoded
    timestamp (``codec.ts``)."""
    if not note.event:
        raise InvalidValueError("audit event name must not be empty")
    return (
        now,
        note.guild_id,
        note.user_id,
        None if note.environment is None else codec.environment(note.environment),
        note.command,
        note.event,
        note.idempotency_key,
        codec.to_json(scrub(dict(note.details))),
    )


def insert_entry(raw: sqlite3.Connection, row: tuple[object, ...]) -> int:
    """Append an entry (inside a unit of work); return its id."""
    entry_id = raw.execute(_INSERT_SQL, row).lastrowid
    if entry_id is None:
        raise StorageError("the audit insert did not produce a row id")
    return entry_id


def _entry(row: sqlite3.Row) -> AuditEntry:
    return AuditEntry(
        entry_id=row[0],
        recorded_at=codec.from_ts(row[1]),
        guild_id=row[2],
        user_id=row[3],
        environment=row[4],
        command=row[5],
        event=row[6],
        idempotency_key=row[7],
        details=json.loads(row[8]),
    )


class AuditRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(
        self,
        event: str,
        *,
        guild_id: int | None = None,
        user_id: int | None = None,
        environment: str | None = None,
        command: str | None = None,
        idempotency_key: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> int:
        """Append an entry (details scrubbed of secrets); return its id (one round trip)."""
        note = AuditNote(
            event,
            guild_id=guild_id,
            user_id=user_id,
            environment=environment,
            command=command,
            idempotency_key=idempotency_key,
            details=details or {},
        )
        row = audit_row(note, codec.ts(self._db.clock(), "now"))
        return await self._db.run_on_connection(lambda raw: insert_entry(raw, row))

    async def recent(self, guild_id: int, limit: int = 50) -> list[AuditEntry]:
        """The guild's latest entries, newest first."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM audit_log WHERE guild_id = ? "
            "ORDER BY recorded_at DESC, id DESC LIMIT ?",
            (guild_id, limit),
        )
        return [_entry(row) for row in rows]

    async def for_key(self, idempotency_key: str) -> list[AuditEntry]:
        """Everything recorded for one command, in order."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM audit_log WHERE idempotency_key = ? ORDER BY id",
            (idempotency_key,),
        )
        return [_entry(row) for row in rows]
