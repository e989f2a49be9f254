"""JSON encoding and instrument payloads, shaped like the real Tastytrade API."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from broker.paper import calendar
from broker.paper.universe import (
    EQUITY_TICKS,
    EquitySpec,
    Expiration,
    FutureContract,
    FutureOptionContract,
    FutureOptionExpiration,
    OptionContract,
    Universe,
    future_option_symbol,
    occ_symbol,
)

JsonDict = dict[str, Any]


def _default(value: object) -> object:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


def dumps(payload: object) -> str:
    return json.dumps(payload, default=_default, separators=(",", ":"))


def iso(moment: datetime) -> str:
    """`2026-01-02T15:04:05.123+00:00`, the API's timestamp format."""
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    return utc.isoformat(timespec="milliseconds")


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def signed(key: str, amount: Decimal) -> JsonDict:
    """`{key: |amount|, key-effect: Debit|Credit|None}` (negative = Debit)."""
    if amount < 0:
        effect = "Debit"
    elif amount > 0:
        effect = "Credit"
    else:
        effect = "None"
    return {key: format(abs(amount), "f"), f"{key}-effect": effect}


def number(quantity: Decimal) -> int | Decimal:
    """Whole quantities as JSON numbers (as the real API sends them)."""
    return int(quantity) if quantity == quantity.to_integral_value() else quantity


def _days_to(day: date, today: date) -> int:
    return max((day - today).days, 0)


# ------------------------------------------------------------------ equities
def equity(spec: EquitySpec) -> JsonDict:
    return {
        "id": spec.id,
        "symbol": spec.symbol,
        "instrument-type": "Equity",
        "cusip": f"{spec.id:09d}",
        "short-description": spec.description[:20],
        "is-index": False,
        "listed-market": "ARCX" if spec.is_etf else "XNAS",
        "description": spec.description,
        "lendability": spec.lendability,
        "borrow-rate": Decimal("0.0"),
        "market-time-instrument-collection": "Equity Index" if spec.is_etf else "Equity",
        "is-closing-only": False,
        "is-options-closing-only": False,
        "active": True,
        "is-fractional-quantity-eligible": True,
        "is-illiquid": False,
        "is-etf": spec.is_etf,
        "streamer-symbol": spec.symbol,
        "tick-sizes": EQUITY_TICKS.to_json(),
        "option-tick-sizes": spec.option_ticks.to_json(),
    }


def option(contract: OptionContract, today: date) -> JsonDict:
    exp = contract.expiration
    return {
        "symbol": contract.symbol,
        "instrument-type": "Equity Option",
        "active": True,
        "listed-market": "XCBO",
        "strike-price": contract.strike,
        "root-symbol": contract.root,
        "underlying-symbol": contract.underlying,
        "expiration-date": exp.day,
        "exercise-style": "American",
        "shares-per-contract": contract.multiplier,
        "option-type": contract.option_type,
        "option-chain-type": "Standard",
        "expiration-type": exp.expiration_type,
        "settlement-type": "PM",
        "stops-trading-at": exp.expires_at,
        "market-time-instrument-collection": "Equity Option",
        "days-to-expiration": _days_to(exp.day, today),
        "expires-at": exp.expires_at,
        "is-closing-only": False,
        "streamer-symbol": contract.streamer_symbol,
    }


def nested_option_chain(universe: Universe, symbol: str, today: date) -> JsonDict:
    spec = universe.equities[symbol]
    return {
        "underlying-symbol": symbol,
        "root-symbol": symbol,
        "option-chain-type": "Standard",
        "shares-per-contract": 100,
        "tick-sizes": spec.option_ticks.to_json(),
        "deliverables": [
            {
                "id": spec.id,
                "root-symbol": symbol,
                "deliverable-type": "Shares",
                "description": f"100 shares of {symbol}",
                "amount": Decimal("100.0"),
                "symbol": symbol,
                "instrument-type": "Equity",
                "percent": "100",
            }
        ],
        "expirations": [_nested_expiration(symbol, exp, today) for exp in universe.chains[symbol]],
    }


def _nested_expiration(symbol: str, exp: Expiration, today: date) -> JsonDict:
    strikes = []
    for strike in exp.strikes:
        call = OptionContract(
            occ_symbol(symbol, exp.day, "C", strike), symbol, symbol, exp, "C", strike
        )
        put = OptionContract(
            occ_symbol(symbol, exp.day, "P", strike), symbol, symbol, exp, "P", strike
        )
        strikes.append(
            {
                "strike-price": strike,
                "call": call.symbol,
                "call-streamer-symbol": call.streamer_symbol,
                "put": put.symbol,
                "put-streamer-symbol": put.streamer_symbol,
            }
        )
    return {
        "expiration-type": exp.expiration_type,
        "expiration-date": exp.day,
        "days-to-expiration": _days_to(exp.day, today),
        "settlement-type": "PM",
        "strikes": strikes,
    }


# ------------------------------------------------------------------- futures
def future(contract: FutureContract, today: date) -> JsonDict:
    product = contract.product
    payload: JsonDict = {
        "symbol": contract.symbol,
        "product-code": product.code,
        "contract-size": product.multiplier,
        "tick-size": product.tick,
        "notional-multiplier": product.multiplier,
        "main-fraction": Decimal("0.0"),
        "sub-fraction": Decimal("0.0"),
        "display-factor": Decimal("0.01"),
        "last-trade-date": contract.expiration_date,
        "expiration-date": contract.expiration_date,
        "closing-only-date": contract.expiration_date,
        "active": True,
        "active-month": contract.active_month,
        "next-active-month": contract.next_active_month,
        "is-closing-only": False,
        "stops-trading-at": contract.expires_at,
        "expires-at": contract.expires_at,
        "product-group": product.product_group,
        "exchange": product.exchange,
        "roll-target-symbol": contract.symbol,
        "streamer-exchange-code": product.streamer_exchange,
        "streamer-symbol": contract.streamer_symbol,
        "back-month-first-calendar-symbol": True,
        "is-tradeable": True,
        "instrument-type": "Future",
        "tick-sizes": [{"value": product.tick}],
    }
    if product.option_ticks is not None:
        payload["option-tick-sizes"] = product.option_ticks.to_json()
    return payload


def future_option(contract: FutureOptionContract, today: date) -> JsonDict:
    exp = contract.expiration
    product = exp.underlying.product
    return {
        "symbol": contract.symbol,
        "underlying-symbol": exp.underlying.symbol,
        "product-code": product.code,
        "expiration-date": exp.day,
        "root-symbol": product.root,
        "option-root-symbol": exp.option_root,
        "strike-price": contract.strike,
        "exchange": product.exchange,
        "exchange-symbol": f"{exp.contract_code} {contract.option_type}{contract.strike:f}",
        "streamer-symbol": contract.streamer_symbol,
        "option-type": contract.option_type,
        "exercise-style": "American",
        "is-vanilla": True,
        "is-primary-deliverable": True,
        "future-price-ratio": Decimal("1.0"),
        "multiplier": product.multiplier,
        "underlying-count": Decimal("1.0"),
        "is-confirmed": True,
        "notional-value": product.multiplier,
        "display-factor": Decimal("0.01"),
        "security-exchange": "2",
        "sx-id": "0",
        "settlement-type": "Future",
        "strike-factor": Decimal("1.0"),
        "maturity-date": exp.day,
        "is-exercisable-weekly": True,
        "last-trade-time": "0",
        "days-to-expiration": _days_to(exp.day, today),
        "is-closing-only": False,
        "active": True,
        "stops-trading-at": exp.expires_at,
        "expires-at": exp.expires_at,
        "instrument-type": "Future Option",
    }


def nested_future_option_chain(universe: Universe, code: str, today: date) -> JsonDict:
    product = universe.products[code]
    futures = [c for c in universe.futures.values() if c.product.code == code]
    return {
        "futures": [
            {
                "symbol": c.symbol,
                "root-symbol": product.root,
                "expiration-date": c.expiration_date,
                "days-to-expiration": _days_to(c.expiration_date, today),
                "active-month": c.active_month,
                "next-active-month": c.next_active_month,
                "stops-trading-at": c.expires_at,
                "expires-at": c.expires_at,
            }
            for c in futures
        ],
        "option-chains": [
            {
                "underlying-symbol": product.root,
                "root-symbol": product.root,
                "exercise-style": "American",
                "expirations": [
                    _nested_future_expiration(exp, today)
                    for exp in universe.future_option_chains.get(code, ())
                ],
            }
        ],
    }


def _nested_future_expiration(exp: FutureOptionExpiration, today: date) -> JsonDict:
    product = exp.underlying.product
    strikes = []
    for strike in exp.strikes:
        call = FutureOptionContract(future_option_symbol(exp, "C", strike), exp, "C", strike)
        put = FutureOptionContract(future_option_symbol(exp, "P", strike), exp, "P", strike)
        strikes.append(
            {
                "strike-price": strike,
                "call": call.symbol,
                "call-streamer-symbol": call.streamer_symbol,
                "put": put.symbol,
                "put-streamer-symbol": put.streamer_symbol,
            }
        )
    return {
        "underlying-symbol": exp.underlying.symbol,
        "root-symbol": product.root,
        "option-root-symbol": exp.option_root,
        "option-contract-symbol": exp.contract_code,
        "asset": exp.option_root,
        "expiration-date": exp.day,
        "days-to-expiration": _days_to(exp.day, today),
        "expiration-type": exp.expiration_type,
        "settlement-type": "PM",
        "notional-value": product.multiplier,
        "display-factor": Decimal("0.01"),
        "strike-factor": Decimal("1.0"),
        "stops-trading-at": exp.expires_at,
        "expires-at": exp.expires_at,
        "tick-sizes": (product.option_ticks or EQUITY_TICKS).to_json(),
        "strikes": strikes,
    }


def today_of(moment: datetime) -> date:
    return calendar.ny_date(moment)
