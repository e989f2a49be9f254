"""The exchange's instruments: equities, option chains, futures and /ES future options.

Everything is generated relative to the exchange clock's New York date when the
exchange starts: weekly expirations for the next 8 weeks plus monthlies (3rd Friday)
for 6 months, only on NYSE trading days, with strikes around the starting spot.
Option and future-option contracts are not materialised up front; symbols are parsed
and checked against the chain structure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache

from broker.paper import calendar

MONTH_CODES = "FGHJKMNQUVXZ"
OCC_PATTERN = re.compile(r"^([A-Z][A-Z0-9 ]{5})(\d{6})([CP])(\d{8})$")
FUTURE_OPTION_PATTERN = re.compile(
    r"^\./([A-Z]+[FGHJKMNQUVXZ]\d) ([A-Z0-9]+[FGHJKMNQUVXZ]\d) (\d{6})([CP])(\d+(?:\.\d+)?)$"
)
FUTURE_PATTERN = re.compile(r"^/([A-Z]+)([FGHJKMNQUVXZ])(\d)$")


class Kind(StrEnum):
    """Instrument types, spelled as the API spells them."""

    EQUITY = "Equity"
    EQUITY_OPTION = "Equity Option"
    FUTURE = "Future"
    FUTURE_OPTION = "Future Option"


@dataclass(frozen=True)
class TickSchedule:
    """Ordered `(value, threshold)` entries; a threshold applies to prices below it."""

    entries: tuple[tuple[Decimal, Decimal | None], ...]

    @classmethod
    def of(cls, *entries: tuple[str, str | None]) -> TickSchedule:
        return cls(tuple((Decimal(v), Decimal(t) if t is not None else None) for v, t in entries))

    def tick_for(self, price: Decimal) -> Decimal:
        price = abs(price)
        for value, threshold in self.entries:
            if threshold is None or price < threshold:
                return value
        return self.entries[-1][0]

    def is_on_tick(self, price: Decimal) -> bool:
        return abs(price) % self.tick_for(price) == 0

    def to_json(self) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        for value, threshold in self.entries:
            entry = {"value": str(value)}
            if threshold is not None:
                entry["threshold"] = str(threshold)
            out.append(entry)
        return out


EQUITY_TICKS = TickSchedule.of(("0.0001", "1"), ("0.01", None))
PENNY_ALL = TickSchedule.of(("0.01", None))
PENNY_PROGRAM = TickSchedule.of(("0.01", "3"), ("0.05", None))
NON_PENNY = TickSchedule.of(("0.05", "3"), ("0.10", None))
ES_OPTION_TICKS = TickSchedule.of(("0.05", "5"), ("0.25", None))


@dataclass(frozen=True)
class EquitySpec:
    id: int
    symbol: str
    description: str
    is_etf: bool
    spot: Decimal
    volatility: float
    option_ticks: TickSchedule
    # (max distance from spot as a fraction, strike increment), innermost first.
    strike_bands: tuple[tuple[float, Decimal], ...]
    lendability: str = "Easy To Borrow"

    @property
    def kind(self) -> Kind:
        return Kind.EQUITY


@dataclass(frozen=True)
class Expiration:
    day: date
    expiration_type: str  # "Regular" (monthly) or "Weekly"
    expires_at: datetime
    strikes: tuple[Decimal, ...]


@dataclass(frozen=True)
class OptionContract:
    symbol: str
    underlying: str
    root: str
    expiration: Expiration
    option_type: str  # "C" | "P"
    strike: Decimal
    multiplier: int = 100

    @property
    def kind(self) -> Kind:
        return Kind.EQUITY_OPTION

    @property
    def streamer_symbol(self) -> str:
        return f".{self.root}{self.expiration.day:%y%m%d}{self.option_type}{_strike(self.strike)}"


@dataclass(frozen=True)
class FutureProduct:
    code: str
    description: str
    tick: Decimal
    multiplier: Decimal
    spot: Decimal
    volatility: float
    exchange: str
    streamer_exchange: str
    product_group: str
    quarterly: bool
    margin_rate: Decimal
    # Annual carry (basis) of later contracts over the front price.
    carry: float
    driver: str  # key of the random walk the product follows (/MES follows /ES)
    option_ticks: TickSchedule | None = None

    @property
    def root(self) -> str:
        return f"/{self.code}"


@dataclass(frozen=True)
class FutureContract:
    symbol: str
    product: FutureProduct
    month: int
    year: int
    expiration_date: date
    expires_at: datetime
    active_month: bool
    next_active_month: bool

    @property
    def kind(self) -> Kind:
        return Kind.FUTURE

    @property
    def streamer_symbol(self) -> str:
        return f"/{self.product.code}{MONTH_CODES[self.month - 1]}{self.year % 100:02d}:" + (
            self.product.streamer_exchange
        )


@dataclass(frozen=True)
class FutureOptionExpiration:
    day: date
    option_root: str  # e.g. EW3
    contract_code: str  # e.g. EW3Z6
    expiration_type: str
    expires_at: datetime
    underlying: FutureContract
    strikes: tuple[Decimal, ...]


@dataclass(frozen=True)
class FutureOptionContract:
    symbol: str
    expiration: FutureOptionExpiration
    option_type: str
    strike: Decimal

    @property
    def kind(self) -> Kind:
        return Kind.FUTURE_OPTION

    @property
    def underlying(self) -> FutureContract:
        return self.expiration.underlying

    @property
    def multiplier(self) -> Decimal:
        return self.expiration.underlying.product.multiplier

    @property
    def streamer_symbol(self) -> str:
        # ./EW3Z26C6000:XCME: the contract code with a two-digit year
        exp = self.expiration
        code = f"{exp.contract_code[:-1]}{exp.day.year % 100:02d}"
        exchange = exp.underlying.product.streamer_exchange
        return f"./{code}{self.option_type}{_strike(self.strike)}:{exchange}"


Instrument = EquitySpec | OptionContract | FutureContract | FutureOptionContract


def _strike(strike: Decimal) -> str:
    """Strike without trailing zeros: 600 -> '600', 480.5 -> '480.5'."""
    return format(strike.normalize(), "f")


def occ_symbol(root: str, day: date, option_type: str, strike: Decimal) -> str:
    return f"{root:<6}{day:%y%m%d}{option_type}{int(strike * 1000):08d}"


def _strikes(spot: Decimal, bands: tuple[tuple[float, Decimal], ...]) -> tuple[Decimal, ...]:
    strikes: set[Decimal] = set()
    for fraction, increment in bands:
        low = spot * (1 - Decimal(str(fraction)))
        high = spot * (1 + Decimal(str(fraction)))
        k = (low / increment).to_integral_value(rounding="ROUND_CEILING") * increment
        while k <= high:
            if k > 0:
                strikes.add(k.quantize(Decimal("0.01")).normalize())
            k += increment
    return tuple(sorted(strikes))


DEFAULT_EQUITIES: tuple[EquitySpec, ...] = (
    EquitySpec(
        27854,
        "SPY",
        "SPDR S&P 500 ETF TRUST",
        True,
        Decimal("765.20"),
        0.15,
        PENNY_ALL,
        ((0.04, Decimal(1)), (0.20, Decimal(5))),
    ),
    EquitySpec(
        11410,
        "QQQ",
        "INVESCO QQQ TRUST SERIES 1",
        True,
        Decimal("688.40"),
        0.20,
        PENNY_ALL,
        ((0.04, Decimal(1)), (0.20, Decimal(5))),
    ),
    EquitySpec(
        10305,
        "IWM",
        "ISHARES RUSSELL 2000 ETF",
        True,
        Decimal("262.75"),
        0.22,
        PENNY_ALL,
        ((0.08, Decimal(1)), (0.25, Decimal(5))),
    ),
    EquitySpec(
        726,
        "AAPL",
        "APPLE INC",
        False,
        Decimal("312.05"),
        0.25,
        PENNY_PROGRAM,
        ((0.10, Decimal("2.5")), (0.30, Decimal(5))),
    ),
    EquitySpec(
        24931,
        "TSLA",
        "TESLA INC",
        False,
        Decimal("431.60"),
        0.55,
        PENNY_PROGRAM,
        ((0.10, Decimal("2.5")), (0.35, Decimal(10))),
    ),
    EquitySpec(
        1219,
        "AMD",
        "ADVANCED MICRO DEVICES INC",
        False,
        Decimal("228.30"),
        0.45,
        PENNY_PROGRAM,
        ((0.10, Decimal("2.5")), (0.35, Decimal(5))),
    ),
    EquitySpec(
        13642,
        "GME",
        "GAMESTOP CORP",
        False,
        Decimal("26.40"),
        0.80,
        NON_PENNY,
        ((0.20, Decimal("0.5")), (0.50, Decimal(1))),
    ),
)

DEFAULT_FUTURES: tuple[FutureProduct, ...] = (
    FutureProduct(
        "ES",
        "E-Mini S&P 500",
        Decimal("0.25"),
        Decimal(50),
        Decimal("7680.00"),
        0.15,
        "CME",
        "XCME",
        "CME_ES",
        True,
        Decimal("0.06"),
        0.01,
        "ES",
        ES_OPTION_TICKS,
    ),
    FutureProduct(
        "MES",
        "Micro E-Mini S&P 500",
        Decimal("0.25"),
        Decimal(5),
        Decimal("7680.00"),
        0.15,
        "CME",
        "XCME",
        "CME_ES",
        True,
        Decimal("0.06"),
        0.01,
        "ES",
    ),
    FutureProduct(
        "NQ",
        "E-Mini Nasdaq 100",
        Decimal("0.25"),
        Decimal(20),
        Decimal("27850.00"),
        0.20,
        "CME",
        "XCME",
        "CME_NQ",
        True,
        Decimal("0.07"),
        0.01,
        "NQ",
    ),
    FutureProduct(
        "CL",
        "Light Sweet Crude Oil",
        Decimal("0.01"),
        Decimal(1000),
        Decimal("64.20"),
        0.35,
        "NYMEX",
        "XNYM",
        "CME_CL",
        False,
        Decimal("0.09"),
        0.04,
        "CL",
    ),
)

ES_OPTION_BANDS: tuple[tuple[float, Decimal], ...] = ((0.03, Decimal(25)), (0.10, Decimal(50)))


@dataclass
class Universe:
    today: date
    equities: dict[str, EquitySpec] = field(default_factory=dict)
    chains: dict[str, tuple[Expiration, ...]] = field(default_factory=dict)
    products: dict[str, FutureProduct] = field(default_factory=dict)
    futures: dict[str, FutureContract] = field(default_factory=dict)
    future_option_chains: dict[str, tuple[FutureOptionExpiration, ...]] = field(
        default_factory=dict
    )

    # ----------------------------------------------------------------- lookup
    def lookup(self, symbol: str) -> Instrument | None:
        """The instrument for an API symbol, or None when it is not listed."""
        if symbol in self.equities:
            return self.equities[symbol]
        if symbol.startswith("./"):
            return self._future_option(symbol)
        if symbol.startswith("/"):
            return self.futures.get(symbol)
        return self._option(symbol)

    def future(self, symbol: str) -> FutureContract | None:
        """Accepts `/ESZ6` or `ESZ6` (the SDK strips the slash)."""
        return self.futures.get(symbol if symbol.startswith("/") else f"/{symbol}")

    def _option(self, symbol: str) -> OptionContract | None:
        match = OCC_PATTERN.match(symbol)
        if match is None:
            return None
        root = match.group(1).strip()
        expirations = self.chains.get(root)
        if expirations is None:
            return None
        day = _parse_day(match.group(2))
        if day is None:
            return None
        strike = (Decimal(match.group(4)) / 1000).normalize()
        for expiration in expirations:
            if expiration.day == day and strike in expiration.strikes:
                return OptionContract(symbol, root, root, expiration, match.group(3), strike)
        return None

    def _future_option(self, symbol: str) -> FutureOptionContract | None:
        match = FUTURE_OPTION_PATTERN.match(symbol)
        if match is None:
            return None
        future = self.futures.get("/" + match.group(1))
        if future is None:
            return None
        day = _parse_day(match.group(3))
        if day is None:
            return None
        strike = Decimal(match.group(5)).normalize()
        for expiration in self.future_option_chains.get(future.product.code, ()):
            if (
                expiration.underlying.symbol == future.symbol
                and expiration.contract_code == match.group(2)
                and expiration.day == day
                and strike in expiration.strikes
            ):
                return FutureOptionContract(symbol, expiration, match.group(4), strike)
        return None

    def options_of(self, underlying: str) -> list[OptionContract]:
        out: list[OptionContract] = []
        for expiration in self.chains.get(underlying, ()):
            for strike in expiration.strikes:
                for option_type in ("C", "P"):
                    symbol = occ_symbol(underlying, expiration.day, option_type, strike)
                    out.append(
                        OptionContract(
                            symbol, underlying, underlying, expiration, option_type, strike
                        )
                    )
        return out

    def future_options_of(self, code: str) -> list[FutureOptionContract]:
        out: list[FutureOptionContract] = []
        for expiration in self.future_option_chains.get(code, ()):
            for strike in expiration.strikes:
                for option_type in ("C", "P"):
                    out.append(
                        FutureOptionContract(
                            future_option_symbol(expiration, option_type, strike),
                            expiration,
                            option_type,
                            strike,
                        )
                    )
        return out


def _parse_day(yymmdd: str) -> date | None:
    try:
        return datetime.strptime(yymmdd, "%y%m%d").date()
    except ValueError:
        return None


def future_option_symbol(
    expiration: FutureOptionExpiration, option_type: str, strike: Decimal
) -> str:
    underlying = expiration.underlying.symbol[1:]
    return (
        f"./{underlying} {expiration.contract_code} {expiration.day:%y%m%d}"
        f"{option_type}{_strike(strike)}"
    )


# ------------------------------------------------------------------- building
@lru_cache(maxsize=4)
def build_universe(today: date) -> Universe:
    """The default universe relative to `today` (a New York date); treat it as read-only."""
    calendar.warm(range(today.year - 1, today.year + 2))
    universe = Universe(today=today)
    expirations = _equity_expiration_days(today)
    for spec in DEFAULT_EQUITIES:
        universe.equities[spec.symbol] = spec
        strikes = _strikes(spec.spot, spec.strike_bands)
        universe.chains[spec.symbol] = tuple(
            Expiration(day, kind, _session_close(day), strikes) for day, kind in expirations
        )
    for product in DEFAULT_FUTURES:
        universe.products[product.code] = product
        for contract in _contracts(product, today):
            universe.futures[contract.symbol] = contract
    es_contracts = [c for c in universe.futures.values() if c.product.code == "ES"]
    universe.future_option_chains["ES"] = _es_option_expirations(today, es_contracts)
    return universe


def _session_close(day: date) -> datetime:
    session = calendar.session_on(day)
    if session is None:  # pragma: no cover - callers only pass trading days
        return calendar.ny_time(day, 16)
    return session.close


def _equity_expiration_days(today: date) -> list[tuple[date, str]]:
    days: dict[date, str] = {}
    friday = today + timedelta(days=(4 - today.weekday()) % 7)
    for week in range(8):
        day = calendar.previous_trading_day(friday + timedelta(weeks=week))
        if day >= today:
            days.setdefault(day, "Weekly")
    year, month = today.year, today.month
    for _ in range(7):
        monthly = calendar.previous_trading_day(calendar.third_friday(year, month))
        if monthly >= today and len([d for d, k in days.items() if k == "Regular"]) < 6:
            days[monthly] = "Regular"
        month += 1
        if month > 12:
            year, month = year + 1, 1
    return sorted(days.items())


def _contracts(product: FutureProduct, today: date) -> list[FutureContract]:
    months: list[tuple[int, int, date]] = []
    year, month = today.year, today.month
    while len(months) < 4:
        if not product.quarterly or month % 3 == 0:
            expiry = _future_expiration(product, year, month)
            if expiry >= today:
                months.append((year, month, expiry))
        month += 1
        if month > 12:
            year, month = year + 1, 1
    contracts: list[FutureContract] = []
    for index, (y, m, expiry) in enumerate(months):
        symbol = f"/{product.code}{MONTH_CODES[m - 1]}{y % 10}"
        if product.quarterly:
            expires_at = calendar.ny_time(expiry, 9, 30)
        else:
            expires_at = calendar.ny_time(expiry, 14, 30)
        contracts.append(
            FutureContract(symbol, product, m, y, expiry, expires_at, index == 0, index == 1)
        )
    return contracts


def _future_expiration(product: FutureProduct, year: int, month: int) -> date:
    if product.quarterly:
        return calendar.previous_trading_day(calendar.third_friday(year, month))
    # CL: trading ends 3 business days before the 25th of the prior month
    # (4 when the 25th is not a business day).
    prior_year, prior_month = (year, month - 1) if month > 1 else (year - 1, 12)
    day = date(prior_year, prior_month, 25)
    count = 3 if calendar.is_trading_day(day) else 4
    while count:
        day -= timedelta(days=1)
        if calendar.is_trading_day(day):
            count -= 1
    return day


def _es_option_expirations(
    today: date, contracts: list[FutureContract]
) -> tuple[FutureOptionExpiration, ...]:
    contracts = sorted(contracts, key=lambda c: c.expiration_date)
    out: dict[date, FutureOptionExpiration] = {}
    friday = today + timedelta(days=(4 - today.weekday()) % 7)
    candidates: list[date] = [friday + timedelta(weeks=w) for w in range(8)]
    year, month = today.year, today.month
    for _ in range(4):
        candidates.append(calendar.third_friday(year, month))
        month += 1
        if month > 12:
            year, month = year + 1, 1
    for nominal in sorted(set(candidates)):
        week = (nominal.day - 1) // 7 + 1
        if week > 4:
            continue  # fifth Fridays are not listed here
        day = calendar.previous_trading_day(nominal)
        if day < today:
            continue
        underlying = next((c for c in contracts if c.expiration_date >= day), None)
        if underlying is None:
            continue
        root = f"EW{week}"
        code = f"{root}{MONTH_CODES[nominal.month - 1]}{nominal.year % 10}"
        strikes = _strikes(underlying.product.spot, ES_OPTION_BANDS)
        out[day] = FutureOptionExpiration(
            day,
            root,
            code,
            "Regular" if week == 3 else "Weekly",
            _session_close(day),
            underlying,
            strikes,
        )
    return tuple(out[d] for d in sorted(out))
