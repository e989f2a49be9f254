"""Typed results the application service hands to the Discord layer.

These are plain frozen dataclasses with no SDK or discord types inside, so `cogs/` and the
embed builders can render them without importing `tastytrade`. Money is `Decimal`; a signed
amount follows the SDK convention (negative = debit / money out, positive = credit).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from broker.session import Environment

__all__ = [
    "AccountRow",
    "BalanceSummary",
    "CancelOutcome",
    "ChasePlan",
    "Environment",
    "FillNotice",
    "GuildView",
    "HaltOutcome",
    "LegLine",
    "OrderProgress",
    "OrderRow",
    "PlacementOutcome",
    "PositionRow",
    "PreviewSummary",
    "ProgressStage",
    "QuoteSummary",
    "ReplaceOutcome",
    "StatusReport",
    "SyncProgress",
    "SyncSummary",
    "TransactionRow",
]


@dataclass(frozen=True, slots=True)
class LegLine:
    action: str  # "Buy to Open", "Sell to Close", …
    quantity: int
    symbol: str  # broker symbol (OCC for options)
    instrument_type: str  # "Equity", "Equity Option", "Future", "Future Option"
    bid: Decimal | None = None
    ask: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ChasePlan:
    """How the fill-retry engine will work the order after it is placed."""

    start_price: Decimal  # magnitude
    ticks_per_step: int
    max_steps: int
    interval_seconds: float
    cap_price: Decimal | None  # the natural (far-side) price the chase never crosses

    @property
    def enabled(self) -> bool:
        return self.max_steps > 0


@dataclass(frozen=True, slots=True)
class PreviewSummary:
    """A dry-run preview, bound by `fingerprint` to exactly one built order."""

    preview_id: str
    fingerprint: str
    environment: Environment
    account_number: str
    guild_id: int
    author_id: int
    command_text: str
    legs: Sequence[LegLine]
    order_type: str  # "Limit" | "Market"
    price: Decimal | None  # magnitude; None for market orders
    price_effect: str | None  # "Debit" | "Credit"
    time_in_force: str
    mid: Decimal | None
    natural: Decimal | None
    buying_power_effect: Decimal | None  # signed: negative reduces buying power
    fees: Decimal | None  # signed like the broker reports it (negative = paid)
    warnings: Sequence[str]
    errors: Sequence[str]
    chase: ChasePlan | None
    confirm_required: bool
    created_at: datetime

    @property
    def would_reject(self) -> bool:
        return bool(self.errors)

    @property
    def headline(self) -> str:
        first = self.legs[0] if self.legs else None
        if first is None:
            return "Order"
        if len(self.legs) == 1:
            return f"{first.action} {first.quantity} {first.symbol}"
        return f"{len(self.legs)}-leg order on {first.symbol.split()[0]}"


class ProgressStage(StrEnum):
    SUBMITTED = "submitted"
    WORKING = "working"
    STEPPED = "stepped"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    LEFT_WORKING = "left_working"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REJECTED = "rejected"
    NOT_PLACED = "not_placed"
    HALTED = "halted"

    @property
    def terminal(self) -> bool:
        return self not in {
            ProgressStage.SUBMITTED,
            ProgressStage.WORKING,
            ProgressStage.STEPPED,
            ProgressStage.PARTIALLY_FILLED,
        }


@dataclass(frozen=True, slots=True)
class OrderProgress:
    """One update about a placed order, used to edit the preview message in place."""

    preview_id: str
    idempotency_key: str
    stage: ProgressStage
    order_id: str | None
    price: Decimal | None
    price_effect: str | None
    steps_done: int
    max_steps: int
    filled_quantity: int
    total_quantity: int
    detail: str = ""


@dataclass(frozen=True, slots=True)
class PlacementOutcome:
    """What happened when a confirmed preview was submitted."""

    idempotency_key: str
    order_id: str | None
    duplicate: bool  # the key was already used: nothing new was placed
    progress: OrderProgress
    environment: Environment
    # Settles when the submission is over (the exchange answered, or it failed); the order
    # may still be in flight when `place` returns. None: nothing was sent (a duplicate).
    submission: asyncio.Future[None] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class FillNotice:
    """A fill (or terminal outcome) to announce in the originating channel."""

    dedupe_key: str
    environment: Environment
    guild_id: int
    channel_id: int | None
    author_id: int | None
    order_id: str
    legs: Sequence[LegLine]
    filled_quantity: int
    total_quantity: int
    average_price: Decimal | None  # signed: negative = debit
    fees: Decimal | None
    status: str  # "filled", "partially filled", "cancelled", "expired", "rejected", …
    reason: str = ""
    start_price: Decimal | None = None
    final_price: Decimal | None = None
    steps: int = 0
    improvement: Decimal | None = None  # per unit, versus the natural price at submission

    @property
    def complete(self) -> bool:
        return self.status == "filled"


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    cancelled: Sequence[str]  # order ids
    not_found: Sequence[str] = ()
    failed: Sequence[tuple[str, str]] = ()  # (order id, reason)


@dataclass(frozen=True, slots=True)
class ReplaceOutcome:
    old_order_id: str
    new_order_id: str
    price: Decimal
    price_effect: str | None


@dataclass(frozen=True, slots=True)
class HaltOutcome:
    halted: bool
    chases_stopped: int = 0
    orders_cancelled: int = 0


@dataclass(frozen=True, slots=True)
class OrderRow:
    order_id: str
    status: str
    underlying: str
    legs: Sequence[LegLine]
    order_type: str
    price: Decimal | None  # signed
    time_in_force: str
    filled_quantity: int
    size: int
    updated_at: datetime | None
    chasing: bool = False


@dataclass(frozen=True, slots=True)
class PositionRow:
    index: int  # 1-based, for `!tt close <#>`
    symbol: str
    underlying: str
    instrument_type: str
    quantity: Decimal  # signed: negative = short
    average_open_price: Decimal | None
    mark: Decimal | None
    unrealized_pnl: Decimal | None
    multiplier: Decimal = Decimal(1)


@dataclass(frozen=True, slots=True)
class BalanceSummary:
    net_liquidating_value: Decimal | None
    cash_balance: Decimal | None
    equity_buying_power: Decimal | None
    derivative_buying_power: Decimal | None
    maintenance_requirement: Decimal | None
    as_of: datetime | None


@dataclass(frozen=True, slots=True)
class TransactionRow:
    transaction_id: str
    executed_at: datetime | None
    type: str
    description: str
    symbol: str | None
    action: str | None
    quantity: Decimal | None
    price: Decimal | None
    value: Decimal | None  # signed
    fees: Decimal | None


@dataclass(frozen=True, slots=True)
class QuoteSummary:
    symbol: str
    instrument_type: str
    bid: Decimal | None
    ask: Decimal | None
    mid: Decimal | None
    last: Decimal | None
    mark: Decimal | None
    as_of: datetime | None


@dataclass(frozen=True, slots=True)
class SyncProgress:
    pages_done: int
    rows_written: int
    estimated_total: int | None
    stage: str = ""


@dataclass(frozen=True, slots=True)
class SyncSummary:
    kind: str
    rows_written: int
    pages: int
    positions: int
    open_orders: int
    duration_seconds: float
    attached: bool = False  # joined a sync that was already running


@dataclass(frozen=True, slots=True)
class AccountRow:
    account_number: str
    nickname: str
    account_type: str
    margin_or_cash: str
    is_default: bool


@dataclass(frozen=True, slots=True)
class GuildView:
    """The guild settings the Discord layer needs for checks and displays."""

    guild_id: int
    environment: Environment
    allowed_channel_ids: frozenset[int]
    role_tiers: dict[int, str] = field(default_factory=dict)  # role id -> viewer|trader|admin
    notification_channel_id: int | None = None
    halted: bool = False
    skip_confirmation: bool = False
    limits: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StatusReport:
    environment: Environment
    halted: bool
    account_number: str | None
    session_state: str  # "ok", "not connected", "error: …"
    token_expires_at: datetime | None
    streamer_state: str
    last_sync_at: datetime | None
    last_sync_status: str | None
    working_chases: int
    credentials_source: str  # "built-in paper", "guild link", "bot config", "missing"
