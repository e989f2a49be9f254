"""NYSE trading calendar (via pandas_market_calendars), cached per year."""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
_lock = threading.Lock()


@dataclass(frozen=True)
class Session:
    day: date
    open: datetime
    close: datetime


@lru_cache(maxsize=32)
def _year(year: int) -> dict[date, Session]:
    import pandas_market_calendars as pmc

    with _lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # library deprecation noise, not ours to fix
        schedule = pmc.get_calendar("NYSE").schedule(
            start_date=f"{year}-01-01", end_date=f"{year}-12-31"
        )
    sessions: dict[date, Session] = {}
    for index, opens, closes in zip(
        schedule.index, schedule["market_open"], schedule["market_close"], strict=True
    ):
        day = index.date()
        sessions[day] = Session(
            day, opens.to_pydatetime().astimezone(UTC), closes.to_pydatetime().astimezone(UTC)
        )
    return sessions


def warm(years: range) -> None:
    """Load the schedules of `years` up front (slow the first time; call off the loop)."""
    for year in years:
        _year(year)


def session_on(day: date) -> Session | None:
    return _year(day.year).get(day)


def is_trading_day(day: date) -> bool:
    return session_on(day) is not None


def previous_trading_day(day: date) -> date:
    """`day` itself when it is a trading day, else the closest earlier one."""
    while not is_trading_day(day):
        day -= timedelta(days=1)
    return day


def next_trading_day(day: date) -> date:
    """`day` itself when it is a trading day, else the closest later one."""
    while not is_trading_day(day):
        day += timedelta(days=1)
    return day


def next_session_close(moment: datetime) -> datetime:
    """Close of the first session that closes strictly after `moment`."""
    day = ny_date(moment)
    for _ in range(30):
        session = session_on(day)
        if session is not None and session.close > moment:
            return session.close
        day += timedelta(days=1)
    raise RuntimeError("no NYSE session within 30 days")  # pragma: no cover


def ny_date(moment: datetime) -> date:
    return moment.astimezone(NEW_YORK).date()


def ny_time(day: date, hour: int, minute: int = 0) -> datetime:
    """A wall-clock time in New York on `day`, as an aware UTC datetime."""
    local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=NEW_YORK)
    return local.astimezone(UTC)


def third_friday(year: int, month: int) -> date:
    day = date(year, month, 15)
    while day.weekday() != 4:
        day += timedelta(days=1)
    return day
