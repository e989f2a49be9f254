"""Positions: a full snapshot per account, plus the grouped-by-underlying query.

`replace_for_account` makes the new snapshot the account's rows in one transaction, so a
closed position disappears and readers never see half a snapshot. A snapshot mostly equal
to the one this handle last committed is applied as a difference (changed rows upserted,
closed ones deleted, every row's snapshot time moved), which makes a repeated sync of an
unchanged account cost one UPDATE instead of a rewrite (positions compare by value: a
mark sent as 1.10 after 1.1 keeps the stored text).
Quantities are stored as the broker reports them (a magnitude plus Long/Short); prices
are per unit. Unrealized P&L needs a stored mark:
``(mark - average open) * quantity * multiplier``, negated for shorts.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from itertools import groupby
from typing import TYPE_CHECKING, Final

from storage import codec
from storage.bulk import RowsInsert
from storage.errors import InvalidValueError

if TYPE_CHECKING:
    from storage.database import Database

_DIRECTIONS: Final = ("Long", "Short", "Zero")


@dataclass(frozen=True, slots=True)
class Position:
    environment: str
    account_number: str
    symbol: str
    instrument_type: str
    underlying_symbol: str
    quantity: Decimal  # magnitude; see quantity_direction
    quantity_direction: str  # Long | Short | Zero
    average_open_price: Decimal
    multiplier: Decimal
    close_price: Decimal | None = None
    mark_price: Decimal | None = None
    cost_effect: str | None = None
    realized_day_gain: Decimal | None = None
    expires_at: datetime | None = None
    broker_updated_at: datetime | None = None

    @property
    def signed_quantity(self) -> Decimal:
        return -self.quantity if self.quantity_direction == "Short" else self.quantity

    @property
    def unrealized_pnl(self) -> Decimal | None:
        if self.mark_price is None:
            return None
        return (self.mark_price - self.average_open_price) * self.signed_quantity * self.multiplier

    @property
    def market_value(self) -> Decimal | None:
        if self.mark_price is None:
            return None
        return self.mark_price * self.signed_quantity * self.multiplier


@dataclass(frozen=True, slots=True)
class UnderlyingGroup:
    """Positions sharing an underlying, with totals where every position has a mark."""

    underlying_symbol: str
    positions: tuple[Position, ...]

    @property
    def unrealized_pnl(self) -> Decimal | None:
        """Sum of the positions' P&L; None when any position has no stored mark."""
        total = Decimal(0)
        for position in self.positions:
            pnl = position.unrealized_pnl
            if pnl is None:
                return None
            total += pnl
        return total

    @property
    def market_value(self) -> Decimal | None:
        total = Decimal(0)
        for position in self.positions:
            value = position.market_value
            if value is None:
                return None
            total += value
        return total


_COLUMNS: Final = (
    "symbol, instrument_type, underlying_symbol, quantity, quantity_direction, "
    "average_open_price, multiplier, close_price, mark_price, cost_effect, "
    "realized_day_gain, expires_at, broker_updated_at"
)
_INSERT: Final = RowsInsert(
    f"INSERT INTO positions (environment, account_number, {_COLUMNS}, snapshot_at) VALUES",
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
)
_UPSERT: Final = RowsInsert(
    _INSERT.head,
    _INSERT.row,
    "ON CONFLICT (environment, account_number, underlying_symbol, symbol) DO UPDATE SET "
    + ", ".join(
        f"{column} = excluded.{column}"
        for column in (*_COLUMNS.split(", "), "snapshot_at")
        if column not in ("symbol", "underlying_symbol")
    ),
)
_DELETE_ONE: Final = (
    "DELETE FROM positions WHERE environment = ? AND account_number = ? "
    "AND underlying_symbol = ? AND symbol = ?"
)
# Above this share of changed or closed positions, a whole rewrite is cheaper than a diff.
_DIFF_SHARE: Final = 0.5

Key = tuple[str, str]  # (underlying symbol, symbol): the table's key within an account


def _row(position: Position, env: str, account: str, now: str) -> tuple[object, ...]:
    if position.environment != env or position.account_number != account:
        raise InvalidValueError(
            f"position {position.symbol} belongs to {position.environment}/"
            f"{position.account_number}, not {env}/{account}"
        )
    if position.quantity_direction not in _DIRECTIONS:
        raise InvalidValueError(
            f"position {position.symbol}: quantity direction must be Long, Short or Zero"
        )
    return (
        env,
        account,
        position.symbol,
        position.instrument_type,
        position.underlying_symbol,
        codec.non_negative(position.quantity, "quantity"),
        position.quantity_direction,
        codec.dec(position.average_open_price, "average_open_price"),
        codec.dec(position.multiplier, "multiplier"),
        codec.dec_opt(position.close_price, "close_price"),
        codec.dec_opt(position.mark_price, "mark_price"),
        position.cost_effect,
        codec.dec_opt(position.realized_day_gain, "realized_day_gain"),
        codec.ts_opt(position.expires_at, "expires_at"),
        codec.ts_opt(position.broker_updated_at, "broker_updated_at"),
        now,
    )


def _from_row(row: sqlite3.Row, env: str, account: str) -> Position:
    # Hot path (1,000 rows per positions reply): positional args, inlined conversions.
    return Position(
        env,
        account,
        row[0],
        row[1],
        row[2],
        Decimal(row[3]),
        row[4],
        Decimal(row[5]),
        Decimal(row[6]),
        None if row[7] is None else Decimal(row[7]),
        None if row[8] is None else Decimal(row[8]),
        row[9],
        None if row[10] is None else Decimal(row[10]),
        None if row[11] is None else datetime.fromisoformat(row[11]),
        None if row[12] is None else datetime.fromisoformat(row[12]),
    )


class PositionsRepository:
    def __init__(self, db: Database) -> None:
        self._db = db
        # The snapshot each account last got through this handle, recorded on commit only
        # (and dropped while a write is in flight): the base a new snapshot is diffed with.
        self._committed: dict[tuple[str, str], dict[Key, Position]] = {}

    async def replace_for_account(
        self, environment: str, account_number: str, positions: Sequence[Position]
    ) -> int:
        """Make `positions` the account's complete snapshot; return how many are stored."""
        env = codec.environment(environment)
        now = codec.ts(self._db.clock(), "now")
        account = (env, account_number)
        snapshot = {(p.underlying_symbol, p.symbol): p for p in positions}
        async with self._db.atomic():
            # Read under the lock: every write of positions through this handle is serialised.
            previous = self._committed.pop(account, None)
            if (
                previous is None
                or len(snapshot) != len(positions)  # repeated keys: let the insert refuse them
                or not await self._apply_difference(env, account_number, now, snapshot, previous)
            ):
                await self._rewrite(env, account_number, now, positions)
            self._db.after_commit(lambda: self._committed.__setitem__(account, snapshot))
        return len(positions)

    async def _rewrite(
        self, env: str, account_number: str, now: str, positions: Sequence[Position]
    ) -> None:
        rows = [_row(position, env, account_number, now) for position in positions]
        await self._db.execute(
            "DELETE FROM positions WHERE environment = ? AND account_number = ?",
            (env, account_number),
        )
        await self._db.insert_rows(_INSERT, rows)

    async def _apply_difference(
        self,
        env: str,
        account_number: str,
        now: str,
        snapshot: dict[Key, Position],
        previous: dict[Key, Position],
    ) -> bool:
        """Turn the stored `previous` snapshot into `snapshot`. False when a rewrite is
        needed instead: too much changed, or the table did not hold `previous` (the row
        count after the update tells; the caller's rewrite then replaces everything)."""
        changed = [p for key, p in snapshot.items() if previous.get(key) != p]
        closed = [key for key in previous if key not in snapshot]
        if len(changed) + len(closed) > len(snapshot) * _DIFF_SHARE:
            return False
        rows = [_row(position, env, account_number, now) for position in changed]
        if closed:
            await self._db.execute_many(
                _DELETE_ONE, [(env, account_number, *key) for key in closed]
            )
        await self._db.insert_rows(_UPSERT, rows)
        touched = await self._db.execute(
            "UPDATE positions SET snapshot_at = ? WHERE environment = ? AND account_number = ?",
            (now, env, account_number),
        )
        return touched == len(snapshot)

    async def for_account(self, environment: str, account_number: str) -> list[Position]:
        """The stored snapshot, ordered by underlying then symbol."""
        env = codec.environment(environment)
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM positions WHERE environment = ? AND account_number = ? "
            "ORDER BY underlying_symbol, symbol",
            (env, account_number),
        )
        return [_from_row(row, env, account_number) for row in rows]

    async def by_underlying(self, environment: str, account_number: str) -> list[UnderlyingGroup]:
        """Positions grouped by underlying (alphabetical), for the positions reply."""
        positions = await self.for_account(environment, account_number)
        return [
            UnderlyingGroup(underlying, tuple(group))
            for underlying, group in groupby(positions, key=lambda p: p.underlying_symbol)
        ]

    async def snapshot_time(self, environment: str, account_number: str) -> datetime | None:
        """When the stored snapshot was written (None: never synced or empty)."""
        row = await self._db.fetch_one(
            "SELECT MAX(snapshot_at) FROM positions WHERE environment = ? AND account_number = ?",
            (codec.environment(environment), account_number),
        )
        return None if row is None else codec.from_ts_opt(row[0])
