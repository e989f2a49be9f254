"""Orders: the exchange's order record, its JSON shape and request-body parsing.

Prices are signed internally like the SDK does it (negative = Debit); the wire carries
the magnitude plus `price-effect`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from broker.paper.payloads import JsonDict, epoch_ms, number, signed
from broker.paper.universe import Instrument, Kind

# Status groups
WORKING = frozenset({"Received", "Routed", "Live", "Contingent"})
FILLABLE = frozenset({"Live"})
TERMINAL = frozenset({"Filled", "Cancelled", "Expired", "Rejected", "Removed"})
ORDER_TYPES = frozenset(
    {"Limit", "Market", "Marketable Limit", "Stop", "Stop Limit", "Notional Market"}
)
TIME_IN_FORCE = frozenset(
    {"Day", "GTC", "GTD", "Ext", "Ext Overnight", "GTC Ext", "GTC Ext Overnight", "IOC"}
)
ACTIONS = frozenset({"Buy to Open", "Buy to Close", "Sell to Open", "Sell to Close", "Buy", "Sell"})
EDITABLE_FIELDS = frozenset(
    {
        "order-type",
        "price",
        "price-effect",
        "time-in-force",
        "gtc-date",
        "stop-trigger",
        "value",
        "value-effect",
    }
)
IGNORED_FIELDS = frozenset(
    {
        "source",
        "behavior",
        "delay",
        "schedule",
        "partition-key",
        "preflight-id",
        "rules",
        "external-identifier",
    }
)


# Larger numbers are nonsense for any instrument here and would overflow Decimal math.
MAX_NUMBER = Decimal(10) ** 9


class PreflightError(Exception):
    """One or more preflight checks failed: 422 `preflight_check_failure`."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{code}: {message}" for code, message in errors))
        self.errors = errors


class OrderStateError(Exception):
    """A cancel/replace of an order in the wrong state (422 with a single code)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass
class Fill:
    fill_id: str
    quantity: Decimal
    price: Decimal
    filled_at: datetime
    venue: str = "PAPER"

    def to_json(self) -> JsonDict:
        return {
            "fill-id": self.fill_id,
            "quantity": number(self.quantity),
            "fill-price": self.price,
            "filled-at": self.filled_at,
            "destination-venue": self.venue,
            "ext-exec-id": self.fill_id.rsplit("-", 1)[-1],
            "ext-group-fill-id": "0",
        }


@dataclass
class OrderLeg:
    instrument: Instrument
    action: str
    quantity: Decimal
    remaining: Decimal
    fills: list[Fill] = field(default_factory=list)

    @property
    def symbol(self) -> str:
        return self.instrument.symbol

    @property
    def is_buy(self) -> bool:
        return self.action.startswith("Buy")

    @property
    def sign(self) -> int:
        return 1 if self.is_buy else -1

    def to_json(self) -> JsonDict:
        return {
            "instrument-type": self.instrument.kind.value,
            "symbol": self.symbol,
            "quantity": number(self.quantity),
            "remaining-quantity": number(self.remaining),
            "action": self.action,
            "fills": [f.to_json() for f in self.fills],
        }


@dataclass
class Order:
    account_number: str
    time_in_force: str
    order_type: str
    legs: list[OrderLeg]
    underlying_symbol: str
    underlying_instrument_type: str
    received_at: datetime
    status: str = "Received"
    id: int | None = None
    price: Decimal | None = None  # signed, negative = Debit
    stop_trigger: Decimal | None = None
    gtc_date: date | None = None
    source: str | None = None
    external_identifier: str | None = None
    updated_at: datetime | None = None
    live_at: datetime | None = None
    in_flight_at: datetime | None = None
    cancelled_at: datetime | None = None
    terminal_at: datetime | None = None
    replaces_order_id: int | None = None
    replacing_order_id: int | None = None
    edited: bool = False
    contingent_status: str | None = None
    reject_reason: str | None = None
    cancelled_size: Decimal | None = None
    expires_at: datetime | None = None
    triggered: bool = False
    #: `advanced-instructions.strict-position-effect-validation`: a close of nothing is
    #: refused instead of being turned into an open (kept by replacements).
    strict_position_effect: bool = False

    @property
    def size(self) -> Decimal:
        return Decimal(math.gcd(*(int(leg.quantity) for leg in self.legs)))

    @property
    def remaining_units(self) -> Decimal:
        leg = self.legs[0]
        return leg.remaining / (leg.quantity / self.size)

    @property
    def is_working(self) -> bool:
        return self.status in WORKING

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def touch(self, moment: datetime) -> None:
        self.updated_at = moment

    def to_json(self) -> JsonDict:
        working = self.status in WORKING
        payload: JsonDict = {
            "account-number": self.account_number,
            "time-in-force": self.time_in_force,
            "order-type": self.order_type,
            "size": number(self.size),
            "underlying-symbol": self.underlying_symbol,
            "underlying-instrument-type": self.underlying_instrument_type,
            "status": self.status,
            "cancellable": working,
            "editable": working and self.status != "Contingent",
            "edited": self.edited,
            "received-at": self.received_at,
            "updated-at": epoch_ms(self.updated_at or self.received_at),
            "leg-count": len(self.legs),
            "global-request-id": f"paper-{self.id or 0:012d}",
            "legs": [leg.to_json() for leg in self.legs],
        }
        if self.id is not None:
            payload = {"id": self.id, **payload}
            if self.status not in ("Received", "Routed", "Contingent"):
                # like the real API: the venue's client order id appears once routed
                payload["ext-client-order-id"] = f"PAPER{self.id:013d}"
        if self.price is not None:
            payload.update(signed("price", self.price))
        if self.stop_trigger is not None:
            payload["stop-trigger"] = self.stop_trigger
        optional: dict[str, Any] = {
            "gtc-date": self.gtc_date,
            "source": self.source,
            "external-identifier": self.external_identifier,
            "live-at": self.live_at,
            "in-flight-at": self.in_flight_at,
            "cancelled-at": self.cancelled_at,
            "terminal-at": self.terminal_at,
            "replaces-order-id": self.replaces_order_id,
            "replacing-order-id": self.replacing_order_id,
            "contingent-status": self.contingent_status,
            "reject-reason": self.reject_reason,
            "cancelled-size": self.cancelled_size,
        }
        payload.update({k: v for k, v in optional.items() if v is not None})
        return payload


# ------------------------------------------------------------------ parsing
@dataclass(frozen=True)
class LegRequest:
    instrument_type: str
    symbol: str
    action: str
    quantity: Decimal


@dataclass(frozen=True)
class OrderRequest:
    """A validated-for-shape order body (business rules are checked by preflight)."""

    time_in_force: str
    order_type: str
    legs: tuple[LegRequest, ...]
    price: Decimal | None  # signed
    stop_trigger: Decimal | None
    value: Decimal | None
    gtc_date: date | None
    source: str | None
    external_identifier: str | None
    strict_position_effect: bool = False


def closes_without_position(
    legs: list[OrderLeg], held: Callable[[str], Decimal]
) -> list[tuple[str, str]]:
    """Preflight errors for "to Close" legs the account's positions cannot cover.

    Only applied with strict position-effect validation: the real API then discards such a
    close instead of silently turning it into an opening order.
    """
    errors: list[tuple[str, str]] = []
    for leg in legs:
        if "Close" not in leg.action:
            continue
        position = held(leg.symbol)
        # A buy closes a short (held < 0); a sell closes a long (held > 0).
        available = -position if leg.is_buy else position
        if available <= 0:
            errors.append(
                (
                    "closing_with_no_position",
                    f"{leg.action} {leg.symbol}: there is no position to close "
                    "(strict position-effect validation).",
                )
            )
        elif leg.quantity > available:
            errors.append(
                (
                    "closing_quantity_exceeds_position",
                    f"{leg.action} {number(leg.quantity)} {leg.symbol}: only "
                    f"{number(available)} can be closed (strict position-effect validation).",
                )
            )
    return errors


def _strict_position_effect(body: JsonDict, errors: list[tuple[str, str]]) -> bool:
    advanced = body.get("advanced-instructions")
    if advanced is None:
        return False
    if not isinstance(advanced, dict):
        errors.append(("invalid_parameter", "advanced-instructions must be an object"))
        return False
    strict = advanced.get("strict-position-effect-validation", False)
    if not isinstance(strict, bool):
        errors.append(
            ("invalid_parameter", "strict-position-effect-validation must be true or false")
        )
        return False
    return strict


def _decimal(body: JsonDict, key: str, errors: list[tuple[str, str]]) -> Decimal | None:
    raw = body.get(key)
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        errors.append(("invalid_parameter", f"{key} must be a number"))
        return None
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        errors.append(("invalid_parameter", f"{key} is not a number: {raw!r}"))
        return None
    if not value.is_finite():
        errors.append(("invalid_parameter", f"{key} must be finite"))
        return None
    if abs(value) > MAX_NUMBER:
        errors.append(("invalid_parameter", f"{key} is out of range"))
        return None
    return value


def _signed_amount(body: JsonDict, key: str, errors: list[tuple[str, str]]) -> Decimal | None:
    amount = _decimal(body, key, errors)
    if amount is None:
        return None
    if amount < 0:
        errors.append(("invalid_parameter", f"{key} must be positive; use {key}-effect"))
        return None
    effect = body.get(f"{key}-effect")
    if amount != 0 and effect not in ("Debit", "Credit"):
        errors.append(("invalid_parameter", f"{key}-effect must be Debit or Credit"))
        return None
    return -amount if effect == "Debit" else amount


def parse_order_body(body: object, *, replace: bool = False) -> OrderRequest:
    """Shape-check an order body; raises PreflightError with every problem found."""
    errors: list[tuple[str, str]] = []
    if not isinstance(body, dict):
        raise PreflightError([("invalid_parameter", "order body must be a JSON object")])
    time_in_force = body.get("time-in-force", "Day")
    if time_in_force not in TIME_IN_FORCE:
        errors.append(("invalid_parameter", f"unknown time-in-force {time_in_force!r}"))
    order_type = body.get("order-type")
    if order_type not in ORDER_TYPES:
        errors.append(("invalid_parameter", f"unknown order-type {order_type!r}"))
    legs: list[LegRequest] = []
    raw_legs = body.get("legs")
    if replace:
        if raw_legs is not None:
            errors.append(
                (
                    "order_legs_not_editable",
                    "A replacement may only change price, "
                    "order type and time in force; send it without legs.",
                )
            )
    elif not isinstance(raw_legs, list) or not raw_legs:
        errors.append(("invalid_parameter", "legs must be a non-empty list"))
    else:
        for index, raw in enumerate(raw_legs):
            leg = _parse_leg(raw, index, errors)
            if leg is not None:
                legs.append(leg)
    price = _signed_amount(body, "price", errors)
    value = _signed_amount(body, "value", errors)
    stop_trigger = _decimal(body, "stop-trigger", errors)
    if stop_trigger is not None and stop_trigger <= 0:
        errors.append(("invalid_parameter", "stop-trigger must be positive"))
    gtc_date: date | None = None
    if body.get("gtc-date") is not None:
        try:
            gtc_date = date.fromisoformat(str(body["gtc-date"]))
        except ValueError:
            errors.append(("invalid_parameter", "gtc-date must be YYYY-MM-DD"))
    external = body.get("external-identifier")
    if external is not None and not isinstance(external, str):
        errors.append(("invalid_parameter", "external-identifier must be a string"))
        external = None
    source = body.get("source")
    strict = _strict_position_effect(body, errors)
    if errors:
        raise PreflightError(errors)
    assert isinstance(time_in_force, str) and isinstance(order_type, str)
    return OrderRequest(
        time_in_force,
        order_type,
        tuple(legs),
        price,
        stop_trigger,
        value,
        gtc_date,
        source if isinstance(source, str) else None,
        external,
        strict,
    )


def _parse_leg(raw: object, index: int, errors: list[tuple[str, str]]) -> LegRequest | None:
    if not isinstance(raw, dict):
        errors.append(("invalid_parameter", f"leg {index + 1} must be an object"))
        return None
    instrument_type = raw.get("instrument-type")
    symbol = raw.get("symbol")
    action = raw.get("action")
    if instrument_type not in {k.value for k in Kind}:
        errors.append(
            (
                "invalid_parameter",
                f"leg {index + 1}: unsupported instrument-type {instrument_type!r}",
            )
        )
        return None
    if not isinstance(symbol, str) or not symbol:
        errors.append(("invalid_parameter", f"leg {index + 1}: symbol is required"))
        return None
    if action not in ACTIONS:
        errors.append(("invalid_parameter", f"leg {index + 1}: unknown action {action!r}"))
        return None
    quantity = _decimal(raw, "quantity", errors)
    if quantity is None:
        errors.append(("invalid_parameter", f"leg {index + 1}: quantity is required"))
        return None
    if quantity <= 0 or quantity != quantity.to_integral_value():
        errors.append(
            ("invalid_quantity", f"leg {index + 1}: quantity must be a positive whole number")
        )
        return None
    assert isinstance(instrument_type, str) and isinstance(action, str)
    return LegRequest(instrument_type, symbol, action, quantity)
