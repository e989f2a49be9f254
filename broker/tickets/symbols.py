"""Ticker / future-contract recognition and canonical option symbols."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from broker.tickets.model import OptionType, Refusal, TicketError

EQUITY_TICKER = re.compile(r"^\$?([a-z]{1,6})(?:[./]([a-z]{1,2}))?$", re.ASCII)
FUTURE_CONTRACT = re.compile(r"^/([a-z0-9]{1,4}?)([fghjkmnquvxz])(\d{1,2})$", re.ASCII)
FUTURE_ROOT = re.compile(r"^/([a-z0-9]{1,4})$", re.ASCII)
MAX_EQUITY_STRIKE = Decimal("99999.999")  # 8 OCC digits with 3 implied decimals


@dataclass(frozen=True, slots=True)
class Underlying:
    """What the order trades: an equity ticker or a future (explicit contract or bare root)."""

    symbol: str  # "AAPL", "BRK/B", "/ESZ6", "/ES"
    root: str  # "AAPL", "/ES"
    is_future: bool
    contract_given: bool = False  # /ESZ6 (True) vs /ES (False)


def parse_underlying(low: str) -> Underlying | None:
    if match := FUTURE_CONTRACT.match(low):
        root, month, year = match.groups()
        symbol = f"/{root}{month}{year[-1]}".upper()  # Tastytrade: 1-digit year
        return Underlying(symbol, f"/{root}".upper(), is_future=True, contract_given=True)
    if match := FUTURE_ROOT.match(low):
        root = f"/{match[1]}".upper()
        return Underlying(root, root, is_future=True)
    if match := EQUITY_TICKER.match(low):
        ticker, share_class = match.groups()
        symbol = f"{ticker}/{share_class}" if share_class else ticker
        return Underlying(symbol.upper(), symbol.upper(), is_future=False)
    return None


def plain_strike(strike: Decimal) -> str:
    """Strike without trailing zeros or exponent: 590, 282.5, 6000.25."""
    text = f"{strike:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def check_strike(strike: Decimal, raw: str, *, equity: bool) -> Decimal:
    example = 'e.g. "590P" or "282.5C"'
    if strike <= 0:
        raise TicketError(Refusal.BAD_STRIKE, f'strike "{raw}" must be above 0 ({example}).')
    exponent = strike.normalize().as_tuple().exponent
    decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    if equity and (decimals > 3 or strike > MAX_EQUITY_STRIKE):
        raise TicketError(
            Refusal.BAD_STRIKE,
            f'strike "{raw}" cannot exist: option strikes have at most 3 decimals and are below '
            f"100000 ({example}).",
        )
    if not equity and (decimals > 6 or strike >= 10_000_000):
        raise TicketError(Refusal.BAD_STRIKE, f'strike "{raw}" is not a valid strike ({example}).')
    return Decimal(plain_strike(strike))


def occ_symbol(root: str, expiration: date, option_type: OptionType, strike: Decimal) -> str:
    """OCC symbol: root padded to 6, YYMMDD, C/P, strike x1000 in 8 digits."""
    return f"{root:<6}{expiration:%y%m%d}{option_type.value}{int(strike * 1000):08d}"


def future_option_symbol(
    future: str, expiration: date, option_type: OptionType, strike: Decimal
) -> str:
    """Canonical *unresolved* future-option symbol, e.g. `./ES 261218C6000`.

    Tastytrade's real symbol also holds the option contract code (`./ESZ6 EW3Z6 261218C6000`),
    which only the exchange's option chain knows; the builder maps this form to it.
    """
    return f"./{future.lstrip('/')} {expiration:%y%m%d}{option_type.value}{plain_strike(strike)}"
