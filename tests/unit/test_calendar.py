from datetime import date

import pytest

from broker import calendar


@pytest.mark.parametrize(
    ("day", "trading"),
    [
        (date(2026, 11, 20), True),  # Friday
        (date(2026, 11, 21), False),  # Saturday
        (date(2026, 11, 22), False),  # Sunday
        (date(2026, 11, 26), False),  # Thanksgiving
        (date(2026, 11, 27), True),  # day after Thanksgiving (half day)
        (date(2026, 12, 25), False),  # Christmas
        (date(2025, 1, 9), False),  # national day of mourning (President Carter)
        (date(2023, 7, 4), False),  # Independence Day
        (date(2023, 7, 3), True),  # half day before it
    ],
)
def test_is_trading_day_follows_nyse_holidays(day: date, trading: bool) -> None:
    assert calendar.is_trading_day(day) is trading


def test_next_trading_days_skip_weekends_and_holidays() -> None:
    assert calendar.next_trading_days(date(2026, 11, 24), 4) == (
        date(2026, 11, 25),
        date(2026, 11, 27),
        date(2026, 11, 30),
        date(2026, 12, 1),
    )


def test_next_trading_days_cross_the_year_end() -> None:
    # 2026-12-25 and 2027-01-01 are holidays; 2026-12-26/27 and 2027-01-02/03 are weekends.
    assert calendar.next_trading_days(date(2026, 12, 24), 6) == (
        date(2026, 12, 28),
        date(2026, 12, 29),
        date(2026, 12, 30),
        date(2026, 12, 31),
        date(2027, 1, 4),
        date(2027, 1, 5),
    )


def test_next_trading_days_zero_is_empty_and_negative_is_refused() -> None:
    assert calendar.next_trading_days(date(2026, 11, 20), 0) == ()
    with pytest.raises(ValueError, match="count"):
        calendar.next_trading_days(date(2026, 11, 20), -1)


def test_trading_days_ahead() -> None:
    friday = date(2026, 11, 20)
    assert calendar.trading_days_ahead(friday, 0) == friday
    assert calendar.trading_days_ahead(friday, 1) == date(2026, 11, 23)
    # From a Saturday, the first trading day ahead is Monday.
    assert calendar.trading_days_ahead(date(2026, 11, 21), 1) == date(2026, 11, 23)
    # 5 sessions from Friday 2026-11-20 skip Thanksgiving: Mon, Tue, Wed, Fri, Mon.
    assert calendar.trading_days_ahead(friday, 5) == date(2026, 11, 30)


def test_trading_days_ahead_zero_on_a_closed_day_is_refused() -> None:
    with pytest.raises(ValueError, match="not a trading day"):
        calendar.trading_days_ahead(date(2026, 11, 26), 0)


def test_years_outside_the_calendar_are_refused() -> None:
    with pytest.raises(calendar.CalendarRangeError, match="2300"):
        calendar.is_trading_day(date(2300, 1, 2))


def test_warm_up_loads_the_requested_years() -> None:
    calendar.warm_up(2027)
    assert calendar.is_trading_day(date(2027, 1, 4))
