"""Multi-row INSERT statements for page writes (`Database.insert_rows`).

Why not ``executemany``: sqlite3 releases and re-takes the GIL around every row it
steps; while the event loop is busy (a sync parsing its next page) every re-take waits
for the interpreter's switch interval, and the database thread crawled at about one
row per 5 ms. One statement carrying a few hundred rows takes the GIL once.
"""

from __future__ import annotations

import functools
import sqlite3
from dataclasses import dataclass
from itertools import repeat
from typing import Final

# Rows per statement at most (besides SQLite's variable limit): a page of 1,000 rows is
# one statement, and a statement's text stays well under a megabyte.
MAX_ROWS_PER_STATEMENT: Final = 1000


@dataclass(frozen=True, slots=True)
class RowsInsert:
    """An INSERT whose VALUES list repeats `row` (e.g. ``(?, ?, ?)``) once per row sent.

    `head` is everything before the rows (``INSERT INTO t (a, b, c) VALUES``), `tail`
    everything after them (``ON CONFLICT ... DO UPDATE ...``). Placeholders are plain
    ``?`` (numbered ones would clash between rows).
    """

    head: str
    row: str
    tail: str = ""

    @property
    def single_row(self) -> str:
        """The one-row statement (what an ``executemany`` of the same rows would run)."""
        return values_sql(self, 1)

    @property
    def parameters_per_row(self) -> int:
        return self.row.count("?")


@functools.lru_cache(maxsize=64)
def values_sql(statement: RowsInsert, rows: int) -> str:
    """The statement text for `rows` rows."""
    values = ", ".join(repeat(statement.row, rows))
    return f"{statement.head} {values} {statement.tail}".rstrip()


@functools.cache
def variable_limit() -> int:
    """Bound parameters per statement the linked SQLite accepts (32766 since 3.32).

    Read from a throwaway in-memory connection of the same library (nothing is stored in
    it); the database's own connection lives on aiosqlite's thread.
    """
    probe = sqlite3.connect(":memory:")
    try:
        return probe.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    finally:
        probe.close()


def rows_per_statement(parameters_per_row: int) -> int:
    return max(1, min(variable_limit() // max(parameters_per_row, 1), MAX_ROWS_PER_STATEMENT))
