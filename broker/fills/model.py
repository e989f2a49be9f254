"""Value types of the fill-retry engine: what to chase, its persisted state, and its outcome."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from tastytrade.order import (
    AdvancedInstructions,
    InstrumentType,
    Leg,
    LimitOrder,
    MarketOrder,
    OrderAction,
    OrderTimeInForce,
    OrderType,
)
from tastytrade.utils import PriceEffect

from broker.events import ChaseSummary, LegInfo, NotificationContext
from broker.fills.policy import ChaseParams, ChaseParamsError
from broker.orders.pricing import signed_price, split_signed_price
from broker.session import BrokerSession
from broker.ticks import TickSchedule

if TYPE_CHECKING:
    from broker.orders.build import BuiltOrder

__all__ = [
    "ChaseNotFound",
    "ChaseOrder",
    "ChaseRecord",
    "ChaseRequest",
    "ChaseResult",
    "ChaseStatus",
    "OrderDrift",
    "order_fingerprint",
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


class OrderDrift(ValueError):
    """The order about to be sent is not the one the user confirmed (never sent)."""


def order_fingerprint(order: LimitOrder | MarketOrder) -> str:
    """sha256 of the order as sent minus ``external-identifier``.

    The same canonical form as ``BuiltOrder.fingerprint`` (``ChaseOrder.from_built`` checks
    that the two agree, so a change on either side fails loudly instead of drifting).
    """
    body = order.model_dump(mode="json", by_alias=True, exclude_none=True)
    body.pop("external-identifier", None)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _is_closing(action: str) -> bool:
    return action.endswith("to Close")


@dataclass(frozen=True, slots=True)
class ChaseOrder:
    """The order to work, in the engine's terms (built from the order builder's output).

    Prices are SDK-signed (negative = Debit). ``limit_price`` is an explicit user limit; when
    it is ``None`` the engine starts at the mid rounded passively onto ``schedule``.

    ``template`` is the SDK order the user confirmed (``BuiltOrder.order``, with its
    ``advanced-instructions`` such as strict position-effect validation) and ``fingerprint``
    its ``BuiltOrder.fingerprint()``. With a template, every submission and replacement is a
    copy of it with only ``price`` and ``external-identifier`` changed, checked against the
    fingerprint before it is sent. Build one with :meth:`from_built`.
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
    price_effect: PriceEffect | None = None
    template: LimitOrder | MarketOrder | None = None
    fingerprint: str | None = None

    def __post_init__(self) -> None:
        if self.price_effect is PriceEffect.NONE:
            raise ValueError("an order's price effect must be Debit or Credit")
        effect, limit = self.price_effect, self.limit_price
        if effect is not None and limit is not None and split_signed_price(limit)[1] is not effect:
            raise ValueError(f"limit {limit} does not carry the order's {effect.value} effect")
        template = self.template
        if template is None:
            if self.fingerprint is not None:
                raise ValueError("a fingerprint needs the confirmed order (template)")
            return
        if self.fingerprint is None:
            raise ValueError("a confirmed order (template) needs its fingerprint")
        if isinstance(template, MarketOrder) != self.is_market:
            raise ValueError("the confirmed order's type does not match the chase")
        if isinstance(template, LimitOrder) and template.price != self.limit_price:
            raise ValueError("the chase must start at the confirmed order's price")
        confirmed_legs = [(leg.symbol, leg.action.value, Decimal(leg.quantity or 0))
                          for leg in template.legs]  # fmt: skip
        legs = [(leg.symbol, leg.action, Decimal(leg.quantity)) for leg in self.legs]
        if confirmed_legs != legs or template.time_in_force != self.time_in_force:
            raise ValueError("the chase's legs or time in force differ from the confirmed order")

    @classmethod
    def from_built(cls, built: BuiltOrder) -> ChaseOrder:
        """The engine's view of a confirmed ``BuiltOrder``: it sends exactly ``built.order``.

        Starts at the previewed price (``built.price``; None = market order). Raises
        ``ValueError`` when the order has neither a quote nor a limit price.
        """
        reference = built.price if built.price is not None else built.net_natural
        natural = built.net_natural if built.net_natural is not None else reference
        mid = built.net_mid if built.net_mid is not None else reference
        if natural is None or mid is None:
            raise ValueError("no quote and no limit price: this order can't be priced")
        fingerprint = built.fingerprint()
        if order_fingerprint(built.order) != fingerprint:
            raise ValueError("the confirmed order's fingerprint cannot be reproduced")
        return cls(
            legs=tuple(
                LegInfo(
                    symbol=leg.symbol,
                    action=leg.action.value,
                    quantity=Decimal(leg.quantity),
                    instrument_type=leg.instrument_type.value,
                )
                for leg in built.legs
            ),
            quantity=Decimal(built.units),
            underlying_symbol=built.underlying,
            natural=natural,
            mid=mid,
            schedule=built.net_ticks,
            time_in_force=OrderTimeInForce(built.order.time_in_force),
            is_market=built.price is None,
            limit_price=built.price,
            multiplier=built.multiplier,
            price_effect=built.price_effect,
            template=built.order,
            fingerprint=fingerprint,
        )

    @property
    def effect(self) -> PriceEffect:
        """Debit or Credit, fixed at submission (a replace keeps it)."""
        if self.price_effect is not None:
            return self.price_effect
        for reference in (self.limit_price, self.natural, self.mid):
            if reference is None:
                continue
            effect = split_signed_price(reference)[1]
            if effect is not PriceEffect.NONE:
                return effect
        raise ChaseParamsError("this order has no debit/credit effect: its prices are all 0")

    @property
    def is_closing(self) -> bool:
        return any(_is_closing(leg.action) for leg in self.legs)

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

    def _instructions(self) -> AdvancedInstructions | None:
        # Without a confirmed order, still never let a close of a vanished position open one.
        return (
            AdvancedInstructions(strict_position_effect_validation=True)
            if self.is_closing
            else None
        )

    def _checked(self, template: LimitOrder | MarketOrder) -> None:
        if order_fingerprint(template) != self.fingerprint:
            raise OrderDrift("the order to send is not the one that was confirmed; not sent")

    def limit_order(self, price: Decimal, external_identifier: str | None) -> LimitOrder:
        """The order at ``price`` (same effect): the confirmed order with only the price and
        the external identifier changed, when there is one."""
        if split_signed_price(price)[1] is not self.effect:
            raise OrderDrift(f"price {price} does not carry the order's {self.effect.value} effect")
        template = self.template
        if template is None:
            return LimitOrder(
                time_in_force=self.time_in_force,
                legs=self.sdk_legs(),
                price=price,
                external_identifier=external_identifier,
                advanced_instructions=self._instructions(),
            )
        if not isinstance(template, LimitOrder):
            raise OrderDrift("the confirmed order is a market order; it has no price to change")
        self._checked(template)
        return template.model_copy(
            update={"price": price, "external_identifier": external_identifier}
        )

    def market_order(self, external_identifier: str | None) -> MarketOrder:
        template = self.template
        if template is None:
            return MarketOrder(
                time_in_force=self.time_in_force,
                legs=self.sdk_legs(),
                external_identifier=external_identifier,
                advanced_instructions=self._instructions(),
            )
        if not isinstance(template, MarketOrder):
            raise OrderDrift("the confirmed order is a limit order, not a market order")
        self._checked(template)
        return template.model_copy(update={"external_identifier": external_identifier})

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
            "price_effect": None if self.price_effect is None else self.price_effect.value,
            "template": None if self.template is None else _template_to_json(self.template),
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChaseOrder:
        effect = data.get("price_effect")
        template = data.get("template")
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
            price_effect=None if effect is None else PriceEffect(effect),
            template=None if template is None else _template_from_json(template),
            fingerprint=data.get("fingerprint"),
        )


def _template_to_json(order: LimitOrder | MarketOrder) -> dict[str, Any]:
    # The wire form: the price as a magnitude plus its price-effect.
    data: dict[str, Any] = json.loads(order.model_dump_json(by_alias=True, exclude_none=True))
    return data


def _template_from_json(data: dict[str, Any]) -> LimitOrder | MarketOrder:
    body = dict(data)
    effect = body.pop("price-effect", None)
    if body.get("order-type") == OrderType.MARKET.value:
        return MarketOrder.model_validate(body)
    body["price"] = signed_price(Decimal(str(body["price"])), PriceEffect(effect))
    return LimitOrder.model_validate(body)


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
