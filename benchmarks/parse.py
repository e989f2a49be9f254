"""Order-language benchmark: parse throughput, plus how the real alert corpus fares.

    .venv/bin/python benchmarks/parse.py

Sections are functions so more measurements (build + dry-run latency) can be added to `main()`.
The corpus (BSD-3 data from DiscordAlertsTrader) ships in `tests/data/alerts`; `TT_ALERTS_DIR`
points elsewhere.
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

#: The real alert corpus (BSD-3, see its LICENSE and SOURCE.md) ships with the tests.
ALERTS_DIR = Path(os.environ.get("TT_ALERTS_DIR", ROOT / "tests" / "data" / "alerts"))
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


# -- build + dry-run latency (owned by the order builder) -------------------------------------
@dataclass(frozen=True)
class BuildLatency:
    """Warm-cache latency of building and dry-running single-leg orders on the paper exchange."""

    iterations: int
    build_ms: tuple[float, float]  # (p50, p95)
    dry_run_ms: tuple[float, float]
    build_round_trips: float  # HTTP requests per warm build (target: exactly 1, the quote)
    dry_run_round_trips: float


def measure_build_latency(iterations: int = 30) -> BuildLatency:
    """Build (instrument caches warm) and dry-run single-leg orders through the real SDK.

    Positions come from an in-memory source, as in production (the bot's database), so the
    only HTTP a warm build makes is one market-data request; placing would add one more.
    """
    import asyncio
    import statistics
    from collections.abc import Mapping, Sequence
    from datetime import UTC, datetime

    from tastytrade.account import Account
    from tastytrade.instruments import NestedOptionChain

    from broker.orders.build import OrderBuilder
    from broker.orders.resolve import InstrumentResolver
    from broker.paper import calendar as paper_calendar
    from broker.paper.config import PaperConfig
    from broker.paper.exchange import PaperExchange
    from broker.preview import preview_order
    from broker.session import Credentials, Environment, Secret, SessionManager

    class FlatPositions:
        async def quantities(self, symbols: Sequence[str]) -> Mapping[str, Decimal]:
            return {}

    def percentiles(samples: list[float]) -> tuple[float, float]:
        ordered = sorted(samples)
        return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]

    async def run() -> BuildLatency:
        start = datetime(2026, 3, 11, 15, 0, tzinfo=UTC)  # market hours, deterministic
        async with PaperExchange(PaperConfig(seed=1, start_time=start)) as exchange:
            manager = SessionManager()
            try:
                broker = await manager.get(
                    Credentials(
                        environment=Environment.PAPER,
                        provider_secret=Secret("bench-provider-secret"),
                        refresh_token=Secret("bench-refresh-token"),
                        api_url=exchange.api_url,
                        streamer_url=exchange.streamer_url,
                    )
                )
                account = await broker.read(lambda s: Account.get(s, exchange.account_number))
                builder = OrderBuilder(InstrumentResolver(now=exchange.clock.now))
                positions = FlatPositions()
                today = paper_calendar.ny_date(exchange.clock.now())
                chains = await broker.read(lambda s: NestedOptionChain.get(s, "SPY"))
                day = f"{chains[0].expirations[2].expiration_date:%m/%d/%y}"
                texts = [
                    f"buy 1 SPY {day} 765c @ mid",
                    f"sell 1 SPY {day} 740p @ mid",
                    "buy 10 AAPL @ mid",
                    "buy 1 /ES @ mid",
                ]
                tickets = [parse_ticket(text, today=today) for text in texts]
                for ticket in tickets:  # warm the instrument caches
                    await builder.build(broker, ticket, positions)
                build_ms: list[float] = []
                dry_ms: list[float] = []
                build_trips = dry_trips = 0
                for index in range(iterations):
                    ticket = tickets[index % len(tickets)]
                    mark = len(exchange.requests)
                    started = time.perf_counter()
                    built = await builder.build(broker, ticket, positions)
                    build_ms.append((time.perf_counter() - started) * 1000)
                    build_trips += len(exchange.requests) - mark
                    mark = len(exchange.requests)
                    started = time.perf_counter()
                    await preview_order(broker, account, built)
                    dry_ms.append((time.perf_counter() - started) * 1000)
                    dry_trips += len(exchange.requests) - mark
                return BuildLatency(
                    iterations=iterations,
                    build_ms=percentiles(build_ms),
                    dry_run_ms=percentiles(dry_ms),
                    build_round_trips=build_trips / iterations,
                    dry_run_round_trips=dry_trips / iterations,
                )
            finally:
                await manager.close()

    return asyncio.run(run())


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
    latency = measure_build_latency()
    print(
        f"build (warm caches): p50 {latency.build_ms[0]:.1f} ms, p95 {latency.build_ms[1]:.1f} ms, "
        f"{latency.build_round_trips:g} HTTP round trip(s); dry-run: p50 "
        f"{latency.dry_run_ms[0]:.1f} ms, p95 {latency.dry_run_ms[1]:.1f} ms, "
        f"{latency.dry_run_round_trips:g} round trip(s)"
    )
    summary.append(
        f"build p50 {latency.build_ms[0]:.1f} ms / {latency.build_round_trips:g} trip, "
        f"dry-run p50 {latency.dry_run_ms[0]:.1f} ms"
    )
    print("SUMMARY: " + "; ".join(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
