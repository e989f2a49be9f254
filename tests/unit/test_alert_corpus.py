"""Real analysts' alerts (DiscordAlertsTrader corpus, BSD-3): known outcomes, and a sweep over
the whole corpus that checks our reading against DAT's own labels.

The quoted alert texts below are verbatim rows of `DiscordAlertsTrader_alert_cases.jsonl` and
`discord_message.json` (https://github.com/AdoNunes/DiscordAlertsTrader, BSD-3-Clause).
"""

from __future__ import annotations

import importlib.util
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest

from broker.tickets import InstrumentKind, Refusal, Side, TicketError, parse_ticket

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "parse.py"


def _load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tt_bench_parse", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


bench = _load_benchmark()


def test_pnc_close_with_full_date_role_mention_and_comment() -> None:
    text = "STC PNC 140c 07/21/2023 @ 1.4 <@&1037722002145935360> ( 79%)"
    ticket = parse_ticket(text, today=date(2023, 7, 10))
    assert ticket.as_dict() == {
        "legs": [
            {
                "side": "sell",
                "opening": False,
                "instrument_type": "Equity Option",
                "symbol": "PNC   230721C00140000",
                "quantity": 1,
            }
        ],
        "price_mode": "limit",
        "price": "1.40",
        "price_effect": "Credit",
        "time_in_force": "Day",
    }
    assert ticket.comment == "79%"
    # The same line with the author's name in front (how it was copied out of Discord).
    assert parse_ticket("AVI#9896: " + text, today=date(2023, 7, 10)) == ticket


@pytest.mark.parametrize(
    ("text", "today", "symbol", "quantity", "price"),
    [
        (
            "BTO 1 AAPL 190C 07/21 @ 3 PT: 85%TS10% SL: 50%",
            date(2023, 7, 3),
            "AAPL  230721C00190000",
            1,
            "3.00",
        ),
        (
            "BTO 10 TSLA 282.5C 07/14 @ 0.96 PT: 125%TS30% SL: 75%",
            date(2023, 7, 3),
            "TSLA  230714C00282500",
            10,
            "0.96",
        ),
        ("STC  2 QQQ 297c 3/8 @ .7 @here", date(2023, 3, 1), "QQQ   230308C00297000", 2, "0.70"),
        ("BTO 2 SPY 393c 3/20 @1.3 @here", date(2023, 3, 20), "SPY   230320C00393000", 2, "1.30"),
        (
            "BTO 1 COIN 73c 04/06 @ 1.03 @here (Swing) @Cblast Alert",
            date(2023, 4, 3),
            "COIN  230406C00073000",
            1,
            "1.03",
        ),
        (
            "BTO 1 TSLA 195p 03/31 @ 4.75 @here (Day Trade/Swing) @Cblast Alert",
            date(2023, 3, 27),
            "TSLA  230331P00195000",
            1,
            "4.75",
        ),
        (
            "BTO 200 CHSN @ 2.57 <@&1050033416185335808> (playing the momentum to upside off VWAP,"
            " High Risk low float) ",
            date(2023, 3, 1),
            "CHSN",
            200,
            "2.57",
        ),
        ("BTO DPW @3.7 PT1: 3.72 PT2: 4.39 PT3:5.96 SL: 3.01", date(2023, 3, 1), "DPW", 1, "3.70"),
        # Two alerts glued by a missing comma upstream: the second hides in the "@EM Alert" tag.
        (
            "STC 2 SPY 393c 3/20 @ 1.0 @here @EM AlertSTC 300 POLA @ 1.7",
            date(2023, 3, 20),
            "SPY   230320C00393000",
            2,
            "1.00",
        ),
    ],
)
def test_real_alerts_that_parse(
    text: str, today: date, symbol: str, quantity: int, price: str
) -> None:
    ticket = parse_ticket(text, today=today)
    (leg,) = ticket.legs
    assert (leg.symbol, ticket.quantity, ticket.as_dict()["price"]) == (symbol, quantity, price)
    assert ticket.opening is (text.lstrip().upper()[:3] == "BTO")
    expected_kind = InstrumentKind.EQUITY if " " not in symbol else InstrumentKind.EQUITY_OPTION
    assert leg.kind is expected_kind


@pytest.mark.parametrize(
    ("text", "reason", "fragment"),
    [
        ("BTO 4 SPY 415c 5/3 @ 1,61", Refusal.BAD_PRICE, "did you mean 1.61?"),
        ("BTO 2 SPY 393c 3/20 @c1.3 @here", Refusal.BAD_PRICE, '"c1.3" is not a plain decimal'),
        (
            "BTO 5 QQQ 314c 4/25 @ .1.01 5% sz HIGH RISK  @Cedar Alert  voice",
            Refusal.BAD_PRICE,
            '".1.01"',
        ),
        (
            "BTO 40 COIN @ 57 .00 <@&1037722002145935360> ( stope below 53 PT 72)",
            Refusal.BAD_PRICE,
            "did you mean 57.00?",
        ),
        ("BTO 5 QQQ 301p @ .63", Refusal.NO_EXPIRATION, "no expiration"),
        ("STC 4 QQQ 301p @ .88 @here @EM Alert", Refusal.NO_EXPIRATION, "no expiration"),
        (
            "BTO 200 CHSN @ 2.57 <@&1050033416185335808> (playing the momentum to upside off VWAP, "
            "High Risk low float) STC 300 POLA @ 1.7",
            Refusal.MULTIPLE_ORDERS,
            "one order per message",
        ),
        ("STC CRWD 210c all", Refusal.UNKNOWN_WORD, '"all"'),
        ("selling the ORCL lotto 69p at 2.20 from 0.73", Refusal.NO_ACTION, "starts with buy"),
        ("Price Target: 185 Stop: 200", Refusal.NO_ACTION, "starts with buy"),
    ],
)
def test_real_alerts_that_are_refused(text: str, reason: Refusal, fragment: str) -> None:
    with pytest.raises(TicketError) as caught:
        parse_ticket(text, today=date(2023, 3, 1))
    assert caught.value.reason is reason
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("text", "targets", "stop"),
    [
        ("BTO AEHL @ 7 (risky scalp. PT 8.39, SL below 6.45) @everyone", ["8.39"], "6.45"),
        ("BTO CPB @ 45.95 (SL $43, PT 49, posted this in watchlist on monday", ["49"], "43"),
        ("BTO DPW @3.7 PT1: 3.72 PT2: 4.39 PT3:5.96 SL: 3.01", ["3.72", "4.39", "5.96"], "3.01"),
        ("BTO 1 DPW @3.7 PT1 3.72 SL: 3.01", ["3.72"], "3.01"),
    ],
)
def test_exit_levels_are_captured_without_changing_the_order(
    text: str, targets: list[str], stop: str
) -> None:
    ticket = parse_ticket(text, today=date(2023, 3, 1))
    assert ticket.exits.profit_targets == tuple(Decimal(target) for target in targets)
    assert ticket.exits.stop_loss == Decimal(stop)
    assert ticket.side is Side.BUY and len(ticket.legs) == 1 and ticket.price is not None


# -- the whole corpus ----------------------------------------------------------------------
def test_no_natural_language_phrase_is_read_as_an_order() -> None:
    phrases = [c for c in bench.load_alert_cases() if c.source == "jsonl:natural_language_phrase"]
    assert len(phrases) == 62
    outcomes = bench.parse_corpus(phrases)
    assert [o.case.text for o in outcomes if o.ticket is not None] == []


def test_every_labelled_alert_parses_and_agrees_with_dats_symbol_and_quantity() -> None:
    labelled = [c for c in bench.load_alert_cases() if c.source == "jsonl:alert_with_expected"]
    outcomes = bench.parse_corpus(labelled)
    assert [o.case.text for o in outcomes if o.ticket is None] == []
    checked = [o for o in outcomes if o.symbol_matches is not None]
    assert len(checked) == 12  # one labelled row carries no expected dict
    assert all(o.symbol_matches for o in checked), [
        o.case.text for o in checked if not o.symbol_matches
    ]


def test_the_serialized_discord_message_is_refused_for_its_split_price() -> None:
    (message,) = [c for c in bench.load_alert_cases() if c.source == "discord_message"]
    assert message.today == date(2023, 5, 26)
    (outcome,) = bench.parse_corpus([message])
    assert outcome.error is not None and "did you mean 57.00?" in str(outcome.error)


def test_rebuilt_portfolio_alerts_agree_with_dat_except_its_expired_dates() -> None:
    """1,250 alert lines rebuilt from DAT's parsed CSVs, each parsed on the day it was posted.

    The only disagreements must be rows where DAT recorded an expiration *before* the alert's
    own date (an already-expired contract): we read a year-less M/D as the next such date.
    """
    cases = bench.load_portfolio_cases()
    assert len(cases) > 1200
    outcomes = bench.parse_corpus(cases)
    refused = [(o.case.text, o.error.reason) for o in outcomes if o.error is not None]
    assert refused == []
    for outcome in outcomes:
        if outcome.symbol_matches:
            continue
        symbol = outcome.case.expected_symbol
        dat_expiration = date(2000 + int(symbol[6:8]), int(symbol[8:10]), int(symbol[10:12]))
        assert dat_expiration < outcome.case.today, outcome.case.text
        assert outcome.ticket.legs[0].expiration.year == outcome.case.today.year + 1


def test_corpus_report_accounts_for_every_alert() -> None:
    cases = bench.load_alert_cases()
    report = bench.corpus_report(bench.parse_corpus(cases))
    assert report.total_parsed + report.total_refused == len(cases)
    assert sum(report.reasons.values()) == report.total_refused
    text = bench.format_report("corpus", report)
    assert f"{report.total_parsed} parsed, {report.total_refused} refused" in text
    assert "no_action" in text and "bad_price" in text
