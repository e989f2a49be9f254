"""Fetching one page of a paginated Tastytrade list, and walking a list page by page.

Why not `Account.get_history(page_offset=None)`: it accumulates every page before it
returns, so nothing could be written page by page, and neither it nor the one-page form
(`page_offset=k`) returns the pagination envelope (total items, for the progress estimate).
`fetch_page` therefore does for one page exactly what the SDK's `Session._paginate` does
(same client, so the same base URL, auth header, token refresh and response hooks; the
SDK's `validate_response` for errors; the SDK's models for the items), keeping the
envelope. The items are validated as one list straight from the response bytes through a
pydantic adapter over the SDK model: the same validators as the SDK's per-item
``model(**item)``, about a quarter faster on 100,000 transactions.

Walking (`walk`): keyset pagination in ascending order. Each request asks for the rows at
or after the cursor (``start-at`` = the timestamp of the last row already received,
``page-offset=0``), rather than for page k of a fixed query. An order updated while the
walk runs moves to the end of the list; with page offsets that shifts every later row one
place back and one row would be skipped, with a cursor nothing is skipped. The rows at the
cursor's own timestamp come back again and are dropped by id. When a full page carries no
progress (more rows share one timestamp than fit a page) or arrives out of order (the
broker ignored the sort), the walk falls back to page offsets over the same query.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from tastytrade import Session
from tastytrade.utils import validate_response

from broker.session import BrokerSession

M = TypeVar("M")


class _Items(BaseModel, Generic[M]):
    items: list[M]


class _Envelope(BaseModel, Generic[M]):
    """``{"data": {"items": [...]}, "pagination": {...} | null}`` (other keys ignored)."""

    data: _Items[M]
    pagination: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[M]):
    items: list[M]
    total_items: int | None  # rows matching the query (from the envelope), when given


async def fetch_page(
    sdk: Session, envelope: type[_Envelope[M]], path: str, params: Mapping[str, object]
) -> Page[M]:
    """One page of a paginated list (`Session._paginate` for a single page)."""
    await sdk.refresh()  # no-op unless the token is about to expire (as in every SDK call)
    query = {key: _text(value) for key, value in params.items() if value is not None}
    response = await sdk._client.get(path, params=query)
    validate_response(response)
    parsed = envelope.model_validate_json(response.content)
    total = None
    if parsed.pagination is not None:
        raw_total = parsed.pagination.get("total-items")
        total = raw_total if isinstance(raw_total, int) else None
    return Page(parsed.data.items, total)


def _text(value: object) -> str:
    """Query values as httpx2 writes the SDK's (a datetime as ``str(dt)``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def envelope_of(model: type[M]) -> type[_Envelope[M]]:
    """The envelope model for lists of `model` (build once per model, it is cached)."""
    return _Envelope[model]  # type: ignore[valid-type]


@dataclass(frozen=True, slots=True)
class WalkedPage(Generic[M]):
    """A page of new rows (rows already seen at the cursor removed)."""

    items: list[M]
    fetched: int  # rows the broker sent, including repeats
    estimated_remaining: int | None  # rows still expected after this page, when known


@dataclass(frozen=True, slots=True)
class ListQuery(Generic[M]):
    """A paginated list sorted ascending by `key` (a timestamp) and filtered on it by
    ``start-at``; rows are told apart by `row_id`."""

    path: str
    model: type[M]
    per_page: int
    key: Callable[[M], datetime]
    row_id: Callable[[M], int]
    extra: Mapping[str, object]


async def walk(
    session: BrokerSession, query: ListQuery[M], start: datetime | None
) -> AsyncGenerator[WalkedPage[M], None]:
    """Yield the rows at or after `start` (everything when None), page by page, ascending.

    Every request goes through `BrokerSession.read` (timeouts, retries with backoff on
    429/5xx/network errors, one re-auth on 401); a failure that survives the retries
    raises `BrokerError` and ends the walk. The next request is only sent when the
    consumer asks for the next page.
    """
    envelope = envelope_of(query.model)
    cursor = start
    offset = 0
    by_offset = False  # once the broker is seen not to sort, page by offset to the end
    seen: set[int] = set()  # ids already yielded that the next request may repeat
    while True:
        params: dict[str, object] = {
            "per-page": query.per_page,
            "page-offset": offset,
            "sort": "Asc",
            "start-at": cursor,
            **query.extra,
        }
        page = await session.read(_page_call(envelope, query.path, params))
        rows = page.items
        fresh = [row for row in rows if query.row_id(row) not in seen]
        done = len(rows) < query.per_page
        remaining = None
        if page.total_items is not None:
            remaining = max(page.total_items - offset * query.per_page - len(rows), 0)
        yield WalkedPage(fresh, len(rows), 0 if done else remaining)
        if done:
            return
        keys = [query.key(row) for row in rows]
        by_offset = by_offset or any(a > b for a, b in pairwise(keys))
        last = keys[-1]
        if not by_offset and (cursor is None or last > cursor):
            cursor = last
            offset = 0
            seen = {query.row_id(row) for row, key in zip(rows, keys, strict=True) if key == last}
        else:
            # A full page without progress on the key (more equal timestamps than a page
            # holds), or an unsorted list: the next page of the same query.
            offset += 1
            seen.update(query.row_id(row) for row in rows)


def _page_call(
    envelope: type[_Envelope[M]], path: str, params: Mapping[str, object]
) -> Callable[[Session], Awaitable[Page[M]]]:
    async def call(sdk: Session) -> Page[M]:
        return await fetch_page(sdk, envelope, path, params)

    return call
