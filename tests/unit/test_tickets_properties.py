"""Property tests: generated valid tickets parse to the intended order and survive
format -> parse; arbitrary or mangled text only ever yields a ticket or a TicketError."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from broker import calendar
from broker.tickets import OrderTicket, TicketError, format_ticket, parse_ticket

TODAY = date(2026, 11, 20)  # a trading Friday
PROFILE = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

EQUITY_TICKERS = ["SPY", "QQQ", "AAPL", "TSLA", "IWM", "NVDA", "AMD", "F", "SPXW", "GOOGL", "T"]
FUTURE_ROOTS = ["/ES", "/MES", "/NQ", "/MNQ", "/CL", "/GC", "/6E", "/ZB", "/RTY", "/M2K"]
MONTH_CODES = "FGHJKMNQUVXZ"
MONTH_NAMES = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


@dataclass(frozen=True)
class Intent:
    """What a generated text means; the test oracle builds the expected `as_dict` from it."""

    text: str
    side: str
    opening: bool | None
    quantity: int
    legs: list[tuple[str, str, str]]  # (side, instrument_type, symbol)
    mode: str
    price: str | None
    tif: str
    chase: int | None
    ticks: int | None

    def expected(self) -> dict[str, Any]:
        effect = None if self.mode == "market" else ("Debit" if self.side == "buy" else "Credit")
        return {
            "legs": [
                {
                    "side": side,
                    "opening": self.opening,
                    "instrument_type": kind,
                    "symbol": symbol,
                    "quantity": self.quantity,
                }
                for side, kind, symbol in self.legs
            ],
            "price_mode": self.mode,
            "price": self.price,
            "price_effect": effect,
            "time_in_force": self.tif,
        }


def casing(draw: st.DrawFn, word: str) -> str:
    return draw(st.sampled_from([word.lower(), word.upper(), word.capitalize()]))


def plain(number: Decimal) -> str:
    text = f"{number:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@st.composite
def actions(draw: st.DrawFn) -> tuple[str, str, bool | None]:
    side = draw(st.sampled_from(["buy", "sell"]))
    opening = draw(st.sampled_from([None, True, False]))
    if opening is None:
        return casing(draw, side), side, None
    short = {("buy", True): "BTO", ("sell", True): "STO", ("buy", False): "BTC"}
    abbreviation = short.get((side, opening), "STC")
    spelled = f"{side} to {'open' if opening else 'close'}"
    return draw(st.sampled_from([abbreviation, abbreviation.lower(), spelled])), side, opening


@st.composite
def strikes(draw: st.DrawFn, *, future: bool) -> Decimal:
    whole = draw(st.integers(min_value=1, max_value=7000 if future else 2000))
    fraction = draw(st.sampled_from(["", ".5", ".25", ".125"] if not future else ["", ".5", ".25"]))
    return Decimal(f"{whole}{fraction}")


@st.composite
def expirations(draw: st.DrawFn) -> tuple[date, str]:
    if draw(st.booleans()):
        count = draw(st.integers(min_value=0, max_value=40))
        expiration = calendar.trading_days_ahead(TODAY, count)
        return expiration, draw(st.sampled_from([f"{count}DTE", f"{count}dte", f"{count} DTE"]))
    expiration = TODAY + timedelta(days=draw(st.integers(min_value=0, max_value=900)))
    styles = [
        expiration.isoformat(),
        f"{expiration.month}/{expiration.day}/{expiration.year}",
        f"{expiration.month:02d}/{expiration.day:02d}/{expiration.year % 100:02d}",
        f"{MONTH_NAMES[expiration.month - 1]} {expiration.day} {expiration.year}",
    ]
    if expiration < TODAY.replace(year=TODAY.year + 1):  # year-less forms mean "next such date"
        styles += [
            f"{expiration.month}/{expiration.day}",
            f"{MONTH_NAMES[expiration.month - 1]} {expiration.day}",
            f"{expiration.day} {MONTH_NAMES[expiration.month - 1].lower()}",
        ]
    return expiration, draw(st.sampled_from(styles))


def single_token(draw: st.DrawFn, strike: Decimal, letter: str) -> str:
    word = "calls" if letter == "C" else "puts"
    return draw(
        st.sampled_from(
            [
                f"{plain(strike)}{letter}",
                f"{plain(strike)}{letter.lower()}",
                f"{plain(strike)} {word}",
                f"${plain(strike)}{letter}",
            ]
        )
    )


@st.composite
def option_legs(
    draw: st.DrawFn, side: str, *, future: bool
) -> tuple[list[tuple[str, Decimal, str]], list[str]]:
    """Returns legs as (side, strike, C/P) and the tokens that spell them."""
    other = "sell" if side == "buy" else "buy"
    shape = draw(st.sampled_from(["single", "vertical", "strangle", "condor", "singles"]))
    if shape == "single":
        strike, letter = draw(strikes(future=future)), draw(st.sampled_from("CP"))
        return [(side, strike, letter)], [single_token(draw, strike, letter)]
    if shape == "vertical":
        low, high = sorted(
            draw(st.lists(strikes(future=future), min_size=2, max_size=2, unique=True))
        )
        letter = draw(st.sampled_from("CP"))
        first, second = (low, high) if letter == "C" else (high, low)  # the dearer strike first
        token = f"{plain(first)}/{plain(second)}{draw(st.sampled_from([letter, letter.lower()]))}"
        return [(side, first, letter), (other, second, letter)], [token]
    if shape == "condor":
        wings = sorted(draw(st.lists(strikes(future=future), min_size=4, max_size=4, unique=True)))
        legs = [
            (other, wings[0], "P"),
            (side, wings[1], "P"),
            (side, wings[2], "C"),
            (other, wings[3], "C"),
        ]
        return legs, [
            draw(st.sampled_from(["IC", "ic", "iron condor"])),
            "/".join(map(plain, wings)),
        ]
    count = 2 if shape == "strangle" else draw(st.integers(min_value=2, max_value=4))
    chosen = draw(
        st.lists(
            st.tuples(strikes(future=future), st.sampled_from("CP")),
            min_size=count,
            max_size=count,
            unique=True,
        )
    )
    return [(side, strike, letter) for strike, letter in chosen], [
        single_token(draw, strike, letter) for strike, letter in chosen
    ]


def occ(root: str, expiration: date, letter: str, strike: Decimal) -> str:
    return f"{root:<6}{expiration:%y%m%d}{letter}{int(strike * 1000):08d}"


@st.composite
def instruments(draw: st.DrawFn, side: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    kind = draw(st.sampled_from(["equity", "future", "equity option", "future option"]))
    future = kind.startswith("future")
    if future:
        root = draw(st.sampled_from(FUTURE_ROOTS))
        if draw(st.booleans()):
            contract = f"{root}{draw(st.sampled_from(MONTH_CODES))}{draw(st.integers(0, 9))}"
        else:
            contract = root
        underlying_token, underlying_symbol = casing(draw, contract), contract
    else:
        ticker = draw(st.sampled_from(EQUITY_TICKERS))
        underlying_token = draw(st.sampled_from([ticker, ticker.lower(), f"${ticker}"]))
        underlying_symbol = ticker
    if kind in ("equity", "future"):
        return [(side, kind.title(), underlying_symbol)], [underlying_token]
    expiration, expiration_token = draw(expirations())
    legs, leg_tokens = draw(option_legs(side, future=future))
    if future:
        base = underlying_symbol.lstrip("/")
        symbols = [
            f"./{base} {expiration:%y%m%d}{letter}{plain(strike)}" for _, strike, letter in legs
        ]
        type_name = "Future Option"
    else:
        symbols = [occ(underlying_symbol, expiration, letter, strike) for _, strike, letter in legs]
        type_name = "Equity Option"
    # Underlying, expiration and the legs (as one block) come in any order.
    blocks = [[underlying_token], [expiration_token], leg_tokens]
    order = draw(st.permutations([0, 1, 2]))
    tokens = [token for index in order for token in blocks[index]]
    return [
        (leg_side, type_name, symbol)
        for (leg_side, _, _), symbol in zip(legs, symbols, strict=True)
    ], tokens


@st.composite
def tickets(draw: st.DrawFn) -> Intent:
    action, side, opening = draw(actions())
    quantity = draw(st.integers(min_value=1, max_value=500))
    legs, body = draw(instruments(side))
    parts = [action]
    if quantity != 1 or draw(st.booleans()):
        parts.append(str(quantity))
    elif body[0][0].isdigit() or body[0].startswith("$"):
        parts.append(
            "1"
        )  # without a quantity, a leading strike such as "600 calls" would read as one
    parts += body
    mode = draw(st.sampled_from(["limit", "mid", "market"]))
    price: str | None = None
    priced = True
    effect_word = {"buy": ["db", "debit"], "sell": ["cr", "credit"]}[side]
    if mode == "limit":
        cents = draw(st.integers(min_value=1, max_value=999_999))
        value = Decimal(cents) / 100
        price = f"{value:.2f}"
        typed = draw(st.sampled_from([f"{value:.2f}", plain(value), f"${value:.2f}"]))
        if value < 1 and draw(st.booleans()):
            typed = plain(value).removeprefix("0")  # ".7"
        marker = draw(st.sampled_from(["@ ", "@", "at "]))
        parts.append(f"{marker}{typed}")
    elif mode == "mid":
        parts += draw(st.sampled_from([[], ["@ mid"], ["mid"], ["@mid"]]))
        priced = parts[-1].endswith("mid")
    else:
        parts.append(draw(st.sampled_from(["@ mkt", "@ market", "mkt", "@MKT"])))
    if mode != "market" and draw(st.booleans()):
        parts.append(draw(st.sampled_from(effect_word)))
    tif = "Day" if mode == "market" else draw(st.sampled_from(["Day", "GTC"]))
    if tif == "GTC":
        parts.append(casing(draw, "gtc"))
    elif draw(st.booleans()):
        parts.append("day")
    chase = draw(st.none() | st.integers(min_value=0, max_value=10))
    ticks = draw(st.none() | st.integers(min_value=1, max_value=3))
    if chase is not None:
        parts.append(f"chase={chase}")
    if ticks is not None:
        parts.append(f"ticks={ticks}")
    text = " ".join(parts)
    prefix = draw(st.sampled_from(["", "!tt ", "Lotto: ", "**", "@here "]))
    suffix = draw(st.sampled_from(["", " (swing)", " 🚀", " <@&123456789>", " @everyone"]))
    if prefix == "**":
        suffix += "**"
    if (mode != "mid" or priced) and draw(st.booleans()):
        suffix = " PT 9.99 SL 0.01" + suffix  # exit targets go after a written price
    return Intent(
        prefix + text + suffix, side, opening, quantity, legs, mode, price, tif, chase, ticks
    )


@PROFILE
@given(tickets())
@example(
    Intent(
        "sell 1 SPY 12/18 IC 570/575/605/610 @ 2.10",
        "sell",
        None,
        1,
        [
            ("buy", "Equity Option", "SPY   261218P00570000"),
            ("sell", "Equity Option", "SPY   261218P00575000"),
            ("sell", "Equity Option", "SPY   261218C00605000"),
            ("buy", "Equity Option", "SPY   261218C00610000"),
        ],
        "limit",
        "2.10",
        "Day",
        None,
        None,
    )
)
def test_generated_tickets_parse_to_their_intent_and_round_trip(intent: Intent) -> None:
    ticket = parse_ticket(intent.text, today=TODAY)
    assert ticket.as_dict() == intent.expected(), intent.text
    assert (ticket.chase, ticket.ticks) == (intent.chase, intent.ticks)
    again = parse_ticket(format_ticket(ticket), today=TODAY)
    assert again == ticket
    assert format_ticket(again) == format_ticket(ticket)


def _only_tickets_or_ticket_errors(text: str, today: date) -> None:
    try:
        result = parse_ticket(text, today=today)
    except TicketError as error:
        assert str(error) and error.reason
    else:
        assert isinstance(result, OrderTicket)
        assert parse_ticket(format_ticket(result), today=today) == result


@PROFILE
@given(st.text(max_size=120), st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31)))
def test_arbitrary_text_gives_a_ticket_or_a_ticket_error(text: str, today: date) -> None:
    _only_tickets_or_ticket_errors(text, today)


VOCABULARY = [
    "buy",
    "sell",
    "BTO",
    "sto",
    "btc",
    "STC",
    "to",
    "open",
    "close",
    "1",
    "2",
    "0",
    "-1",
    "10",
    "1.5",
    "SPY",
    "$QQQ",
    "/ES",
    "/ESZ6",
    "/6E",
    "C",
    "P",
    "c",
    "calls",
    "puts",
    "590",
    "590P",
    "595c",
    "590/595C",
    "590/585P",
    "590/595",
    "282.5C",
    "IC",
    "iron",
    "condor",
    "570/575/605/610",
    "12/18",
    "2/30",
    "13/5",
    "12/18/26",
    "2026-12-18",
    "1/1/2020",
    "Dec",
    "18",
    "2026",
    "0DTE",
    "3DTE",
    "dte",
    "exp",
    "@",
    "at",
    "1.20",
    ".7",
    "1,61",
    "c1.3",
    ".1.01",
    ".00",
    "$2",
    "mid",
    "mkt",
    "market",
    "cr",
    "db",
    "credit",
    "gtc",
    "day",
    "chase=2",
    "ticks=9",
    "foo=1",
    "PT",
    "SL",
    "PT1:",
    "stop",
    "(",
    ")",
    "[",
    "lotto",
    "@here",
    "<@&1>",
    "🚀",
    "**",
    "Lotto:",
    "!tt",
    "\n",
    "=",
    "$",
    "/",
    ".",
    ",",
    ":",
    "9999999999",
    "1e5",
]


@PROFILE
@given(
    st.lists(st.sampled_from(VOCABULARY), max_size=14),
    st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31)),
)
def test_grammar_token_soup_gives_a_ticket_or_a_ticket_error(words: list[str], today: date) -> None:
    _only_tickets_or_ticket_errors(" ".join(words), today)


@PROFILE
@given(tickets(), st.data())
def test_mangled_valid_tickets_give_a_ticket_or_a_ticket_error(
    intent: Intent, data: st.DataObject
) -> None:
    text = intent.text
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        position = data.draw(st.integers(min_value=0, max_value=len(text)))
        edit = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        char = data.draw(
            st.characters(codec="utf-8") | st.sampled_from(list(" @/.$,:=()0123456789cCpP"))
        )
        if edit == "insert":
            text = text[:position] + char + text[position:]
        elif edit == "delete":
            text = text[:position] + text[position + 1 :]
        else:
            text = text[:position] + char + text[position + 1 :]
    _only_tickets_or_ticket_errors(text, TODAY)
