"""Pure chase math: start at the mid (passive rounding), step toward the far side, cap at it."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tastytrade.utils import PriceEffect

from broker.events import LegInfo
from broker.fills.model import ChaseOrder
from broker.fills.policy import (
    ChaseParams,
    ChaseParamsError,
    PriceLadder,
    effect_of,
    half_spread,
    improvement,
    improvement_pct_of_half_spread,
)
from broker.orders.pricing import signed_price
from broker.ticks import TickSchedule

D = Decimal
PENNY = TickSchedule.uniform("0.01")
PENNY_NICKEL = TickSchedule.from_sizes([("0.01", "3"), ("0.05", None)])
NICKEL_DIME = TickSchedule.from_sizes([("0.05", "3"), ("0.10", None)])
ES_OPTIONS = TickSchedule.from_sizes([("0.05", "5"), ("0.25", None)])


def walk(ladder: PriceLadder, start: Decimal, natural: Decimal, ticks: int) -> list[Decimal]:
    prices = [start]
    while (nxt := ladder.next(prices[-1], natural, ticks)) is not None:
        prices.append(nxt)
        assert len(prices) < 1000
    return prices


class TestStart:
    def test_debit_mid_rounds_down(self) -> None:
        ladder = PriceLadder(PENNY_NICKEL, PriceEffect.DEBIT)
        # bid 3.10 / ask 3.40 → mid 3.25 is on the 0.05 ladder
        assert ladder.start(D("-3.25"), D("-3.40")) == D("-3.25")
        # mid 3.27 → passive for a buyer is 3.25, not 3.30
        assert ladder.start(D("-3.27"), D("-3.40")) == D("-3.25")

    def test_credit_mid_rounds_up(self) -> None:
        ladder = PriceLadder(PENNY_NICKEL, PriceEffect.CREDIT)
        assert ladder.start(D("3.27"), D("3.10")) == D("3.30")
        assert ladder.start(D("1.005"), D("0.95")) == D("1.01")

    def test_on_tick_mid_unchanged(self) -> None:
        assert PriceLadder(PENNY, PriceEffect.DEBIT).start(D("-1.25"), D("-1.30")) == D("-1.25")

    def test_locked_market_start_is_natural(self) -> None:
        ladder = PriceLadder(PENNY, PriceEffect.DEBIT)
        assert ladder.start(D("-2.00"), D("-2.00")) == D("-2.00")

    def test_future_quarter_ticks(self) -> None:
        ladder = PriceLadder(TickSchedule.uniform("0.25"), PriceEffect.DEBIT)
        assert ladder.start(D("-5000.125"), D("-5000.25")) == D("-5000.00")

    def test_near_zero_credit_never_flips_effect(self) -> None:
        ladder = PriceLadder(PENNY, PriceEffect.CREDIT)
        # net mid 0.004 credit, natural is a 0.02 debit → smallest valid credit
        assert ladder.start(D("0.004"), D("-0.02")) == D("0.01")

    def test_ladder_needs_an_effect(self) -> None:
        with pytest.raises(ValueError, match="no passive side"):
            PriceLadder(PENNY, PriceEffect.NONE)

    def test_zero_price_has_no_effect(self) -> None:
        with pytest.raises(ChaseParamsError, match="no debit/credit"):
            effect_of(D(0))


class TestSteps:
    def test_buy_equity_two_ticks_to_ask(self) -> None:
        ladder = PriceLadder(PENNY, PriceEffect.DEBIT)
        # bid 100.00 ask 100.10 → mid 100.05
        prices = walk(ladder, ladder.start(D("-100.05"), D("-100.10")), D("-100.10"), 2)
        assert prices == [D("-100.05"), D("-100.07"), D("-100.09"), D("-100.10")]

    def test_sell_steps_down_toward_bid(self) -> None:
        ladder = PriceLadder(PENNY, PriceEffect.CREDIT)
        prices = walk(ladder, ladder.start(D("1.505"), D("1.40")), D("1.40"), 3)
        assert prices == [D("1.51"), D("1.48"), D("1.45"), D("1.42"), D("1.40")]

    def test_step_crosses_threshold_with_new_tick(self) -> None:
        ladder = PriceLadder(PENNY_NICKEL, PriceEffect.DEBIT)
        assert ladder.next(D("-2.98"), D("-3.50"), 2) == D("-3.00")
        assert ladder.next(D("-3.00"), D("-3.50"), 2) == D("-3.10")
        assert ladder.next(D("-2.98"), D("-3.50"), 3) == D("-3.05")

    def test_credit_step_down_across_threshold(self) -> None:
        ladder = PriceLadder(NICKEL_DIME, PriceEffect.CREDIT)
        assert ladder.next(D("3.10"), D("2.00"), 2) == D("2.95")

    def test_never_beyond_natural(self) -> None:
        ladder = PriceLadder(PENNY, PriceEffect.DEBIT)
        assert ladder.next(D("-1.00"), D("-1.01"), 3) == D("-1.01")
        assert ladder.next(D("-1.01"), D("-1.01"), 3) is None

    def test_off_tick_natural_is_rounded_passively(self) -> None:
        # /ES option spread whose natural (6.10 debit) is off the 0.25 ladder above 5
        ladder = PriceLadder(ES_OPTIONS, PriceEffect.DEBIT)
        assert ladder.next(D("-5.75"), D("-6.10"), 3) == D("-6.00")
        assert ladder.next(D("-6.00"), D("-6.10"), 1) is None

    def test_market_moved_away_allows_further_steps(self) -> None:
        ladder = PriceLadder(PENNY, PriceEffect.DEBIT)
        assert ladder.next(D("-1.01"), D("-1.01"), 2) is None
        # ask lifted to 1.05: the chase can continue
        assert ladder.next(D("-1.01"), D("-1.05"), 2) == D("-1.03")

    def test_market_moved_through_us_never_backs_off(self) -> None:
        ladder = PriceLadder(PENNY, PriceEffect.DEBIT)
        # we bid 1.05 and the ask dropped to 0.99: nothing more aggressive to do
        assert ladder.next(D("-1.05"), D("-0.99"), 2) is None

    def test_credit_floor_is_one_tick(self) -> None:
        ladder = PriceLadder(PENNY, PriceEffect.CREDIT)
        assert ladder.next(D("0.03"), D("-0.05"), 3) == D("0.01")
        assert ladder.next(D("0.01"), D("-0.05"), 3) is None

    def test_ticks_out_of_range(self) -> None:
        with pytest.raises(ChaseParamsError):
            PriceLadder(PENNY, PriceEffect.DEBIT).next(D("-1"), D("-2"), 4)

    def test_is_valid(self) -> None:
        ladder = PriceLadder(PENNY_NICKEL, PriceEffect.DEBIT)
        assert ladder.is_valid(D("-3.05"))
        assert not ladder.is_valid(D("-3.01"))
        assert not ladder.is_valid(D("3.05"))  # wrong effect


class TestParams:
    def test_defaults(self) -> None:
        params = ChaseParams()
        assert (params.ticks, params.max_steps) == (2, 3)
        assert 0 < params.interval_s <= 10

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"ticks": 0}, "ticks per step must be 1 to 3"),
            ({"ticks": 4}, "ticks per step must be 1 to 3"),
            ({"max_steps": -1}, "steps must be 0 to 10"),
            ({"max_steps": 11}, "steps must be 0 to 10"),
            ({"interval_s": 0}, "interval must be between"),
            ({"interval_s": 301}, "interval must be between"),
            ({"ticks": 1.5}, "whole number"),
            ({"ticks": True}, "whole number"),
        ],
    )
    def test_invalid(self, kwargs: dict[str, object], message: str) -> None:
        with pytest.raises(ChaseParamsError, match=message):
            ChaseParams(**kwargs)  # type: ignore[arg-type]

    def test_override_chase_zero(self) -> None:
        params = ChaseParams(interval_s=2.0, ticks=3, max_steps=3).override(max_steps=0)
        assert params == ChaseParams(interval_s=2.0, ticks=3, max_steps=0)

    def test_override_validates(self) -> None:
        with pytest.raises(ChaseParamsError):
            ChaseParams().override(ticks=5)


class TestImprovement:
    def test_debit(self) -> None:
        # paid 1.27 where the ask was 1.30: 0.03 better
        assert improvement(D("-1.27"), D("-1.30")) == D("0.03")
        assert improvement_pct_of_half_spread(D("-1.27"), D("-1.30"), D("-1.25")) == D(60)

    def test_credit(self) -> None:
        assert improvement(D("0.88"), D("0.85")) == D("0.03")
        assert half_spread(D("0.90"), D("0.85")) == D("0.05")

    def test_locked(self) -> None:
        assert improvement_pct_of_half_spread(D("-1"), D("-1"), D("-1")) is None


schedules = st.sampled_from([PENNY, PENNY_NICKEL, NICKEL_DIME, ES_OPTIONS])
cents = st.integers(min_value=1, max_value=2_000).map(lambda c: D(c) / 100)


@settings(max_examples=300, deadline=None)
@given(
    schedule=schedules,
    bid=cents,
    width=st.integers(min_value=0, max_value=300).map(lambda c: D(c) / 100),
    effect=st.sampled_from([PriceEffect.DEBIT, PriceEffect.CREDIT]),
    ticks=st.integers(min_value=1, max_value=3),
)
def test_walk_is_on_tick_monotone_and_capped(
    schedule: TickSchedule, bid: Decimal, width: Decimal, effect: PriceEffect, ticks: int
) -> None:
    ask = bid + width
    mid = (bid + ask) / 2
    if effect is PriceEffect.DEBIT:
        natural, signed_mid = -ask, -mid
    else:
        natural, signed_mid = bid, mid
    ladder = PriceLadder(schedule, effect)
    start = ladder.start(signed_mid, natural)
    prices = walk(ladder, start, natural, ticks)
    limit = ladder.limit_toward_natural(natural)
    for price in prices:
        assert ladder.is_valid(price), price
        assert price >= limit  # never beyond the natural
    # the start is never more aggressive than the mid (passive rounding), unless clamped up
    # to the minimum valid price on our side
    floor_price = signed_price(schedule.step(D(0), 1, "up"), effect)
    assert start >= signed_mid or start in (floor_price, limit)
    # strictly more aggressive each step, ending exactly at the natural's limit
    assert all(b < a for a, b in itertools.pairwise(prices))
    assert prices[-1] == limit


class TestOrderEffect:
    """The chase's Debit/Credit comes from the one sign rule, never from a guess."""

    @staticmethod
    def order(**changes: object) -> ChaseOrder:
        values: dict[str, object] = {
            "legs": (LegInfo("SPY", "Buy to Open", D(1), "Equity"),),
            "quantity": D(1),
            "underlying_symbol": "SPY",
            "natural": D("-100.04"),
            "mid": D("-100.02"),
            "schedule": PENNY,
        }
        values.update(changes)
        return ChaseOrder(**values)  # type: ignore[arg-type]

    def test_carried_effect_wins(self) -> None:
        assert self.order(price_effect=PriceEffect.CREDIT, natural=D("1")).effect is (
            PriceEffect.CREDIT
        )

    def test_derived_from_limit_then_natural_then_mid(self) -> None:
        assert self.order().effect is PriceEffect.DEBIT
        assert self.order(limit_price=D("0.50")).effect is PriceEffect.CREDIT
        assert self.order(natural=D(0), mid=D("0.02")).effect is PriceEffect.CREDIT

    def test_all_zero_prices_have_no_effect(self) -> None:
        # Formerly a zero natural and mid were taken for a Credit.
        with pytest.raises(ChaseParamsError, match="no debit/credit effect"):
            _ = self.order(natural=D(0), mid=D(0)).effect

    def test_limit_against_the_carried_effect_is_refused(self) -> None:
        with pytest.raises(ValueError, match="Debit effect"):
            self.order(price_effect=PriceEffect.DEBIT, limit_price=D("100.02"))
        with pytest.raises(ValueError, match="Debit or Credit"):
            self.order(price_effect=PriceEffect.NONE)

    def test_closing_legs_are_sent_with_strict_validation(self) -> None:
        close = self.order(
            legs=(LegInfo("SPY", "Sell to Close", D(1), "Equity"),),
            natural=D("100.00"),
            mid=D("100.02"),
        )
        sent = close.limit_order(D("100.02"), "k")
        assert sent.advanced_instructions is not None
        assert sent.advanced_instructions.strict_position_effect_validation
        assert self.order().limit_order(D("-100.02"), "k").advanced_instructions is None
