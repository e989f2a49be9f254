"""Balance snapshots: one row per snapshot; the latest one is the account's balance."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from storage import codec

if TYPE_CHECKING:
    from storage.database import Database


@dataclass(frozen=True, slots=True)
class BalanceSnapshot:
    environment: str
    account_number: str
    net_liquidating_value: Decimal
    cash_balance: Decimal
    equity_buying_power: Decimal
    derivative_buying_power: Decimal
    day_trading_buying_power: Decimal | None = None
    maintenance_requirement: Decimal | None = None
    pending_cash: Decimal | None = None
    broker_updated_at: datetime | None = None
    taken_at: datetime | None = None  # set by the repository when None


_COLUMNS: Final = (
    "environment, account_number, net_liquidating_value, cash_balance, equity_buying_power, "
    "derivative_buying_power, day_trading_buying_power, maintenance_requirement, "
    "pending_cash, broker_updated_at, taken_at"
)


def _from_row(row: sqlite3.Row) -> BalanceSnapshot:
    return BalanceSnapshot(
        environment=row[0],
        account_number=row[1],
        net_liquidating_value=Decimal(row[2]),
        cash_balance=Decimal(row[3]),
        equity_buying_power=Decimal(row[4]),
        derivative_buying_power=Decimal(row[5]),
        day_trading_buying_power=codec.to_dec_opt(row[6]),
        maintenance_requirement=codec.to_dec_opt(row[7]),
        pending_cash=codec.to_dec_opt(row[8]),
        broker_updated_at=codec.from_ts_opt(row[9]),
        taken_at=codec.from_ts(row[10]),
    )


class BalancesRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_snapshot(self, snapshot: BalanceSnapshot) -> BalanceSnapshot:
        """Record a snapshot (stamped now unless `taken_at` is given) and return it."""
        taken_at = snapshot.taken_at or self._db.clock()
        snapshot_id = await self._db.insert(
            f"INSERT INTO balance_snapshots ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                codec.environment(snapshot.environment),
                snapshot.account_number,
                codec.dec(snapshot.net_liquidating_value, "net_liquidating_value"),
                codec.dec(snapshot.cash_balance, "cash_balance"),
                codec.dec(snapshot.equity_buying_power, "equity_buying_power"),
                codec.dec(snapshot.derivative_buying_power, "derivative_buying_power"),
                codec.dec_opt(snapshot.day_trading_buying_power, "day_trading_buying_power"),
                codec.dec_opt(snapshot.maintenance_requirement, "maintenance_requirement"),
                codec.dec_opt(snapshot.pending_cash, "pending_cash"),
                codec.ts_opt(snapshot.broker_updated_at, "broker_updated_at"),
                codec.ts(taken_at, "taken_at"),
            ),
        )
        row = await self._db.fetch_one(
            f"SELECT {_COLUMNS} FROM balance_snapshots WHERE id = ?", (snapshot_id,)
        )
        assert row is not None  # just written
        return _from_row(row)

    async def latest(self, environment: str, account_number: str) -> BalanceSnapshot | None:
        row = await self._db.fetch_one(
            f"SELECT {_COLUMNS} FROM balance_snapshots WHERE environment = ? "
            "AND account_number = ? ORDER BY taken_at DESC, id DESC LIMIT 1",
            (codec.environment(environment), account_number),
        )
        return None if row is None else _from_row(row)

    async def history(
        self, environment: str, account_number: str, limit: int = 30
    ) -> list[BalanceSnapshot]:
        """Recent snapshots, newest first."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM balance_snapshots WHERE environment = ? "
            "AND account_number = ? ORDER BY taken_at DESC, id DESC LIMIT ?",
            (codec.environment(environment), account_number, limit),
        )
        return [_from_row(row) for row in rows]
