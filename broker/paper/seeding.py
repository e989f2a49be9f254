"""Bulk history for sync tests and benchmarks: transactions, orders and positions.

Seeded rows are historical (spread over the last `days` days, before "now"), use their
own id ranges below the live ones, and are valid for the SDK models. Seeded trades do
not move the account's cash; seeded positions are real positions (they count in
balances and margin, and options among them expire like any other).
"""

from __future__ import annotations

import random
import weakref
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from broker.paper.calendar import ny_date
from broker.paper.engine import Engine
from broker.paper.ledger import (
    Fees,
    Position,
    Transaction,
    fees_for,
    money,
    multiplier_of,
    summarize,
)
from broker.paper.orders import Fill, Order, OrderLeg
from broker.paper.universe import (
    EquitySpec,
    FutureContract,
    FutureOptionContract,
    Instrument,
    OptionContract,
)

FIRST_SEEDED_ORDER_ID = 1_000_001
FIRST_SEEDED_TRANSACTION_ID = 10_000_001
CENT = Decimal("0.01")


@dataclass(frozen=True)
class SeedSummary:
    transactions: int
    orders: int
    positions: int


class _Ids:
    """Per-engine counters for seeded ids (kept on the engine between calls)."""

    def __init__(self) -> None:
        self.order = FIRST_SEEDED_ORDER_ID
        self.transaction = FIRST_SEEDED_TRANSACTION_ID
        self.fill = 0


_IDS: weakref.WeakKeyDictionary[Engine, _Ids] = weakref.WeakKeyDictionary()


def _ids(engine: Engine) -> _Ids:
    ids = _IDS.get(engine)
    if ids is None:
        ids = _IDS[engine] = _Ids()
    return ids


def _pool(engine: Engine, rng: random.Random) -> list[Instrument]:
    universe = engine.universe
    pool: list[Instrument] = list(universe.equities.values())
    for symbol in universe.equities:
        options = universe.options_of(symbol)
        pool.extend(rng.sample(options, min(len(options), 400)))
    pool.extend(universe.futures.values())
    for code in universe.future_option_chains:
        future_options = universe.future_options_of(code)
        pool.extend(rng.sample(future_options, min(len(future_options), 200)))
    return pool


def _price(engine: Engine, instrument: Instrument, rng: random.Random) -> Decimal:
    mid = engine.market.instrument_quote(instrument).mid
    ticks = engine.market.tick_schedule(instrument)
    jitter = Decimal(str(round(rng.uniform(0.85, 1.15), 4)))
    price = max(mid * jitter, Decimal("0.05"))
    tick = ticks.tick_for(price)
    return max((price / tick).to_integral_value() * tick, tick)


def _quantity(instrument: Instrument, rng: random.Random) -> Decimal:
    if isinstance(instrument, EquitySpec):
        return Decimal(rng.choice((1, 5, 10, 25, 50, 100, 200)))
    return Decimal(rng.randint(1, 10))


def _action(instrument: Instrument, rng: random.Random) -> str:
    if isinstance(instrument, FutureContract) and rng.random() < 0.5:
        return rng.choice(("Buy", "Sell"))
    return rng.choice(("Buy to Open", "Sell to Close", "Sell to Open", "Buy to Close"))


def _times(rng: random.Random, start: datetime, end: datetime, count: int) -> list[datetime]:
    span = max((end - start).total_seconds(), 1.0)
    offsets = sorted(rng.uniform(0, span) for _ in range(count))
    return [start + timedelta(seconds=round(o, 3)) for o in offsets]


def seed_history(
    engine: Engine,
    account_number: str,
    *,
    transactions: int,
    orders: int,
    positions: int,
    days: int,
    seed: int,
) -> SeedSummary:
    if min(transactions, orders, positions) < 0 or days < 1:
        raise ValueError("counts must be >= 0 and days >= 1")
    engine.catch_up()
    account = engine.account(account_number)
    rng = random.Random(seed * 1_000_003 + transactions * 7 + orders * 11 + positions)
    ids = _ids(engine)
    now = engine.clock.now()
    start = now - timedelta(days=days)
    end = now - timedelta(minutes=1)
    pool = _pool(engine, rng)
    prices = {instrument.symbol: _price(engine, instrument, rng) for instrument in pool}
    seeded_order_ids = _seed_orders(
        engine, account_number, orders, pool, prices, rng, ids, start, end
    )
    _seed_transactions(
        engine, account_number, transactions, pool, prices, rng, ids, seeded_order_ids, start, end
    )
    made = _seed_positions(engine, account_number, positions, pool, prices, rng, start, end)
    if made:
        _fund(engine, account_number, ids, start)
    account.sorted_transactions()
    return SeedSummary(transactions, orders, made)


@dataclass(frozen=True)
class _Tradable:
    """Per-instrument constants precomputed once so 100k rows stay cheap."""

    instrument: Instrument
    kind: str
    underlying: str
    multiplier: Decimal
    price: Decimal
    what: str
    price_text: str
    fee_class: str  # rows with the same class, action and quantity pay the same fees
    quantities: tuple[Decimal, ...]
    actions: tuple[str, ...]


def _tradables(pool: list[Instrument], prices: dict[str, Decimal]) -> list[_Tradable]:
    out = []
    for instrument in pool:
        if isinstance(instrument, OptionContract):
            kind = "Call" if instrument.option_type == "C" else "Put"
            what = (
                f"{instrument.underlying} {instrument.expiration.day:%m/%d/%y} {kind} "
                f"{instrument.strike:.2f}"
            )
        else:
            what = instrument.symbol
        if isinstance(instrument, EquitySpec):
            quantities = tuple(Decimal(q) for q in (1, 5, 10, 25, 50, 100, 200))
        else:
            quantities = tuple(Decimal(q) for q in range(1, 11))
        actions: tuple[str, ...] = ("Buy to Open", "Sell to Close", "Sell to Open", "Buy to Close")
        if isinstance(instrument, FutureContract):
            actions = (*actions, "Buy", "Sell")
        price = prices[instrument.symbol]
        if isinstance(instrument, EquitySpec):
            fee_class = instrument.symbol  # sells pay value-based fees
        elif isinstance(instrument, FutureContract):
            fee_class = instrument.product.code
        else:
            fee_class = instrument.kind.value
        out.append(
            _Tradable(instrument, instrument.kind.value, _underlying(instrument),
                      multiplier_of(instrument), price, what, f"{price:.2f}", fee_class,
                      quantities, actions)
        )  # fmt: skip
    return out


def _seed_transactions(
    engine: Engine,
    account_number: str,
    count: int,
    pool: list[Instrument],
    prices: dict[str, Decimal],
    rng: random.Random,
    ids: _Ids,
    order_ids: list[int],
    start: datetime,
    end: datetime,
) -> None:
    account = engine.account(account_number)
    tradables = _tradables(pool, prices)
    fee_cache: dict[tuple[str, str, Decimal], Fees] = {}
    days: dict[int, date] = {}  # New York date per UTC hour (offsets are whole hours)
    zero = Decimal(0)
    rows = account.transactions
    draw = rng.random
    for moment in _times(rng, start, end, count):
        hour = int(moment.timestamp()) // 3600
        day = days.get(hour)
        if day is None:
            day = days[hour] = ny_date(moment)
        roll = draw()
        tx_id = ids.transaction
        ids.transaction += 1
        if roll < 0.06:
            amount = Decimal((500, 1000, 2500, 5000, 10000)[int(draw() * 5)])
            if draw() < 0.7:
                rows.append(
                    Transaction(
                        tx_id,
                        account_number,
                        moment,
                        "Money Movement",
                        "Deposit",
                        "Cash deposit",
                        amount,
                        amount,
                        transaction_date=day,
                    )
                )
            else:
                rows.append(
                    Transaction(
                        tx_id,
                        account_number,
                        moment,
                        "Money Movement",
                        "Withdrawal",
                        "Cash withdrawal",
                        -amount,
                        -amount,
                        transaction_date=day,
                    )
                )
            continue
        index = int(draw() * len(tradables))
        item = tradables[index]
        quantity = item.quantities[int(draw() * len(item.quantities))]
        if roll < 0.10 and item.kind in ("Equity Option", "Future Option"):
            rows.append(
                Transaction(
                    tx_id,
                    account_number,
                    moment,
                    "Receive Deliver",
                    "Expiration",
                    f"Removal of {quantity} {item.instrument.symbol} due to Expiration",
                    zero,
                    zero,
                    symbol=item.instrument.symbol,
                    instrument_type=item.kind,
                    underlying_symbol=item.underlying,
                    action="Sell to Close",
                    quantity=quantity,
                    price=zero,
                    transaction_date=day,
                )
            )
            continue
        action = item.actions[int(draw() * len(item.actions))]
        buying = action.startswith("Buy")
        fee_key = (item.fee_class, action, quantity)
        fees = fee_cache.get(fee_key)
        if fees is None:
            fees = fee_cache[fee_key] = fees_for(item.instrument, action, quantity, item.price)
        if item.kind == "Future":
            value = zero
        else:
            value = quantity * item.price * item.multiplier
            value = -value if buying else value
        ids.fill += 1
        verb = "Bought" if buying else "Sold"
        rows.append(
            Transaction(
                tx_id,
                account_number,
                moment,
                "Trade",
                action,
                f"{verb} {quantity} {item.what} @ {item.price_text}",
                value,
                value - fees.total,
                symbol=item.instrument.symbol,
                instrument_type=item.kind,
                underlying_symbol=item.underlying,
                action=action,
                quantity=quantity,
                price=item.price,
                fees=fees,
                order_id=order_ids[int(draw() * len(order_ids))] if order_ids else None,
                exec_id=str(ids.fill),
                transaction_date=day,
            )
        )
    account.transactions_sorted = False
    account.transactions_version += 1


def _underlying(instrument: Instrument) -> str:
    if isinstance(instrument, EquitySpec):
        return instrument.symbol
    if isinstance(instrument, OptionContract):
        return instrument.underlying
    if isinstance(instrument, FutureContract):
        return instrument.symbol
    return instrument.underlying.symbol


def _seed_orders(
    engine: Engine,
    account_number: str,
    count: int,
    pool: list[Instrument],
    prices: dict[str, Decimal],
    rng: random.Random,
    ids: _Ids,
    start: datetime,
    end: datetime,
) -> list[int]:
    made: list[int] = []
    options = [i for i in pool if isinstance(i, OptionContract)]
    series: dict[tuple[str, date, str], list[OptionContract]] = {}
    for option in options:
        key = (option.underlying, option.expiration.day, option.option_type)
        series.setdefault(key, []).append(option)
    previous: Order | None = None
    for moment in _times(rng, start, end, count):
        order_id = ids.order
        ids.order += 1
        replaces = (
            previous
            if previous is not None
            and previous.status == "Cancelled"
            and (previous.replacing_order_id == order_id)
            else None
        )
        if replaces is not None:
            legs = [
                OrderLeg(leg.instrument, leg.action, leg.quantity, leg.quantity)
                for leg in replaces.legs
            ]
        elif rng.random() < 0.2 and options:
            first = rng.choice(options)
            key = (first.underlying, first.expiration.day, first.option_type)
            siblings = [o for o in series[key] if o is not first]
            if siblings:
                second = rng.choice(siblings)
                quantity = Decimal(rng.randint(1, 5))
                legs = [
                    OrderLeg(first, "Buy to Open", quantity, quantity),
                    OrderLeg(second, "Sell to Open", quantity, quantity),
                ]
            else:
                legs = [OrderLeg(first, "Buy to Open", Decimal(1), Decimal(1))]
        else:
            instrument = rng.choice(pool)
            quantity = _quantity(instrument, rng)
            legs = [OrderLeg(instrument, _action(instrument, rng), quantity, quantity)]
        net = sum((leg.sign * prices[leg.symbol] for leg in legs), Decimal(0))
        if len(legs) > 1:
            net = net.quantize(CENT)
        price = -net if net != 0 else -prices[legs[0].symbol]
        if replaces is not None and replaces.price is not None:
            step = CENT if abs(replaces.price) < 3 else Decimal("0.05")
            price = replaces.price - step if replaces.price < 0 else replaces.price + step
        first_instrument = legs[0].instrument
        order = Order(
            account_number=account_number,
            time_in_force=rng.choice(("Day", "Day", "Day", "GTC")),
            order_type="Limit",
            legs=legs,
            underlying_symbol=_underlying(first_instrument),
            underlying_instrument_type="Equity"
            if isinstance(first_instrument, EquitySpec | OptionContract)
            else "Future",
            received_at=moment,
            id=order_id,
            price=price,
            source="tastyware/tastytrade:v13.2.3",
            replaces_order_id=replaces.id if replaces is not None else None,
        )
        roll = rng.random()
        settle = moment + timedelta(seconds=rng.uniform(0.05, 30))
        order.live_at = moment + timedelta(milliseconds=20)
        if roll < 0.6:
            for leg in order.legs:
                ids.fill += 1
                leg.fills.append(
                    Fill(f"PAPER-{order_id}-{ids.fill}", leg.quantity, prices[leg.symbol], settle)
                )
                leg.remaining = Decimal(0)
            order.status = "Filled"
        elif roll < 0.9:
            order.status = "Cancelled"
            order.cancelled_at = settle
            order.cancelled_size = order.size
            if rng.random() < 0.4:
                order.replacing_order_id = ids.order
                order.edited = True
        elif roll < 0.95:
            order.status = "Expired"
        else:
            order.status = "Rejected"
            order.reject_reason = "Order rejected by the exchange"
        order.terminal_at = settle
        order.updated_at = settle
        engine.add_order(order)
        made.append(order_id)
        previous = order
    # the seeded chains must point at orders that exist
    if previous is not None and previous.replacing_order_id is not None:
        previous.replacing_order_id = None
        previous.edited = False
    return made


def _seed_positions(
    engine: Engine,
    account_number: str,
    count: int,
    pool: list[Instrument],
    prices: dict[str, Decimal],
    rng: random.Random,
    start: datetime,
    end: datetime,
) -> int:
    account = engine.account(account_number)
    now = engine.clock.now()
    candidates = [
        i
        for i in pool
        if i.symbol not in account.positions and not _expires_before(i, now + timedelta(days=2))
    ]
    chosen = rng.sample(candidates, min(count, len(candidates)))
    times = _times(rng, start, end, len(chosen))
    for instrument, moment in zip(chosen, times, strict=True):
        quantity = _quantity(instrument, rng)
        if isinstance(instrument, FutureContract):
            quantity = Decimal(rng.randint(1, 2))
        elif not isinstance(instrument, EquitySpec) and rng.random() < 0.4:
            quantity = -quantity
        account.positions[instrument.symbol] = Position(
            instrument, quantity, prices[instrument.symbol], moment, moment
        )
    return len(chosen)


def _fund(engine: Engine, account_number: str, ids: _Ids, when: datetime) -> None:
    """Deposit enough (historically) that seeded positions leave buying power to trade."""
    account = engine.account(account_number)
    summary = summarize(account, engine.margin(account))
    wanted = engine.config.starting_cash
    if summary.buying_power >= wanted:
        return
    amount = money(wanted - summary.buying_power)
    account.cash += amount
    account.add_transaction(
        Transaction(
            ids.transaction,
            account_number,
            when,
            "Money Movement",
            "Deposit",
            "Cash deposit",
            amount,
            amount,
        )
    )
    ids.transaction += 1


def _expires_before(instrument: Instrument, moment: datetime) -> bool:
    if isinstance(instrument, OptionContract | FutureOptionContract):
        return instrument.expiration.expires_at <= moment
    if isinstance(instrument, FutureContract):
        return instrument.expires_at <= moment
    return False
