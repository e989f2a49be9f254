"""Accounts: positions, cash, transactions, fees and a simple margin model.

Fees (per contract unless noted; closing trades of options pay no commission):
- equities: no commission or clearing; sells pay SEC + TAF regulatory fees;
- equity options: $1.00 commission to open (max $10 per leg), $0.10 clearing, $0.04 regulatory;
- futures: $1.25 commission ($0.75 micros), $0.30 clearing, $1.40 exchange+NFA ($0.37 micros);
- future options: $2.50 commission to open, $0.30 clearing, $0.57 exchange+NFA.

Margin (maintenance requirement; buying power = net liquidating value - requirement,
equity buying power = 2x that in a margin account):
- stock: 50% of market value (100% in a cash account);
- options, grouped per underlying (futures options per product): the worst expiry payoff
  over underlying moves of +-20% (+-10% for futures; down to zero in a cash account),
  plus the group's signed market value, floored at zero. So long options cost their
  value, verticals their width less the credit, naked shorts about 20% of the underlying;
- futures: `margin_rate` of notional per contract.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

from broker.paper.calendar import ny_date
from broker.paper.market import Market
from broker.paper.universe import (
    EquitySpec,
    FutureContract,
    FutureOptionContract,
    Instrument,
    Kind,
    OptionContract,
)

CENT = Decimal("0.01")
ZERO = Decimal(0)


def money(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Fees:
    commission: Decimal = ZERO
    clearing: Decimal = ZERO
    regulatory: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.commission + self.clearing + self.regulatory

    def __add__(self, other: Fees) -> Fees:
        return Fees(
            self.commission + other.commission,
            self.clearing + other.clearing,
            self.regulatory + other.regulatory,
        )


def fees_for(instrument: Instrument, action: str, quantity: Decimal, price: Decimal) -> Fees:
    """Fees of one leg fill (positive amounts, charged as debits)."""
    opening = "Open" in action or action in ("Buy", "Sell")
    selling = action.startswith("Sell")
    if isinstance(instrument, EquitySpec):
        if not selling:
            return Fees()
        value = price * quantity
        taf = min(quantity * Decimal("0.000166"), Decimal("8.30"))
        return Fees(regulatory=money(value * Decimal("0.0000278") + taf))
    if isinstance(instrument, OptionContract):
        commission = min(quantity * Decimal("1.00"), Decimal(10)) if opening else ZERO
        return Fees(
            money(commission), money(quantity * Decimal("0.10")), money(quantity * Decimal("0.04"))
        )
    if isinstance(instrument, FutureContract):
        micro = instrument.product.code.startswith("M")
        return Fees(
            money(quantity * (Decimal("0.75") if micro else Decimal("1.25"))),
            money(quantity * Decimal("0.30")),
            money(quantity * (Decimal("0.37") if micro else Decimal("1.40"))),
        )
    commission = quantity * Decimal("2.50") if opening else ZERO
    return Fees(
        money(commission), money(quantity * Decimal("0.30")), money(quantity * Decimal("0.57"))
    )


def multiplier_of(instrument: Instrument) -> Decimal:
    if isinstance(instrument, EquitySpec):
        return Decimal(1)
    if isinstance(instrument, OptionContract):
        return Decimal(instrument.multiplier)
    if isinstance(instrument, FutureContract):
        return instrument.product.multiplier
    return instrument.multiplier


def underlying_of(instrument: Instrument) -> str:
    """The `underlying-symbol` of a position or order in `instrument`."""
    if isinstance(instrument, EquitySpec):
        return instrument.symbol
    if isinstance(instrument, OptionContract):
        return instrument.underlying
    if isinstance(instrument, FutureContract):
        return instrument.product.root
    return instrument.underlying.symbol


@dataclass(slots=True)
class Rendered:
    """A payload rendered from `inputs` (and its JSON text, once asked for)."""

    inputs: tuple[object, ...]
    payload: dict[str, Any]
    text: str | None = None


@dataclass
class Position:
    instrument: Instrument
    quantity: Decimal  # signed: negative = short
    average_open_price: Decimal
    created_at: datetime
    updated_at: datetime
    realized_day_gain: Decimal = ZERO
    realized_date: date | None = None
    # The last `CurrentPosition` payload rendered and its inputs (see `views.position`).
    rendered: Rendered | None = field(default=None, repr=False, compare=False)

    @property
    def symbol(self) -> str:
        return self.instrument.symbol

    @property
    def multiplier(self) -> Decimal:
        return multiplier_of(self.instrument)


@dataclass(slots=True)
class Transaction:
    """One transaction; money fields are signed (negative = Debit)."""

    id: int
    account_number: str
    executed_at: datetime
    transaction_type: str
    transaction_sub_type: str
    description: str
    value: Decimal
    net_value: Decimal
    symbol: str | None = None
    instrument_type: str | None = None
    underlying_symbol: str | None = None
    action: str | None = None
    quantity: Decimal | None = None
    price: Decimal | None = None
    fees: Fees | None = None
    order_id: int | None = None
    exec_id: str | None = None
    # New York date of executed_at (computed once: list queries filter on it)
    transaction_date: date | None = None

    def __post_init__(self) -> None:
        if self.transaction_date is None:
            self.transaction_date = ny_date(self.executed_at)


@dataclass
class Account:
    number: str
    opened_at: datetime
    cash_account: bool
    cash: Decimal
    nickname: str = "Individual"
    positions: dict[str, Position] = field(default_factory=dict)
    transactions: list[Transaction] = field(default_factory=list)
    # Bumped on every change of transactions, so list queries can cache filtered views.
    transactions_version: int = 0
    transactions_sorted: bool = True

    def add_transaction(self, transaction: Transaction) -> None:
        if self.transactions and transaction.executed_at < self.transactions[-1].executed_at:
            self.transactions_sorted = False
        self.transactions.append(transaction)
        self.transactions_version += 1

    def sorted_transactions(self) -> list[Transaction]:
        if not self.transactions_sorted:
            self.transactions.sort(key=lambda t: (t.executed_at, t.id))
            self.transactions_sorted = True
        return self.transactions

    def open_positions(self) -> list[Position]:
        return [p for p in self.positions.values() if p.quantity != 0]


# -------------------------------------------------------------------- margin
@dataclass(frozen=True)
class Holding:
    """A signed quantity of an instrument, for margin what-ifs."""

    instrument: Instrument
    quantity: Decimal


class MarginModel:
    """Maintenance requirements at the market's current quotes.

    An option group's requirement is kept until the market's `revision` changes (a new
    tick or a pinned quote) and recomputed only for groups whose holdings changed, so
    balances and what-ifs asked many times within a tick cost one computation each.
    """

    def __init__(self, market: Market, cash_account: bool) -> None:
        self.market = market
        self.cash_account = cash_account
        self._revision = market.revision
        self._groups: dict[tuple[tuple[str, Decimal], ...], Decimal] = {}
        # Per account number: the last balance summary and what it was computed from.
        self.summaries: dict[str, tuple[tuple[object, ...], BalanceSummary]] = {}

    def mark(self, instrument: Instrument) -> Decimal:
        return self.market.instrument_quote(instrument).mid

    def value(self, holding: Holding) -> Decimal:
        """Signed market value (futures have none: only their P&L counts)."""
        if isinstance(holding.instrument, FutureContract):
            return ZERO
        return holding.quantity * self.mark(holding.instrument) * multiplier_of(holding.instrument)

    def requirement(self, holdings: Iterable[Holding]) -> Decimal:
        groups: dict[str, list[Holding]] = {}
        total = ZERO
        for holding in holdings:
            if holding.quantity == 0:
                continue
            instrument = holding.instrument
            if isinstance(instrument, EquitySpec):
                rate = Decimal(1) if self.cash_account else Decimal("0.5")
                total += abs(self.value(holding)) * rate
            elif isinstance(instrument, FutureContract):
                notional = self.mark(instrument) * instrument.product.multiplier
                total += abs(holding.quantity) * notional * instrument.product.margin_rate
            else:
                groups.setdefault(underlying_of(instrument), []).append(holding)
        for group in groups.values():
            total += self._group_requirement(group)
        return money(total)

    def _group_requirement(self, group: list[Holding]) -> Decimal:
        if self.market.revision != self._revision:
            self._groups.clear()
            self._revision = self.market.revision
        key = tuple((holding.instrument.symbol, holding.quantity) for holding in group)
        requirement = self._groups.get(key)
        if requirement is None:
            if len(self._groups) >= _MAX_CACHED_GROUPS:
                self._groups.clear()
            requirement = self._groups[key] = self._option_group_requirement(group)
        return requirement

    def _option_group_requirement(self, group: list[Holding]) -> Decimal:
        futures_options = isinstance(group[0].instrument, FutureOptionContract)
        band = Decimal("0.10") if futures_options else Decimal("0.20")
        moves = {-band, ZERO, band}
        if self.cash_account:
            moves.add(Decimal(-1))
            moves.add(Decimal(1))
        payoffs: dict[str, ExpiryPayoff] = {}
        for holding in group:
            option = holding.instrument
            assert isinstance(option, OptionContract | FutureOptionContract)
            key = (
                option.underlying
                if isinstance(option, OptionContract)
                else option.underlying.symbol
            )
            payoff = payoffs.get(key)
            if payoff is None:
                payoff = payoffs[key] = ExpiryPayoff(self.market.underlying_mid(key))
            payoff.add(
                option.option_type == "C", option.strike, holding.quantity * multiplier_of(option)
            )
            price = payoff.underlying_price
            if price > 0:
                move = option.strike / price - 1
                if -band <= move <= band or self.cash_account:
                    moves.add(move)
        worst = ZERO
        for move in moves:
            total = ZERO
            for payoff in payoffs.values():
                total += payoff.at(payoff.underlying_price * (1 + move))
            worst = min(worst, total)
        market_value = sum((self.value(h) for h in group), ZERO)
        return max(ZERO, -worst + market_value)


_MAX_CACHED_GROUPS: Final = 512


class ExpiryPayoff:
    """The expiry value of options on one underlying as a function of its price `u`:
    ``sum(w * max(u - K, 0))`` over calls plus ``sum(w * max(K - u, 0))`` over puts
    (``w`` = signed quantity x multiplier). Prefix sums over the sorted strikes make each
    evaluation O(log n), so scanning every strike of a large book stays fast."""

    def __init__(self, underlying_price: Decimal) -> None:
        self.underlying_price = underlying_price
        self._legs: tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]] = ([], [])
        self._sums: tuple[_StrikeSums, _StrikeSums] | None = None

    def add(self, call: bool, strike: Decimal, weight: Decimal) -> None:
        self._legs[0 if call else 1].append((strike, weight))
        self._sums = None

    def at(self, u: Decimal) -> Decimal:
        if self._sums is None:
            self._sums = (_StrikeSums(self._legs[0]), _StrikeSums(self._legs[1]))
        calls, puts = self._sums
        # Calls struck below u are worth u - K; puts struck above u are worth K - u.
        below = bisect_left(calls.strikes, u)
        value = u * calls.weights[below] - calls.weighted_strikes[below]
        above = bisect_right(puts.strikes, u)
        value += (puts.weighted_strikes[-1] - puts.weighted_strikes[above]) - u * (
            puts.weights[-1] - puts.weights[above]
        )
        return value


class _StrikeSums:
    """Strikes in ascending order with running totals of w and w * K (index i: the
    first i strikes)."""

    def __init__(self, legs: list[tuple[Decimal, Decimal]]) -> None:
        legs = sorted(legs, key=lambda leg: leg[0])
        self.strikes = [strike for strike, _ in legs]
        self.weights = [ZERO]
        self.weighted_strikes = [ZERO]
        for strike, weight in legs:
            self.weights.append(self.weights[-1] + weight)
            self.weighted_strikes.append(self.weighted_strikes[-1] + weight * strike)


@dataclass(frozen=True)
class BalanceSummary:
    cash: Decimal
    long_equity: Decimal
    short_equity: Decimal
    long_derivative: Decimal
    short_derivative: Decimal
    long_futures: Decimal
    short_futures: Decimal
    long_futures_derivative: Decimal
    short_futures_derivative: Decimal
    futures_pnl: Decimal
    futures_requirement: Decimal
    requirement: Decimal

    @property
    def net_liq(self) -> Decimal:
        return money(
            self.cash
            + self.long_equity
            - self.short_equity
            + self.long_derivative
            - self.short_derivative
            + self.long_futures_derivative
            - self.short_futures_derivative
            + self.futures_pnl
        )

    @property
    def buying_power(self) -> Decimal:
        return money(self.net_liq - self.requirement)


def summarize(
    account: Account, margin: MarginModel, extra: Iterable[Holding] = ()
) -> BalanceSummary:
    """Balances of `account`; `extra` adds hypothetical holdings (for what-ifs).

    The account's own balances are kept until the market's revision, its cash or its
    positions change (what-ifs are always computed)."""
    hypothetical = tuple(extra)
    if hypothetical:
        return _summarize(account, margin, hypothetical)
    inputs = (
        margin.market.revision,
        account.cash,
        tuple((p.symbol, p.quantity, p.average_open_price) for p in account.positions.values()),
    )
    cached = margin.summaries.get(account.number)
    if cached is not None and cached[0] == inputs:
        return cached[1]
    summary = _summarize(account, margin, ())
    margin.summaries[account.number] = (inputs, summary)
    return summary


def _summarize(account: Account, margin: MarginModel, extra: tuple[Holding, ...]) -> BalanceSummary:
    holdings: dict[str, Holding] = {}
    averages: dict[str, Decimal] = {}
    for position in account.open_positions():
        holdings[position.symbol] = Holding(position.instrument, position.quantity)
        averages[position.symbol] = position.average_open_price
    for holding in extra:
        current = holdings.get(holding.instrument.symbol)
        quantity = holding.quantity + (current.quantity if current else ZERO)
        holdings[holding.instrument.symbol] = Holding(holding.instrument, quantity)
    values = {k: ZERO for k in ("le", "se", "ld", "sd", "lf", "sf", "lfd", "sfd", "pnl", "freq")}
    for symbol, holding in holdings.items():
        instrument = holding.instrument
        if holding.quantity == 0:
            continue
        if isinstance(instrument, FutureContract):
            mark = margin.mark(instrument)
            mult = instrument.product.multiplier
            notional = abs(holding.quantity) * mark * mult
            values["lf" if holding.quantity > 0 else "sf"] += notional
            average = averages.get(symbol, mark)
            values["pnl"] += (mark - average) * holding.quantity * mult
            values["freq"] += notional * instrument.product.margin_rate
            continue
        value = margin.value(holding)
        key = {
            Kind.EQUITY: ("le", "se"),
            Kind.EQUITY_OPTION: ("ld", "sd"),
            Kind.FUTURE_OPTION: ("lfd", "sfd"),
        }[instrument.kind]
        values[key[0] if value >= 0 else key[1]] += abs(value)
    return BalanceSummary(
        cash=account.cash,
        long_equity=money(values["le"]),
        short_equity=money(values["se"]),
        long_derivative=money(values["ld"]),
        short_derivative=money(values["sd"]),
        long_futures=money(values["lf"]),
        short_futures=money(values["sf"]),
        long_futures_derivative=money(values["lfd"]),
        short_futures_derivative=money(values["sfd"]),
        futures_pnl=money(values["pnl"]),
        futures_requirement=money(values["freq"]),
        requirement=margin.requirement(holdings.values()),
    )
