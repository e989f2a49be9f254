"""Fill notifications, delivered exactly once.

The dedupe key identifies one fill observation: the broker fill id when there is one,
else the order id plus its cumulative filled quantity (`dedupe_key`). `claim` inserts the
event atomically and returns True only to the first caller, whether the fill was seen on
the streamer, by polling or by both. The winner posts the notification and then calls
`mark_delivered`; events claimed but never marked (the process stopped in between) are
listed by `undelivered` so they can be sent after a restart.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from storage import codec
from storage.errors import InvalidValueError, NotFoundError

if TYPE_CHECKING:
    from storage.database import Database


def dedupe_key(
    environment: str,
    order_id: int,
    *,
    filled_quantity: Decimal | None = None,
    fill_id: str | None = None,
) -> str:
    """Stable key for a fill: by fill id, else by order and cumulative filled quantity.

    Quantities are normalised, so ``Decimal("1")`` and ``Decimal("1.0")`` give one key.
    """
    env = codec.environment(environment)
    if fill_id:
        return f"{env}:order={order_id}:fill={fill_id}"
    if filled_quantity is None:
        raise InvalidValueError("a fill dedupe key needs a fill id or the filled quantity")
    codec.dec(filled_quantity, "filled_quantity")
    return f"{env}:order={order_id}:filled={format(filled_quantity.normalize(), 'f')}"


@dataclass(frozen=True, slots=True)
class FillEvent:
    dedupe_key: str
    environment: str | None
    order_id: int | None
    payload: dict[str, Any]
    delivered: bool
    created_at: datetime
    delivered_at: datetime | None


_COLUMNS: Final = "dedupe_key, environment, order_id, payload, delivered, created_at, delivered_at"


def _event(row: sqlite3.Row) -> FillEvent:
    return FillEvent(
        dedupe_key=row[0],
        environment=row[1],
        order_id=row[2],
        payload=json.loads(row[3]),
        delivered=bool(row[4]),
        created_at=codec.from_ts(row[5]),
        delivered_at=codec.from_ts_opt(row[6]),
    )


class FillEventsRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim(
        self,
        dedupe_key: str,
        payload: Mapping[str, Any],
        *,
        environment: str | None = None,
        order_id: int | None = None,
    ) -> bool:
        """True for exactly one caller per key: that caller delivers the notification."""
        if not dedupe_key:
            raise InvalidValueError("fill dedupe key must not be empty")
        inserted = await self._db.execute(
            f"INSERT INTO fill_events ({_COLUMNS}) VALUES (?, ?, ?, ?, 0, ?, NULL) "
            "ON CONFLICT (dedupe_key) DO NOTHING",
            (
                dedupe_key,
                None if environment is None else codec.environment(environment),
                order_id,
                codec.to_json(dict(payload)),
                codec.ts(self._db.clock(), "now"),
            ),
        )
        return inserted == 1

    async def mark_delivered(self, dedupe_key: str) -> None:
        changed = await self._db.execute(
            "UPDATE fill_events SET delivered = 1, delivered_at = COALESCE(delivered_at, ?) "
            "WHERE dedupe_key = ?",
            (codec.ts(self._db.clock(), "now"), dedupe_key),
        )
        if changed == 0:
            raise NotFoundError(f"fill event {dedupe_key!r} was never claimed")

    async def get(self, dedupe_key: str) -> FillEvent | None:
        row = await self._db.fetch_one(
            f"SELECT {_COLUMNS} FROM fill_events WHERE dedupe_key = ?", (dedupe_key,)
        )
        return None if row is None else _event(row)

    async def undelivered(self) -> list[FillEvent]:
        """Claimed but not yet delivered events, oldest first (re-send after a restart)."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM fill_events WHERE delivered = 0 ORDER BY created_at"
        )
        return [_event(row) for row in rows]

    async def for_order(self, environment: str, order_id: int) -> list[FillEvent]:
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM fill_events WHERE environment = ? AND order_id = ? "
            "ORDER BY created_at",
            (codec.environment(environment), order_id),
        )
        return [_event(row) for row in rows]
