"""Value types of the fill-retry engine: what to chase, its persisted state, and its outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from tastytrade.order import (
    InstrumentType,
    Leg,
    LimitOrder,
    MarketOrder,
    OrderAction,
    OrderTimeInForce,
)
from tastytrade.utils import PriceEffect

from broker.events import ChaseSummary, LegInfo, NotificationContext
from broker.fills.policy import ChaseParams
from broker.session import BrokerSession
from broker.ticks import TickSchedule

__all__ = [
    "ChaseNotFound",
    "ChaseOrder",
    "ChaseRecord",
    "ChaseRequest",
    "ChaseResult",
    "ChaseStatus",
]

#: Tastytrade does not document a limit; keep the echoed identifier short and plain.
MAX_EXTERNAL_ID_LENGTH = 64


class ChaseNotFound(LookupError):
    """No chase (or order of a chase) with that id in this guild."""


class ChaseStatus(StrEnum):
    SUBMITTING = "submitting"  # persisted, submission in flight or its outcome unknown
    WORKING = "working"  # order at the exchange, chase running
    PLACED = "placed"  # order at the exchange, no chase (chase=0 or market order)
    FILLED = "filled"
    PARTIALLY_FILLED = "partially_filled"  # ended (cancelled/expired) after a partial fill
    LEFT_WORKING = "left_working"  # steps used up; the order keeps working
    CANCELLED = "cancelled"
    HALTED = "halted"  # cancelled by a guild-wide halt
    EXPIRED = "expired"
    REJECTED = "rejected"  # the exchange refused the order
    NOT_PLACED = "not_placed"  # never reached the exchange (checked after a lost answer)
    UNKNOWN = "unknown"  # the submission's outcome could not be established

    @property
    def is_open(self) -> bool:
        """The chase still needs the engine (running or resumable)."""
        return self in (ChaseStatus.SUBMITTING, ChaseStatus.WORKING)

    @property
    def order_may_work(self) -> bool:
        """An order of this chase may still be working at the exchange."""
        return self in (
            ChaseStatus.SUBMITTING,
            ChaseStatus.WORKING,
            ChaseStatus.PLACED,
            ChaseStatus.LEFT_WORKING,
            ChaseStatus.UNKNOWN,
        )


@dataclass(frozen=True, slots=True)
class ChaseOrder:
    """The order to work, in the engine's terms (built from the order builder's output).

    Prices are SDK-signed (negative = Debit). ``limit_price`` is an explicit user limit; when
    it is ``None`` the engine starts at the mid rounded passively onto ``schedule``.
    """

    legs: tuple[LegInfo, ...]
    quantity: Decimal
    underlying_symbol: str
    natural: Decimal
    mid: Decimal
    schedule: TickSchedule
    time_in_force: OrderTimeInForce = OrderTimeInForce.DAY
    is_market: bool = False
    limit_price: Decimal | None = None
    multiplier: Decimal = Decimal(1)

    @property
    def effect(self) -> PriceEffect:
        reference = self.limit_price if self.limit_price is not None else self.natural
        if reference == 0:
            reference = self.mid
        return PriceEffect.DEBIT if reference < 0 else PriceEffect.CREDIT

    def sdk_legs(self) -> list[Leg]:
        return [
            Leg(
                instrument_type=InstrumentType(leg.instrument_type),
                symbol=leg.symbol,
                action=OrderAction(leg.action),
                quantity=leg.quantity,
            )
            for leg in self.legs
        ]

    def limit_order(self, price: Decimal, external_identifier: str | None) -> LimitOrder:
        return LimitOrder(
            time_in_force=self.time_in_force,
            legs=self.sdk_legs(),
            price=price,
            external_identifier=external_identifier,
        )

    def market_order(self, external_identifier: str | None) -> MarketOrder:
        return MarketOrder(
            time_in_force=self.time_in_force,
            legs=self.sdk_legs(),
            external_identifier=external_identifier,
        )

    # -- persistence ---------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "legs": [
                {
                    "symbol": leg.symbol,
                    "action": leg.action,
                    "quantity": str(leg.quantity),
                    "instrument_type": leg.instrument_type,
                }
                for leg in self.legs
            ],
            "quantity": str(self.quantity),
            "underlying_symbol": self.underlying_symbol,
            "natural": str(self.natural),
            "mid": str(self.mid),
            "schedule": [
                [str(tick), None if upper is None else str(upper)]
                for tick, upper in self.schedule.to_sizes()
            ],
            "time_in_force": self.time_in_force.value,
            "is_market": self.is_market,
            "limit_price": None if self.limit_price is None else str(self.limit_price),
            "multiplier": str(self.multiplier),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChaseOrder:
        return cls(
            legs=tuple(
                LegInfo(
                    symbol=leg["symbol"],
                    action=leg["action"],
                    quantity=Decimal(leg["quantity"]),
                    instrument_type=leg["instrument_type"],
                )
                for leg in data["legs"]
            ),
            quantity=Decimal(data["quantity"]),
            underlying_symbol=data["underlying_symbol"],
            natural=Decimal(data["natural"]),
            mid=Decimal(data["mid"]),
            schedule=TickSchedule.from_sizes((tick, upper) for tick, upper in data["schedule"]),
            time_in_force=OrderTimeInForce(data["time_in_force"]),
            is_market=bool(data["is_market"]),
            limit_price=None if data["limit_price"] is None else Decimal(data["limit_price"]),
            multiplier=Decimal(data["multiplier"]),
        )


@dataclass(frozen=True, slots=True)
class ChaseRequest:
    """Everything ``ChaseEngine.submit`` needs.

    ``idempotency_key`` is the Discord message or interaction id (namespaced by the caller,
    e.g. ``"msg:1234"``); it is persisted before anything is sent and echoed to the exchange
    as the order's ``external-identifier``.
    """

    session: BrokerSession
    account_number: str
    order: ChaseOrder
    idempotency_key: str
    params: ChaseParams
    context: NotificationContext
    command_text: str = ""

    def __post_init__(self) -> None:
        key = self.idempotency_key
        if not key or len(key) > MAX_EXTERNAL_ID_LENGTH or not key.isprintable():
            raise ValueError(
                f"idempotency key must be 1-{MAX_EXTERNAL_ID_LENGTH} printable characters"
            )
        if not self.account_number:
            raise ValueError("account number is required")


@dataclass(slots=True)
class ChaseRecord:
    """The persisted state of one chase (the engine's working copy of the database row)."""

    id: int
    idempotency_key: str
    context: NotificationContext
    account_number: str
    order: ChaseOrder
    params: ChaseParams
    status: ChaseStatus
    start_price: Decimal
    last_price: Decimal
    natural_at_submission: Decimal
    created_at: datetime
    current_order_id: int | None = None
    steps_done: int = 0
    chain: list[int] = field(default_factory=list)
    message: str = ""

    @property
    def environment(self) -> str:
        return self.context.environment

    @property
    def guild_id(self) -> int:
        return self.context.guild_id

    def summary(
        self, *, average_price: Decimal | None = None, filled_quantity: Decimal | None = None
    ) -> ChaseSummary:
        improvement = None if average_price is None else average_price - self.natural_at_submission
        total = None
        if improvement is not None and filled_quantity:
            total = improvement * filled_quantity * self.order.multiplier
        return ChaseSummary(
            chase_id=self.id,
            start_price=self.start_price,
            final_price=self.last_price,
            steps=self.steps_done,
            max_steps=self.params.max_steps,
            natural_at_submission=self.natural_at_submission,
            mid_at_submission=self.order.mid,
            order_chain=tuple(self.chain),
            improvement=improvement,
            improvement_total=total,
        )


@dataclass(frozen=True, slots=True)
class ChaseResult:
    """How a chase ended (or where it stands, for ``placed``/``left_working``/``unknown``)."""

    chase_id: int
    status: ChaseStatus
    message: str
    order_chain: tuple[int, ...]
    current_order_id: int | None
    filled_quantity: Decimal
    total_quantity: Decimal
    average_price: Decimal | None
    effect: str
    start_price: Decimal
    final_price: Decimal
    steps: int
    natural_at_submission: Decimal
    improvement: Decimal | None
    fees: Decimal | None = None
    duplicate: bool = False
    adopted: bool = False
    codes: tuple[str, ...] = ()
