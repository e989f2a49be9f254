"""Fixtures: a real database file per test (tmp_path), with an encryption key."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage import Account, Database, Keyring, generate_key_entry

ACCOUNT = "5WT00001"


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.from_config(generate_key_entry("k1"))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "tt-bot.sqlite3"


@pytest.fixture
async def db(db_path: Path, keyring: Keyring) -> AsyncIterator[Database]:
    database = await Database.open(db_path, keyring=keyring)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def account_db(db: Database) -> Database:
    """A database with guild 1 and paper account 5WT00001 stored."""
    await db.guilds.get_or_create(1, "paper")
    await db.accounts.upsert(Account("paper", ACCOUNT, guild_id=1))
    return db
