"""JSON views of accounts, balances, positions and transactions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from broker.paper.calendar import ny_date
from broker.paper.ledger import (
    ZERO,
    Account,
    BalanceSummary,
    Position,
    Rendered,
    Transaction,
    underlying_of,
)
from broker.paper.payloads import JsonDict, dumps, iso, number, signed
from broker.paper.universe import (
    FutureContract,
    FutureOptionContract,
    Instrument,
    OptionContract,
)


def customer(account: Account) -> JsonDict:
    address = {
        "street-one": "1 Paper Street",
        "city": "Chicago",
        "state-region": "IL",
        "postal-code": "60604",
        "country": "USA",
        "is-foreign": False,
        "is-domestic": True,
    }
    return {
        "id": "me",
        "first-name": "Paper",
        "last-name": "Trader",
        "address": address,
        "mailing-address": address,
        "is-foreign": False,
        "usa-citizenship-type": "Citizen",
        "mobile-phone-number": "+1 312-555-0100",
        "birth-date": "1980-01-01",
        "email": "paper@example.invalid",
        "tax-number-type": "SSN",
        "subject-to-tax-withholding": False,
        "has-industry-affiliation": False,
        "has-listed-affiliation": False,
        "has-political-affiliation": False,
        "has-delayed-quotes": False,
        "has-pending-or-approved-application": False,
        "is-professional": False,
        "permitted-account-types": [],
        "created-at": account.opened_at,
    }


def account_json(account: Account) -> JsonDict:
    return {
        "account-number": account.number,
        "external-id": f"A{account.number}",
        "opened-at": account.opened_at,
        "nickname": account.nickname,
        "account-type-name": "Individual",
        "day-trader-status": False,
        "is-closed": False,
        "is-firm-error": False,
        "is-firm-proprietary": False,
        "is-futures-approved": not account.cash_account,
        "is-test-drive": False,
        "margin-or-cash": "Cash" if account.cash_account else "Margin",
        "is-foreign": False,
        "funding-date": account.opened_at.date(),
        "investment-objective": "SPECULATION",
        "suitable-options-level": "No Restrictions",
        "created-at": account.opened_at,
    }


def trading_status(account: Account, now: datetime) -> JsonDict:
    margin = not account.cash_account
    return {
        "account-number": account.number,
        "equities-margin-calculation-type": "Reg T",
        "fee-schedule-name": "default",
        "futures-margin-rate-multiplier": "1.0",
        "has-intraday-equities-margin": False,
        "id": int("".join(c for c in account.number if c.isdigit()) or 0),
        "is-aggregated-at-clearing": False,
        "is-closed": False,
        "is-closing-only": False,
        "is-cryptocurrency-enabled": False,
        "is-frozen": False,
        "is-full-equity-margin-required": False,
        "is-futures-closing-only": False,
        "is-futures-intra-day-enabled": margin,
        "is-futures-enabled": margin,
        "is-in-day-trade-equity-maintenance-call": False,
        "is-in-margin-call": False,
        "is-pattern-day-trader": False,
        "is-portfolio-margin-enabled": False,
        "is-risk-reducing-only": False,
        "is-small-notional-futures-intra-day-enabled": False,
        "is-roll-the-day-forward-enabled": False,
        "are-far-otm-net-options-restricted": False,
        "options-level": "No Restrictions" if margin else "Defined Risk Spreads",
        "short-calls-enabled": margin,
        "small-notional-futures-margin-rate-multiplier": "1.0",
        "is-equity-offering-enabled": False,
        "is-equity-offering-closing-only": False,
        "day-trade-count": 0,
        "updated-at": now,
    }


def balances(account: Account, summary: BalanceSummary, now: datetime, today: date) -> JsonDict:
    buying_power = summary.buying_power
    equity_bp = buying_power if account.cash_account else buying_power * 2
    withdrawable = max(ZERO, min(summary.cash, buying_power))
    payload: JsonDict = {
        "account-number": account.number,
        "cash-balance": summary.cash,
        "long-equity-value": summary.long_equity,
        "short-equity-value": summary.short_equity,
        "long-derivative-value": summary.long_derivative,
        "short-derivative-value": summary.short_derivative,
        "long-futures-value": summary.long_futures,
        "short-futures-value": summary.short_futures,
        "long-futures-derivative-value": summary.long_futures_derivative,
        "short-futures-derivative-value": summary.short_futures_derivative,
        "long-margineable-value": summary.long_equity,
        "short-margineable-value": summary.short_equity,
        "margin-equity": summary.net_liq,
        "equity-buying-power": equity_bp,
        "derivative-buying-power": buying_power,
        "day-trading-buying-power": equity_bp,
        "futures-margin-requirement": summary.futures_requirement,
        "available-trading-funds": withdrawable,
        "maintenance-requirement": summary.requirement,
        "maintenance-call-value": max(ZERO, -buying_power),
        "reg-t-call-value": ZERO,
        "day-trading-call-value": ZERO,
        "day-equity-call-value": ZERO,
        "net-liquidating-value": summary.net_liq,
        "cash-available-to-withdraw": withdrawable,
        "day-trade-excess": withdrawable,
        "pending-cash": ZERO,
        "pending-cash-effect": "None",
        "long-cryptocurrency-value": ZERO,
        "short-cryptocurrency-value": ZERO,
        "cryptocurrency-margin-requirement": ZERO,
        "unsettled-cryptocurrency-fiat-amount": ZERO,
        "unsettled-cryptocurrency-fiat-effect": "None",
        "closed-loop-available-balance": summary.cash,
        "equity-offering-margin-requirement": ZERO,
        "long-bond-value": ZERO,
        "bond-margin-requirement": ZERO,
        "used-derivative-buying-power": summary.requirement,
        "snapshot-date": today,
        "reg-t-margin-requirement": summary.requirement,
        "futures-overnight-margin-requirement": summary.futures_requirement,
        "futures-intraday-margin-requirement": summary.futures_requirement,
        "maintenance-excess": buying_power,
        "pending-margin-interest": ZERO,
        "effective-cryptocurrency-buying-power": ZERO,
        "currency": "USD",
        "updated-at": now,
    }
    return payload


@dataclass(frozen=True, slots=True)
class PreEncoded:
    """A reply body already encoded as JSON (what `payloads.dumps` would have produced)."""

    text: str


def position(
    account: Account, pos: Position, mark: Decimal, now: datetime, today: date | None = None
) -> JsonDict:
    """A `CurrentPosition` payload. Values are rendered to JSON text here (as `dumps`
    would render them), so a reply of 1,000 positions encodes without a callback per
    value; pass `today` (New York date of `now`) when rendering many. The payload is
    kept on the position and reused while its inputs stay the same."""
    return dict(_rendered(account, pos, mark, today if today is not None else ny_date(now)).payload)


def position_text(account: Account, pos: Position, mark: Decimal, today: date) -> str:
    """`dumps(position(...))`, kept with the payload: a positions reply joins these."""
    rendered = _rendered(account, pos, mark, today)
    if rendered.text is None:
        rendered.text = dumps(rendered.payload)
    return rendered.text


def positions_reply(account: Account, texts: list[str]) -> PreEncoded:
    """`dumps(ok({"items": [...]}, context=...))` of a positions list, from position texts."""
    context = dumps(f"/accounts/{account.number}/positions")
    return PreEncoded(f'{{"data":{{"items":[{",".join(texts)}]}},"context":{context}}}')


def _rendered(account: Account, pos: Position, mark: Decimal, day: date) -> Rendered:
    inputs = (
        account.number,
        pos.instrument,
        pos.quantity,
        pos.average_open_price,
        pos.realized_day_gain,
        pos.realized_date,
        pos.created_at,
        pos.updated_at,
        mark,
        day,
    )
    rendered = pos.rendered
    if rendered is None or rendered.inputs != inputs:
        rendered = pos.rendered = Rendered(inputs, _position(account, pos, mark, day))
    return rendered


def _position(account: Account, pos: Position, mark: Decimal, day: date) -> JsonDict:
    instrument = pos.instrument
    expires_at = expires_at_of(instrument)
    quantity = pos.quantity
    if quantity > 0:
        direction, cost_effect = "Long", "Debit"
    elif quantity < 0:
        direction, cost_effect = "Short", "Credit"
    else:
        direction, cost_effect = "Zero", "None"
    day_text = day.isoformat()
    realized = pos.realized_day_gain if pos.realized_date == day else ZERO
    realized_fields = signed("realized-day-gain", realized)
    mark_text = format(mark, "f")
    average = format(pos.average_open_price, "f")
    payload: JsonDict = {
        "account-number": account.number,
        "symbol": pos.symbol,
        "instrument-type": instrument.kind.value,
        "underlying-symbol": underlying_of(instrument),
        "quantity": _json_number(abs(quantity)),
        "quantity-direction": direction,
        "close-price": mark_text,
        "average-open-price": average,
        "average-yearly-market-close-price": average,
        "average-daily-market-close-price": average,
        "mark": mark_text,
        "mark-price": mark_text,
        "multiplier": _json_number(pos.multiplier),
        "cost-effect": cost_effect,
        "is-suppressed": False,
        "is-frozen": False,
        "restricted-quantity": 0,
        **realized_fields,
        "realized-day-gain-date": day_text,
        "realized-today": realized_fields["realized-day-gain"],
        "realized-today-effect": realized_fields["realized-day-gain-effect"],
        "realized-today-date": day_text,
        "created-at": iso(pos.created_at),
        "updated-at": iso(pos.updated_at),
    }
    if expires_at is not None:
        payload["expires-at"] = iso(expires_at)
    return payload


def expires_at_of(instrument: Instrument) -> datetime | None:
    if isinstance(instrument, OptionContract | FutureOptionContract):
        return instrument.expiration.expires_at
    if isinstance(instrument, FutureContract):
        return instrument.expires_at
    return None


def _json_number(quantity: Decimal) -> int | str:
    """`number()` as `dumps` writes it: whole quantities as numbers, others as text."""
    value = number(quantity)
    return value if isinstance(value, int) else format(value, "f")


def transaction(tx: Transaction) -> JsonDict:
    executed = iso(tx.executed_at)
    payload: JsonDict = {
        "id": tx.id,
        "account-number": tx.account_number,
        "transaction-type": tx.transaction_type,
        "transaction-sub-type": tx.transaction_sub_type,
        "description": tx.description,
        "executed-at": executed,
        "created-at": executed,
        "transaction-date": tx.transaction_date.isoformat() if tx.transaction_date else None,
        "currency": "USD",
        **signed("value", tx.value),
        **signed("net-value", tx.net_value),
        "is-estimated-fee": True,
    }
    if tx.symbol is not None:
        payload["symbol"] = tx.symbol
        payload["instrument-type"] = tx.instrument_type
        payload["underlying-symbol"] = tx.underlying_symbol
    if tx.action is not None:
        payload["action"] = tx.action
    if tx.quantity is not None:
        payload["quantity"] = format(tx.quantity, "f")
    if tx.price is not None:
        payload["price"] = format(tx.price, "f")
    if tx.fees is not None:
        payload.update(signed("commission", -tx.fees.commission))
        payload.update(signed("clearing-fees", -tx.fees.clearing))
        payload.update(signed("regulatory-fees", -tx.fees.regulatory))
        payload.update(signed("proprietary-index-option-fees", ZERO))
    if tx.order_id is not None:
        payload["order-id"] = tx.order_id
    if tx.exec_id is not None:
        payload["exec-id"] = tx.exec_id
        payload["destination-venue"] = "PAPER"
    return payload
