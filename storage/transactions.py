"""Account transactions (trades, fees, money movements), keyed on the broker's id.

`upsert_page` (records) or `upsert_rows` (rows from `transaction_row`, the sync's hot
path) writes a page in one transaction with one multi-row INSERT: a later version of a
transaction (e.g. final instead of estimated fees) replaces the stored one, re-running a
page never duplicates a row. Amounts are signed as the SDK models them (a debit is
negative).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Final, NewType

from storage import codec
from storage.bulk import RowsInsert

if TYPE_CHECKING:
    from storage.database import Database


@dataclass(frozen=True, slots=True)
class Transaction:
    environment: str
    transaction_id: int
    account_number: str
    transaction_type: str
    transaction_sub_type: str
    description: str
    executed_at: datetime
    transaction_date: date
    value: Decimal
    net_value: Decimal
    fees: Decimal = Decimal(0)  # total of commission, clearing, regulatory... (signed)
    is_estimated_fee: bool = False
    symbol: str | None = None
    instrument_type: str | None = None
    underlying_symbol: str | None = None
    action: str | None = None
    quantity: Decimal | None = None
    price: Decimal | None = None
    order_id: int | None = None


_COLUMNS: Final = (
    "environment, transaction_id, account_number, transaction_type, transaction_sub_type, "
    "description, executed_at, transaction_date, value, net_value, fees, is_estimated_fee, "
    "symbol, instrument_type, underlying_symbol, action, quantity, price, order_id"
)
_UPDATED: Final = (
    "account_number",
    "transaction_type",
    "transaction_sub_type",
    "description",
    "executed_at",
    "transaction_date",
    "value",
    "net_value",
    "fees",
    "is_estimated_fee",
    "symbol",
    "instrument_type",
    "underlying_symbol",
    "action",
    "quantity",
    "price",
    "order_id",
)
_UPSERT: Final = RowsInsert(
    f"INSERT INTO transactions ({_COLUMNS}) VALUES",
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "ON CONFLICT (environment, transaction_id) DO UPDATE SET "
    + ", ".join(f"{column} = excluded.{column}" for column in _UPDATED),
)


#: A transaction in its stored form, made only by `transaction_row` (validated, encoded).
TransactionRow = NewType("TransactionRow", tuple[object, ...])


def transaction_row(
    environment: str,
    transaction_id: int,
    account_number: str,
    transaction_type: str,
    transaction_sub_type: str,
    description: str,
    executed_at: datetime,
    transaction_date: date,
    value: Decimal,
    net_value: Decimal,
    fees: Decimal,
    is_estimated_fee: bool,
    symbol: str | None,
    instrument_type: str | None,
    underlying_symbol: str | None,
    action: str | None,
    quantity: Decimal | None,
    price: Decimal | None,
    order_id: int | None,
) -> TransactionRow:
    """`Transaction`'s fields (same order and checks) straight to the stored form.

    For page writes (`upsert_rows`): a sync of 100,000 transactions would otherwise build
    as many frozen records just to read them back here (a third of its mapping time).
    """
    dec, dec_opt = codec.dec, codec.dec_opt
    return TransactionRow(
        (
            codec.environment(environment),
            transaction_id,
            account_number,
            transaction_type,
            transaction_sub_type,
            description,
            codec.ts(executed_at, "executed_at"),
            codec.day(transaction_date, "transaction_date"),
            dec(value, "value"),
            dec(net_value, "net_value"),
            dec(fees, "fees"),
            1 if is_estimated_fee else 0,
            symbol,
            instrument_type,
            underlying_symbol,
            action,
            dec_opt(quantity, "quantity"),
            dec_opt(price, "price"),
            order_id,
        )
    )


def _row(tx: Transaction) -> TransactionRow:
    return transaction_row(
        tx.environment,
        tx.transaction_id,
        tx.account_number,
        tx.transaction_type,
        tx.transaction_sub_type,
        tx.description,
        tx.executed_at,
        tx.transaction_date,
        tx.value,
        tx.net_value,
        tx.fees,
        tx.is_estimated_fee,
        tx.symbol,
        tx.instrument_type,
        tx.underlying_symbol,
        tx.action,
        tx.quantity,
        tx.price,
        tx.order_id,
    )


def _from_row(row: sqlite3.Row) -> Transaction:
    return Transaction(
        environment=row[0],
        transaction_id=row[1],
        account_number=row[2],
        transaction_type=row[3],
        transaction_sub_type=row[4],
        description=row[5],
        executed_at=codec.from_ts(row[6]),
        transaction_date=codec.from_day(row[7]),
        value=Decimal(row[8]),
        net_value=Decimal(row[9]),
        fees=Decimal(row[10]),
        is_estimated_fee=bool(row[11]),
        symbol=row[12],
        instrument_type=row[13],
        underlying_symbol=row[14],
        action=row[15],
        quantity=codec.to_dec_opt(row[16]),
        price=codec.to_dec_opt(row[17]),
        order_id=row[18],
    )


class TransactionsRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def upsert_page(self, transactions: Sequence[Transaction]) -> int:
        """Store a page in one transaction (one multi-row upsert); return the page size."""
        return await self.upsert_rows([_row(tx) for tx in transactions])

    async def upsert_rows(self, rows: Sequence[TransactionRow]) -> int:
        """`upsert_page` for rows made with `transaction_row`; return how many."""
        if rows:
            async with self._db.atomic():
                await self._db.insert_rows(_UPSERT, rows)
        return len(rows)

    async def recent(
        self,
        environment: str,
        account_number: str,
        limit: int = 20,
        *,
        symbol: str | None = None,
    ) -> list[Transaction]:
        """Newest first; optionally only one underlying or symbol."""
        env = codec.environment(environment)
        if symbol is None:
            rows = await self._db.fetch_all(
                f"SELECT {_COLUMNS} FROM transactions WHERE environment = ? "
                "AND account_number = ? ORDER BY executed_at DESC, transaction_id DESC LIMIT ?",
                (env, account_number, limit),
            )
        else:
            rows = await self._db.fetch_all(
                f"SELECT {_COLUMNS} FROM transactions WHERE environment = ? "
                "AND account_number = ? AND (underlying_symbol = ? OR symbol = ?) "
                "ORDER BY executed_at DESC, transaction_id DESC LIMIT ?",
                (env, account_number, symbol, symbol, limit),
            )
        return [_from_row(row) for row in rows]

    async def for_order(self, environment: str, order_id: int) -> list[Transaction]:
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM transactions WHERE environment = ? AND order_id = ? "
            "ORDER BY executed_at, transaction_id",
            (codec.environment(environment), order_id),
        )
        return [_from_row(row) for row in rows]

    async def count(self, environment: str, account_number: str) -> int:
        row = await self._db.fetch_one(
            "SELECT COUNT(*) FROM transactions WHERE environment = ? AND account_number = ?",
            (codec.environment(environment), account_number),
        )
        return 0 if row is None else int(row[0])
