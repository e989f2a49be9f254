"""The sign rule, net mid math, passive rounding of net prices, and open/close resolution."""

from __future__ import annotations

from decimal import Decimal

import pytest
from tastytrade.order import InstrumentType, Leg, LimitOrder, OrderAction
from tastytrade.utils import PriceEffect

from broker.orders.pricing import (
    LegPrice,
    PositionEffect,
    PositionEffectError,
    PricingError,
    effect_for_side,
    leg_mid,
    leg_ratios,
    net_quote,
    passive_side,
    resolve_position_effect,
    round_net_passive,
    signed_price,
    split_signed_price,
)
from broker.ticks import Side, TickSchedule

D = Decimal
PENNY = TickSchedule.from_sizes([("0.01", "3"), ("0.05", None)])
NICKEL = TickSchedule.from_sizes([("0.05", "3"), ("0.10", None)])


class TestSignRule:
    def test_debit_is_negative_credit_positive(self) -> None:
        assert signed_price(D("1.25"), PriceEffect.DEBIT) == D("-1.25")
        assert signed_price(D("0.85"), PriceEffect.CREDIT) == D("0.85")

    def test_round_trip(self) -> None:
        for effect in (PriceEffect.DEBIT, PriceEffect.CREDIT):
            assert split_signed_price(signed_price(D("2.10"), effect)) == (D("2.10"), effect)
        assert split_signed_price(D(0)) == (D(0), PriceEffect.NONE)

    def test_matches_what_the_sdk_sends(self) -> None:
        leg = Leg(
            instrument_type=InstrumentType.EQUITY,
            symbol="AAPL",
            action=OrderAction.BUY_TO_OPEN,
            quantity=1,
        )
        debit = LimitOrder(legs=[leg], price=signed_price(D("190.00"), PriceEffect.DEBIT))
        body = debit.model_dump(mode="json", by_alias=True, exclude_none=True)
        assert body["price"] == "190.00"
        assert body["price-effect"] == "Debit"
        credit = LimitOrder(legs=[leg], price=signed_price(D("0.85"), PriceEffect.CREDIT))
        assert credit.model_dump(mode="json", by_alias=True)["price-effect"] == "Credit"

    @pytest.mark.parametrize("bad", [D("-1"), D(0), D("NaN"), D("Infinity")])
    def test_magnitude_must_be_positive(self, bad: Decimal) -> None:
        with pytest.raises(PricingError, match="positive"):
            signed_price(bad, PriceEffect.DEBIT)

    def test_float_refused(self) -> None:
        with pytest.raises(PricingError, match="Decimal"):
            signed_price(1.25, PriceEffect.DEBIT)  # type: ignore[arg-type]

    def test_effect_none_refused(self) -> None:
        with pytest.raises(PricingError, match="Debit or Credit"):
            signed_price(D("1"), PriceEffect.NONE)

    def test_sides(self) -> None:
        assert effect_for_side(Side.BUY) is PriceEffect.DEBIT
        assert effect_for_side(Side.SELL) is PriceEffect.CREDIT
        assert passive_side(PriceEffect.DEBIT) is Side.BUY
        assert passive_side(PriceEffect.CREDIT) is Side.SELL
        with pytest.raises(PricingError):
            passive_side(PriceEffect.NONE)


class TestLegMid:
    def test_mid(self) -> None:
        assert leg_mid("X", D("1.00"), D("1.10")) == D("1.05")
        assert leg_mid("X", D("0"), D("0.10")) == D("0.05")

    @pytest.mark.parametrize(
        ("bid", "ask", "message"),
        [
            (None, D("1"), "no quote for SPY: the bid is missing"),
            (D("1"), None, "no quote for SPY: the ask is missing"),
            (None, None, "the bid and ask are missing"),
            (D("1.2"), D("1.1"), "crossed quote"),
            (D("0"), D("0"), "no usable quote"),
        ],
    )
    def test_refuses_to_invent(
        self, bid: Decimal | None, ask: Decimal | None, message: str
    ) -> None:
        with pytest.raises(PricingError, match=message):
            leg_mid("SPY   ", bid, ask)


class TestNetQuote:
    def test_single_buy(self) -> None:
        quote = net_quote([LegPrice("AAPL", Side.BUY, 1, D("189.98"), D("190.02"))])
        assert quote.mid == D("-190.00")
        assert quote.natural == D("-190.02")
        assert quote.passive == D("-189.98")

    def test_debit_vertical(self) -> None:
        legs = [
            LegPrice("C600", Side.BUY, 1, D("5.00"), D("5.20")),
            LegPrice("C610", Side.SELL, 1, D("3.80"), D("3.90")),
        ]
        quote = net_quote(legs)
        assert quote.mid == D("-1.25")  # 5.10 - 3.85
        assert quote.natural == D("-1.40")  # pay the ask 5.20, receive the bid 3.80
        assert quote.passive == D("-1.10")

    def test_short_strangle_is_a_credit(self) -> None:
        legs = [
            LegPrice("P", Side.SELL, 1, D("1.00"), D("1.10")),
            LegPrice("C", Side.SELL, 1, D("0.90"), D("1.00")),
        ]
        quote = net_quote(legs)
        assert quote.mid == D("2.00")
        assert quote.natural == D("1.90")

    def test_iron_condor(self) -> None:
        legs = [
            LegPrice("P1", Side.BUY, 1, D("0.40"), D("0.50")),
            LegPrice("P2", Side.SELL, 1, D("0.90"), D("1.00")),
            LegPrice("C1", Side.SELL, 1, D("0.80"), D("0.90")),
            LegPrice("C2", Side.BUY, 1, D("0.30"), D("0.40")),
        ]
        assert net_quote(legs).mid == D("-0.45") + D("0.95") + D("0.85") - D("0.35")

    def test_ratio_spread_uses_ratios(self) -> None:
        legs = [
            LegPrice("C600", Side.BUY, 1, D("5.00"), D("5.20")),
            LegPrice("C610", Side.SELL, 2, D("2.00"), D("2.10")),
        ]
        assert net_quote(legs).mid == D("-5.10") + 2 * D("2.05")

    def test_missing_leg_quote_names_the_leg(self) -> None:
        legs = [
            LegPrice("C600", Side.BUY, 1, D("5.00"), D("5.20")),
            LegPrice("C610", Side.SELL, 1, None, D("3.90")),
        ]
        with pytest.raises(PricingError, match="no quote for C610"):
            net_quote(legs)

    def test_ratios(self) -> None:
        assert leg_ratios([10, 10]) == [1, 1]
        assert leg_ratios([2, 4, 2]) == [1, 2, 1]
        assert leg_ratios([3]) == [1]
        with pytest.raises(PricingError):
            leg_ratios([1, 0])


class TestRoundNetPassive:
    def test_debit_rounds_magnitude_down(self) -> None:
        assert round_net_passive(D("-3.07"), PENNY) == D("-3.05")
        assert round_net_passive(D("-1.255"), PENNY) == D("-1.25")

    def test_credit_rounds_magnitude_up(self) -> None:
        assert round_net_passive(D("3.07"), PENNY) == D("3.10")
        assert round_net_passive(D("2.995"), PENNY) == D("3.00")

    def test_rounds_to_zero_refused(self) -> None:
        with pytest.raises(PricingError, match=r"rounds to 0\.00"):
            round_net_passive(D("-0.02"), NICKEL)
        with pytest.raises(PricingError, match=r"net price is 0\.00"):
            round_net_passive(D("0"), NICKEL)


class TestPositionEffect:
    def resolve(self, side: Side, quantity: str, held: str, opening: bool | None) -> PositionEffect:
        return resolve_position_effect(
            symbol="SPY", side=side, quantity=D(quantity), held=D(held), opening=opening
        )

    def test_inferred(self) -> None:
        assert self.resolve(Side.BUY, "1", "0", None) is PositionEffect.OPEN
        assert self.resolve(Side.SELL, "1", "0", None) is PositionEffect.OPEN
        assert self.resolve(Side.BUY, "2", "5", None) is PositionEffect.OPEN  # adding to a long
        assert self.resolve(Side.SELL, "2", "-5", None) is PositionEffect.OPEN
        assert self.resolve(Side.BUY, "3", "-3", None) is PositionEffect.CLOSE
        assert self.resolve(Side.SELL, "5", "10", None) is PositionEffect.CLOSE  # partial close

    def test_over_close_refused_with_the_two_orders(self) -> None:
        with pytest.raises(PositionEffectError) as info:
            self.resolve(Side.SELL, "15", "10", None)
        assert str(info.value) == (
            "you are long 10 SPY; one order cannot both close and open. "
            "sell 10 to close, then sell 5 to open"
        )
        with pytest.raises(PositionEffectError, match=r"short 2 SPY.*buy 2 to close, then buy 1"):
            self.resolve(Side.BUY, "3", "-2", None)

    def test_explicit_close(self) -> None:
        assert self.resolve(Side.SELL, "10", "10", False) is PositionEffect.CLOSE
        with pytest.raises(PositionEffectError, match="nothing to close: you hold no position"):
            self.resolve(Side.SELL, "1", "0", False)
        with pytest.raises(PositionEffectError, match="long position of 4"):
            self.resolve(Side.BUY, "1", "4", False)
        with pytest.raises(PositionEffectError, match="long only 4 SPY; cannot sell 5"):
            self.resolve(Side.SELL, "5", "4", False)

    def test_explicit_open(self) -> None:
        assert self.resolve(Side.BUY, "1", "3", True) is PositionEffect.OPEN
        with pytest.raises(PositionEffectError, match="short 3 SPY; a buy to open would close"):
            self.resolve(Side.BUY, "1", "-3", True)
