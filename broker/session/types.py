"""Value types of the managed session: environment, credentials, timeouts, policies, health."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from tastytrade import API_URL, CERT_URL
from tastytrade.streamer import CERT_STREAMER_URL, STREAMER_URL

from broker.secrets import Secret

if TYPE_CHECKING:
    from broker.session.errors import ErrorCategory

#: What an SDK call does; selects its timeout (see `Timeouts`).
CallKind = Literal["read", "validate", "chains", "orders"]


class Environment(StrEnum):
    PAPER = "paper"  # the built-in paper exchange (broker/paper)
    SANDBOX = "sandbox"  # Tastytrade cert
    LIVE = "live"  # production, real money

    @property
    def is_test(self) -> bool:
        """What the SDK calls `is_test`: cert-style API (no Accept-Version header)."""
        return self is not Environment.LIVE


@dataclass(frozen=True)
class Credentials:
    """OAuth credentials for one Tastytrade login in one environment.

    `label` names the credential's owner (e.g. ``"guild:123"``) for logs and for
    the session cache: with a label, a new refresh token for the same label
    replaces the cached session (token rotation). Without one, each distinct
    token pair gets its own session.
    """

    environment: Environment
    provider_secret: Secret
    refresh_token: Secret
    api_url: str | None = None
    streamer_url: str | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        environment = Environment(self.environment)
        object.__setattr__(self, "environment", environment)
        for name in ("provider_secret", "refresh_token"):
            value = getattr(self, name)
            if isinstance(value, str):  # accept plain strings but never keep them unwrapped
                value = Secret(value)
                object.__setattr__(self, name, value)
            if not isinstance(value, Secret) or not value:
                raise ValueError(f"Credentials.{name} must be a non-empty Secret")
        if environment is Environment.PAPER and not (self.api_url and self.streamer_url):
            raise ValueError(
                "paper credentials need api_url and streamer_url of the paper exchange"
            )

    @property
    def resolved_api_url(self) -> str:
        if self.api_url:
            return self.api_url
        return API_URL if self.environment is Environment.LIVE else CERT_URL

    @property
    def resolved_streamer_url(self) -> str:
        if self.streamer_url:
            return self.streamer_url
        return STREAMER_URL if self.environment is Environment.LIVE else CERT_STREAMER_URL


def _require_positive(owner: object, *names: str) -> None:
    for name in names:
        value = getattr(owner, name)
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise ValueError(f"{type(owner).__name__}.{name} must be a positive number")


@dataclass(frozen=True)
class Timeouts:
    """Seconds allowed for each kind of SDK call (the whole call, including parsing)."""

    refresh: float = 10.0
    validate: float = 5.0
    chains: float = 15.0
    orders: float = 10.0
    reads: float = 10.0

    def __post_init__(self) -> None:
        _require_positive(self, "refresh", "validate", "chains", "orders", "reads")

    def for_kind(self, kind: CallKind) -> float:
        match kind:
            case "read":
                return self.reads
            case "validate":
                return self.validate
            case "chains":
                return self.chains
            case "orders":
                return self.orders
        raise ValueError(f"unknown call kind {kind!r}")

    @property
    def longest(self) -> float:
        return max(self.refresh, self.validate, self.chains, self.orders, self.reads)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter for idempotent reads and token refreshes.

    `attempts` counts the first try: 4 means at most 3 retries.
    """

    attempts: int = 4
    base_delay: float = 0.25
    max_delay: float = 4.0

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be an integer >= 1")
        _require_positive(self, "base_delay", "max_delay")

    def backoff_ceiling(self, retry_index: int) -> float:
        """Upper bound of the sleep before retry number `retry_index` (0-based)."""
        return min(self.max_delay, self.base_delay * 2.0**retry_index)


@dataclass(frozen=True)
class RefreshPolicy:
    """When the background task refreshes the access token.

    It refreshes `lead_seconds` before expiry, but waits at least
    `min_life_fraction` of the token's remaining life (so a short-lived token is
    not refreshed in a loop) and at least `min_interval_seconds`.
    """

    lead_seconds: float = 120.0
    min_interval_seconds: float = 1.0
    min_life_fraction: float = 0.5
    enabled: bool = True

    def __post_init__(self) -> None:
        _require_positive(self, "lead_seconds", "min_interval_seconds")
        if not 0.0 <= self.min_life_fraction < 1.0:
            raise ValueError("RefreshPolicy.min_life_fraction must be in [0, 1)")

    def delay_until_refresh(self, remaining_seconds: float) -> float:
        remaining = max(remaining_seconds, 0.0)
        return max(
            remaining - self.lead_seconds,
            remaining * self.min_life_fraction,
            self.min_interval_seconds,
        )


@dataclass(frozen=True)
class SessionHealth:
    """A snapshot of one broker session's state, safe to show to users."""

    environment: Environment
    token_expires_at: datetime | None
    last_refresh_at: datetime | None
    last_error: str | None
    last_error_category: ErrorCategory | None
    refresh_count: int
    label: str = ""
    last_error_at: datetime | None = None
    last_success_at: datetime | None = None
    token_revoked: bool = False
    closed: bool = False

    @property
    def ok(self) -> bool:
        """True unless the grant is revoked, the session closed, or the latest call failed."""
        if self.token_revoked or self.closed:
            return False
        if self.last_error_at is None:
            return True
        return self.last_success_at is not None and self.last_success_at > self.last_error_at
