"""Broker accounts known to the bot, keyed on (environment, account number).

An account row must exist before its positions, orders, transactions, balances or
watermarks are written (foreign keys); the sync stores accounts first.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final

from storage import codec
from storage.errors import InvalidValueError, NotFoundError

if TYPE_CHECKING:
    from storage.database import Database


@dataclass(frozen=True, slots=True)
class Account:
    environment: str
    account_number: str
    guild_id: int | None = None
    nickname: str | None = None
    account_type: str | None = None
    margin_or_cash: str | None = None
    needs_relink: bool = False
    last_synced_at: datetime | None = None


_COLUMNS: Final = (
    "environment, account_number, guild_id, nickname, account_type, margin_or_cash, "
    "needs_relink, last_synced_at"
)


def _from_row(row: sqlite3.Row) -> Account:
    return Account(
        environment=row["environment"],
        account_number=row["account_number"],
        guild_id=row["guild_id"],
        nickname=row["nickname"],
        account_type=row["account_type"],
        margin_or_cash=row["margin_or_cash"],
        needs_relink=bool(row["needs_relink"]),
        last_synced_at=codec.from_ts_opt(row["last_synced_at"]),
    )


class AccountsRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def upsert_many(self, accounts: Sequence[Account]) -> None:
        """Insert or refresh accounts. A missing guild link or sync time keeps the stored one."""
        now = codec.ts(self._db.clock(), "now")
        rows = []
        for account in accounts:
            if not account.account_number:
                raise InvalidValueError("account number must not be empty")
            rows.append(
                (
                    codec.environment(account.environment),
                    account.account_number,
                    account.guild_id,
                    account.nickname,
                    account.account_type,
                    account.margin_or_cash,
                    codec.flag(account.needs_relink),
                    codec.ts_opt(account.last_synced_at, "last_synced_at"),
                    now,
                    now,
                )
            )
        async with self._db.transaction():
            await self._db.execute_many(
                f"INSERT INTO accounts ({_COLUMNS}, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (environment, account_number) DO UPDATE SET "
                "guild_id = COALESCE(excluded.guild_id, accounts.guild_id), "
                "nickname = excluded.nickname, account_type = excluded.account_type, "
                "margin_or_cash = excluded.margin_or_cash, "
                "needs_relink = excluded.needs_relink, "
                "last_synced_at = COALESCE(excluded.last_synced_at, accounts.last_synced_at), "
                "updated_at = excluded.updated_at",
                rows,
            )

    async def upsert(self, account: Account) -> Account:
        await self.upsert_many([account])
        return await self.require(account.environment, account.account_number)

    async def get(self, environment: str, account_number: str) -> Account | None:
        row = await self._db.fetch_one(
            f"SELECT {_COLUMNS} FROM accounts WHERE environment = ? AND account_number = ?",
            (codec.environment(environment), account_number),
        )
        return None if row is None else _from_row(row)

    async def require(self, environment: str, account_number: str) -> Account:
        account = await self.get(environment, account_number)
        if account is None:
            raise NotFoundError(f"no {environment} account {account_number} is stored")
        return account

    async def for_guild(self, guild_id: int, environment: str | None = None) -> list[Account]:
        if environment is None:
            rows = await self._db.fetch_all(
                f"SELECT {_COLUMNS} FROM accounts WHERE guild_id = ? "
                "ORDER BY environment, account_number",
                (guild_id,),
            )
        else:
            rows = await self._db.fetch_all(
                f"SELECT {_COLUMNS} FROM accounts WHERE guild_id = ? AND environment = ? "
                "ORDER BY account_number",
                (guild_id, codec.environment(environment)),
            )
        return [_from_row(row) for row in rows]

    async def mark_synced(self, environment: str, account_number: str, at: datetime) -> None:
        await self._set(environment, account_number, "last_synced_at", codec.ts(at, "at"))

    async def mark_needs_relink(
        self, environment: str, account_number: str, needs_relink: bool = True
    ) -> None:
        await self._set(environment, account_number, "needs_relink", codec.flag(needs_relink))

    async def _set(self, environment: str, account_number: str, column: str, value: object) -> None:
        changed = await self._db.execute(
            f"UPDATE accounts SET {column} = ?, updated_at = ? "
            "WHERE environment = ? AND account_number = ?",
            (
                value,
                codec.ts(self._db.clock(), "now"),
                codec.environment(environment),
                account_number,
            ),
        )
        if changed == 0:
            raise NotFoundError(f"no {environment} account {account_number} is stored")
