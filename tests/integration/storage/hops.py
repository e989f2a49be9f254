"""Counting aiosqlite worker round trips of a `Database`, for tests.

Every aiosqlite call puts one item on its connection's queue (``Connection._tx``) and awaits
its future: one item = one round trip to the worker thread. `HopCounter` stands in for that
queue on the connection object (the worker keeps reading the real one, which every item is
forwarded to), so nothing in the code under test is replaced. If a future aiosqlite queues
differently, the counts drop to zero and the tests using this fail loudly.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

from storage import Database


class HopCounter:
    def __init__(self, db: Database, probe: Callable[[], object] | None = None) -> None:
        self._connection: Any = db._conn  # the live aiosqlite.Connection
        assert self._connection is not None, "the database is closed"
        self._queue: Any = None
        self._probe = probe
        #: What `probe()` returned at each round trip (None without a probe), in order.
        self.marks: list[object] = []

    @property
    def count(self) -> int:
        return len(self.marks)

    def put_nowait(self, item: Any) -> None:
        self.marks.append(None if self._probe is None else self._probe())
        self._queue.put_nowait(item)

    def __enter__(self) -> HopCounter:
        self._queue = self._connection._tx
        assert hasattr(self._queue, "put_nowait"), "aiosqlite no longer queues on _tx"
        self._connection._tx = self
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._connection._tx = self._queue
