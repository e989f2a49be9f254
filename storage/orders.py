"""Orders with their legs, fills and replace chain.

- Keyed on (environment, broker order id): re-running a page never duplicates a row.
- **Newest wins**: an incoming version replaces the stored one only if its ``updated_at`` is
  later, or equal with a status at least as final (terminal beats working) and at least
  as much filled. An older version never overwrites a newer one, whatever the arrival
  order (REST page vs streamer message).
- **Replace chain**: Tastytrade gives every replacement a new id. ``replaces_order_id``
  (on the new order) and ``replaced_by_order_id`` (on the old one) are merged, never
  dropped: a version without a link keeps the stored link, a link seen on either side is
  copied to the other when both orders are stored, and `chain()` walks both columns.
- Prices are stored as magnitudes with ``price_effect`` (Debit/Credit) carrying the sign;
  `split_signed_price` converts the SDK's signed price (debit < 0).
- Fills are immutable and keyed on the broker's fill id.

A page is written in one transaction with one multi-row statement per table (several
when a page holds more rows than one statement takes).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from storage import codec
from storage.bulk import RowsInsert
from storage.errors import InvalidValueError

if TYPE_CHECKING:
    from storage.database import Database

TERMINAL_STATUSES: Final = frozenset(
    {"Filled", "Cancelled", "Expired", "Rejected", "Removed", "Partially Removed"}
)
OPEN_STATUSES: Final = (
    "Received",
    "Routed",
    "In Flight",
    "Live",
    "Contingent",
    "Cancel Requested",
    "Replace Requested",
)
_MAX_CHAIN: Final = 100


def split_signed_price(signed: Decimal | None) -> tuple[Decimal | None, str | None]:
    """SDK signed price (debit < 0) -> (magnitude, price effect)."""
    if signed is None:
        return None, None
    if signed < 0:
        return -signed, "Debit"
    if signed > 0:
        return signed, "Credit"
    return signed, None


@dataclass(frozen=True, slots=True)
class OrderFill:
    fill_id: str
    quantity: Decimal
    fill_price: Decimal
    filled_at: datetime
    destination_venue: str | None = None


@dataclass(frozen=True, slots=True)
class OrderLeg:
    symbol: str
    instrument_type: str
    action: str
    quantity: Decimal | None = None
    remaining_quantity: Decimal | None = None
    fills: tuple[OrderFill, ...] = ()


@dataclass(frozen=True, slots=True)
class Order:
    environment: str
    order_id: int
    account_number: str
    status: str
    order_type: str
    time_in_force: str
    updated_at: datetime
    underlying_symbol: str | None = None
    underlying_instrument_type: str | None = None
    size: Decimal | None = None
    price: Decimal | None = None  # magnitude; the sign is price_effect
    price_effect: str | None = None  # Debit | Credit | None
    stop_trigger: Decimal | None = None
    filled_quantity: Decimal = Decimal(0)
    received_at: datetime | None = None
    terminal_at: datetime | None = None
    replaces_order_id: int | None = None
    replaced_by_order_id: int | None = None
    external_identifier: str | None = None
    legs: tuple[OrderLeg, ...] = ()
    raw_json: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def signed_price(self) -> Decimal | None:
        """The SDK convention: debit negative, credit positive."""
        if self.price is None:
            return None
        return -self.price if self.price_effect == "Debit" else self.price


_ORDER_COLUMNS: Final = (
    "environment, order_id, account_number, status, order_type, time_in_force, "
    "underlying_symbol, underlying_instrument_type, size, price, price_effect, stop_trigger, "
    "filled_quantity, received_at, terminal_at, updated_at, replaces_order_id, "
    "replaced_by_order_id, external_identifier, raw_json"
)
_DATA_COLUMNS: Final = (
    "account_number",
    "status",
    "order_type",
    "time_in_force",
    "underlying_symbol",
    "underlying_instrument_type",
    "size",
    "price",
    "price_effect",
    "stop_trigger",
    "filled_quantity",
    "received_at",
    "terminal_at",
    "updated_at",
    "raw_json",
    "synced_at",
)


def _rank(table: str) -> str:
    statuses = ", ".join(f"'{status}'" for status in sorted(TERMINAL_STATUSES))
    return f"(CASE WHEN {table}.status IN ({statuses}) THEN 1 ELSE 0 END)"


_INCOMING_IS_NEWER: Final = (
    "(excluded.updated_at > orders.updated_at OR (excluded.updated_at = orders.updated_at AND ("
    f"{_rank('excluded')} > {_rank('orders')} OR ({_rank('excluded')} = {_rank('orders')} AND "
    "CAST(excluded.filled_quantity AS REAL) >= CAST(orders.filled_quantity AS REAL)))))"
)
# A new row picks up a link already recorded on the other side of the chain. The rows are
# a VALUES table selected from, so the link lookups appear once in the statement instead
# of once per row (compiling a thousand rows' subqueries cost more than running them).
# "WHERE true" keeps ON CONFLICT from being read as a join constraint.
_UPSERT_ORDER: Final = RowsInsert(
    f"INSERT INTO orders ({_ORDER_COLUMNS}, synced_at) SELECT "
    + ", ".join(f"v.column{i}" for i in range(1, 17))
    + ", COALESCE(v.column17, (SELECT o.order_id FROM orders o "
    "WHERE o.environment = v.column1 AND o.replaced_by_order_id = v.column2)), "
    "COALESCE(v.column18, (SELECT o.order_id FROM orders o "
    "WHERE o.environment = v.column1 AND o.replaces_order_id = v.column2)), "
    "v.column19, v.column20, v.column21 FROM (VALUES",
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    ") AS v WHERE true ON CONFLICT (environment, order_id) DO UPDATE SET "
    + ", ".join(f"{column} = excluded.{column}" for column in _DATA_COLUMNS)
    + ", replaces_order_id = COALESCE(excluded.replaces_order_id, orders.replaces_order_id)"
    ", replaced_by_order_id = "
    "COALESCE(excluded.replaced_by_order_id, orders.replaced_by_order_id)"
    ", external_identifier = COALESCE(excluded.external_identifier, orders.external_identifier)"
    f" WHERE {_INCOMING_IS_NEWER}",
)
_UPSERT_LEG: Final = RowsInsert(
    "INSERT INTO order_legs (environment, order_id, leg_index, symbol, instrument_type, action, "
    "quantity, remaining_quantity, order_updated_at) VALUES",
    "(?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "ON CONFLICT (environment, order_id, leg_index) DO UPDATE SET "
    "symbol = excluded.symbol, instrument_type = excluded.instrument_type, "
    "action = excluded.action, quantity = excluded.quantity, "
    "remaining_quantity = CASE "
    "WHEN excluded.order_updated_at > order_legs.order_updated_at "
    "OR order_legs.remaining_quantity IS NULL "
    "OR CAST(excluded.remaining_quantity AS REAL) < CAST(order_legs.remaining_quantity AS REAL) "
    "THEN excluded.remaining_quantity ELSE order_legs.remaining_quantity END, "
    "order_updated_at = excluded.order_updated_at "
    "WHERE excluded.order_updated_at >= order_legs.order_updated_at",
)
_INSERT_FILL: Final = RowsInsert(
    "INSERT INTO order_fills (environment, fill_id, order_id, leg_index, quantity, fill_price, "
    "filled_at, destination_venue) VALUES",
    "(?, ?, ?, ?, ?, ?, ?, ?)",
    "ON CONFLICT (environment, fill_id) DO NOTHING",
)
# Both sides of one replace link (old -> new) in one statement; existing links are kept.
_LINK: Final = (
    "UPDATE orders SET "
    "replaced_by_order_id = CASE WHEN order_id = ?2 "
    "THEN COALESCE(replaced_by_order_id, ?3) ELSE replaced_by_order_id END, "
    "replaces_order_id = CASE WHEN order_id = ?3 "
    "THEN COALESCE(replaces_order_id, ?2) ELSE replaces_order_id END "
    "WHERE environment = ?1 AND order_id IN (?2, ?3)"
)
_SELECT_ORDER: Final = f"SELECT {_ORDER_COLUMNS} FROM orders"


def _order_params(order: Order, now: str) -> tuple[object, ...]:
    env = codec.environment(order.environment)
    if order.price_effect is not None and order.price_effect not in codec.PRICE_EFFECTS:
        raise InvalidValueError(
            f"order {order.order_id}: price effect must be Debit, Credit or None, "
            f"got {order.price_effect!r}"
        )
    if order.price is not None and order.price > 0 and order.price_effect in (None, "None"):
        raise InvalidValueError(
            f"order {order.order_id}: a non-zero price needs price_effect Debit or Credit"
        )
    return (
        env,
        order.order_id,
        order.account_number,
        order.status,
        order.order_type,
        order.time_in_force,
        order.underlying_symbol,
        order.underlying_instrument_type,
        codec.dec_opt(order.size, "size"),
        codec.non_negative_opt(order.price, "price"),
        order.price_effect,
        codec.dec_opt(order.stop_trigger, "stop_trigger"),
        codec.dec(order.filled_quantity, "filled_quantity"),
        codec.ts_opt(order.received_at, "received_at"),
        codec.ts_opt(order.terminal_at, "terminal_at"),
        codec.ts(order.updated_at, "updated_at"),
        order.replaces_order_id,
        order.replaced_by_order_id,
        order.external_identifier,
        order.raw_json,
        now,
    )


def _leg_rows(order: Order, env: str, updated_at: str) -> list[tuple[object, ...]]:
    return [
        (
            env,
            order.order_id,
            index,
            leg.symbol,
            leg.instrument_type,
            leg.action,
            codec.dec_opt(leg.quantity, "leg quantity"),
            codec.dec_opt(leg.remaining_quantity, "leg remaining_quantity"),
            updated_at,
        )
        for index, leg in enumerate(order.legs)
    ]


def _fill_rows(order: Order, env: str) -> list[tuple[object, ...]]:
    return [
        (
            env,
            fill.fill_id,
            order.order_id,
            index,
            codec.dec(fill.quantity, "fill quantity"),
            codec.dec(fill.fill_price, "fill_price"),
            codec.ts(fill.filled_at, "filled_at"),
            fill.destination_venue,
        )
        for index, leg in enumerate(order.legs)
        for fill in leg.fills
    ]


class OrdersRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def upsert_many(self, orders: Sequence[Order]) -> int:
        """Store a page of orders (with legs and fills) in one transaction; return its size."""
        if not orders:
            return 0
        now = codec.ts(self._db.clock(), "now")
        order_rows = [_order_params(order, now) for order in orders]
        leg_rows: list[tuple[object, ...]] = []
        fill_rows: list[tuple[object, ...]] = []
        links: list[tuple[str, int, int]] = []  # (environment, old id, new id)
        for order, params in zip(orders, order_rows, strict=True):
            env = str(params[0])
            if order.legs:
                leg_rows += _leg_rows(order, env, str(params[15]))
                fill_rows += _fill_rows(order, env)
            if order.replaces_order_id is not None:
                links.append((env, order.replaces_order_id, order.order_id))
            if order.replaced_by_order_id is not None:
                links.append((env, order.order_id, order.replaced_by_order_id))
        async with self._db.atomic():
            await self._db.insert_rows(_UPSERT_ORDER, order_rows)
            if leg_rows:
                await self._db.insert_rows(_UPSERT_LEG, leg_rows)
            if fill_rows:
                await self._db.insert_rows(_INSERT_FILL, fill_rows)
            if links:
                await self._db.execute_many(_LINK, links)
        return len(order_rows)

    async def upsert(self, order: Order) -> Order:
        """Store one order (e.g. from the account streamer) and return the stored version."""
        await self.upsert_many([order])
        stored = await self.get(order.environment, order.order_id)
        assert stored is not None  # just written
        return stored

    async def get(self, environment: str, order_id: int) -> Order | None:
        env = codec.environment(environment)
        rows = await self._db.fetch_all(
            f"{_SELECT_ORDER} WHERE environment = ? AND order_id = ?", (env, order_id)
        )
        orders = await self._with_legs(env, rows)
        return orders[0] if orders else None

    async def by_external_identifier(
        self, environment: str, external_identifier: str
    ) -> list[Order]:
        """Orders carrying our external identifier (used to reconcile after a timeout)."""
        env = codec.environment(environment)
        rows = await self._db.fetch_all(
            f"{_SELECT_ORDER} WHERE environment = ? AND external_identifier = ? "
            "ORDER BY updated_at, order_id",
            (env, external_identifier),
        )
        return await self._with_legs(env, rows)

    async def open_for_account(self, environment: str, account_number: str) -> list[Order]:
        """Working orders (not filled, cancelled, expired, rejected or removed), oldest first."""
        env = codec.environment(environment)
        placeholders = ", ".join("?" for _ in OPEN_STATUSES)
        rows = await self._db.fetch_all(
            f"{_SELECT_ORDER} WHERE environment = ? AND account_number = ? "
            f"AND status IN ({placeholders}) ORDER BY received_at, order_id",
            (env, account_number, *OPEN_STATUSES),
        )
        return await self._with_legs(env, rows)

    async def recent(self, environment: str, account_number: str, limit: int = 20) -> list[Order]:
        """The most recently updated orders, newest first."""
        env = codec.environment(environment)
        rows = await self._db.fetch_all(
            f"{_SELECT_ORDER} WHERE environment = ? AND account_number = ? "
            "ORDER BY updated_at DESC, order_id DESC LIMIT ?",
            (env, account_number, limit),
        )
        return await self._with_legs(env, rows)

    async def chain(self, environment: str, order_id: int) -> list[Order]:
        """Every stored order of `order_id`'s replace chain, oldest first."""
        env = codec.environment(environment)
        async with self._db.transaction():  # one consistent view of the chain
            start = await self._db.fetch_one(
                "SELECT order_id FROM orders WHERE environment = ? AND order_id = ?",
                (env, order_id),
            )
            if start is None:
                return []
            seen = {order_id}
            older = await self._walk(env, order_id, seen, backwards=True)
            newer = await self._walk(env, order_id, seen, backwards=False)
            ids = [*reversed(older), order_id, *newer]
            placeholders = ", ".join("?" for _ in ids)
            rows = await self._db.fetch_all(
                f"{_SELECT_ORDER} WHERE environment = ? AND order_id IN ({placeholders})",
                (env, *ids),
            )
            by_id = {order.order_id: order for order in await self._with_legs(env, rows)}
        return [by_id[i] for i in ids if i in by_id]

    async def _walk(self, env: str, order_id: int, seen: set[int], *, backwards: bool) -> list[int]:
        own, other = (
            ("replaces_order_id", "replaced_by_order_id")
            if backwards
            else ("replaced_by_order_id", "replaces_order_id")
        )
        found: list[int] = []
        current = order_id
        while len(found) < _MAX_CHAIN:
            row = await self._db.fetch_one(
                f"SELECT (SELECT {own} FROM orders WHERE environment = ?1 AND order_id = ?2), "
                f"(SELECT order_id FROM orders WHERE environment = ?1 AND {other} = ?2 "
                "ORDER BY order_id LIMIT 1)",
                (env, current),
            )
            following = None if row is None else (row[0] if row[0] is not None else row[1])
            if following is None or following in seen:
                break
            found.append(following)
            seen.add(following)
            current = following
        return found

    async def _with_legs(self, env: str, rows: list[sqlite3.Row]) -> list[Order]:
        if not rows:
            return []
        ids = [row["order_id"] for row in rows]
        legs: dict[int, dict[int, sqlite3.Row]] = {}
        fills: dict[tuple[int, int], list[OrderFill]] = {}
        for chunk in _chunks(ids, 500):
            placeholders = ", ".join("?" for _ in chunk)
            for leg in await self._db.fetch_all(
                "SELECT order_id, leg_index, symbol, instrument_type, action, quantity, "
                "remaining_quantity FROM order_legs "
                f"WHERE environment = ? AND order_id IN ({placeholders})",
                (env, *chunk),
            ):
                legs.setdefault(leg["order_id"], {})[leg["leg_index"]] = leg
            for fill in await self._db.fetch_all(
                "SELECT order_id, leg_index, fill_id, quantity, fill_price, filled_at, "
                "destination_venue FROM order_fills "
                f"WHERE environment = ? AND order_id IN ({placeholders}) "
                "ORDER BY filled_at, fill_id",
                (env, *chunk),
            ):
                fills.setdefault((fill[0], fill[1]), []).append(
                    OrderFill(
                        fill_id=fill[2],
                        quantity=Decimal(fill[3]),
                        fill_price=Decimal(fill[4]),
                        filled_at=codec.from_ts(fill[5]),
                        destination_venue=fill[6],
                    )
                )
        return [_from_row(row, legs.get(row["order_id"], {}), fills) for row in rows]


def _chunks(values: list[int], size: int) -> list[list[int]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def _from_row(
    row: sqlite3.Row,
    legs: dict[int, sqlite3.Row],
    fills: dict[tuple[int, int], list[OrderFill]],
) -> Order:
    order_id = row["order_id"]
    return Order(
        environment=row["environment"],
        order_id=order_id,
        account_number=row["account_number"],
        status=row["status"],
        order_type=row["order_type"],
        time_in_force=row["time_in_force"],
        updated_at=codec.from_ts(row["updated_at"]),
        underlying_symbol=row["underlying_symbol"],
        underlying_instrument_type=row["underlying_instrument_type"],
        size=codec.to_dec_opt(row["size"]),
        price=codec.to_dec_opt(row["price"]),
        price_effect=row["price_effect"],
        stop_trigger=codec.to_dec_opt(row["stop_trigger"]),
        filled_quantity=Decimal(row["filled_quantity"]),
        received_at=codec.from_ts_opt(row["received_at"]),
        terminal_at=codec.from_ts_opt(row["terminal_at"]),
        replaces_order_id=row["replaces_order_id"],
        replaced_by_order_id=row["replaced_by_order_id"],
        external_identifier=row["external_identifier"],
        raw_json=row["raw_json"],
        legs=tuple(
            OrderLeg(
                symbol=leg["symbol"],
                instrument_type=leg["instrument_type"],
                action=leg["action"],
                quantity=codec.to_dec_opt(leg["quantity"]),
                remaining_quantity=codec.to_dec_opt(leg["remaining_quantity"]),
                fills=tuple(fills.get((order_id, index), ())),
            )
            for index, leg in sorted(legs.items())
        ),
    )
