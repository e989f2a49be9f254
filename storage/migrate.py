"""Versioned schema migrations.

Migrations are the ordered files ``storage/migrations/NNNN_<name>.sql``; the database's
``PRAGMA user_version`` records the last one applied. At open, every newer file runs in
its own transaction together with the version bump, so a failing migration leaves the
database exactly at the previous version. A database newer than this code is refused
rather than guessed at. Migrations must not toggle ``PRAGMA foreign_keys`` (it is a no-op
inside a transaction); a table rebuild must copy rows without violating foreign keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import aiosqlite

from storage.errors import StorageError

_FILE_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(directory: Path | None = None) -> tuple[Migration, ...]:
    """Read and validate the migration files (numbered 1, 2, 3... without gaps)."""
    root = resources.files("storage").joinpath("migrations") if directory is None else directory
    found: list[Migration] = []
    for entry in root.iterdir():
        match = _FILE_NAME.fullmatch(entry.name)
        if match is None:
            continue
        found.append(Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda migration: migration.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise StorageError(
                f"migration files must be numbered 0001, 0002... without gaps or duplicates; "
                f"expected {expected:04d}, found {migration.version:04d}_{migration.name}.sql"
            )
    return tuple(found)


async def schema_version(conn: aiosqlite.Connection) -> int:
    async with conn.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row is not None else 0


async def apply_migrations(
    conn: aiosqlite.Connection,
    migrations: tuple[Migration, ...],
    target_version: int | None = None,
) -> int:
    """Bring the schema up to `target_version` (default: latest); return the final version."""
    latest = migrations[-1].version if migrations else 0
    target = latest if target_version is None else target_version
    if not 0 <= target <= latest:
        raise StorageError(f"target schema version {target} is outside 0..{latest}")
    current = await schema_version(conn)
    if current > latest:
        raise StorageError(
            f"the database is at schema version {current}, newer than this code "
            f"understands ({latest}); upgrade tt-bot instead of opening it with an old build"
        )
    for migration in migrations:
        if current < migration.version <= target:
            await _apply_one(conn, migration)
            current = migration.version
    return current


async def _apply_one(conn: aiosqlite.Connection, migration: Migration) -> None:
    # executescript commits any open transaction first, so the BEGIN/COMMIT live inside
    # the script: the DDL and the version bump commit together or not at all.
    script = (
        f"BEGIN IMMEDIATE;\n{migration.sql}\n;\nPRAGMA user_version = {migration.version};\nCOMMIT;"
    )
    try:
        await conn.executescript(script)
    except Exception as exc:
        if conn.in_transaction:
            await conn.rollback()
        raise StorageError(
            f"schema migration {migration.version:04d}_{migration.name} failed and was rolled "
            f"back: {exc}"
        ) from exc
