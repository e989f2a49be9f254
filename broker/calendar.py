"""NYSE trading-day helpers (pure CPU, no network).

Backed by `pandas_market_calendars` (a dependency of the tastytrade SDK), computed one
calendar year at a time and cached. The first call imports pandas and builds the calendar
(about a second); call `warm_up()` once at start-up, off the event loop
(`await asyncio.to_thread(warm_up)`), so later calls are microseconds.
"""

from __future__ import annotations

import bisect
import functools
from datetime import UTC, date, datetime

#: Years we are willing to compute (pandas timestamps end in 2262; OCC years are 2-digit).
FIRST_YEAR = 1990
LAST_YEAR = 2199


class CalendarRangeError(ValueError):
    """The date is outside the years the trading calendar covers."""


@functools.cache
def _nyse() -> object:
    import pandas_market_calendars as pmc  # imported lazily: heavy (pandas)

    return pmc.get_calendar("NYSE")


@functools.lru_cache(maxsize=64)
def _trading_days_of_year(year: int) -> tuple[date, ...]:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise CalendarRangeError(
            f"the trading calendar covers {FIRST_YEAR}-{LAST_YEAR}, not {year}"
        )
    calendar = _nyse()
    days = calendar.valid_days(f"{year}-01-01", f"{year}-12-31")  # type: ignore[attr-defined]
    return tuple(timestamp.date() for timestamp in days)


def is_trading_day(day: date) -> bool:
    """True when the NYSE has a session on `day` (half days count)."""
    days = _trading_days_of_year(day.year)
    index = bisect.bisect_left(days, day)
    return index < len(days) and days[index] == day


def next_trading_days(after: date, count: int) -> tuple[date, ...]:
    """The next `count` NYSE trading days strictly after `after`, in order."""
    if count < 0:
        raise ValueError("count must be >= 0")
    found: list[date] = []
    year = after.year
    while len(found) < count:
        days = _trading_days_of_year(year)
        start = bisect.bisect_right(days, after) if year == after.year else 0
        found.extend(days[start : start + count - len(found)])
        year += 1
    return tuple(found)


def trading_days_ahead(today: date, count: int) -> date:
    """The trading day `count` sessions after `today` (1 = the next trading day).

    `count == 0` returns `today` itself, which must then be a trading day.
    """
    if count == 0:
        if not is_trading_day(today):
            raise ValueError(f"{today.isoformat()} is not a trading day")
        return today
    return next_trading_days(today, count)[-1]


def warm_up(*years: int) -> None:
    """Load the calendar (and the given years, default: this year and next) into the cache."""
    this_year = datetime.now(UTC).year
    for year in years or (this_year, this_year + 1):
        _trading_days_of_year(year)
