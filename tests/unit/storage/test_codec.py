"""Column encodings: exact Decimals, aware UTC datetimes, clear refusals."""

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from storage import codec
from storage.errors import InvalidValueError


@pytest.mark.parametrize("text", ["1.10", "0.05", "-501.14", "100000.00", "1E+2", "0"])
def test_decimal_round_trips_exactly(text: str) -> None:
    value = Decimal(text)
    stored = codec.dec(value, "price")
    assert stored == text
    back = codec.to_dec(stored)
    assert back == value and str(back) == text


def test_float_money_is_refused_with_the_field_name() -> None:
    with pytest.raises(InvalidValueError, match=r"price must be a Decimal \(got float\)"):
        codec.dec(1.1, "price")  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_decimal_is_refused(text: str) -> None:
    with pytest.raises(InvalidValueError, match="finite"):
        codec.dec(Decimal(text), "value")


def test_negative_magnitude_is_refused_with_a_hint() -> None:
    with pytest.raises(InvalidValueError, match="price_effect"):
        codec.non_negative(Decimal("-1.25"), "price")


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(InvalidValueError, match="naive datetime"):
        codec.ts(datetime(2026, 1, 2, 15, 4, 5), "updated_at")


def test_aware_datetime_is_stored_as_fixed_width_utc_and_returns_aware_utc() -> None:
    eastern = timezone(timedelta(hours=-5))
    value = datetime(2026, 1, 2, 10, 4, 5, 123000, tzinfo=eastern)
    stored = codec.ts(value, "at")
    assert stored == "2026-01-02T15:04:05.123000+00:00"
    back = codec.from_ts(stored)
    assert back == value
    assert back.utcoffset() == timedelta(0)


def test_text_order_is_time_order() -> None:
    base = datetime(2026, 1, 2, tzinfo=UTC)
    values = [base + timedelta(microseconds=n * 999_999) for n in range(50)]
    stored = [codec.ts(v, "at") for v in values]
    assert sorted(stored) == stored


def test_environment_validation() -> None:
    assert codec.environment("sandbox") == "sandbox"
    with pytest.raises(InvalidValueError, match="expected one of paper, sandbox, live"):
        codec.environment("prod")


def test_day_refuses_datetime() -> None:
    assert codec.day(date(2026, 1, 2), "d") == "2026-01-02"
    with pytest.raises(InvalidValueError):
        codec.day(datetime(2026, 1, 2, tzinfo=UTC), "d")


def test_json_keeps_decimal_exact() -> None:
    assert codec.to_json({"price": Decimal("1.10")}) == '{"price":"1.10"}'


def test_json_refuses_unstorable_values_clearly() -> None:
    assert codec.to_json({1: "a", "b": 2}) == '{"1":"a","b":2}'
    with pytest.raises(InvalidValueError, match="cannot store a object as JSON"):
        codec.to_json({"x": object()})
    loop: dict[str, object] = {}
    loop["self"] = loop
    with pytest.raises(InvalidValueError, match="Circular reference"):
        codec.to_json(loop)
