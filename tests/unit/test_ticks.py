"""Tick schedules: real tastytrade schedules, threshold crossings, and property tests."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tastytrade.instruments import TickSize

from broker.ticks import Side, TickError, TickSchedule

D = Decimal

PENNY_PILOT = TickSchedule.from_sizes([("0.01", "3"), ("0.05", None)])  # AAPL options
NON_PENNY = TickSchedule.from_sizes([("0.05", "3"), ("0.10", None)])  # SPX / YMM options
ES_OPTIONS = TickSchedule.from_sizes([("0.05", "5"), ("0.25", None)])
EQUITY = TickSchedule.from_sizes([("0.0001", "1"), ("0.01", None)])


class TestConstruction:
    def test_from_sdk_tick_sizes(self) -> None:
        sizes = [TickSize(value=D("0.01"), threshold=D("3.0")), TickSize(value=D("0.05"))]
        schedule = TickSchedule.from_tick_sizes(sizes)
        assert schedule == PENNY_PILOT
        assert schedule.to_sizes() == [(D("0.01"), D("3")), (D("0.05"), None)]

    def test_uniform(self) -> None:
        assert TickSchedule.uniform("0.25").tick_at(D("6000")) == D("0.25")

    def test_last_threshold_is_ignored(self) -> None:
        schedule = TickSchedule.from_sizes([("0.01", "3"), ("0.05", "100")])
        assert schedule.tick_at(D("500")) == D("0.05")

    @pytest.mark.parametrize(
        ("sizes", "message"),
        [
            ([], "at least one"),
            ([("0", None)], "positive"),
            ([("-0.01", None)], "positive"),
            ([("0.01", None), ("0.05", None)], "only the last"),
            ([("0.01", "3"), ("0.05", "2"), ("0.1", None)], "increase"),
            ([("0.01", "0"), ("0.05", None)], "increase"),
            ([("abc", None)], "not a number"),
            ([("NaN", None)], "finite"),
        ],
    )
    def test_invalid_schedules(self, sizes: list[tuple[str, str | None]], message: str) -> None:
        with pytest.raises(TickError, match=message):
            TickSchedule.from_sizes(sizes)

    def test_float_refused(self) -> None:
        with pytest.raises(TickError, match="float"):
            TickSchedule.from_sizes([(0.05, None)])  # type: ignore[list-item]

    def test_describe(self) -> None:
        assert PENNY_PILOT.describe() == "0.01 below 3, 0.05 above"
        assert TickSchedule.uniform("0.25").describe() == "0.25"


class TestTickAt:
    @pytest.mark.parametrize(
        ("schedule", "price", "tick"),
        [
            (PENNY_PILOT, "2.99", "0.01"),
            (PENNY_PILOT, "3", "0.05"),  # the threshold itself belongs to the upper band
            (PENNY_PILOT, "3.00", "0.05"),
            (NON_PENNY, "2.95", "0.05"),
            (NON_PENNY, "3.10", "0.10"),
            (ES_OPTIONS, "4.95", "0.05"),
            (ES_OPTIONS, "5", "0.25"),
            (EQUITY, "0.5", "0.0001"),
            (EQUITY, "190", "0.01"),
        ],
    )
    def test_tick_at(self, schedule: TickSchedule, price: str, tick: str) -> None:
        assert schedule.tick_at(D(price)) == D(tick)

    def test_negative_price_refused(self) -> None:
        with pytest.raises(TickError, match="negative"):
            PENNY_PILOT.tick_at(D("-1"))


class TestOnTick:
    @pytest.mark.parametrize(
        ("schedule", "price", "expected"),
        [
            (PENNY_PILOT, "2.99", True),
            (PENNY_PILOT, "3.01", False),
            (PENNY_PILOT, "3.05", True),
            (NON_PENNY, "2.97", False),
            (NON_PENNY, "3.05", False),
            (NON_PENNY, "3.10", True),
            (ES_OPTIONS, "12.50", True),
            (ES_OPTIONS, "12.55", False),
            (ES_OPTIONS, "4.95", True),
            (EQUITY, "0.1234", True),
            (EQUITY, "1.005", False),
        ],
    )
    def test_is_on_tick(self, schedule: TickSchedule, price: str, expected: bool) -> None:
        assert schedule.is_on_tick(D(price)) is expected


class TestRounding:
    def test_passive_and_aggressive(self) -> None:
        assert PENNY_PILOT.round_passive(D("3.07"), Side.BUY) == D("3.05")
        assert PENNY_PILOT.round_passive(D("3.07"), Side.SELL) == D("3.10")
        assert PENNY_PILOT.round_aggressive(D("3.07"), "buy") == D("3.10")
        assert PENNY_PILOT.round_aggressive(D("3.07"), "sell") == D("3.05")

    def test_on_tick_price_unchanged(self) -> None:
        for side in Side:
            assert PENNY_PILOT.round_passive(D("2.37"), side) == D("2.37")

    def test_round_up_across_threshold(self) -> None:
        assert PENNY_PILOT.round_up(D("2.995")) == D("3.00")
        assert ES_OPTIONS.round_up(D("4.97")) == D("5.00")

    def test_round_down_from_upper_band(self) -> None:
        assert ES_OPTIONS.round_down(D("5.10")) == D("5.00")
        assert NON_PENNY.round_down(D("3.05")) == D("3.00")

    def test_threshold_not_a_multiple_of_upper_tick(self) -> None:
        # Prices 3.02..3.04 are above the 0.01 band but no multiple of 0.05 exists there yet.
        odd = TickSchedule.from_sizes([("0.01", "3.02"), ("0.05", None)])
        assert odd.round_down(D("3.03")) == D("3.01")
        assert odd.round_up(D("3.015")) == D("3.05")
        assert odd.is_on_tick(D("3.01"))
        assert not odd.is_on_tick(D("3.02"))
        assert odd.step(D("3.01"), 1, "up") == D("3.05")
        assert odd.step(D("3.05"), 1, "down") == D("3.01")

    def test_nearest_valid(self) -> None:
        assert NON_PENNY.nearest_valid(D("3.15")) == (D("3.10"), D("3.20"))
        assert NON_PENNY.nearest_valid(D("3.20")) == (D("3.20"), D("3.20"))
        assert ES_OPTIONS.nearest_valid(D("4.99")) == (D("4.95"), D("5.00"))

    def test_rounding_keeps_tick_precision(self) -> None:
        assert str(PENNY_PILOT.round_up(D("3.01"))) == "3.05"
        assert str(ES_OPTIONS.round_down(D("6000.1"))) == "6000.00"


class TestStep:
    def test_across_penny_threshold(self) -> None:
        assert PENNY_PILOT.step(D("2.98"), 2, "up") == D("3.00")
        assert PENNY_PILOT.step(D("2.98"), 3, "up") == D("3.05")
        assert PENNY_PILOT.step(D("3.00"), 1, "down") == D("2.99")
        assert PENNY_PILOT.step(D("3.05"), 2, "down") == D("2.99")

    def test_es_options(self) -> None:
        assert ES_OPTIONS.step(D("4.90"), 3, "up") == D("5.25")
        assert ES_OPTIONS.step(D("5.25"), 2, "down") == D("4.95")

    def test_off_tick_start(self) -> None:
        assert PENNY_PILOT.step(D("2.985"), 1, "up") == D("2.99")
        assert PENNY_PILOT.step(D("3.07"), 1, "down") == D("3.05")

    def test_zero_ticks_is_identity(self) -> None:
        assert PENNY_PILOT.step(D("3.07"), 0) == D("3.07")

    def test_below_zero_refused(self) -> None:
        with pytest.raises(TickError, match="no valid price below"):
            PENNY_PILOT.step(D("0.01"), 2, "down")

    def test_bad_arguments(self) -> None:
        with pytest.raises(TickError, match="negative"):
            PENNY_PILOT.step(D("1"), -1)
        with pytest.raises(TickError, match="toward"):
            PENNY_PILOT.step(D("1"), 1, "sideways")  # type: ignore[arg-type]


# -- property tests ---------------------------------------------------------------------------

TICKS = [D("0.0001"), D("0.01"), D("0.05"), D("0.10"), D("0.25"), D("0.5"), D("1")]


@st.composite
def schedules(draw: st.DrawFn) -> TickSchedule:
    count = draw(st.integers(min_value=1, max_value=4))
    ticks = [draw(st.sampled_from(TICKS)) for _ in range(count)]
    cents = sorted(
        draw(
            st.lists(
                st.integers(min_value=1, max_value=100_000),
                min_size=count - 1,
                max_size=count - 1,
                unique=True,
            )
        )
    )
    thresholds: list[Decimal | None] = [D(c) / 100 for c in cents]
    thresholds.append(None)
    return TickSchedule.from_sizes(list(zip(ticks, thresholds, strict=True)))


prices = st.integers(min_value=0, max_value=20_000_000).map(lambda n: D(n) / 10_000)


@settings(max_examples=300, deadline=None)
@given(schedules(), prices)
def test_rounding_is_on_tick_and_brackets_the_price(schedule: TickSchedule, price: Decimal) -> None:
    below, above = schedule.nearest_valid(price)
    assert schedule.is_on_tick(below)
    assert schedule.is_on_tick(above)
    assert below <= price <= above
    if schedule.is_on_tick(price):
        assert below == above == price
    else:
        # Nothing valid lies strictly between: the next rung above `below` is `above`.
        assert schedule.step(below, 1, "up") == above


@settings(max_examples=300, deadline=None)
@given(schedules(), prices, prices)
def test_rounding_is_monotone(schedule: TickSchedule, a: Decimal, b: Decimal) -> None:
    low, high = min(a, b), max(a, b)
    assert schedule.round_down(low) <= schedule.round_down(high)
    assert schedule.round_up(low) <= schedule.round_up(high)


@settings(max_examples=300, deadline=None)
@given(schedules(), prices, st.sampled_from(list(Side)))
def test_passive_never_crosses_toward_the_market(
    schedule: TickSchedule, price: Decimal, side: Side
) -> None:
    passive = schedule.round_passive(price, side)
    aggressive = schedule.round_aggressive(price, side)
    if side is Side.BUY:
        assert passive <= price <= aggressive
    else:
        assert aggressive <= price <= passive


@settings(max_examples=300, deadline=None)
@given(schedules(), prices, st.integers(min_value=1, max_value=8))
def test_step_round_trips_on_the_ladder(schedule: TickSchedule, price: Decimal, k: int) -> None:
    start = schedule.round_up(price)
    up = schedule.step(start, k, "up")
    assert up > start
    assert schedule.is_on_tick(up)
    assert schedule.step(up, k, "down") == start
    # One rung up is the very next valid price: nothing valid lies strictly in between.
    one = schedule.step(start, 1, "up")
    assert schedule.round_down(one - D("0.00001")) == start
