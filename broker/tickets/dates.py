"""Expiration dates: M/D, M/D/YY, M/D/YYYY, ISO, "Dec 18", 0DTE and NDTE."""

from __future__ import annotations

import re
from datetime import date

from broker import calendar
from broker.tickets.model import Refusal, TicketError

MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}

SLASH_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})(?:/(\d{2}|\d{4}))?$", re.ASCII)
ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$", re.ASCII)
DTE = re.compile(r"^(\d{1,4})dte$", re.ASCII)
DAY_OF_MONTH = re.compile(r"^(\d{1,2})(?:st|nd|rd|th)?$", re.ASCII)
YEAR = re.compile(r"^20\d{2}$", re.ASCII)  # 4-digit years; "6000" after "Dec 18" is a strike
MAX_YEARS_AHEAD = 5
MAX_DTE = 365
EXAMPLE = "write it like 12/18, 12/18/26, 2026-12-18, Dec 18, 0DTE or 3DTE"


def _bad(raw: str, why: str) -> TicketError:
    return TicketError(Refusal.BAD_DATE, f'"{raw}" is not a valid expiration ({why}) — {EXAMPLE}.')


def _build(year: int, month: int, day: int, raw: str) -> date:
    if not 1 <= month <= 12:
        raise _bad(raw, f"there is no month {month}")
    try:
        return date(year, month, day)
    except ValueError:
        raise _bad(raw, f"{_month_name(month)} has no day {day}") from None


def _month_name(month: int) -> str:
    return date(2000, month, 1).strftime("%B")


def check_not_past(expiration: date, raw: str, today: date) -> date:
    if expiration < today:
        raise TicketError(
            Refusal.PAST_EXPIRATION,
            f'expiration "{raw}" ({expiration.isoformat()}) is in the past (today is '
            f"{today.isoformat()}) — give a current expiration, e.g. 0DTE or a future date.",
        )
    if expiration.year > today.year + MAX_YEARS_AHEAD:
        raise _bad(raw, f"more than {MAX_YEARS_AHEAD} years away")
    return expiration


def next_month_day(month: int, day: int, raw: str, today: date) -> date:
    """The next `month`/`day` on or after `today` (Feb 29 waits for a leap year)."""
    if not 1 <= month <= 12:
        raise _bad(raw, f"there is no month {month}")
    for year in range(today.year, today.year + 9):
        try:
            candidate = date(year, month, day)
        except ValueError:
            continue
        if candidate >= today:
            return candidate
    raise _bad(raw, f"{_month_name(month)} has no day {day}")


def with_year(year_text: str, month: int, day: int, raw: str, today: date) -> date:
    year = int(year_text)
    if len(year_text) == 2:
        year += 2000
    return check_not_past(_build(year, month, day, raw), raw, today)


def parse_slash_or_iso(low: str, raw: str, today: date) -> date | None:
    """`M/D`, `M/D/YY`, `M/D/YYYY` or `YYYY-MM-DD`; None when `low` has another shape."""
    if match := ISO_DATE.match(low):
        year, month, day = (int(part) for part in match.groups())
        return check_not_past(_build(year, month, day, raw), raw, today)
    if match := SLASH_DATE.match(low):
        month, day = int(match[1]), int(match[2])
        if match[3] is None:
            return next_month_day(month, day, raw, today)
        return with_year(match[3], month, day, raw, today)
    return None


def days_to_expiration(count: int, raw: str, today: date) -> date:
    """`0DTE` is today (a trading day); `NDTE` is N NYSE trading days after today."""
    if count > MAX_DTE:
        raise _bad(raw, f"at most {MAX_DTE} trading days ahead")
    try:
        if count == 0 and not calendar.is_trading_day(today):
            raise TicketError(
                Refusal.NOT_TRADING_DAY,
                f'"{raw}" means today, but {today.strftime("%A %Y-%m-%d")} is not a NYSE '
                "trading day — give the expiration date instead (e.g. 12/18) or use 1DTE "
                "for the next trading day.",
            )
        return calendar.trading_days_ahead(today, count)
    except calendar.CalendarRangeError as error:
        raise _bad(raw, str(error)) from None
