"""Every form of the order language, and every refusal, against the canonical `as_dict()`."""

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest

from broker.tickets import (
    InstrumentKind,
    OptionType,
    Refusal,
    Side,
    Structure,
    TicketError,
    TimeInForce,
    format_ticket,
    parse_ticket,
)

TODAY = date(2026, 11, 20)  # a Friday; 12/18 is 2026-12-18


def leg(side: str, symbol: str, qty: int = 1, *, opening: bool | None = None) -> dict[str, Any]:
    if symbol.startswith("./"):
        kind = "Future Option"
    elif symbol.startswith("/"):
        kind = "Future"
    elif len(symbol) == 21:
        kind = "Equity Option"
    else:
        kind = "Equity"
    return {
        "side": side,
        "opening": opening,
        "instrument_type": kind,
        "symbol": symbol,
        "quantity": qty,
    }


def order(
    *legs: dict[str, Any],
    mode: str = "limit",
    price: str | None = None,
    effect: str | None = None,
    tif: str = "Day",
) -> dict[str, Any]:
    return {
        "legs": list(legs),
        "price_mode": mode,
        "price": price,
        "price_effect": effect,
        "time_in_force": tif,
    }


def parse(text: str, today: date = TODAY) -> dict[str, Any]:
    return parse_ticket(text, today=today).as_dict()


SPY_590P = "SPY   261218P00590000"
SPY_600C = "SPY   261218C00600000"

FORMS: list[tuple[str, dict[str, Any]]] = [
    # --- equities
    ("buy 10 AAPL @ 185.50", order(leg("buy", "AAPL", 10), price="185.50", effect="Debit")),
    ("sell 5 TSLA @ mkt", order(leg("sell", "TSLA", 5), mode="market")),
    ("sell 5 TSLA @ market", order(leg("sell", "TSLA", 5), mode="market")),
    ("buy 10 AAPL", order(leg("buy", "AAPL", 10), mode="mid", effect="Debit")),
    ("buy 10 AAPL @ mid", order(leg("buy", "AAPL", 10), mode="mid", effect="Debit")),
    ("buy $AAPL @ 185.5", order(leg("buy", "AAPL"), price="185.50", effect="Debit")),
    (
        "BUY 10 aapl @ 185.50 GTC",
        order(leg("buy", "AAPL", 10), price="185.50", effect="Debit", tif="GTC"),
    ),
    ("buy 10 AAPL @ 185.50 day", order(leg("buy", "AAPL", 10), price="185.50", effect="Debit")),
    ("buy 1 BRK.B @ 480", order(leg("buy", "BRK/B"), price="480.00", effect="Debit")),
    ("buy 10 C @ 50", order(leg("buy", "C", 10), price="50.00", effect="Debit")),
    # --- actions and quantity
    (
        "BTO 2 SPY 12/18 590P @ 1.20",
        order(leg("buy", SPY_590P, 2, opening=True), price="1.20", effect="Debit"),
    ),
    (
        "STO 2 SPY 12/18 590P @ 1.20",
        order(leg("sell", SPY_590P, 2, opening=True), price="1.20", effect="Credit"),
    ),
    (
        "BTC 2 SPY 12/18 590P @ 1.20",
        order(leg("buy", SPY_590P, 2, opening=False), price="1.20", effect="Debit"),
    ),
    (
        "STC 2 SPY 12/18 590P @ 1.20",
        order(leg("sell", SPY_590P, 2, opening=False), price="1.20", effect="Credit"),
    ),
    (
        "buy to open 2 SPY 12/18 590P @ 1.20",
        order(leg("buy", SPY_590P, 2, opening=True), price="1.20", effect="Debit"),
    ),
    (
        "Sell To Close SPY 12/18 590P @ 1.20",
        order(leg("sell", SPY_590P, opening=False), price="1.20", effect="Credit"),
    ),
    (
        "sell to open 1 SPY 12/18 590P",
        order(leg("sell", SPY_590P, opening=True), mode="mid", effect="Credit"),
    ),
    ("buy SPY 12/18 590P", order(leg("buy", SPY_590P), mode="mid", effect="Debit")),
    (
        "!tt buy 3 SPY 12/18 590P @ 1.20",
        order(leg("buy", SPY_590P, 3), price="1.20", effect="Debit"),
    ),
    # --- single options: strike/type and expiration in either order
    (
        "sto 1 spy 590p 12/18 @1.2",
        order(leg("sell", SPY_590P, opening=True), price="1.20", effect="Credit"),
    ),
    ("buy 1 SPY 600 calls 12/18 @ .70", order(leg("buy", SPY_600C), price="0.70", effect="Debit")),
    (
        "buy 1 SPY 600C 2026-12-18 at 0.70",
        order(leg("buy", SPY_600C), price="0.70", effect="Debit"),
    ),
    ("buy 1 SPY 600 C 12/18 @ 0.7", order(leg("buy", SPY_600C), price="0.70", effect="Debit")),
    ("buy 1 SPY 600 call 12/18 @ 0.7", order(leg("buy", SPY_600C), price="0.70", effect="Debit")),
    ("buy 1 SPY 590 puts 12/18 @ 0.7", order(leg("buy", SPY_590P), price="0.70", effect="Debit")),
    ("buy 1 SPY 600calls 12/18 @ 0.7", order(leg("buy", SPY_600C), price="0.70", effect="Debit")),
    ("buy 1 12/18 SPY 600C @ 0.70", order(leg("buy", SPY_600C), price="0.70", effect="Debit")),
    ("buy 1 600C 12/18 SPY @ 0.70", order(leg("buy", SPY_600C), price="0.70", effect="Debit")),
    ("buy 1 SPY $600C 12/18 @ $0.70", order(leg("buy", SPY_600C), price="0.70", effect="Debit")),
    (
        "BTO 10 TSLA 282.5C 12/18 @ 0.96",
        order(leg("buy", "TSLA  261218C00282500", 10, opening=True), price="0.96", effect="Debit"),
    ),
    (
        "BTO 1 AMD 172.50p 12/18 @ 1",
        order(leg("buy", "AMD   261218P00172500", opening=True), price="1.00", effect="Debit"),
    ),
    (
        "BTO 1 F 5.5c 12/18 @ .05",
        order(leg("buy", "F     261218C00005500", opening=True), price="0.05", effect="Debit"),
    ),
    (
        "BTO 1 SPY 115p. 12/18 @ 1",
        order(leg("buy", "SPY   261218P00115000", opening=True), price="1.00", effect="Debit"),
    ),
    (
        "buy 1 SPX 12/18 5800P @ 12.5",
        order(leg("buy", "SPX   261218P05800000"), price="12.50", effect="Debit"),
    ),
    ("buy 1 SPY 590P 12/18 @ 0.965", order(leg("buy", SPY_590P), price="0.965", effect="Debit")),
    # --- expirations
    ("buy 1 SPY 12/18/26 590P", order(leg("buy", SPY_590P), mode="mid", effect="Debit")),
    ("buy 1 SPY 12/18/2026 590P", order(leg("buy", SPY_590P), mode="mid", effect="Debit")),
    ("buy 1 SPY Dec 18 590P", order(leg("buy", SPY_590P), mode="mid", effect="Debit")),
    ("buy 1 SPY December 18 590P", order(leg("buy", SPY_590P), mode="mid", effect="Debit")),
    ("buy 1 SPY dec 18, 2026 590P", order(leg("buy", SPY_590P), mode="mid", effect="Debit")),
    ("buy 1 SPY 18 Dec 590P", order(leg("buy", SPY_590P), mode="mid", effect="Debit")),
    ("buy 1 SPY 18 dec 26 590P", order(leg("buy", SPY_590P), mode="mid", effect="Debit")),
    ("buy 1 SPY exp 12/18 590P", order(leg("buy", SPY_590P), mode="mid", effect="Debit")),
    (
        "buy 1 SPY 590P expiration 2026-12-18",
        order(leg("buy", SPY_590P), mode="mid", effect="Debit"),
    ),
    ("buy 1 SPY 0DTE 590P", order(leg("buy", "SPY   261120P00590000"), mode="mid", effect="Debit")),
    ("buy 1 SPY 590P 1DTE", order(leg("buy", "SPY   261123P00590000"), mode="mid", effect="Debit")),
    # 5 trading days after Fri 2026-11-20 skips Thanksgiving (11/26): Mon 11/30.
    ("buy 1 SPY 5dte 590P", order(leg("buy", "SPY   261130P00590000"), mode="mid", effect="Debit")),
    (
        "buy 1 SPY 2 DTE 590P",
        order(leg("buy", "SPY   261124P00590000"), mode="mid", effect="Debit"),
    ),
    # M/D with no year rolls to the next occurrence: 1/15 after 2026-11-20 is 2027.
    ("buy 1 SPY 1/15 590P", order(leg("buy", "SPY   270115P00590000"), mode="mid", effect="Debit")),
    (
        "buy 1 SPY 11/20 590P",
        order(leg("buy", "SPY   261120P00590000"), mode="mid", effect="Debit"),
    ),
    # --- verticals: first strike gets the order's side
    (
        "buy 1 SPY 12/18 590/595C @ 1.20",
        order(
            leg("buy", "SPY   261218C00590000"),
            leg("sell", "SPY   261218C00595000"),
            price="1.20",
            effect="Debit",
        ),
    ),
    (
        "sell 1 SPY 12/18 590/585P @ 1.20 cr",
        order(
            leg("sell", SPY_590P),
            leg("buy", "SPY   261218P00585000"),
            price="1.20",
            effect="Credit",
        ),
    ),
    (
        "buy 2 SPY 590/595 calls 12/18 @ 1.20 db",
        order(
            leg("buy", "SPY   261218C00590000", 2),
            leg("sell", "SPY   261218C00595000", 2),
            price="1.20",
            effect="Debit",
        ),
    ),
    (
        "STO 1 SPY 12/18 590P/585P @ 1.2 credit",
        order(
            leg("sell", SPY_590P, opening=True),
            leg("buy", "SPY   261218P00585000", opening=True),
            price="1.20",
            effect="Credit",
        ),
    ),
    (
        "sell 1 SPY 12/18 590/595c @ 1.20cr",
        order(
            leg("sell", "SPY   261218C00590000"),
            leg("buy", "SPY   261218C00595000"),
            price="1.20",
            effect="Credit",
        ),
    ),
    # --- several legs, one expiration: every leg gets the order's side
    (
        "sell 1 SPY 12/18 580P 620C @ 3.20",
        order(
            leg("sell", "SPY   261218P00580000"),
            leg("sell", "SPY   261218C00620000"),
            price="3.20",
            effect="Credit",
        ),
    ),
    (
        "buy 1 SPY 12/18 600P 600C @ 9",
        order(
            leg("buy", "SPY   261218P00600000"), leg("buy", SPY_600C), price="9.00", effect="Debit"
        ),
    ),
    # --- iron condor
    (
        "sell 1 SPY 12/18 IC 570/575/605/610 @ 2.10",
        order(
            leg("buy", "SPY   261218P00570000"),
            leg("sell", "SPY   261218P00575000"),
            leg("sell", "SPY   261218C00605000"),
            leg("buy", "SPY   261218C00610000"),
            price="2.10",
            effect="Credit",
        ),
    ),
    (
        "buy 1 SPY 12/18 IC 570/575/605/610 @ 2.10",
        order(
            leg("sell", "SPY   261218P00570000"),
            leg("buy", "SPY   261218P00575000"),
            leg("buy", "SPY   261218C00605000"),
            leg("sell", "SPY   261218C00610000"),
            price="2.10",
            effect="Debit",
        ),
    ),
    (
        "STO 3 SPY iron condor 570/575/605/610 12/18 @ 2.1 cr",
        order(
            leg("buy", "SPY   261218P00570000", 3, opening=True),
            leg("sell", "SPY   261218P00575000", 3, opening=True),
            leg("sell", "SPY   261218C00605000", 3, opening=True),
            leg("buy", "SPY   261218C00610000", 3, opening=True),
            price="2.10",
            effect="Credit",
        ),
    ),
    # --- futures and future options
    ("buy 1 /ESZ6 @ 6000.25", order(leg("buy", "/ESZ6"), price="6000.25", effect="Debit")),
    ("sell 2 /MESZ6 @ mkt", order(leg("sell", "/MESZ6", 2), mode="market")),
    ("buy 1 /esz26 @ 6000", order(leg("buy", "/ESZ6"), price="6000.00", effect="Debit")),
    ("buy 1 /6EZ6 @ 1.1", order(leg("buy", "/6EZ6"), price="1.10", effect="Debit")),
    ("buy 1 /ES", order(leg("buy", "/ES"), mode="mid", effect="Debit")),
    ("sell 1 /M2K @ 2400.1", order(leg("sell", "/M2K"), price="2400.10", effect="Credit")),
    (
        "buy 1 /ES 12/18 6000C @ 25",
        order(leg("buy", "./ES 261218C6000"), price="25.00", effect="Debit"),
    ),
    (
        "buy 1 /ESZ6 12/18 6000.5P @ 25",
        order(leg("buy", "./ESZ6 261218P6000.5"), price="25.00", effect="Debit"),
    ),
    (
        "sell 1 /ES 12/18 6000/5950P @ 10",
        order(
            leg("sell", "./ES 261218P6000"),
            leg("buy", "./ES 261218P5950"),
            price="10.00",
            effect="Credit",
        ),
    ),
    # --- noise: mentions, emoji, markdown, labels, comments
    (
        "**BTO** 2 $SPY 12/18 590P @ 1.20 🚀🔥 @here <@&123456> <@!42> <#99>",
        order(leg("buy", SPY_590P, 2, opening=True), price="1.20", effect="Debit"),
    ),
    (
        "`!tt BTO 2 SPY 12/18 590P @ 1.20`",
        order(leg("buy", SPY_590P, 2, opening=True), price="1.20", effect="Debit"),
    ),
    (
        "> __BTO 2 SPY 12/18 590P @ 1.20__ <:pepe:123>",
        order(leg("buy", SPY_590P, 2, opening=True), price="1.20", effect="Debit"),
    ),
    (
        "Lotto: BTO 2 SPY 12/18 590P @ 1.20",
        order(leg("buy", SPY_590P, 2, opening=True), price="1.20", effect="Debit"),
    ),
    (
        "Super Lotto: BTO 2 SPY 12/18 590P @ 1.20",
        order(leg("buy", SPY_590P, 2, opening=True), price="1.20", effect="Debit"),
    ),
    (
        "BTO 2 SPY 12/18 590P @ 1.20 (risky, PT 1.80 SL 0.90)",
        order(leg("buy", SPY_590P, 2, opening=True), price="1.20", effect="Debit"),
    ),
    (
        "BTO 2 SPY 12/18 590P @ 1.20 PT 1.80 SL 0.90",
        order(leg("buy", SPY_590P, 2, opening=True), price="1.20", effect="Debit"),
    ),
    (
        "BTO 2 SPY (swing) 12/18 590P @ 1.20",
        order(leg("buy", SPY_590P, 2, opening=True), price="1.20", effect="Debit"),
    ),
    (
        "BTO 2 SPY 12/18 590P @ 1.20 @Cblast Alert",
        order(leg("buy", SPY_590P, 2, opening=True), price="1.20", effect="Debit"),
    ),
    (
        "BTO 2 SPY 12/18 590P @ 1.20 (unclosed comment PT 2",
        order(leg("buy", SPY_590P, 2, opening=True), price="1.20", effect="Debit"),
    ),
    (
        "BTO 2 SPY 12/18. 590P @ 1.20.",
        order(leg("buy", SPY_590P, 2, opening=True), price="1.20", effect="Debit"),
    ),
    (
        "BTO 2 SPY\n12/18 590P\n@ 1.20",
        order(leg("buy", SPY_590P, 2, opening=True), price="1.20", effect="Debit"),
    ),
]


@pytest.mark.parametrize(("text", "expected"), FORMS, ids=[text for text, _ in FORMS])
def test_form(text: str, expected: dict[str, Any]) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize("text", [text for text, _ in FORMS])
def test_every_form_round_trips_through_format(text: str) -> None:
    ticket = parse_ticket(text, today=TODAY)
    assert parse_ticket(format_ticket(ticket), today=TODAY) == ticket


def test_structured_option_fields_for_the_builder() -> None:
    ticket = parse_ticket("BTO 2 SPY 12/18 590/585P @ 1.20", today=TODAY)  # put debit spread
    assert ticket.structure is Structure.VERTICAL
    bought, sold = ticket.legs
    assert (bought.side, sold.side) == (Side.BUY, Side.SELL)
    assert bought.underlying == "SPY"
    assert bought.expiration == sold.expiration == date(2026, 12, 18)
    assert (bought.strike, sold.strike) == (Decimal("590"), Decimal("585"))
    assert bought.option_type is OptionType.PUT
    assert bought.kind is InstrumentKind.EQUITY_OPTION
    assert ticket.side is Side.BUY and ticket.opening is True and ticket.quantity == 2
    assert ticket.price == Decimal("1.20")


def test_future_fields_front_month_and_explicit_contract() -> None:
    bare = parse_ticket("buy 1 /ES @ 6000", today=TODAY).legs[0]
    assert bare.symbol == "/ES" and bare.front_month_unresolved and bare.future_symbol is None
    assert bare.underlying == "/ES" and bare.kind is InstrumentKind.FUTURE
    explicit = parse_ticket("buy 1 /ESZ6 @ 6000", today=TODAY).legs[0]
    assert not explicit.front_month_unresolved and explicit.future_symbol == "/ESZ6"
    assert explicit.underlying == "/ES"


def test_future_option_fields() -> None:
    ticket = parse_ticket("buy 1 /ES 12/18 6000C @ 25", today=TODAY)
    (option,) = ticket.legs
    assert option.kind is InstrumentKind.FUTURE_OPTION
    assert option.underlying == "/ES" and option.front_month_unresolved
    assert (option.expiration, option.strike, option.option_type) == (
        date(2026, 12, 18),
        Decimal("6000"),
        OptionType.CALL,
    )
    with_contract = parse_ticket("buy 1 /ESZ6 12/18 6000C @ 25", today=TODAY).legs[0]
    assert with_contract.future_symbol == "/ESZ6" and not with_contract.front_month_unresolved


@pytest.mark.parametrize(
    ("text", "structure"),
    [
        ("buy 10 AAPL", Structure.EQUITY),
        ("buy 1 /ESZ6", Structure.FUTURE),
        ("buy 1 SPY 12/18 590P", Structure.SINGLE),
        ("buy 1 SPY 12/18 590/595C", Structure.VERTICAL),
        ("sell 1 SPY 12/18 580P 620C", Structure.STRANGLE),
        ("sell 1 SPY 12/18 600P 600C", Structure.STRANGLE),
        ("sell 1 SPY 12/18 IC 570/575/605/610", Structure.IRON_CONDOR),
        ("sell 1 SPY 12/18 580C 620C", Structure.COMBO),
        ("sell 1 SPY 12/18 575/570P 605/610C", Structure.COMBO),
    ],
)
def test_structure(text: str, structure: Structure) -> None:
    assert parse_ticket(text, today=TODAY).structure is structure


def test_two_verticals_make_a_four_leg_combo_with_sides_per_vertical() -> None:
    ticket = parse_ticket("sell 1 SPY 12/18 575/570P 605/610C @ 2", today=TODAY)
    assert [(leg.side, leg.strike) for leg in ticket.legs] == [
        (Side.SELL, Decimal("575")),
        (Side.BUY, Decimal("570")),
        (Side.SELL, Decimal("605")),
        (Side.BUY, Decimal("610")),
    ]


@pytest.mark.parametrize(
    ("typed", "normalised"),
    [
        ("1.2", "1.20"),
        (".7", "0.70"),
        ("6000.25", "6000.25"),
        ("25", "25.00"),
        ("0.965", "0.965"),
        ("3.", "3.00"),
    ],
)
def test_price_normalisation(typed: str, normalised: str) -> None:
    assert parse(f"buy 1 SPY 12/18 590P @ {typed}")["price"] == normalised


def test_settings_chase_and_ticks() -> None:
    ticket = parse_ticket("buy 1 SPY 12/18 590P @ 1.20 chase=3 ticks=2", today=TODAY)
    assert (ticket.chase, ticket.ticks) == (3, 2)
    assert parse_ticket("buy 1 SPY 12/18 590P chase = 0", today=TODAY).chase == 0
    plain = parse_ticket("buy 1 SPY 12/18 590P", today=TODAY)
    assert (plain.chase, plain.ticks) == (None, None)


def test_gtc_limit_and_mid_are_allowed() -> None:
    assert (
        parse_ticket("buy 1 SPY 12/18 590P @ 1 gtc", today=TODAY).time_in_force is TimeInForce.GTC
    )
    assert (
        parse_ticket("buy 1 SPY 12/18 590P @ mid gtc", today=TODAY).time_in_force is TimeInForce.GTC
    )


def test_exit_targets_are_captured_but_do_not_change_the_order() -> None:
    with_exits = parse_ticket("BTO 2 SPY 12/18 590P @ 1.20 (risky, PT 1.80 SL 0.90)", today=TODAY)
    plain = parse_ticket("BTO 2 SPY 12/18 590P @ 1.20", today=TODAY)
    assert with_exits.as_dict() == plain.as_dict()
    assert with_exits.exits.profit_targets == (Decimal("1.80"),)
    assert with_exits.exits.stop_loss == Decimal("0.90")
    assert "risky" in with_exits.comment
    several = parse_ticket("BTO DPW @3.7 PT1: 3.72 PT2: 4.39 PT3:5.96 SL: 3.01", today=TODAY)
    assert several.exits.profit_targets == (Decimal("3.72"), Decimal("4.39"), Decimal("5.96"))
    assert several.exits.stop_loss == Decimal("3.01")
    percent = parse_ticket("BTO 1 SPY 190C 12/18 @ 3 PT: 85%TS10% SL: 50%", today=TODAY)
    assert not percent.exits  # percentages are not price levels


def test_today_must_be_a_date_not_a_datetime() -> None:
    with pytest.raises(TypeError, match="not a datetime"):
        parse_ticket("buy 1 SPY", today=datetime(2026, 11, 20, 12, 0))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
REFUSALS: list[tuple[str, Refusal, str]] = [
    ("", Refusal.EMPTY, "no order"),
    ("   @here 🚀", Refusal.EMPTY, "no order"),
    ("x" * 4001, Refusal.TOO_LONG, "too long"),
    ("hello there", Refusal.NO_ACTION, "starts with buy, sell, BTO"),
    ("SPY 12/18 590P @ 1.20", Refusal.NO_ACTION, 'not "SPY"'),
    ("bought 1 SPY 12/18 590P", Refusal.NO_ACTION, "BTO"),
    # option with no call/put letter: never assume
    (
        "buy 1 SPY 590 12/18 @ 1.20",
        Refusal.NO_OPTION_TYPE,
        '"590" has no call/put letter — write 590C or 590P',
    ),
    ("buy 1 SPY 12/18 590 @ 1.20", Refusal.NO_OPTION_TYPE, "590C or 590P"),
    ("buy 1 SPY 12/18 590/595 @ 1.20", Refusal.NO_OPTION_TYPE, "590/595C or 590/595P"),
    # strike with no expiration
    ("BTO 5 QQQ 301p @ .63", Refusal.NO_EXPIRATION, '"301p" has no expiration'),
    ("buy 1 SPY 590/595C @ 1", Refusal.NO_EXPIRATION, "no expiration"),
    ("buy 1 SPY 12/18 @ 1", Refusal.NO_STRIKE, "no strike"),
    # expirations
    ("buy 1 SPY 2026-01-16 590P", Refusal.PAST_EXPIRATION, "in the past (today is 2026-11-20)"),
    ("buy 1 SPY 1/16/26 590P", Refusal.PAST_EXPIRATION, "in the past"),
    ("buy 1 SPY 11/19/2026 590P", Refusal.PAST_EXPIRATION, "in the past"),
    ("buy 1 SPY 2/30 590P", Refusal.BAD_DATE, "February has no day 30"),
    ("buy 1 SPY 2027-02-29 590P", Refusal.BAD_DATE, "February has no day 29"),
    ("buy 1 SPY 13/5 590P", Refusal.BAD_DATE, "no month 13"),
    ("buy 1 SPY Dec 32 590P", Refusal.BAD_DATE, "no day 32"),
    ("buy 1 SPY 12/18/2040 590P", Refusal.BAD_DATE, "more than 5 years"),
    ("buy 1 SPY 400DTE 590P", Refusal.BAD_DATE, "at most 365"),
    # "DTE" is never a ticker: with a quantity before it, it would read as an expiration
    ("buy dte", Refusal.UNKNOWN_WORD, "number of trading days before it"),
    ("buy DTE @ 100", Refusal.UNKNOWN_WORD, "number of trading days before it"),
    ("buy 1 DTE @ mid", Refusal.NO_SYMBOL, "which ticker"),
    ("buy 1 SPY 12/18 1/15 590P", Refusal.TWO_EXPIRATIONS, "two expirations"),
    # quantity
    ("buy 0 SPY 12/18 590P", Refusal.BAD_QUANTITY, "1 or more"),
    ("buy -2 SPY 12/18 590P", Refusal.BAD_QUANTITY, "1 or more"),
    ("buy 1.5 AAPL", Refusal.BAD_QUANTITY, "whole number"),
    ("buy 99999999 AAPL", Refusal.BAD_QUANTITY, "too large"),
    # unknown words and mixed underlyings
    ("buy 1 SPY 12/18 590P lotto @ 1", Refusal.UNKNOWN_WORD, 'unknown word "lotto"'),
    ("buy 1 SPY 12/18 590P @ 1 5% sz", Refusal.UNKNOWN_WORD, '"5%"'),
    ("buy 1 SPY 12/18 590P @ 1 weeklies", Refusal.UNKNOWN_WORD, 'unknown word "weeklies"'),
    ("buy 1 SPY 12/18 590P limit 1.20", Refusal.UNKNOWN_WORD, 'write the limit price after "@"'),
    ("Cancel: BTO 1 SPY 12/18 590P @ 1", Refusal.UNKNOWN_WORD, "may cancel or negate it"),
    ("Do not: BTO 1 SPY 12/18 590P @ 1", Refusal.UNKNOWN_WORD, "may cancel or negate it"),
    ("buy 1 SPY 12/18 570/575/580P", Refusal.UNKNOWN_WORD, "not a strike, date or price"),
    (
        "sell 1 SPY 12/18 580P QQQ 620C",
        Refusal.MIXED_UNDERLYINGS,
        '"QQQ" looks like a second underlying',
    ),
    ("buy 1 SPY $QQQ 12/18 580P", Refusal.MIXED_UNDERLYINGS, "one order trades one underlying"),
    ("buy 1 /ESZ6 /NQZ6", Refusal.MIXED_UNDERLYINGS, "one underlying"),
    ("buy 1 12/18 590P @ 1", Refusal.NO_SYMBOL, "which ticker"),
    ("buy 1 SPY 12/18 590P STC 1 SPY 12/18 600C", Refusal.MULTIPLE_ORDERS, "one order per message"),
    (
        "BTO 200 CHSN @ 2.57 (momentum) STC 300 POLA @ 1.7",
        Refusal.MULTIPLE_ORDERS,
        "one order per message",
    ),
    ("BTO 1 SPY 12/18 590P @ 1 @Name STC 300 POLA @ 1.7", Refusal.MULTIPLE_ORDERS, "one order"),
    ("buy 1 BRK/B 12/18 400C", Refusal.BAD_SYMBOL, "option root"),
    # prices
    ("BTO 4 SPY 415c 12/18 @ 1,61", Refusal.BAD_PRICE, "did you mean 1.61?"),
    ("buy 1 /ESZ6 @ 6,000.25", Refusal.BAD_PRICE, "did you mean 6000.25?"),
    ("BTO 2 SPY 393c 12/18 @c1.3", Refusal.BAD_PRICE, 'price "c1.3" is not a plain decimal'),
    ("BTO 5 QQQ 314c 12/18 @ .1.01", Refusal.BAD_PRICE, "not a plain decimal"),
    ("BTO 40 COIN @ 57 .00", Refusal.BAD_PRICE, "did you mean 57.00?"),
    ("buy 1 SPY 12/18 590P @ -1.20", Refusal.BAD_PRICE, "positive number"),
    ("buy 1 SPY 12/18 590P @ 0", Refusal.BAD_PRICE, "above 0"),
    ("buy 1 SPY 12/18 590P @", Refusal.BAD_PRICE, "needs a price"),
    ("buy 1 SPY 12/18 590P @ 1.1234567", Refusal.BAD_PRICE, "too many digits"),
    ("buy 10 AAPL 185.50", Refusal.BAD_PRICE, 'put "@" before it'),
    ("BTO 1 LB 12/18 40c .40", Refusal.BAD_PRICE, 'put "@" before it'),
    ("buy 1 SPY 12/18 590P @ 1.20 @ 1.30", Refusal.TWO_PRICES, "two prices"),
    ("buy 1 SPY 12/18 590P @ mid @ 1.30", Refusal.TWO_PRICES, "two prices"),
    ("buy 1 SPY 12/18 590P mkt @ 1.30", Refusal.TWO_PRICES, "two prices"),
    # price effect must agree with the legs
    ("buy 1 SPY 12/18 590P @ 1.20 cr", Refusal.EFFECT_CONFLICT, "buying this is a debit"),
    ("sell 1 SPY 12/18 590/585P @ 1.20 db", Refusal.EFFECT_CONFLICT, "selling this is a credit"),
    ("sell 1 SPY 12/18 IC 570/575/605/610 @ 2.10 debit", Refusal.EFFECT_CONFLICT, "credit"),
    ("buy 1 SPY 12/18 590P @ 1.20 cr db", Refusal.EFFECT_CONFLICT, "either a credit or a debit"),
    # time in force
    ("sell 5 TSLA @ mkt gtc", Refusal.GTC_MARKET, "GTC market order is not allowed"),
    ("sell 5 TSLA @ 1 gtc day", Refusal.DUPLICATE_SETTING, "choose one"),
    # spreads
    ("buy 1 SPY 12/18 595/590C @ 1", Refusal.BAD_SPREAD, 'write "sell ... 590/595C"'),
    ("buy 1 SPY 12/18 590/595P @ 1", Refusal.BAD_SPREAD, 'write "sell ... 595/590P"'),
    ("sell 1 SPY 12/18 585/590P @ 1", Refusal.BAD_SPREAD, 'write "buy ... 590/585P"'),
    ("buy 1 SPY 12/18 590/590C", Refusal.BAD_SPREAD, "two different strikes"),
    ("buy 1 SPY 12/18 590P/595C", Refusal.BAD_SPREAD, "mixes a call and a put"),
    ("sell 1 SPY 12/18 IC 575/570/605/610", Refusal.BAD_SPREAD, "strictly increasing"),
    ("sell 1 SPY 12/18 IC 570/575/605", Refusal.BAD_SPREAD, "four strikes"),
    ("sell 1 SPY 12/18 570/575/605/610", Refusal.BAD_SPREAD, "write IC before them"),
    ("sell 1 SPY 12/18 IC 570/575/605/610 620C", Refusal.TOO_MANY_LEGS, "5 option legs"),
    ("sell 1 SPY 12/18 580P 590P 600P 610P 620P", Refusal.TOO_MANY_LEGS, "at most 4"),
    ("sell 1 SPY 12/18 580P 580P", Refusal.DUPLICATE_LEG, "580P option appears twice"),
    ("buy 1 SPY 12/18 590/595C 595C", Refusal.DUPLICATE_LEG, "595C"),
    # strikes
    ("buy 1 SPY 12/18 0P", Refusal.BAD_STRIKE, "above 0"),
    ("buy 1 SPY 12/18 590.1234P", Refusal.BAD_STRIKE, "at most 3 decimals"),
    ("buy 1 SPY 12/18 123456C", Refusal.BAD_STRIKE, "below 100000"),
    # settings
    ("buy 1 SPY 12/18 590P chase=11", Refusal.BAD_SETTING, "0 to 10"),
    ("buy 1 SPY 12/18 590P ticks=0", Refusal.BAD_SETTING, "1 to 3"),
    ("buy 1 SPY 12/18 590P ticks=x", Refusal.BAD_SETTING, "whole number"),
    ("buy 1 SPY 12/18 590P size=3", Refusal.BAD_SETTING, 'unknown setting "size=3"'),
    ("buy 1 SPY 12/18 590P chase=1 chase=2", Refusal.DUPLICATE_SETTING, "twice"),
    ("BTO 1 SPY 12/18 590P @ 1 PT 2 gtc", Refusal.BAD_SETTING, "put it right after the price"),
    # exits must follow the price
    ("BTO 1 SPY 12/18 590P PT 1.80", Refusal.EXIT_BEFORE_PRICE, "price must come before"),
    # 0DTE on a day without a session (Thanksgiving 2026-11-26)
    ("buy 1 SPY 0DTE 590P", Refusal.NOT_TRADING_DAY, "not a NYSE trading day"),
]


@pytest.mark.parametrize(
    ("text", "reason", "fragment"), REFUSALS, ids=[text[:60] for text, _, _ in REFUSALS]
)
def test_refusal(text: str, reason: Refusal, fragment: str) -> None:
    today = date(2026, 11, 26) if reason is Refusal.NOT_TRADING_DAY else TODAY
    with pytest.raises(TicketError) as caught:
        parse_ticket(text, today=today)
    assert caught.value.reason is reason, str(caught.value)
    assert fragment in str(caught.value)


def test_every_refusal_reason_is_covered() -> None:
    assert {reason for _, reason, _ in REFUSALS} == set(Refusal)


def test_refusal_messages_show_a_correct_example() -> None:
    with pytest.raises(TicketError) as caught:
        parse_ticket("buy 1 SPY 590 12/18", today=TODAY)
    assert str(caught.value) == (
        '"590" has no call/put letter — write 590C or 590P (e.g. "BTO 1 SPY 12/18 590P @ 1.20").'
    )


def test_long_user_input_is_shortened_in_messages() -> None:
    with pytest.raises(TicketError) as caught:
        parse_ticket("buy 1 SPY 12/18 590P @ 1 " + "blah" * 40, today=TODAY)
    assert len(str(caught.value)) < 200
