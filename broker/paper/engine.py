"""The order book: preflight, order state machine, fill model, positions and expirations.

Fill model (the fill-retry benchmark depends on it, so it is deliberately not generous):
- Prices are compared as the amount paid per unit of the order: `pay = -price`
  (a debit pays, a credit receives). For each leg the far side is the ask for buying
  legs and the bid for selling legs; the natural price of the order is
  `natural = sum(sign * ratio * far_side)`, the best price `best = sum(sign * ratio *
  near_side)`, with sign +1 for buys and -1 for sells and ratio = leg quantity / size.
- Market orders, and limit orders at or through the natural price (`pay >= natural`),
  fill as soon as they are Live, each leg at its far side (so at the limit or better).
- A limit order strictly better than natural but not below best (`best <= pay <
  natural`, i.e. inside the spread or joining the near side) fills at its limit with a
  per-second hazard `lambda = hazard_per_second * exp(-distance_decay * d / half_spread)`
  where `d = natural - pay` and `half_spread = (natural - best) / 2`. The leg prices
  move from their far sides towards their near sides by the same fraction of their
  spreads so that they add up exactly to the limit.
- Orders below the best price (a buy under the bid) never fill unless the market
  moves through them.
- Stop orders trigger when the mid trades through the stop, then behave as market
  (Stop) or limit (Stop Limit) orders.
- `partial_fill_ratio` (off by default) fills that fraction of the order per fill event.
- Fills are evaluated whenever the clock advances (in sub-steps of at least one grid
  second, at most 300 per advance) and every `evaluation_interval` seconds in real time.

Day orders expire at the close of the NYSE session (exchange clock); GTD orders at the
close of their gtc-date; positions in expired options are cash-settled at intrinsic
value, expired futures at their mark.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Protocol

from broker.paper import calendar, views
from broker.paper.clock import SimClock
from broker.paper.config import PaperConfig
from broker.paper.ledger import (
    ZERO,
    Account,
    Fees,
    Holding,
    MarginModel,
    Position,
    Transaction,
    fees_for,
    money,
    multiplier_of,
    summarize,
)
from broker.paper.market import Market, Quote
from broker.paper.orders import (
    Fill,
    LegRequest,
    Order,
    OrderLeg,
    OrderRequest,
    OrderStateError,
    PreflightError,
    closes_without_position,
    parse_order_body,
)
from broker.paper.payloads import JsonDict, signed
from broker.paper.universe import (
    EquitySpec,
    FutureContract,
    FutureOptionContract,
    Instrument,
    Kind,
    OptionContract,
    TickSchedule,
    Universe,
)

GTC_LIKE = frozenset({"GTC", "GTC Ext", "GTC Ext Overnight", "GTD"})
LIMIT_TYPES = frozenset({"Limit", "Stop Limit", "Marketable Limit"})
FIRST_ORDER_ID = 2_000_001
FIRST_TRANSACTION_ID = 60_000_001
MAX_SUBSTEPS = 300


class Notifier(Protocol):
    def publish(self, account_number: str, message_type: str, data: JsonDict) -> None: ...


class NotFoundError(Exception):
    """An unknown account, order or transaction (404)."""


def expires_at(instrument: Instrument) -> datetime | None:
    if isinstance(instrument, OptionContract | FutureOptionContract):
        return instrument.expiration.expires_at
    if isinstance(instrument, FutureContract):
        return instrument.expires_at
    return None


def group_of(instrument: Instrument) -> str:
    """Legs of one order must share this (underlying ticker or futures product)."""
    if isinstance(instrument, EquitySpec):
        return instrument.symbol
    if isinstance(instrument, OptionContract):
        return instrument.underlying
    if isinstance(instrument, FutureContract):
        return instrument.product.root
    return instrument.underlying.product.root


def describe(instrument: Instrument, action: str, quantity: Decimal, price: Decimal) -> str:
    verb = "Bought" if action.startswith("Buy") else "Sold"
    qty = format(quantity.normalize(), "f")
    if isinstance(instrument, OptionContract):
        kind = "Call" if instrument.option_type == "C" else "Put"
        what = (
            f"{instrument.underlying} {instrument.expiration.day:%m/%d/%y} {kind} "
            f"{instrument.strike:.2f}"
        )
    else:
        what = instrument.symbol
    return f"{verb} {qty} {what} @ {price:.2f}"


@dataclass(frozen=True)
class Preview:
    """What an order would do: buying-power effect, fees and blocking margin errors."""

    buying_power_effect: JsonDict
    fee_calculation: JsonDict
    margin_errors: list[tuple[str, str]]


class Engine:
    def __init__(
        self,
        config: PaperConfig,
        universe: Universe,
        market: Market,
        clock: SimClock,
        notifier: Notifier,
    ) -> None:
        self.config = config
        self.universe = universe
        self.market = market
        self.clock = clock
        self.notifier = notifier
        self.accounts: dict[str, Account] = {}
        self.orders: dict[int, Order] = {}
        self.account_orders: dict[str, list[int]] = {}
        self.orders_version = 0
        # Orders that are not terminal, and the subset that is Live (fillable).
        self._working: set[int] = set()
        self._live: set[int] = set()
        self._next_order_id = FIRST_ORDER_ID
        self._next_transaction_id = FIRST_TRANSACTION_ID
        self._fill_seq = 0
        self._rng = random.Random(config.seed * 7919 + 17)
        self._evaluated = clock.elapsed()
        self._catching_up = False
        self._timers: set[asyncio.TimerHandle] = set()
        self._margin_models: dict[bool, MarginModel] = {}

    # ----------------------------------------------------------------- basics
    def now(self) -> datetime:
        return self.market.now

    def open_account(self, number: str, cash_account: bool, cash: Decimal) -> Account:
        now = self.clock.now()
        account = Account(number, now, cash_account, ZERO)
        self.accounts[number] = account
        self.account_orders[number] = []
        if cash:
            self.deposit(account, cash, now)
        return account

    def deposit(self, account: Account, amount: Decimal, when: datetime) -> None:
        account.cash += amount
        account.add_transaction(
            Transaction(
                self.next_transaction_id(),
                account.number,
                when,
                "Money Movement",
                "Deposit",
                "Cash deposit",
                amount,
                amount,
            )
        )

    def next_transaction_id(self) -> int:
        self._next_transaction_id += 1
        return self._next_transaction_id - 1

    def account(self, number: str) -> Account:
        account = self.accounts.get(number)
        if account is None:
            raise NotFoundError(f"account {number} not found")
        return account

    def order(self, number: str, order_id: int) -> Order:
        order = self.orders.get(order_id)
        if order is None or order.account_number != number:
            raise NotFoundError(f"order {order_id} not found")
        return order

    def margin(self, account: Account) -> MarginModel:
        # One model per account kind: it keeps option-group requirements for a market tick.
        model = self._margin_models.get(account.cash_account)
        if model is None:
            model = self._margin_models[account.cash_account] = MarginModel(
                self.market, account.cash_account
            )
        return model

    def orders_of(self, number: str) -> list[Order]:
        return [self.orders[i] for i in self.account_orders.get(number, [])]

    def add_order(self, order: Order) -> None:
        assert order.id is not None
        self.orders[order.id] = order
        self.account_orders.setdefault(order.account_number, []).append(order.id)
        self._set_status(order, order.status)

    def _set_status(self, order: Order, status: str) -> None:
        assert order.id is not None
        order.status = status
        self.orders_version += 1
        if order.is_terminal:
            self._working.discard(order.id)
        else:
            self._working.add(order.id)
        if status == "Live":
            self._live.add(order.id)
        else:
            self._live.discard(order.id)

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    # -------------------------------------------------------------- placing
    def submit(self, number: str, body: object, *, dry_run: bool) -> JsonDict:
        """POST /orders[/dry-run]: the response `data` (raises PreflightError)."""
        self.catch_up()
        account = self.account(number)
        request = parse_order_body(body)
        order, warnings = self._preflight(account, request)
        preview = self._preview(account, order)
        if preview.margin_errors and not dry_run:
            raise PreflightError(preview.margin_errors)
        if not dry_run:
            self._route(order)
        response: JsonDict = {
            "order": order.to_json(),
            "buying-power-effect": preview.buying_power_effect,
            "fee-calculation": preview.fee_calculation,
            "warnings": warnings,
        }
        if preview.margin_errors:
            response["errors"] = [{"code": c, "message": m} for c, m in preview.margin_errors]
        return response

    def _route(self, order: Order) -> None:
        now = self.clock.now()
        order.id = self._next_order_id
        self._next_order_id += 1
        order.status = "Routed"
        order.in_flight_at = now
        order.touch(now)
        order.expires_at = self._expiry_for(order, now)
        self.add_order(order)
        self._publish_order(order)
        self._later(self.market.fills.live_delay, self._go_live, order.id)

    def _expiry_for(self, order: Order, now: datetime) -> datetime | None:
        if order.time_in_force in ("GTC", "GTC Ext", "GTC Ext Overnight"):
            return None
        if order.time_in_force == "GTD" and order.gtc_date is not None:
            session = calendar.session_on(calendar.previous_trading_day(order.gtc_date))
            return session.close if session else calendar.ny_time(order.gtc_date, 16)
        close = calendar.next_session_close(now)
        if order.time_in_force in ("Ext", "Ext Overnight"):
            return close + timedelta(hours=4)
        return close

    def _later(self, delay: float, callback: Callable[[int], None], order_id: int) -> None:
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def run() -> None:
            self._timers.discard(handle)
            callback(order_id)

        handle = loop.call_later(max(delay, 0.0), run)
        self._timers.add(handle)

    def _go_live(self, order_id: int) -> None:
        self.catch_up()
        order = self.orders[order_id]
        if order.status != "Routed":
            return
        now = self.clock.now()
        order.contingent_status = None
        order.live_at = now
        order.touch(now)
        self._set_status(order, "Live")
        self._publish_order(order)
        self._evaluate(order, 0.0, now)
        if order.time_in_force == "IOC" and order.status == "Live":
            self._terminate(order, "Cancelled", now)

    # ------------------------------------------------------- replace / cancel
    def replace(self, number: str, order_id: int, body: object) -> JsonDict:
        """PUT /orders/{id}: the new order's JSON (bare order)."""
        self.catch_up()
        account = self.account(number)
        old = self.order(number, order_id)
        if old.status not in ("Received", "Routed", "Live"):
            raise OrderStateError(
                "order_not_editable",
                f"Order {order_id} is {old.status} and can no longer be edited.",
            )
        change = parse_order_body(body, replace=True)
        request = OrderRequest(
            change.time_in_force,
            change.order_type,
            tuple(
                LegRequest(leg.instrument.kind.value, leg.symbol, leg.action, leg.remaining)
                for leg in old.legs
            ),
            change.price,
            change.stop_trigger,
            change.value,
            change.gtc_date,
            change.source or old.source,
            change.external_identifier or old.external_identifier,
            change.strict_position_effect or old.strict_position_effect,
        )
        new, _warnings = self._preflight(account, request)
        now = self.clock.now()
        new.id = self._next_order_id
        self._next_order_id += 1
        new.replaces_order_id = old.id
        new.status = "Contingent"
        new.contingent_status = "Pending Order"
        new.touch(now)
        new.expires_at = self._expiry_for(new, now)
        old.replacing_order_id = new.id
        old.edited = True
        old.cancelled_size = old.remaining_units
        self._terminate(old, "Cancelled", now)
        self.add_order(new)
        response = new.to_json()  # the PUT answer shows the pending replacement...
        new.contingent_status = None
        new.in_flight_at = now
        self._set_status(new, "Routed")  # ...the stream shows Routed, then Live (as recorded)
        self._publish_order(new)
        self._later(self.market.fills.live_delay, self._go_live, new.id)
        return response

    def cancel(self, number: str, order_id: int) -> JsonDict:
        """DELETE /orders/{id}: the order with status `Cancel Requested`."""
        self.catch_up()
        order = self.order(number, order_id)
        if order.status == "Cancel Requested":
            return order.to_json()
        if not order.is_working:
            raise OrderStateError(
                "order_not_cancellable",
                f"Order {order_id} is {order.status} and cannot be cancelled.",
            )
        self._set_status(order, "Cancel Requested")
        order.touch(self.clock.now())
        self._publish_order(order)
        self._later(self.market.fills.cancel_delay, self._finish_cancel, order_id)
        return order.to_json()

    def _finish_cancel(self, order_id: int) -> None:
        order = self.orders[order_id]
        if order.status == "Cancel Requested":
            order.cancelled_size = order.remaining_units
            self._terminate(order, "Cancelled", self.clock.now())

    def _terminate(self, order: Order, status: str, now: datetime) -> None:
        if status == "Cancelled":
            order.cancelled_at = now
        order.terminal_at = now
        order.touch(now)
        self._set_status(order, status)
        self._publish_order(order)

    # ------------------------------------------------------------- preflight
    def _preflight(self, account: Account, request: OrderRequest) -> tuple[Order, list[JsonDict]]:
        now = self.clock.now()
        errors: list[tuple[str, str]] = []
        legs: list[OrderLeg] = []
        for leg in request.legs:
            instrument = self.universe.lookup(leg.symbol)
            if instrument is None or instrument.kind.value != leg.instrument_type:
                errors.append(
                    (
                        "unknown_symbol",
                        f"{leg.instrument_type} {leg.symbol!r} is not a known symbol.",
                    )
                )
                continue
            expiry = expires_at(instrument)
            if expiry is not None and expiry <= now:
                errors.append(("instrument_expired", f"{leg.symbol!r} has expired."))
                continue
            if leg.action in ("Buy", "Sell") and instrument.kind is not Kind.FUTURE:
                errors.append(
                    (
                        "invalid_action",
                        f"{leg.action!r} is only valid for outright futures; "
                        "use Buy to Open, Sell to Close, etc.",
                    )
                )
            legs.append(OrderLeg(instrument, leg.action, leg.quantity, leg.quantity))
        if request.strict_position_effect:
            errors.extend(closes_without_position(legs, lambda symbol: _held(account, symbol)))
        symbols = [leg.symbol for leg in request.legs]
        if len(set(symbols)) != len(symbols):
            errors.append(("duplicate_legs", "Each leg of an order must have a different symbol."))
        kinds = {leg.instrument.kind for leg in legs}
        has_options = bool(kinds & {Kind.EQUITY_OPTION, Kind.FUTURE_OPTION})
        max_legs = self.config.max_legs if has_options else 1
        if len(request.legs) > max_legs:
            errors.append(("too_many_legs", f"This order can have at most {max_legs} leg(s)."))
        if len({group_of(leg.instrument) for leg in legs}) > 1:
            errors.append(
                ("invalid_leg_combination", "All legs of an order must share one underlying.")
            )
        if account.cash_account and kinds & {Kind.FUTURE, Kind.FUTURE_OPTION}:
            errors.append(("futures_not_approved", "This account is not approved for futures."))
        order_type, tif = request.order_type, request.time_in_force
        if order_type == "Notional Market":
            errors.append(("invalid_order_type", "Notional market orders are not supported here."))
        if order_type == "Market" and tif in GTC_LIKE:
            errors.append(
                ("gtc_market_orders_not_supported", "GTC/GTD Market orders are not supported.")
            )
        if order_type in ("Market", "Stop", "Stop Limit") and len(request.legs) > 1:
            errors.append(("invalid_order_type", f"{order_type} orders must have a single leg."))
        needs_price = order_type in LIMIT_TYPES
        if needs_price and request.price is None:
            errors.append(("price_required", f"A {order_type} order needs a price."))
        if order_type in ("Stop", "Stop Limit") and request.stop_trigger is None:
            errors.append(("stop_trigger_required", f"A {order_type} order needs a stop-trigger."))
        today = calendar.ny_date(now)
        if tif == "GTD" and (request.gtc_date is None or request.gtc_date < today):
            errors.append(("invalid_gtc_date", "GTD orders need a gtc-date of today or later."))
        if errors:
            raise PreflightError(errors)
        price = request.price if needs_price else None
        if price is not None:
            errors.extend(self._price_checks(legs, price))
        if request.stop_trigger is not None:
            ticks = self.market.tick_schedule(legs[0].instrument)
            if not ticks.is_on_tick(request.stop_trigger):
                errors.append(
                    (
                        "invalid_price_increment",
                        f"Stop trigger {request.stop_trigger} is not "
                        f"a multiple of the tick size {ticks.tick_for(request.stop_trigger)}.",
                    )
                )
        if errors:
            raise PreflightError(errors)
        first = legs[0].instrument
        order = Order(
            account_number=account.number,
            time_in_force=tif,
            order_type=order_type,
            legs=legs,
            underlying_symbol=_order_underlying(first),
            underlying_instrument_type=_order_underlying_type(first),
            received_at=now,
            price=price,
            stop_trigger=request.stop_trigger,
            gtc_date=request.gtc_date,
            source=request.source,
            external_identifier=request.external_identifier,
            updated_at=now,
            strict_position_effect=request.strict_position_effect,
        )
        return order, self._warnings(account, legs)

    def _price_checks(self, legs: list[OrderLeg], price: Decimal) -> list[tuple[str, str]]:
        errors: list[tuple[str, str]] = []
        if len(legs) == 1:
            if price == 0:
                return [("invalid_price", "The price must be greater than zero.")]
            ticks = self.market.tick_schedule(legs[0].instrument)
        elif any(isinstance(leg.instrument, FutureOptionContract) for leg in legs):
            ticks = self.market.tick_schedule(legs[0].instrument)
        else:
            ticks = TickSchedule(((self.config.spread_price_tick, None),))
        if price != 0 and not ticks.is_on_tick(price):
            errors.append(
                (
                    "invalid_price_increment",
                    f"Price {abs(price)} is not a multiple of the "
                    f"tick size {ticks.tick_for(price)}.",
                )
            )
        if len(legs) == 1:
            buying = legs[0].is_buy
        else:
            net = sum(
                (
                    leg.sign
                    * leg.quantity
                    * self.market.instrument_quote(leg.instrument).mid
                    * multiplier_of(leg.instrument)
                    for leg in legs
                ),
                ZERO,
            )
            if net == 0 or price == 0:
                return errors
            buying = net > 0
        if buying and price > 0:
            errors.append(("cant_buy_for_credit", "You cannot buy for a credit."))
        elif not buying and price < 0:
            errors.append(("cant_sell_for_debit", "You cannot sell for a debit."))
        return errors

    def _warnings(self, account: Account, legs: list[OrderLeg]) -> list[JsonDict]:
        warnings: list[JsonDict] = []
        for leg in legs:
            if "Close" not in leg.action:
                continue
            position = account.positions.get(leg.symbol)
            held = position.quantity if position else ZERO
            if (leg.is_buy and held >= 0) or (not leg.is_buy and held <= 0):
                warnings.append(
                    {
                        "code": "closing_with_no_position",
                        "message": "You cannot route a closing order without an existing "
                        "position to close. This order will be updated to an opening order "
                        "when routed.",
                    }
                )
        return warnings

    # ---------------------------------------------------------------- preview
    def _preview(self, account: Account, order: Order) -> Preview:
        quotes = [self.market.instrument_quote(leg.instrument) for leg in order.legs]
        limit_pay = None if order.price is None else -order.price
        prices = _leg_prices(order, quotes, limit_pay, at_limit=limit_pay is not None)
        margin = self.margin(account)
        holdings = [Holding(leg.instrument, leg.sign * leg.remaining) for leg in order.legs]
        before = summarize(account, margin)
        after = summarize(account, margin, holdings)
        fees = Fees()
        cash_delta = ZERO
        for leg, price in zip(order.legs, prices, strict=True):
            fees = fees + fees_for(leg.instrument, leg.action, leg.remaining, price)
            if not isinstance(leg.instrument, FutureContract):
                cash_delta -= leg.sign * leg.remaining * price * multiplier_of(leg.instrument)
        cash_delta -= fees.total
        bp_before = before.buying_power
        bp_after = money(after.net_liq + cash_delta - after.requirement)
        change = bp_after - bp_before
        requirement_change = after.requirement - before.requirement
        isolated = margin.requirement(holdings)
        effect = "Debit" if change < 0 else "Credit" if change > 0 else "None"
        buying_power_effect: JsonDict = {
            **signed("change-in-margin-requirement", -requirement_change),
            **signed("change-in-buying-power", change),
            **signed("current-buying-power", bp_before),
            **signed("new-buying-power", bp_after),
            **signed("isolated-order-margin-requirement", -isolated),
            "is-spread": len(order.legs) > 1,
            "impact": abs(change),
            "effect": effect,
        }
        errors: list[tuple[str, str]] = []
        if bp_after < 0 and change < 0:
            errors.append(
                (
                    "margin_check_failed",
                    f"This order needs {abs(change)} of buying power; "
                    f"{max(bp_before, ZERO)} is available.",
                )
            )
        return Preview(buying_power_effect, _fee_calculation(fees), errors)

    # ------------------------------------------------------------- time / fills
    def catch_up(self) -> None:
        """Bring market, fills and expirations up to the exchange clock."""
        if self._catching_up:
            return
        target = self.clock.elapsed()
        if target <= self._evaluated:
            return
        self._catching_up = True
        try:
            self._run_until(target)
        finally:
            self._catching_up = False

    def _run_until(self, target: float) -> None:
        start = self._evaluated
        boundaries = sorted(
            {e for e in (self._elapsed_of(t) for t in self._event_times()) if start < e < target}
            | {target}
        )
        position = start
        grid = self.market.config.grid_seconds
        for boundary in boundaries:
            span = boundary - position
            steps = 1
            if self._live:
                steps = max(1, min(MAX_SUBSTEPS, math.ceil(span / grid)))
            for index in range(1, steps + 1):
                self.market.advance_to(position + span * index / steps)
                self._evaluate_all(span / steps)
            position = boundary
            self._evaluated = boundary
            self._process_expirations(self.market.now)

    def _elapsed_of(self, moment: datetime) -> float:
        return (moment - self.clock.start).total_seconds()

    def _event_times(self) -> set[datetime]:
        times: set[datetime] = set()
        for order_id in self._working_ids():
            order = self.orders[order_id]
            if order.expires_at is not None:
                times.add(order.expires_at)
            for leg in order.legs:
                expiry = expires_at(leg.instrument)
                if expiry is not None:
                    times.add(expiry)
        for account in self.accounts.values():
            for pos in account.open_positions():
                expiry = expires_at(pos.instrument)
                if expiry is not None:
                    times.add(expiry)
        return times

    def _working_ids(self) -> list[int]:
        return sorted(self._working)

    def _evaluate_all(self, dt: float) -> None:
        now = self.market.now
        for order_id in sorted(self._live):
            self._evaluate(self.orders[order_id], dt, now)

    def _evaluate(self, order: Order, dt: float, now: datetime) -> None:
        if order.status != "Live":
            return
        quotes = [self.market.instrument_quote(leg.instrument) for leg in order.legs]
        if order.order_type in ("Stop", "Stop Limit") and not order.triggered:
            stop = order.stop_trigger
            assert stop is not None
            mid = quotes[0].mid
            buying = order.legs[0].is_buy
            if (buying and mid >= stop) or (not buying and mid <= stop):
                order.triggered = True
            else:
                return
        limit_pay = None if order.order_type in ("Market", "Stop") else -(order.price or ZERO)
        natural = _pay(order, quotes, far=True)
        if limit_pay is not None and limit_pay < natural:
            best = _pay(order, quotes, far=False)
            half_spread = (natural - best) / 2
            if limit_pay < best or dt <= 0 or half_spread <= 0:
                return
            fills = self.market.fills
            distance = float((natural - limit_pay) / half_spread)
            hazard = fills.hazard_per_second * math.exp(-fills.distance_decay * distance)
            if self._rng.random() >= 1.0 - math.exp(-hazard * dt):
                return
            prices = _leg_prices(order, quotes, limit_pay, at_limit=True)
        else:
            prices = _leg_prices(order, quotes, None, at_limit=False)
        units = order.remaining_units
        ratio = self.market.fills.partial_fill_ratio
        if ratio is not None:
            chunk = (order.size * ratio).to_integral_value(rounding=ROUND_FLOOR)
            units = min(units, max(Decimal(1), chunk))
        self._fill(order, units, prices, now)

    def _fill(self, order: Order, units: Decimal, prices: list[Decimal], now: datetime) -> None:
        account = self.accounts[order.account_number]
        size = order.size
        for leg, price in zip(order.legs, prices, strict=True):
            quantity = units * leg.quantity / size
            self._fill_seq += 1
            fill_id = f"PAPER-{order.id}-{self._fill_seq}"
            leg.fills.append(Fill(fill_id, quantity, price, now))
            leg.remaining -= quantity
            self._trade(
                account, leg.instrument, leg.action, quantity, price, now, order.id, fill_id
            )
        order.touch(now)
        if all(leg.remaining == 0 for leg in order.legs):
            order.terminal_at = now
            self._set_status(order, "Filled")
        else:
            self.orders_version += 1
        self._publish_order(order)
        self._publish_account(account, {leg.symbol for leg in order.legs}, now)

    def _trade(
        self,
        account: Account,
        instrument: Instrument,
        action: str,
        quantity: Decimal,
        price: Decimal,
        now: datetime,
        order_id: int | None,
        exec_id: str,
    ) -> None:
        sign = 1 if action.startswith("Buy") else -1
        realized = self._apply_position(account, instrument, sign * quantity, price, now)
        fees = fees_for(instrument, action, quantity, price)
        if isinstance(instrument, FutureContract):
            value = money(realized)
        else:
            value = money(-sign * quantity * price * multiplier_of(instrument))
        net = value - fees.total
        account.cash += net
        account.add_transaction(
            Transaction(
                self.next_transaction_id(),
                account.number,
                now,
                "Trade",
                action,
                describe(instrument, action, quantity, price),
                value,
                net,
                symbol=instrument.symbol,
                instrument_type=instrument.kind.value,
                underlying_symbol=_order_underlying(instrument),
                action=action,
                quantity=quantity,
                price=price,
                fees=fees,
                order_id=order_id,
                exec_id=exec_id.rsplit("-", 1)[-1],
            )
        )

    def _apply_position(
        self,
        account: Account,
        instrument: Instrument,
        delta: Decimal,
        price: Decimal,
        now: datetime,
    ) -> Decimal:
        """Update the position; returns the realized P&L of the closed part."""
        position = account.positions.get(instrument.symbol)
        if position is None:
            account.positions[instrument.symbol] = Position(instrument, delta, price, now, now)
            return ZERO
        held = position.quantity
        realized = ZERO
        if held == 0 or (held > 0) == (delta > 0):
            total = abs(held) + abs(delta)
            position.average_open_price = (
                (abs(held) * position.average_open_price + abs(delta) * price) / total
            ).quantize(Decimal("0.000001"))
        else:
            closed = min(abs(delta), abs(held))
            direction = 1 if held > 0 else -1
            realized = (price - position.average_open_price) * closed * position.multiplier
            realized *= direction
            if abs(delta) > abs(held):
                position.average_open_price = price
        position.quantity = held + delta
        if position.quantity != 0 and held == 0:
            position.created_at = now
        position.updated_at = now
        today = calendar.ny_date(now)
        if position.realized_date != today:
            position.realized_day_gain = ZERO
            position.realized_date = today
        position.realized_day_gain += money(realized)
        return realized

    def _process_expirations(self, now: datetime) -> None:
        for order_id in self._working_ids():
            order = self.orders[order_id]
            expired_leg = any(
                (e := expires_at(leg.instrument)) is not None and e <= now for leg in order.legs
            )
            due = order.expires_at is not None and order.expires_at <= now
            if (due or expired_leg) and order.status != "Cancel Requested":
                self._terminate(order, "Expired", now)
        for account in self.accounts.values():
            settled: set[str] = set()
            for position in account.open_positions():
                expiry = expires_at(position.instrument)
                if expiry is not None and expiry <= now:
                    self._settle(account, position, now)
                    settled.add(position.symbol)
            if settled:
                self._publish_account(account, settled, now)

    def _settle(self, account: Account, position: Position, now: datetime) -> None:
        instrument = position.instrument
        quantity = position.quantity
        action = "Sell to Close" if quantity > 0 else "Buy to Close"
        if isinstance(instrument, FutureContract):
            mark = self.market.instrument_quote(instrument).mid
            price, sub_type = mark, "Cash Settlement"
        else:
            assert isinstance(instrument, OptionContract | FutureOptionContract)
            key = (
                instrument.underlying
                if isinstance(instrument, OptionContract)
                else instrument.underlying.symbol
            )
            underlying = self.market.underlying_mid(key)
            if instrument.option_type == "C":
                price = max(underlying - instrument.strike, ZERO)
            else:
                price = max(instrument.strike - underlying, ZERO)
            if price == 0:
                sub_type = "Expiration"
            else:
                sub_type = "Cash Settled Exercise" if quantity > 0 else "Cash Settled Assignment"
        sign = -1 if quantity > 0 else 1
        realized = self._apply_position(account, instrument, sign * abs(quantity), price, now)
        if isinstance(instrument, FutureContract):
            value = money(realized)
        else:
            value = money(-sign * abs(quantity) * price * multiplier_of(instrument))
        account.cash += value
        account.add_transaction(
            Transaction(
                self.next_transaction_id(),
                account.number,
                now,
                "Receive Deliver",
                sub_type,
                f"Removal of {format(abs(quantity), 'f')} {instrument.symbol} due to {sub_type}",
                value,
                value,
                symbol=instrument.symbol,
                instrument_type=instrument.kind.value,
                underlying_symbol=_order_underlying(instrument),
                action=action,
                quantity=abs(quantity),
                price=price,
            )
        )

    # ---------------------------------------------------------------- events
    def _publish_order(self, order: Order) -> None:
        self.notifier.publish(order.account_number, "Order", order.to_json())

    def _publish_account(self, account: Account, symbols: set[str], now: datetime) -> None:
        self.notifier.publish(account.number, "AccountBalance", self.balances_json(account))
        for symbol in sorted(symbols):
            position = account.positions.get(symbol)
            if position is not None:
                self.notifier.publish(
                    account.number, "CurrentPosition", self.position_json(account, position)
                )

    def balances_json(self, account: Account) -> JsonDict:
        now = self.now()
        summary = summarize(account, self.margin(account))
        return views.balances(account, summary, now, calendar.ny_date(now))

    def position_json(
        self, account: Account, position: Position, today: date | None = None
    ) -> JsonDict:
        mark = self.market.instrument_quote(position.instrument).mid
        return views.position(account, position, mark, self.now(), today)


# ------------------------------------------------------------------ helpers
def _held(account: Account, symbol: str) -> Decimal:
    position = account.positions.get(symbol)
    return position.quantity if position is not None else ZERO


def _order_underlying(instrument: Instrument) -> str:
    if isinstance(instrument, EquitySpec):
        return instrument.symbol
    if isinstance(instrument, OptionContract):
        return instrument.underlying
    if isinstance(instrument, FutureContract):
        return instrument.symbol
    return instrument.underlying.symbol


def _order_underlying_type(instrument: Instrument) -> str:
    if isinstance(instrument, EquitySpec | OptionContract):
        return "Equity"
    return "Future"


def _pay(order: Order, quotes: list[Quote], *, far: bool) -> Decimal:
    size = order.size
    total = ZERO
    for leg, quote in zip(order.legs, quotes, strict=True):
        side = (
            (quote.ask if leg.is_buy else quote.bid)
            if far
            else (quote.bid if leg.is_buy else quote.ask)
        )
        total += leg.sign * (leg.quantity / size) * side
    return total


def _leg_prices(
    order: Order, quotes: list[Quote], limit_pay: Decimal | None, *, at_limit: bool
) -> list[Decimal]:
    """Per-leg prices for a fill: far sides, or moved inside so they sum to the limit."""
    natural = [q.ask if leg.is_buy else q.bid for leg, q in zip(order.legs, quotes, strict=True)]
    natural_pay = _pay(order, quotes, far=True)
    if not at_limit or limit_pay is None or limit_pay >= natural_pay:
        return natural
    if len(order.legs) == 1:
        return [abs(limit_pay)]
    size = order.size
    ratios = [leg.quantity / size for leg in order.legs]
    spreads = [q.ask - q.bid for q in quotes]
    total_spread = sum((r * s for r, s in zip(ratios, spreads, strict=True)), ZERO)
    if total_spread <= 0:
        return natural
    fraction = min(Decimal(1), (natural_pay - limit_pay) / total_spread)
    prices: list[Decimal] = []
    paid = ZERO
    for index, (leg, price, spread, ratio) in enumerate(
        zip(order.legs, natural, spreads, ratios, strict=True)
    ):
        if index == len(order.legs) - 1:
            last = (limit_pay - paid) / (leg.sign * ratio)
            prices.append(max(last, ZERO).quantize(Decimal("0.000001")).normalize())
            break
        moved = (price - leg.sign * fraction * spread).quantize(Decimal("0.0001"))
        prices.append(moved.normalize())
        paid += leg.sign * ratio * moved
    return prices


def _fee_calculation(fees: Fees) -> JsonDict:
    def breakdown(name: str, amount: Decimal) -> list[JsonDict]:
        return [{"name": name, "value": amount, "effect": "Debit" if amount else "None"}]

    return {
        **signed("regulatory-fees", -fees.regulatory),
        "regulatory-fees-breakdown": breakdown("regulatory", fees.regulatory),
        **signed("clearing-fees", -fees.clearing),
        "clearing-fees-breakdown": breakdown("clearing", fees.clearing),
        **signed("commission", -fees.commission),
        "commission-breakdown": breakdown("brokerage", fees.commission),
        **signed("proprietary-index-option-fees", ZERO),
        "proprietary-fees-breakdown": breakdown("proprietary", ZERO),
        **signed("total-fees", -fees.total),
        **signed("rebates", ZERO),
        "rebates-breakdown": breakdown("rebate", ZERO),
        "per-quantity": False,
    }
