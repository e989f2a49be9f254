"""The one error type the order builder raises for bad or unsafe orders."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["BuildError", "BuildRefusal"]


class BuildRefusal(StrEnum):
    """Machine-readable reason an order could not be built (for metrics and tests)."""

    UNKNOWN_SYMBOL = "unknown_symbol"
    NO_EXPIRATION = "no_expiration"
    NO_STRIKE = "no_strike"
    AMBIGUOUS = "ambiguous"
    INACTIVE = "inactive"
    CLOSING_ONLY = "closing_only"
    NO_QUOTE = "no_quote"
    OFF_TICK = "off_tick"
    BAD_PRICE = "bad_price"
    EFFECT_MISMATCH = "effect_mismatch"
    POSITION = "position"
    UNSUPPORTED = "unsupported"


class BuildError(ValueError):
    """An order the builder refuses. ``str(err)`` is a specific, user-facing message."""

    def __init__(self, reason: BuildRefusal, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __repr__(self) -> str:
        return f"BuildError({self.reason.value!r}, {self.message!r})"
