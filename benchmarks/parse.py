"""Order-language benchmark: parse throughput, plus how the real alert corpus fares.

    .venv/bin/python benchmarks/parse.py

Sections are functions so more measurements (build + dry-run latency) can be added to `main()`.
The corpus lives outside the repo (BSD-3 data from DiscordAlertsTrader); point `TT_ALERTS_DIR`
at it if it is not in `../shared/data/alerts`.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from broker import calendar  # noqa: E402
from broker.tickets import OrderTicket, TicketError, parse_ticket  # noqa: E402

ALERTS_DIR = Path(os.environ.get("TT_ALERTS_DIR", ROOT.parent / "shared" / "data" / "alerts"))
#: Alerts without a known date are parsed as of this (2023) trading day.
CORPUS_TODAY = date(2023, 1, 3)
BENCH_TODAY = date(2026, 11, 20)
DAT_OPTION = re.compile(r"^([A-Z]+)_(\d{2})(\d{2})(\d{2})([CP])([\d.]+)$")


# -- corpus ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CorpusCase:
    source: str  # "jsonl:<kind>", "discord_message", "portfolio"
    text: str
    today: date
    expected_symbol: str | None = None  # the OCC / ticker DAT's own parse implies, when known
    expected_quantity: int | None = None


@dataclass(frozen=True)
class CorpusOutcome:
    case: CorpusCase
    ticket: OrderTicket | None
    error: TicketError | None

    @property
    def symbol_matches(self) -> bool | None:
        if self.ticket is None or self.case.expected_symbol is None:
            return None
        same_symbol = self.ticket.legs[0].symbol == self.case.expected_symbol
        expected_quantity = self.case.expected_quantity
        return same_symbol and expected_quantity in (None, self.ticket.quantity)


def dat_symbol_to_canonical(symbol: str) -> str:
    """DAT's `BABA_051923C88` -> OCC `BABA  230519C00088000`; stock tickers unchanged."""
    match = DAT_OPTION.match(symbol)
    if match is None:
        return symbol
    root, month, day, year, letter, strike = match.groups()
    return f"{root:<6}{year}{month}{day}{letter}{int(Decimal(strike) * 1000):08d}"


def load_alert_cases(alerts_dir: Path = ALERTS_DIR) -> list[CorpusCase]:
    """The labelled/unlabelled alerts and phrases, plus the one serialized Discord message."""
    cases = []
    with (alerts_dir / "DiscordAlertsTrader_alert_cases.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            expected = row.get("expected") or {}
            symbol = expected.get("Symbol")
            quantity = expected.get("Qty")
            cases.append(
                CorpusCase(
                    source=f"jsonl:{row['kind']}",
                    text=row["text"],
                    today=CORPUS_TODAY,
                    expected_symbol=dat_symbol_to_canonical(symbol) if symbol else None,
                    expected_quantity=int(quantity)
                    if symbol and quantity
                    else (1 if symbol else None),
                )
            )
    message = json.loads((alerts_dir / "discord_message.json").read_text(encoding="utf-8"))
    cases.append(
        CorpusCase(
            source="discord_message",
            text=message["content"],
            today=date.fromisoformat(message["created_at"][:10]),
        )
    )
    return cases


def _portfolio_text(index: int, row: dict[str, str]) -> str | None:
    """Re-create the alert line DAT parsed, in a rotating choice of the forms analysts use."""
    quantity, price, action = row["Qty"], row["Price"], row["Type"]
    if not quantity.isdigit() or not price:
        return None
    match = DAT_OPTION.match(row["Symbol"])
    if match is None:
        return f"{action} {quantity} {row['Symbol']} @ {price}"
    root, month, day, _, letter, strike = match.groups()
    forms = [
        f"{action} {quantity} {root} {strike}{letter.lower()} {month}/{day} @ {price}",
        f"{action} {quantity} {root} {int(month)}/{int(day)} {strike}{letter} @{price}",
        f"{action} {quantity} {month}/{day} {root} {strike} {'calls' if letter == 'C' else 'puts'}"
        f" at {price}",
        f"**{action}** {quantity} ${root} {strike}{letter} {month}/{day} @ {price} <@&1> (swing)",
    ]
    return forms[index % len(forms)]


def load_portfolio_cases(alerts_dir: Path = ALERTS_DIR) -> list[CorpusCase]:
    """Alert lines rebuilt from DAT's parsed portfolio CSVs, dated the day they were posted."""
    cases = []
    for name in ("analysts_portfolio.csv", "analysts_portfolio_bulltrades_5-10_8-8.csv"):
        with (alerts_dir / name).open(encoding="utf-8", newline="") as handle:
            for index, row in enumerate(csv.DictReader(handle)):
                text = _portfolio_text(index, row)
                if text is None:
                    continue
                cases.append(
                    CorpusCase(
                        source="portfolio",
                        text=text,
                        today=date.fromisoformat(row["Date"][:10]),
                        expected_symbol=dat_symbol_to_canonical(row["Symbol"]),
                        expected_quantity=int(row["Qty"]),
                    )
                )
    return cases


def parse_corpus(cases: Iterable[CorpusCase]) -> list[CorpusOutcome]:
    outcomes = []
    for case in cases:
        try:
            outcomes.append(CorpusOutcome(case, parse_ticket(case.text, today=case.today), None))
        except TicketError as error:
            outcomes.append(CorpusOutcome(case, None, error))
    return outcomes


@dataclass
class CorpusReport:
    parsed: Counter[str] = field(default_factory=Counter)  # by source
    refused: Counter[str] = field(default_factory=Counter)  # by source
    reasons: Counter[str] = field(default_factory=Counter)  # by refusal reason (all sources)
    reason_examples: dict[str, str] = field(default_factory=dict)
    symbol_checked: int = 0
    symbol_matched: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def total_parsed(self) -> int:
        return sum(self.parsed.values())

    @property
    def total_refused(self) -> int:
        return sum(self.refused.values())


def corpus_report(outcomes: Iterable[CorpusOutcome]) -> CorpusReport:
    report = CorpusReport()
    for outcome in outcomes:
        source = outcome.case.source
        if outcome.error is not None:
            report.refused[source] += 1
            reason = outcome.error.reason.value
            report.reasons[reason] += 1
            report.reason_examples.setdefault(reason, outcome.case.text)
        else:
            report.parsed[source] += 1
        matches = outcome.symbol_matches
        if matches is not None:
            report.symbol_checked += 1
            report.symbol_matched += matches
            if not matches:
                report.mismatches.append(outcome.case.text)
    return report


def format_report(title: str, report: CorpusReport) -> str:
    lines = [f"{title}: {report.total_parsed} parsed, {report.total_refused} refused"]
    for source in sorted(set(report.parsed) | set(report.refused)):
        lines.append(
            f"  {source:<32} parsed {report.parsed[source]:>5}  refused {report.refused[source]:>5}"
        )
    if report.reasons:
        lines.append("  refused, by reason:")
        for reason, count in report.reasons.most_common():
            example = report.reason_examples[reason]
            example = example if len(example) <= 60 else example[:57] + "..."
            lines.append(f"    {reason:<20} {count:>5}   e.g. {example!r}")
    if report.symbol_checked:
        lines.append(
            f"  symbol+quantity agree with DAT's parse: {report.symbol_matched}/"
            f"{report.symbol_checked} of the parsed alerts that DAT labelled"
        )
        lines.extend(f"    differs: {text!r}" for text in report.mismatches[:5])
    return "\n".join(lines)


# -- throughput -----------------------------------------------------------------------------
def mixed_tickets() -> list[str]:
    """A mix of every form, some noisy alerts and some refusals (refusals cost time too)."""
    return [
        "buy 10 AAPL @ 185.50",
        "sell 5 TSLA @ mkt",
        "BTO 2 SPY 12/18 590P @ 1.20",
        "sto 1 spy 590p 12/18 @1.2",
        "buy 1 SPY 600 calls 12/18 @ .70",
        "buy 1 SPY 600C 2026-12-18 at 0.70",
        "buy 1 SPY 12/18 590/595C @ 1.20",
        "sell 1 SPY 12/18 590/585P @ 1.20 cr",
        "sell 1 SPY 12/18 580P 620C @ 3.20",
        "sell 1 SPY 12/18 IC 570/575/605/610 @ 2.10 gtc chase=2",
        "buy 1 /ESZ6 @ 6000.25",
        "buy 1 /ES 12/18 6000C @ 25",
        "BTO 3 QQQ 3DTE 500C @ mid",
        "**BTO** 2 $SPY Dec 18 590P @ 1.20 🚀 @here <@&123> (risky, PT 1.80 SL 0.90)",
        "BTO 4 SPY 415c 5/3 @ 1,61",
        "buy 1 SPY 590 12/18 @ 1.20",
        "target is the break of 30.5",
    ]


def measure_parse_throughput(
    texts: list[str], *, today: date = BENCH_TODAY, seconds: float = 1.0, rounds: int = 5
) -> float:
    """Tickets (accepted or refused) per second over `texts`; the best of `rounds` rounds, so
    other processes on a busy machine skew it less."""
    calendar.warm_up(today.year, today.year + 1)  # the one-off calendar load is not parsing
    best = 0.0
    for _ in range(rounds):
        count = 0
        started = time.perf_counter()
        deadline = started + seconds / rounds
        while time.perf_counter() < deadline:
            for text in texts:
                with contextlib.suppress(TicketError):  # refusals are part of the mix
                    parse_ticket(text, today=today)
            count += len(texts)
        best = max(best, count / (time.perf_counter() - started))
    return best


def main() -> int:
    rate = measure_parse_throughput(mixed_tickets())
    print(f"parse throughput: {rate:,.0f} tickets/s ({len(mixed_tickets())}-text mix)")
    summary = [f"parse {rate:,.0f}/s"]
    if ALERTS_DIR.is_dir():
        alerts = corpus_report(parse_corpus(load_alert_cases()))
        print(format_report("alert corpus (DiscordAlertsTrader jsonl + message)", alerts))
        portfolio = corpus_report(parse_corpus(load_portfolio_cases()))
        print(format_report("portfolio alerts rebuilt from DAT CSVs", portfolio))
        summary += [
            f"alerts {alerts.total_parsed} parsed / {alerts.total_refused} refused",
            f"portfolio {portfolio.symbol_matched}/{portfolio.symbol_checked} match DAT",
        ]
    else:
        print(f"alert corpus not found at {ALERTS_DIR} (set TT_ALERTS_DIR)")
    print("SUMMARY: " + "; ".join(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
