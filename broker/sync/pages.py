"""Fetching paginated Tastytrade lists page by page, through the SDK's client and models.

Why not `Account.get_history(page_offset=None)`: it accumulates every page before it
returns, so nothing could be written page by page, and neither it nor the one-page form
(`page_offset=k`) returns the pagination envelope (totals, for progress and for knowing
whether another page follows). So a page is fetched the way the SDK's `Session._paginate`
fetches one (same client: base URL, auth header, token refresh and response hooks; the
SDK's `validate_response` for errors) and its items are validated by the SDK's model, as
one list straight from the response bytes through a pydantic adapter (the same
validators as the SDK's per-item ``model(**item)``, about a quarter faster).

Two ways to walk a list, both ascending:

- `walk_by_offset` (transactions): pages of one fixed query, the requests for the next
  `PAGES_AHEAD` pages sent as soon as a page arrives (before it is parsed), so the broker
  prepares them while this one is parsed and written. Safe for lists that only ever gain
  rows: rows inserted behind the walk shift later rows forward, so some rows are read
  twice (dropped by id), none is skipped.
- `walk_by_cursor` (orders): each request asks for the rows at or after the last key
  received (``start-at``, page 0). An order updated during the walk moves to the end of
  the list, which with page offsets would shift every later row one place back and skip
  one; with a cursor nothing is skipped. When a full page brings no progress on the key
  (more equal timestamps than fit a page) or arrives unsorted, it pages by offset instead.

Every request goes through `BrokerSession.read` (timeouts, retries with backoff on
429/5xx/network errors, one re-auth on 401); a failure that survives the retries raises
`BrokerError` and ends the walk.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import pairwise
from typing import Any, Generic, TypeVar

import structlog
from pydantic import BaseModel, ValidationError
from tastytrade import Session
from tastytrade.utils import validate_response

from broker.session import BrokerError, BrokerSession, ErrorCategory

M = TypeVar("M")

log = structlog.get_logger(__name__)

#: Pages requested ahead of the one being handled (offset walks).
PAGES_AHEAD = 2


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
    total_pages: int | None


@dataclass(frozen=True, slots=True)
class WalkedPage(Generic[M]):
    """A page of rows not seen before in this walk."""

    items: list[M]
    fetched: int  # rows the broker sent, including repeats
    estimated_remaining: int | None  # rows still expected after this page, when known


@dataclass(frozen=True, slots=True)
class ListQuery(Generic[M]):
    """A paginated list sorted ascending by `key` (a timestamp), filtered on it by
    ``start-at``; rows are told apart by `row_id`."""

    path: str
    model: type[M]
    per_page: int
    key: Callable[[M], datetime]
    row_id: Callable[[M], int]
    # Page size to fall back to when the broker refuses `per_page` (HTTP 400 on the first
    # page): the SDK's own default for the list, which the broker always accepts.
    fallback_per_page: int | None = None


def _text(value: object) -> str:
    """Query values as httpx2 writes the SDK's (a datetime as ``str(dt)``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


async def _fetch_body(sdk: Session, path: str, params: Mapping[str, object]) -> bytes:
    """One raw page (`Session._paginate` for a single page, minus the parsing)."""
    await sdk.refresh()  # no-op unless the token is about to expire (as in every SDK call)
    query = {key: _text(value) for key, value in params.items() if value is not None}
    response = await sdk._client.get(path, params=query)
    validate_response(response)
    return response.content


def _fetcher(path: str, params: Mapping[str, object]) -> Callable[[Session], Awaitable[bytes]]:
    async def call(sdk: Session) -> bytes:
        return await _fetch_body(sdk, path, params)

    return call


def envelope_of(model: type[M]) -> type[_Envelope[M]]:
    """The envelope model for lists of `model` (pydantic caches the parametrisation)."""
    return _Envelope[model]  # type: ignore[valid-type]


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector while a page's objects are built (never around an
    await). Building 2,000 models at once otherwise sets off collections that walk the
    page's young objects again and again (about a tenth of a full sync); nothing cyclic
    is built here, and collection resumes as soon as the block ends."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def parse_page(envelope: type[_Envelope[M]], body: bytes) -> Page[M]:
    try:
        with collector_paused():
            parsed = envelope.model_validate_json(body)
    except ValidationError:
        raise BrokerError(
            ErrorCategory.CONTRACT, "Tastytrade sent a page this bot could not understand."
        ) from None
    pagination = parsed.pagination or {}
    total_items = pagination.get("total-items")
    total_pages = pagination.get("total-pages")
    return Page(
        parsed.data.items,
        total_items if isinstance(total_items, int) else None,
        total_pages if isinstance(total_pages, int) else None,
    )


async def fetch_body(session: BrokerSession, path: str, params: Mapping[str, object]) -> bytes:
    """One reply's raw body through the SDK's client (as the SDK would request it)."""
    return await session.read(_fetcher(path, params))


def _params(query: ListQuery[M], offset: int, start: datetime | None) -> dict[str, object]:
    return {"per-page": query.per_page, "page-offset": offset, "sort": "Asc", "start-at": start}


async def _first_page(
    session: BrokerSession, query: ListQuery[M], start: datetime | None
) -> tuple[ListQuery[M], bytes]:
    """The first page, at the fallback page size if the broker refuses the configured one."""
    try:
        return query, await session.read(_fetcher(query.path, _params(query, 0, start)))
    except BrokerError as exc:
        fallback = query.fallback_per_page
        if (
            exc.category is not ErrorCategory.REJECTED
            or exc.status != 400
            or fallback is None
            or fallback >= query.per_page
        ):
            raise
        log.warning(
            "page size refused; using the SDK default",
            path=query.path,
            per_page=query.per_page,
            fallback=fallback,
        )
        query = replace(query, per_page=fallback)
        return query, await session.read(_fetcher(query.path, _params(query, 0, start)))


def _remaining(page: Page[M], offset: int, per_page: int) -> int | None:
    if page.total_items is None:
        return None
    return max(page.total_items - offset * per_page - len(page.items), 0)


async def walk_by_offset(
    session: BrokerSession,
    query: ListQuery[M],
    start: datetime | None,
    *,
    ahead: int = PAGES_AHEAD,
) -> AsyncGenerator[WalkedPage[M], None]:
    """The rows at or after `start` (everything when None), page by page, ascending, with
    the requests for up to `ahead` following pages in flight while this one is handled."""
    envelope = envelope_of(query.model)
    loop = asyncio.get_running_loop()

    def request(offset: int) -> asyncio.Future[bytes]:
        call = _fetcher(query.path, _params(query, offset, start))
        return loop.create_task(session.read(call))

    query, body = await _first_page(session, query, start)
    offset = 0
    total_pages: int | None = None
    in_flight: dict[int, asyncio.Future[bytes]] = {}

    def request_ahead() -> None:
        if total_pages is None:
            return
        for following in range(offset + 1, min(offset + ahead, total_pages - 1) + 1):
            if following not in in_flight:
                in_flight[following] = request(following)

    seen: dict[int, datetime] = {}  # ids already yielded that a shifted page may repeat
    try:
        while True:
            request_ahead()  # before parsing: the broker prepares the next pages meanwhile
            page = parse_page(envelope, body)
            total_pages = page.total_pages
            rows = page.items
            done = len(rows) < query.per_page or total_pages is None or offset + 1 >= total_pages
            fresh = []
            for row in rows:
                row_id = query.row_id(row)
                if row_id not in seen:
                    seen[row_id] = query.key(row)
                    fresh.append(row)
            if rows:
                # Later pages only hold keys from this page's first key on: forget the rest.
                floor = query.key(rows[0])
                seen = {row_id: key for row_id, key in seen.items() if key >= floor}
            remaining = 0 if done else _remaining(page, offset, query.per_page)
            if not done:
                request_ahead()
            yield WalkedPage(fresh, len(rows), remaining)
            if done:
                return
            offset += 1
            body = await in_flight.pop(offset)
    finally:
        for pending in in_flight.values():
            if not pending.done():
                pending.cancel()
            with contextlib.suppress(BaseException):
                await pending


async def walk_by_cursor(
    session: BrokerSession, query: ListQuery[M], start: datetime | None
) -> AsyncGenerator[WalkedPage[M], None]:
    """The rows at or after `start` (everything when None), page by page, ascending; each
    request starts at the last key received."""
    envelope = envelope_of(query.model)
    cursor = start
    offset = 0
    by_offset = False  # once the broker is seen not to sort, page by offset to the end
    seen: set[int] = set()  # ids already yielded that the next request may repeat
    query, first = await _first_page(session, query, start)
    body: bytes | None = first
    while True:
        if body is None:
            body = await session.read(_fetcher(query.path, _params(query, offset, cursor)))
        page = parse_page(envelope, body)
        body = None
        rows = page.items
        fresh = [row for row in rows if query.row_id(row) not in seen]
        done = len(rows) < query.per_page
        remaining = 0 if done else _remaining(page, offset, query.per_page)
        yield WalkedPage(fresh, len(rows), remaining)
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
