"""Execution benchmark: the fill-retry engine against two baselines on the same markets.

    .venv/bin/python benchmarks/execution.py [--orders 220] [--seed 7]

Three identical paper exchanges (same seed, same start time, simulated clock) replay the same
scenarios at the same exchange times, so every strategy meets exactly the same quotes:

* marketable: a limit at the natural price (rounded through it onto the tick), i.e. pays the
  far side, like a market order (which multi-leg orders cannot use);
* fixed mid: a limit at the mid (rounded passively onto the tick) that is never moved, for
  the whole chase window, then cancelled;
* engine: ``ChaseEngine`` with the default parameters (start at the mid, every 5 s replace
  2 ticks toward the far side, at most 3 replacements), through the real SDK and session.

Orders: equities, single options and vertical spreads (both debit and credit, buys and
sells) across the paper universe, one scenario every ``SLOT_S`` seconds of exchange time.

How the market fills passive orders (``broker.paper.engine``; parameters below):
  Prices are compared as amounts paid per unit. An order at or through the natural price
  (buy at the ask, sell at the bid; for spreads the net of the legs' far sides) fills at
  once at the far side. A resting order strictly inside the spread fills with a per-second
  hazard  lambda = HAZARD * exp(-DECAY * d / half_spread),  where d is its distance from the
  far side: at the mid (d = half_spread) lambda = HAZARD * e^-DECAY, one tick from the far
  side almost HAZARD. An order at or beyond the near side (a buy at or under the bid) never
  fills unless the market moves through it. Quotes follow a seeded random walk; bid/ask are
  on each instrument's tick schedule. With the parameters below (HAZARD 1000/s, DECAY 10)
  an order at the mid has lambda = 0.045/s and fills with probability
  1 - exp(-0.045 * 20 s) ~ 0.6 in the 20-second chase window if the market stood still;
  halfway from the mid to the far side lambda = 6.7/s. Resting at the mid is not a free
  lunch (the fixed-mid baseline must fill at most 70%, and the run fails otherwise), while
  paying up part of the spread gets filled quickly. The tape is quiet (a quarter of the
  universe's volatility) and spreads are several ticks wide, the regime where chasing by a
  couple of ticks per step is meaningful (a one-tick market leaves nothing to chase).

Metrics, per strategy: fill rate within the chase window; mean price improvement of the
filled orders versus the marketable order's price for the same scenario, as a percentage of
the half-spread at submission; mean time to fill (exchange seconds). Every price the engine
and the baselines sent is checked against the instrument's tick schedule. The last line is
``engine saved S% of half-spread, fill rate F%``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import structlog  # noqa: E402
from tastytrade import Session  # noqa: E402
from tastytrade.instruments import Equity, NestedOptionChain  # noqa: E402
from tastytrade.order import OrderTimeInForce  # noqa: E402
from tastytrade.utils import PriceEffect  # noqa: E402

from broker.events import EventBus, LegInfo, NotificationContext  # noqa: E402
from broker.fills import (  # noqa: E402
    ChaseEngine,
    ChaseOrder,
    ChaseParams,
    ChaseRequest,
    ChaseStatus,
    PriceLadder,
    SimulatedClock,
)
from broker.fills.broker_ops import OrderOps  # noqa: E402
from broker.fills.quotes import current_net_quote  # noqa: E402
from broker.fills.snapshot import OrderSnapshot  # noqa: E402
from broker.orders.pricing import signed_price  # noqa: E402
from broker.paper import FillModelConfig, MarketConfig, PaperConfig, PaperExchange  # noqa: E402
from broker.session import (  # noqa: E402
    BrokerError,
    BrokerSession,
    Credentials,
    Environment,
    RetryPolicy,
    Secret,
    SessionManager,
    Timeouts,
)
from broker.ticks import TickSchedule  # noqa: E402
from storage.database import Database  # noqa: E402

# -- the market ---------------------------------------------------------------------------
HAZARD = 1000.0  # lambda0 per second (the hazard an order would have AT the far side)
DECAY = 10.0  # e-folds of the hazard over one half-spread of distance from the far side
MARKET = MarketConfig(
    volatility_scale=0.25,  # a quiet intraday tape: a quarter of the universe's annual vols
    spread_fraction=0.0003,  # equities: several ticks wide (half-spread median ~5 ticks)
    option_spread_fraction=0.04,  # options: 4% of theoretical value ...
    option_spread_cap_fraction=0.0003,  # ... capped at 0.03% of the underlying
)
# Monday 2 March 2026, 10:00 New York: a full trading day ahead.
START = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)

# -- the engine and the window -------------------------------------------------------------
PARAMS = ChaseParams(interval_s=5.0, ticks=2, max_steps=3)
WINDOW_S = PARAMS.interval_s * (PARAMS.max_steps + 1)  # placement + 3 replacements, 5 s each
SLOT_S = 30.0  # exchange seconds between scenarios

EQUITY_SYMBOLS = ("SPY", "QQQ", "IWM", "AAPL", "TSLA", "AMD", "GME")
OPTION_UNDERLYINGS = ("SPY", "QQQ", "IWM", "AAPL", "TSLA", "AMD")
D = Decimal


@dataclass(frozen=True)
class LegSpec:
    symbol: str
    instrument_type: str
    buy: bool
    ratio: int = 1


@dataclass(frozen=True)
class Scenario:
    index: int
    kind: str  # equity | option | spread
    legs: tuple[LegSpec, ...]
    schedule: TickSchedule

    @property
    def key(self) -> str:
        return f"s{self.index}"


@dataclass
class Outcome:
    scenario: Scenario
    strategy: str
    natural: Decimal
    mid: Decimal
    filled: bool
    price: Decimal | None  # signed average fill price per unit
    seconds_to_fill: float | None


@dataclass
class Venue:
    """One exchange plus a session, a database and an engine on top of it."""

    name: str
    exchange: PaperExchange
    session: BrokerSession
    manager: SessionManager
    db: Database
    bus: EventBus
    engine: ChaseEngine
    ops: OrderOps
    sent: dict[str, TickSchedule] = field(default_factory=dict)

    @property
    def account(self) -> str:
        return self.exchange.account_number

    def advance_to(self, elapsed: float) -> None:
        now = self.exchange.clock.elapsed()
        if elapsed > now:
            self.exchange.clock.advance(elapsed - now)


# -- scenarios ------------------------------------------------------------------------------


def _schedule(sizes: Any) -> TickSchedule:
    return TickSchedule.from_tick_sizes(sizes)


async def build_scenarios(session: BrokerSession, count: int, seed: int) -> list[Scenario]:
    rng = random.Random(seed)

    async def equities(sdk: Session) -> list[Equity]:
        return await Equity.get(sdk, list(EQUITY_SYMBOLS))

    equity_ticks = {
        e.symbol: _schedule(e.tick_sizes or []) for e in await session.read(equities, kind="chains")
    }
    chains: dict[str, NestedOptionChain] = {}
    for underlying in OPTION_UNDERLYINGS:

        async def chain(sdk: Session, name: str = underlying) -> list[NestedOptionChain]:
            return await NestedOptionChain.get(sdk, name)

        chains[underlying] = (await session.read(chain, kind="chains"))[0]
    spots = {}
    for underlying in OPTION_UNDERLYINGS:
        quote = await current_net_quote(
            session, (LegInfo(underlying, "Buy to Open", D(1), "Equity"),)
        )
        spots[underlying] = -quote.mid

    def strikes_near(underlying: str, weeks: int) -> tuple[Any, list[Any]]:
        chain = chains[underlying]
        expirations = [e for e in chain.expirations if 10 <= e.days_to_expiration <= 7 * weeks]
        expiration = rng.choice(expirations or chain.expirations[1:4])
        strikes = sorted(expiration.strikes, key=lambda s: s.strike_price)
        spot = spots[underlying]
        nearest = min(range(len(strikes)), key=lambda i: abs(strikes[i].strike_price - spot))
        return expiration, strikes[max(nearest - 6, 0) : nearest + 7]

    scenarios: list[Scenario] = []
    kinds = ["equity"] * 4 + ["option"] * 3 + ["spread"] * 3
    for index in range(count):
        kind = kinds[index % len(kinds)]
        legs: tuple[LegSpec, ...]
        if kind == "equity":
            symbol = rng.choice(EQUITY_SYMBOLS)
            legs = (LegSpec(symbol, "Equity", buy=rng.random() < 0.5),)
            scenarios.append(Scenario(index, kind, legs, equity_ticks[symbol]))
            continue
        underlying = rng.choice(OPTION_UNDERLYINGS)
        _expiration, strikes = strikes_near(underlying, 6)
        call = rng.random() < 0.5
        schedule = _schedule(chains[underlying].tick_sizes)
        if kind == "option":
            strike = rng.choice(strikes)
            symbol = strike.call if call else strike.put
            legs = (LegSpec(symbol, "Equity Option", buy=rng.random() < 0.5),)
        else:
            low_index = rng.randrange(0, len(strikes) - 2)
            low, high = strikes[low_index], strikes[low_index + rng.choice((1, 2))]
            buy_low = rng.random() < 0.5  # call debit / put credit spread, or the reverse
            legs = (
                LegSpec(low.call if call else low.put, "Equity Option", buy=buy_low),
                LegSpec(high.call if call else high.put, "Equity Option", buy=not buy_low),
            )
        scenarios.append(Scenario(index, kind, legs, schedule))
    return scenarios


def leg_infos(scenario: Scenario) -> tuple[LegInfo, ...]:
    return tuple(
        LegInfo(
            symbol=leg.symbol,
            action="Buy to Open" if leg.buy else "Sell to Open",
            quantity=D(leg.ratio),
            instrument_type=leg.instrument_type,
        )
        for leg in scenario.legs
    )


async def chase_order(venue: Venue, scenario: Scenario) -> ChaseOrder | None:
    legs = leg_infos(scenario)
    quote = await current_net_quote(venue.session, legs)
    if quote.natural == 0 or quote.mid == 0 or (quote.natural > 0) != (quote.mid > 0):
        return None  # a near-zero net that flips sign: nothing sensible to chase
    return ChaseOrder(
        legs=legs,
        quantity=D(1),
        underlying_symbol=scenario.legs[0].symbol.split(" ")[0],
        natural=quote.natural,
        mid=quote.mid,
        schedule=scenario.schedule,
        time_in_force=OrderTimeInForce.DAY,
        multiplier=D(100) if scenario.kind != "equity" else D(1),
    )


# -- strategies -----------------------------------------------------------------------------


def _effect(order: ChaseOrder) -> PriceEffect:
    return order.effect


async def _fill_of(venue: Venue, order_ids: list[int], since: datetime) -> tuple[Decimal, float]:
    """Average signed price over the chain's fills, and seconds from submission to the last."""
    value = D(0)
    quantity = D(0)
    last = since
    for order_id in order_ids:
        placed = await venue.ops.get(order_id)
        snap = OrderSnapshot.of(placed)
        if snap.filled_quantity and snap.average_price is not None:
            value += snap.average_price * snap.filled_quantity
            quantity += snap.filled_quantity
        for leg in placed.legs:
            for fill in leg.fills or []:
                last = max(last, fill.filled_at)
    return value / quantity, (last - since).total_seconds()


async def run_marketable(venue: Venue, scenario: Scenario, order: ChaseOrder) -> Outcome:
    effect = _effect(order)
    ladder = PriceLadder(order.schedule, effect)
    # Through the natural onto the tick: marketable even when the net is off the tick.
    magnitude = abs(order.natural)
    rounded = order.schedule.round_aggressive(
        magnitude, "buy" if effect is PriceEffect.DEBIT else "sell"
    )
    price = signed_price(rounded, effect)
    if not ladder.is_valid(price):
        price = ladder.limit_toward_natural(order.natural)
    key = f"m-{scenario.key}"
    venue.sent[key] = order.schedule
    started = venue.exchange.clock.now()
    placed = await venue.ops.place(order.limit_order(price, key))
    await asyncio.sleep(0.015)  # Routed -> Live
    venue.exchange.clock.advance(0.5)
    snap = OrderSnapshot.of(await venue.ops.get(placed.id))
    if not snap.is_fully_filled:
        await _cancel_quietly(venue, placed.id)
        return Outcome(scenario, "marketable", order.natural, order.mid, False, None, None)
    fill_price, seconds = await _fill_of(venue, [placed.id], started)
    return Outcome(scenario, "marketable", order.natural, order.mid, True, fill_price, seconds)


async def run_fixed_mid(venue: Venue, scenario: Scenario, order: ChaseOrder) -> Outcome:
    price = PriceLadder(order.schedule, _effect(order)).start(order.mid, order.natural)
    key = f"f-{scenario.key}"
    venue.sent[key] = order.schedule
    started = venue.exchange.clock.now()
    placed = await venue.ops.place(order.limit_order(price, key))
    await asyncio.sleep(0.015)  # Routed -> Live, as the engine's clock allows too
    filled = False
    for _ in range(PARAMS.max_steps + 1):
        venue.exchange.clock.advance(PARAMS.interval_s)
        snap = OrderSnapshot.of(await venue.ops.get(placed.id))
        if snap.is_fully_filled:
            filled = True
            break
    if not filled:
        await _cancel_quietly(venue, placed.id)
        return Outcome(scenario, "fixed mid", order.natural, order.mid, False, None, None)
    fill_price, seconds = await _fill_of(venue, [placed.id], started)
    return Outcome(scenario, "fixed mid", order.natural, order.mid, True, fill_price, seconds)


async def run_engine(venue: Venue, scenario: Scenario, order: ChaseOrder) -> Outcome:
    key = f"e-{scenario.key}"
    venue.sent[key] = order.schedule
    started = venue.exchange.clock.now()
    request = ChaseRequest(
        session=venue.session,
        account_number=venue.account,
        order=order,
        idempotency_key=key,
        params=PARAMS,
        context=NotificationContext(guild_id=1, environment="paper", channel_id=1, author_id=1),
    )
    result = await (await venue.engine.submit(request)).wait()
    if result.status is not ChaseStatus.FILLED:
        await venue.engine.cancel(1, result.chase_id)
        return Outcome(scenario, "engine", order.natural, order.mid, False, None, None)
    fill_price, seconds = await _fill_of(venue, list(result.order_chain), started)
    return Outcome(scenario, "engine", order.natural, order.mid, True, fill_price, seconds)


async def _cancel_quietly(venue: Venue, order_id: int) -> None:
    with contextlib.suppress(BrokerError):  # filled in the meantime
        await venue.ops.cancel(order_id)
    await asyncio.sleep(0.01)


Strategy = Callable[[Venue, Scenario, ChaseOrder], Awaitable[Outcome]]
STRATEGIES: dict[str, Strategy] = {
    "marketable": run_marketable,
    "fixed mid": run_fixed_mid,
    "engine": run_engine,
}


# -- venues ---------------------------------------------------------------------------------


async def open_venue(name: str, seed: int, workdir: Path) -> Venue:
    config = PaperConfig(
        seed=seed,
        token_ttl=10**7,
        real_time=False,
        start_time=START,
        market=MARKET,
        fills=FillModelConfig(
            hazard_per_second=HAZARD, distance_decay=DECAY, live_delay=0.0, cancel_delay=0.0
        ),
        starting_cash=D("100000000"),
    )
    exchange = PaperExchange(config)
    await exchange.start()
    manager = SessionManager(
        timeouts=Timeouts(), retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
    )
    session = await manager.get(
        Credentials(
            environment=Environment.PAPER,
            provider_secret=Secret("bench"),
            refresh_token=Secret(f"bench-{name}"),
            api_url=exchange.api_url,
            streamer_url=exchange.streamer_url,
            label=f"bench-{name}",
        )
    )
    db = await Database.open(workdir / f"{name.replace(' ', '-')}.db")
    bus = EventBus()

    async def advance(seconds: float) -> None:
        exchange.clock.advance(seconds)

    # settle_s: a real pause after each advance so the exchange's real-time transitions
    # (Routed -> Live after `live_delay`) happen before the engine looks again.
    clock = SimulatedClock(exchange.clock.now, advance, settle_s=0.015)
    engine = ChaseEngine(db, bus, clock, reconcile_delay_s=0.2, cancel_settle_delay_s=0.02)
    ops = OrderOps(session, exchange.account_number)
    return Venue(name, exchange, session, manager, db, bus, engine, ops)


async def close_venue(venue: Venue) -> None:
    await venue.engine.shutdown()
    await venue.bus.close()
    await venue.manager.close()
    await venue.db.close()
    await venue.exchange.stop()


def tick_errors(venue: Venue) -> tuple[int, list[str]]:
    checked = 0
    errors = []
    for order in venue.exchange.orders(venue.account):
        schedule = venue.sent.get(order.external_identifier or "")
        if schedule is None or order.price is None:
            continue
        checked += 1
        if not schedule.is_on_tick(abs(order.price)):
            errors.append(f"order {order.id} ({order.external_identifier}) at {order.price}")
    return checked, errors


# -- report ---------------------------------------------------------------------------------


@dataclass
class Summary:
    strategy: str
    orders: int
    filled: int
    improvement_pct: float
    seconds_to_fill: float

    @property
    def fill_rate(self) -> float:
        return 100.0 * self.filled / self.orders if self.orders else 0.0


def summarize(strategy: str, outcomes: list[Outcome], marketable: dict[int, Outcome]) -> Summary:
    filled = [o for o in outcomes if o.filled and o.price is not None]
    improvements = []
    for outcome in filled:
        reference = marketable[outcome.scenario.index]
        half = abs(outcome.natural - outcome.mid)
        if reference.price is None or half == 0:
            continue
        improvements.append(float((outcome.price - reference.price) / half * 100))  # type: ignore[operator]
    times = [o.seconds_to_fill for o in filled if o.seconds_to_fill is not None]
    return Summary(
        strategy,
        len(outcomes),
        len(filled),
        statistics.fmean(improvements) if improvements else 0.0,
        statistics.fmean(times) if times else 0.0,
    )


async def main_async(count: int, seed: int) -> int:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    started = time.perf_counter()
    with TemporaryDirectory() as tmp:
        venues = {name: await open_venue(name, seed, Path(tmp)) for name in STRATEGIES}
        try:
            scenarios = await build_scenarios(venues["engine"].session, count, seed)
            outcomes: dict[str, list[Outcome]] = {name: [] for name in STRATEGIES}
            skipped = 0
            for scenario in scenarios:
                elapsed = 60.0 + scenario.index * SLOT_S
                orders: dict[str, ChaseOrder | None] = {}
                for name, venue in venues.items():
                    venue.advance_to(elapsed)
                    orders[name] = await chase_order(venue, scenario)
                if any(o is None for o in orders.values()):
                    skipped += 1
                    continue
                reference = orders["marketable"]
                assert reference is not None
                if any(o != reference for o in orders.values()):
                    raise AssertionError(f"markets diverged at scenario {scenario.index}")
                for name, strategy in STRATEGIES.items():
                    outcomes[name].append(await strategy(venues[name], scenario, reference))
            checks = {name: tick_errors(venue) for name, venue in venues.items()}
        finally:
            for venue in venues.values():
                await close_venue(venue)
    marketable = {o.scenario.index: o for o in outcomes["marketable"]}
    summaries = [summarize(name, outcomes[name], marketable) for name in STRATEGIES]
    by_kind: dict[str, int] = {}
    for outcome in outcomes["engine"]:
        by_kind[outcome.scenario.kind] = by_kind.get(outcome.scenario.kind, 0) + 1
    wall = time.perf_counter() - started

    print(
        f"execution benchmark: seed {seed}, {len(outcomes['engine'])} orders "
        f"({', '.join(f'{n} {k}' for k, n in sorted(by_kind.items()))}; {skipped} skipped), "
        f"chase window {WINDOW_S:g} s, engine {PARAMS}"
    )
    print(
        f"fill model: hazard {HAZARD:g}/s x exp(-{DECAY:g} d/half-spread) (at the mid "
        f"{HAZARD * 2.718281828**-DECAY:.3f}/s); quotes at {MARKET.volatility_scale:g}x vol, "
        f"spreads {MARKET.spread_fraction:g} / {MARKET.option_spread_fraction:g} of price"
    )
    print(
        f"{'strategy':<12} {'orders':>6} {'fill rate':>10} {'improvement':>16} {'time to fill':>13}"
    )
    for s in summaries:
        print(
            f"{s.strategy:<12} {s.orders:>6} {s.fill_rate:>9.1f}% "
            f"{s.improvement_pct:>12.1f}% hs {s.seconds_to_fill:>11.1f} s"
        )
    ok = True
    for name, (checked, errors) in checks.items():
        status = "all on tick" if not errors else f"{len(errors)} OFF TICK: {errors[:3]}"
        print(f"tick check {name}: {checked} prices, {status}")
        ok = ok and not errors
    fixed = next(s for s in summaries if s.strategy == "fixed mid")
    engine = next(s for s in summaries if s.strategy == "engine")
    if fixed.fill_rate > 70.0:
        print(
            f"WARNING: the fixed-mid baseline filled {fixed.fill_rate:.1f}% (> 70%): "
            "the market model is too generous"
        )
        ok = False
    print(f"wall time {wall:.1f} s")
    print(
        f"engine saved {engine.improvement_pct:.1f}% of half-spread, "
        f"fill rate {engine.fill_rate:.1f}%"
    )
    return 0 if ok else 1


def main() -> int:
    global HAZARD, DECAY, MARKET, PARAMS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=220)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--hazard", type=float, default=HAZARD)
    parser.add_argument("--decay", type=float, default=DECAY)
    parser.add_argument("--spread", type=float, default=MARKET.spread_fraction)
    parser.add_argument("--option-spread", type=float, default=MARKET.option_spread_fraction)
    parser.add_argument("--option-cap", type=float, default=MARKET.option_spread_cap_fraction)
    parser.add_argument("--vol", type=float, default=MARKET.volatility_scale)
    parser.add_argument("--ticks", type=int, default=PARAMS.ticks)
    args = parser.parse_args()
    HAZARD, DECAY = args.hazard, args.decay
    MARKET = MarketConfig(
        spread_fraction=args.spread,
        option_spread_fraction=args.option_spread,
        option_spread_cap_fraction=args.option_cap,
        volatility_scale=args.vol,
    )
    PARAMS = ChaseParams(interval_s=PARAMS.interval_s, ticks=args.ticks, max_steps=PARAMS.max_steps)
    return asyncio.run(main_async(args.orders, args.seed))


if __name__ == "__main__":
    sys.exit(main())
