"""The one exception type session calls raise, and how SDK failures map onto it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

import httpx2
from pydantic import ValidationError
from tastytrade.utils import TastytradeError

from broker.secrets import redact
from broker.session.capture import CallRecord, RoundTrip


class ErrorCategory(StrEnum):
    AUTH = "auth"  # 401/403: token rejected or not permitted
    TOKEN_REVOKED = "token_revoked"  # the refresh token (grant) is invalid or revoked
    NETWORK = "network"  # transport failure (connect, reset, dropped connection)
    TIMEOUT = "timeout"  # no answer within our timeout
    RATE_LIMIT = "rate_limit"  # 429
    SERVER = "server"  # 5xx
    REJECTED = "rejected"  # the broker refused the request (422 and other 4xx)
    CONTRACT = "contract"  # malformed payload / SDK contract mismatch

    @property
    def transient(self) -> bool:
        """Worth retrying for idempotent calls."""
        return self in _TRANSIENT


_TRANSIENT = frozenset(
    {ErrorCategory.RATE_LIMIT, ErrorCategory.SERVER, ErrorCategory.NETWORK, ErrorCategory.TIMEOUT}
)


class BrokerError(Exception):
    """A failed broker call. `message` is safe to show to users (no secrets).

    `codes` are the broker's error codes (e.g. ``("cant_buy_for_credit",)``),
    `outcome_unknown` is True when a submission may have reached the exchange
    and the caller must reconcile before doing anything else.
    """

    def __init__(
        self,
        category: ErrorCategory,
        message: str,
        *,
        codes: Iterable[str] = (),
        status: int | None = None,
        outcome_unknown: bool = False,
        details: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.category = ErrorCategory(category)
        self.message = redact(message)
        self.codes: tuple[str, ...] = tuple(codes)
        self.status = status
        self.outcome_unknown = outcome_unknown
        self.details: tuple[tuple[str, str], ...] = tuple(
            (code, redact(text)) for code, text in details
        )
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.category}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"BrokerError(category={self.category.value!r}, message={self.message!r}, "
            f"codes={self.codes!r}, status={self.status!r}, "
            f"outcome_unknown={self.outcome_unknown!r})"
        )


# httpx2 errors raised before the request left this process: the exchange never saw it.
_NOT_SENT_ERRORS: tuple[type[Exception], ...] = (
    httpx2.ConnectError,
    httpx2.ConnectTimeout,
    httpx2.PoolTimeout,
    httpx2.UnsupportedProtocol,
    httpx2.LocalProtocolError,
)


def broker_error_entries(body: Any) -> list[tuple[str, str]]:
    """(code, message) pairs from a Tastytrade or OAuth error body, nested errors first."""
    if not isinstance(body, dict):
        return []
    error = body.get("error")
    if isinstance(error, dict):
        nested = error.get("errors")
        items = nested if isinstance(nested, list) and nested else [error]
        entries = []
        for item in items:
            if not isinstance(item, dict):
                continue
            code = item.get("code") or item.get("domain")
            text = item.get("message") or item.get("reason") or ""
            if isinstance(code, str):
                entries.append((code, str(text)))
        return entries
    # OAuth style: {"error_code": "...", "error_description": "..."} or {"error": "invalid_grant"}
    code = body.get("error_code") if isinstance(body.get("error_code"), str) else error
    if isinstance(code, str):
        return [(code, str(body.get("error_description") or ""))]
    return []


def _revoked(trip: RoundTrip, codes: list[str]) -> bool:
    """Whether an /oauth/token failure means the grant itself is dead.

    `invalid_client` (wrong provider secret) is a configuration problem, not a
    revoked grant; any other 401, and `invalid_grant` anywhere, is revocation.
    """
    if "invalid_grant" in codes:
        return True
    if "invalid_client" in codes:
        return False
    body = (trip.error_body or "").lower()
    return trip.status == 401 or "invalid_grant" in body or "revoked" in body


def error_for_status(trip: RoundTrip) -> BrokerError:
    """Classify an error response (status >= 400)."""
    status = trip.status or 0
    entries = broker_error_entries(trip.error_json())
    codes = [code for code, _ in entries]
    broker_text = " ".join(text.strip() for _, text in entries if text.strip())
    common: dict[str, Any] = {"codes": codes, "status": status, "details": entries}
    if status == 429:
        return BrokerError(
            ErrorCategory.RATE_LIMIT,
            "Tastytrade is rate limiting requests; try again shortly.",
            **common,
        )
    if status >= 500:
        return BrokerError(
            ErrorCategory.SERVER, f"Tastytrade had a server error (HTTP {status}).", **common
        )
    if trip.is_oauth:
        if _revoked(trip, codes):
            return BrokerError(
                ErrorCategory.TOKEN_REVOKED,
                "The Tastytrade refresh token is invalid or revoked; re-authorize the bot.",
                **common,
            )
        return BrokerError(
            ErrorCategory.AUTH,
            "Tastytrade refused the token refresh"
            + (f": {broker_text}" if broker_text else f" (HTTP {status}).")
            + ("" if broker_text.endswith(".") or not broker_text else "."),
            **common,
        )
    if status == 401:
        return BrokerError(
            ErrorCategory.AUTH, "Tastytrade rejected the access token (HTTP 401).", **common
        )
    if status == 403:
        return BrokerError(
            ErrorCategory.AUTH,
            "Tastytrade does not permit this request for this login"
            + (f": {broker_text}" if broker_text else "."),
            **common,
        )
    return BrokerError(
        ErrorCategory.REJECTED,
        broker_text or f"Tastytrade rejected the request (HTTP {status}).",
        **common,
    )


def classify(exc: BaseException, record: CallRecord, *, submission: bool) -> BrokerError:
    """Turn whatever an SDK call raised into a `BrokerError`, using the round trips it made."""
    if isinstance(exc, BrokerError):
        return exc
    api_trips = record.api_trips
    if isinstance(exc, httpx2.TransportError):
        # Anything but a failure before sending may have reached the exchange — including a
        # reply whose status arrived but whose body was cut short (the order exists).
        reached = not isinstance(exc, _NOT_SENT_ERRORS) and bool(api_trips)
        category = (
            ErrorCategory.TIMEOUT
            if isinstance(exc, httpx2.TimeoutException)
            else ErrorCategory.NETWORK
        )
        text = (
            "Tastytrade did not answer in time."
            if category is ErrorCategory.TIMEOUT
            else "Could not reach Tastytrade (connection failed)."
            if not reached
            else "The connection to Tastytrade dropped before an answer arrived."
        )
        return BrokerError(category, text, outcome_unknown=submission and reached)
    last_error = record.last_error()
    if last_error is not None and record.trips and record.trips[-1] is last_error:
        error = error_for_status(last_error)
        if submission and error.category is ErrorCategory.SERVER and not last_error.is_oauth:
            # A 5xx on a submission does not prove the order was not created.
            error.outcome_unknown = True
        return error
    if isinstance(exc, ValidationError | KeyError | TastytradeError | json.JSONDecodeError):
        return BrokerError(
            ErrorCategory.CONTRACT,
            "Tastytrade sent a response this bot could not understand.",
            outcome_unknown=submission and bool(api_trips),
        )
    return BrokerError(
        ErrorCategory.CONTRACT,
        f"Unexpected error while talking to Tastytrade ({type(exc).__name__}).",
        outcome_unknown=submission and bool(api_trips),
    )


def timeout_error(record: CallRecord, seconds: float, *, submission: bool) -> BrokerError:
    reached = any(trip.status is None or trip.status // 100 == 2 for trip in record.api_trips)
    return BrokerError(
        ErrorCategory.TIMEOUT,
        f"Tastytrade did not answer within {seconds:g} s.",
        outcome_unknown=submission and reached,
    )
