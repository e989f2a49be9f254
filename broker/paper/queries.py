"""Query-string parsing, pagination and the filtered list endpoints."""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Generic, TypeVar
from urllib.parse import parse_qsl

from broker.paper import calendar
from broker.paper.ledger import Account, Transaction
from broker.paper.orders import Order
from broker.paper.payloads import JsonDict

T = TypeVar("T")
MAX_PER_PAGE = 2000


class BadQueryError(ValueError):
    """A malformed query parameter (400 `invalid_parameter`)."""


class Query:
    """Raw query pairs: repeated `key[]` lists, `+` as space, dates and booleans."""

    def __init__(self, raw_query: str) -> None:
        self.pairs = parse_qsl(raw_query, keep_blank_values=True)

    def all(self, key: str) -> list[str]:
        """Values of `key` and `key[]`, repeated or comma-separated."""
        out: list[str] = []
        for name, value in self.pairs:
            if name in (key, f"{key}[]"):
                out.extend(v for v in value.split(",") if v)
        return out

    def values(self, key: str) -> list[str]:
        """Values of `key` and `key[]` without splitting on commas (symbols may not
        contain commas, but descriptions and statuses are taken verbatim)."""
        return [value for name, value in self.pairs if name in (key, f"{key}[]")]

    def get(self, key: str) -> str | None:
        values = self.values(key)
        return values[-1] if values else None

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        raw = self.get(key)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError as error:
            raise BadQueryError(f"{key} must be an integer") from error
        if not low <= value <= high:
            raise BadQueryError(f"{key} must be between {low} and {high}")
        return value

    def boolean(self, key: str) -> bool | None:
        raw = self.get(key)
        if raw is None:
            return None
        if raw.lower() in ("true", "1"):
            return True
        if raw.lower() in ("false", "0"):
            return False
        raise BadQueryError(f"{key} must be true or false")

    def day(self, key: str) -> date | None:
        raw = self.get(key)
        if not raw:
            return None
        try:
            return date.fromisoformat(raw[:10])
        except ValueError as error:
            raise BadQueryError(f"{key} must be a date (YYYY-MM-DD)") from error

    def moment(self, key: str) -> datetime | None:
        """`2025-01-02 03:04:05+00:00`, ISO with `T`/`Z`, or a date; naive = UTC."""
        raw = self.get(key)
        if not raw:
            return None
        text = raw.strip().replace(" ", "T", 1)
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as error:
            raise BadQueryError(f"{key} must be a date-time") from error
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    def sort(self, default: str = "Desc") -> str:
        raw = self.get("sort") or default
        if raw not in ("Asc", "Desc"):
            raise BadQueryError("sort must be Asc or Desc")
        return raw


def paginate(
    items: Sequence[T],
    query: Query,
    default_per_page: int,
    render: Callable[[T], JsonDict],
    context: str,
) -> JsonDict:
    per_page = query.integer("per-page", default_per_page, 1, MAX_PER_PAGE)
    page = query.integer("page-offset", 0, 0, 10**9)
    total = len(items)
    total_pages = math.ceil(total / per_page)
    start = page * per_page
    chunk = items[start : start + per_page]
    return {
        "data": {"items": [render(item) for item in chunk]},
        "api-version": "v1",
        "context": context,
        "pagination": {
            "per-page": per_page,
            "page-offset": page,
            "item-offset": start,
            "total-items": total,
            "total-pages": total_pages,
            "current-item-count": len(chunk),
            "previous-link": None,
            "next-link": None,
            "paging-link-template": None,
        },
    }


@dataclass
class _Cached(Generic[T]):
    version: int
    key: tuple[object, ...]
    items: list[T]


class ListCache(Generic[T]):
    """Remembers the last few filtered lists so walking pages costs one filter."""

    def __init__(self, size: int = 8) -> None:
        self._entries: list[_Cached[T]] = []
        self._size = size

    def get(self, version: int, key: tuple[object, ...]) -> list[T] | None:
        for entry in self._entries:
            if entry.version == version and entry.key == key:
                return entry.items
        return None

    def put(self, version: int, key: tuple[object, ...], items: list[T]) -> None:
        self._entries.append(_Cached(version, key, items))
        if len(self._entries) > self._size:
            self._entries.pop(0)


def filter_transactions(
    account: Account, query: Query
) -> tuple[tuple[object, ...], Callable[[], list[Transaction]]]:
    """The cache key and the filter for `GET /accounts/{n}/transactions`."""
    types = set(query.values("types"))
    single_type = query.get("type")
    if single_type:
        types.add(single_type)
    sub_types = set(query.values("sub-type"))
    start_date, end_date = query.day("start-date"), query.day("end-date")
    start_at, end_at = query.moment("start-at"), query.moment("end-at")
    instrument_type = query.get("instrument-type")
    symbol = query.get("symbol")
    underlying = query.get("underlying-symbol")
    action = query.get("action")
    futures_symbol = query.get("futures-symbol")
    sort = query.sort("Desc")
    key = (
        account.number,
        tuple(sorted(types)),
        tuple(sorted(sub_types)),
        start_date,
        end_date,
        start_at,
        end_at,
        instrument_type,
        symbol,
        underlying,
        action,
        futures_symbol,
        sort,
    )

    def run() -> list[Transaction]:
        rows = account.sorted_transactions()
        low, high = 0, len(rows)
        if start_at is not None:
            low = bisect.bisect_left(rows, start_at, key=lambda t: t.executed_at)
        if end_at is not None:
            high = bisect.bisect_right(rows, end_at, key=lambda t: t.executed_at)
        out: list[Transaction] = []
        for tx in rows[low:high]:
            if types and tx.transaction_type not in types:
                continue
            if sub_types and tx.transaction_sub_type not in sub_types:
                continue
            if start_date or end_date:
                day = tx.transaction_date or calendar.ny_date(tx.executed_at)
                if (start_date and day < start_date) or (end_date and day > end_date):
                    continue
            if instrument_type and tx.instrument_type != instrument_type:
                continue
            if symbol and tx.symbol != symbol:
                continue
            if underlying and tx.underlying_symbol != underlying:
                continue
            if action and tx.action != action:
                continue
            if futures_symbol and (tx.symbol or "").find(futures_symbol.lstrip("/")) < 0:
                continue
            out.append(tx)
        if sort == "Desc":
            out.reverse()
        return out

    return key, run


def filter_orders(
    orders: list[Order], query: Query
) -> tuple[tuple[object, ...], Callable[[], list[Order]]]:
    """The cache key and the filter for `GET /accounts/{n}/orders` (on updated-at)."""
    statuses = set(query.values("status"))
    start_date, end_date = query.day("start-date"), query.day("end-date")
    start_at, end_at = query.moment("start-at"), query.moment("end-at")
    underlying = query.get("underlying-symbol")
    futures_symbol = query.get("futures-symbol")
    underlying_type = query.get("underlying-instrument-type")
    sort = query.sort("Desc")
    key = (
        tuple(sorted(statuses)),
        start_date,
        end_date,
        start_at,
        end_at,
        underlying,
        futures_symbol,
        underlying_type,
        sort,
    )

    def run() -> list[Order]:
        out: list[Order] = []
        for order in orders:
            updated = order.updated_at or order.received_at
            if statuses and order.status not in statuses:
                continue
            if start_at and updated < start_at:
                continue
            if end_at and updated > end_at:
                continue
            if start_date or end_date:
                day = calendar.ny_date(updated)
                if (start_date and day < start_date) or (end_date and day > end_date):
                    continue
            if underlying and order.underlying_symbol != underlying:
                continue
            if futures_symbol and order.underlying_symbol.lstrip("/") != futures_symbol.lstrip("/"):
                continue
            if underlying_type and order.underlying_instrument_type != underlying_type:
                continue
            out.append(order)
        out.sort(key=lambda o: (o.updated_at or o.received_at, o.id or 0), reverse=sort == "Desc")
        return out

    return key, run
