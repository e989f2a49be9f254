"""Column encodings shared by the repositories.

- Money and quantities are `Decimal` stored as TEXT via `str()`, so `Decimal("1.10")` comes
  back as `Decimal("1.10")`; floats are refused, as are NaN and infinities.
- Datetimes must be timezone-aware; they are stored as fixed-width ISO-8601 UTC text
  (microsecond precision) so that text order equals time order and SQL can compare them.
- Environments are the strings `paper`, `sandbox`, `live` (the broker's `Environment`
  StrEnum passes as-is; `storage` cannot import it).

The helpers sit on the hot path of page writes, so they are plain functions with no
allocation beyond the result.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from storage.errors import InvalidValueError

ENVIRONMENTS: Final = ("paper", "sandbox", "live")
TIERS: Final = ("viewer", "trader", "admin")
PRICE_EFFECTS: Final = ("Debit", "Credit", "None")
_DIGITS: Final = frozenset("0123456789")
_NO_OFFSET: Final = timedelta(0)
_UTC_FORMAT: Final = "%04d-%02d-%02dT%02d:%02d:%02d.%06d+00:00"  # isoformat(), microseconds


def environment(value: str) -> str:
    """Validate an environment name and return it as a plain `str`."""
    text = str(value)
    if text not in ENVIRONMENTS:
        raise InvalidValueError(
            f"unknown environment {text!r}: expected one of {', '.join(ENVIRONMENTS)}"
        )
    return text


def dec(value: Decimal, field: str) -> str:
    """Encode a Decimal; reject floats, ints and non-finite values with a clear message."""
    # Hot path (every money column of every synced row): exact type, then a finite
    # Decimal's text always ends in a digit ("NaN", "Infinity" do not).
    if value.__class__ is Decimal:
        text = str(value)
        if text[-1] in _DIGITS:
            return text
    if not isinstance(value, Decimal):
        raise InvalidValueError(
            f"{field} must be a Decimal (got {type(value).__name__}); money is never float"
        )
    if not value.is_finite():
        raise InvalidValueError(f"{field} must be a finite Decimal, got {value}")
    return str(value)


def dec_opt(value: Decimal | None, field: str) -> str | None:
    return None if value is None else dec(value, field)


def non_negative(value: Decimal, field: str) -> str:
    """Encode a Decimal magnitude (prices stored with a separate debit/credit effect)."""
    text = dec(value, field)
    if value < 0:
        raise InvalidValueError(
            f"{field} must be a non-negative magnitude, got {value}; "
            "pass the sign as price_effect ('Debit' or 'Credit')"
        )
    return text


def non_negative_opt(value: Decimal | None, field: str) -> str | None:
    return None if value is None else non_negative(value, field)


def to_dec(text: str) -> Decimal:
    return Decimal(text)


def to_dec_opt(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def ts(value: datetime, field: str) -> str:
    """Encode an aware datetime as fixed-width UTC ISO-8601 text; naive datetimes are refused."""
    # Hot path (a timestamp or two per synced row): a datetime already at offset zero (the
    # SDK parses the broker's "+00:00"/"Z" that way) is formatted without conversion.
    if value.__class__ is datetime and value.utcoffset() == _NO_OFFSET:
        return _UTC_FORMAT % (
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
        )
    if not isinstance(value, datetime):
        raise InvalidValueError(f"{field} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidValueError(
            f"{field} is a naive datetime; pass a timezone-aware one (e.g. datetime.now(UTC))"
        )
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def ts_opt(value: datetime | None, field: str) -> str | None:
    return None if value is None else ts(value, field)


def from_ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def from_ts_opt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def day(value: date, field: str) -> str:
    if not isinstance(value, date) or isinstance(value, datetime):
        raise InvalidValueError(f"{field} must be a date, got {type(value).__name__}")
    return value.isoformat()


def from_day(text: str) -> date:
    return date.fromisoformat(text)


def flag(value: bool) -> int:
    return 1 if value else 0


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return ts(value, "json value")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise InvalidValueError(f"cannot store a {type(value).__name__} as JSON")


def to_json(value: Any) -> str:
    """Compact JSON; Decimal becomes a string so money stays exact."""
    try:
        return json.dumps(value, default=_json_default, separators=(",", ":"))
    except (TypeError, ValueError) as exc:  # e.g. a circular reference
        raise InvalidValueError(f"cannot store the value as JSON: {exc}") from None


def json_object(text: str, field: str) -> dict[str, Any]:
    """Validate that `text` is a JSON object and return it parsed."""
    try:
        parsed = json.loads(text)
    except (TypeError, json.JSONDecodeError) as exc:
        raise InvalidValueError(f"{field} is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise InvalidValueError(f"{field} must be a JSON object")
    return parsed
