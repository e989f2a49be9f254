"""Quotes, marks and margin are computed once per market tick and stay correct.

The market prices every quote at the start of its tick; option-group requirements and
rendered positions are reused until the tick, a pinned quote or the holdings change, and
the live-orders selection until an order changes status or the day turns. These tests
check the reuse never serves a stale value, and that the fast payoff scan agrees with
the leg-by-leg model it replaced.
"""

from __future__ import annotations

import random
from decimal import Decimal

import httpx2
from tastytrade import Account, Session
from tastytrade.order import InstrumentType, LimitOrder, OrderAction

from broker.paper import PaperExchange, payloads
from broker.paper.calendar import ny_date
from broker.paper.ledger import (
    ZERO,
    ExpiryPayoff,
    Holding,
    MarginModel,
    money,
    multiplier_of,
    underlying_of,
)
from broker.paper.market import Market
from broker.paper.universe import EquitySpec, FutureContract, FutureOptionContract, OptionContract

from .conftest import advance, eventually, leg


def _reference_group_requirement(
    market: Market, cash_account: bool, group: list[Holding]
) -> Decimal:
    """The option-group rule evaluated leg by leg at every price scanned (see ledger)."""
    band = (
        Decimal("0.10")
        if isinstance(group[0].instrument, FutureOptionContract)
        else Decimal("0.20")
    )
    moves = {-band, ZERO, band} | ({Decimal(-1), Decimal(1)} if cash_account else set())
    prices: dict[str, Decimal] = {}
    for holding in group:
        option = holding.instrument
        assert isinstance(option, OptionContract | FutureOptionContract)
        key = option.underlying if isinstance(option, OptionContract) else option.underlying.symbol
        price = prices.setdefault(key, market.underlying_mid(key))
        if price > 0:
            move = option.strike / price - 1
            if -band <= move <= band or cash_account:
                moves.add(move)
    worst = ZERO
    for move in moves:
        payoff = ZERO
        for holding in group:
            option = holding.instrument
            assert isinstance(option, OptionContract | FutureOptionContract)
            key = (
                option.underlying
                if isinstance(option, OptionContract)
                else option.underlying.symbol
            )
            underlying = prices[key] * (1 + move)
            if option.option_type == "C":
                intrinsic = max(underlying - option.strike, ZERO)
            else:
                intrinsic = max(option.strike - underlying, ZERO)
            payoff += holding.quantity * intrinsic * multiplier_of(option)
        worst = min(worst, payoff)
    value = sum(
        (h.quantity * market.instrument_quote(h.instrument).mid * multiplier_of(h.instrument))
        for h in group
    )
    return max(ZERO, -worst + value)


def _reference_requirement(market: Market, cash_account: bool, holdings: list[Holding]) -> Decimal:
    total = ZERO
    groups: dict[str, list[Holding]] = {}
    for holding in holdings:
        instrument = holding.instrument
        mark = market.instrument_quote(instrument).mid
        if isinstance(instrument, EquitySpec):
            rate = Decimal(1) if cash_account else Decimal("0.5")
            total += abs(holding.quantity * mark) * rate
        elif isinstance(instrument, FutureContract):
            product = instrument.product
            total += abs(holding.quantity) * mark * product.multiplier * product.margin_rate
        else:
            groups.setdefault(underlying_of(instrument), []).append(holding)
    for group in groups.values():
        total += _reference_group_requirement(market, cash_account, group)
    return money(total)


def test_expiry_payoff_equals_the_sum_over_legs() -> None:
    rng = random.Random(3)
    for _ in range(200):
        legs = [
            (
                rng.random() < 0.5,
                Decimal(rng.randrange(80, 121)) / 2,
                Decimal(rng.randrange(-5, 6) * 100),
            )
            for _ in range(rng.randrange(1, 12))
        ]
        payoff = ExpiryPayoff(Decimal(50))
        for call, strike, weight in legs:
            payoff.add(call, strike, weight)
        for u in [Decimal(rng.randrange(3000, 7000)) / 100, *(strike for _, strike, _ in legs)]:
            expected = sum(
                (
                    weight * max(u - strike if call else strike - u, ZERO)
                    for call, strike, weight in legs
                ),
                ZERO,
            )
            assert payoff.at(u) == expected


async def test_requirement_matches_the_leg_by_leg_model(frozen: PaperExchange) -> None:
    frozen.seed_history(transactions=100, orders=20, positions=400)
    positions = frozen.engine.account(frozen.account_number).open_positions()
    holdings = [Holding(p.instrument, p.quantity) for p in positions]
    assert sum(isinstance(h.instrument, OptionContract) for h in holdings) > 100
    for cash_account in (False, True):
        model = MarginModel(frozen.market, cash_account)
        expected = _reference_requirement(frozen.market, cash_account, holdings)
        assert model.requirement(holdings) == expected
        assert model.requirement(holdings) == expected  # again, from the tick's cache
        frozen.market.step(60)  # a new tick: requirements follow the new quotes
        moved = _reference_requirement(frozen.market, cash_account, holdings)
        assert moved != expected
        assert model.requirement(holdings) == moved


async def test_quotes_hold_for_a_tick_and_move_after_it(frozen: PaperExchange) -> None:
    option = frozen.universe.options_of("SPY")[40].symbol
    revision = frozen.market.revision
    first = frozen.market.quote(option)
    frozen.clock.advance(0.4)  # same one-second tick
    assert frozen.market.quote(option) == first
    assert frozen.market.revision == revision
    moved = []
    for _ in range(30):
        frozen.clock.advance(1.0)
        moved.append(frozen.market.quote("SPY"))
    assert frozen.market.revision > revision
    assert len({quote.mid for quote in moved}) > 1


async def test_balances_and_positions_follow_fills_and_pinned_quotes(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    call = frozen.universe.options_of("SPY")[40].symbol
    frozen.market.set_quote(call, Decimal("4.00"), Decimal("4.10"))
    before = await account.get_balances(session)
    order = LimitOrder(
        legs=[leg(InstrumentType.EQUITY_OPTION, call, OrderAction.SELL_TO_OPEN, 2)],
        price=Decimal("4.00"),
    )
    await account.place_order(session, order, dry_run=False)
    await eventually(lambda: frozen.orders()[-1].status == "Filled")
    after_fill = await account.get_balances(session)
    assert after_fill.maintenance_requirement > before.maintenance_requirement
    [position] = await account.get_positions(session)
    assert position.quantity == 2 and position.quantity_direction == "Short"
    assert position.mark_price == Decimal("4.05")

    # A pinned quote (same tick) shows at once in marks, net liq and the requirement.
    frozen.market.set_quote(call, Decimal("6.00"), Decimal("6.10"))
    repriced = await account.get_balances(session)
    assert repriced.net_liquidating_value == after_fill.net_liquidating_value - 2 * 100 * 2
    # (the short call's worst payoff is unchanged; its larger credit value offsets it)
    assert repriced.maintenance_requirement == after_fill.maintenance_requirement - 400
    [position] = await account.get_positions(session)
    assert position.mark_price == Decimal("6.05")

    # Closing half of it shows in the positions reply straight away.
    close = LimitOrder(
        legs=[leg(InstrumentType.EQUITY_OPTION, call, OrderAction.BUY_TO_CLOSE, 1)],
        price=Decimal("-6.10"),
    )
    await account.place_order(session, close, dry_run=False)
    await eventually(lambda: frozen.orders()[-1].status == "Filled")
    [position] = await account.get_positions(session)
    assert position.quantity == 1
    closed = await account.get_balances(session)
    assert closed.maintenance_requirement < repriced.maintenance_requirement


async def test_the_pre_encoded_positions_reply_is_what_dumps_would_send(
    frozen: PaperExchange, session: Session
) -> None:
    frozen.seed_history(transactions=50, orders=10, positions=120)
    account = frozen.engine.account(frozen.account_number)
    await session.refresh()
    headers = {"Authorization": f"Bearer {session.session_token}"}
    path = f"/accounts/{account.number}/positions"
    async with httpx2.AsyncClient(base_url=frozen.api_url, headers=headers) as client:
        for _ in range(2):  # rendered, then from the kept texts
            body = (await client.get(path)).text
            now = frozen.engine.now()
            items = [
                frozen.engine.position_json(account, p, ny_date(now))
                for p in account.positions.values()
                if p.quantity != 0
            ]
            assert body == payloads.dumps({"data": {"items": items}, "context": path})
            frozen.clock.advance(60)  # new marks
        filtered = (await client.get(path, params={"underlying-symbol": "SPY"})).json()
    symbols = {item["underlying-symbol"] for item in filtered["data"]["items"]}
    assert symbols == {"SPY"}


async def test_live_orders_follow_new_cancelled_and_filled_orders_and_the_day(
    frozen: PaperExchange, session: Session, account: Account
) -> None:
    frozen.seed_history(transactions=50, orders=200, positions=5)  # history of earlier days
    before = {o.id for o in await account.get_live_orders(session)}
    frozen.market.set_quote("AAPL", Decimal("300.00"), Decimal("300.10"))
    resting = LimitOrder(
        legs=[leg(InstrumentType.EQUITY, "AAPL", OrderAction.BUY_TO_OPEN, 1)],
        price=Decimal("-250.00"),
    )
    working = (await account.place_order(session, resting, dry_run=False)).order.id
    await eventually(lambda: frozen.orders()[-1].status == "Live")
    assert {o.id for o in await account.get_live_orders(session)} == before | {working}
    await account.delete_order(session, working)  # cancelled today: still listed
    await eventually(lambda: frozen.orders()[-1].status == "Cancelled")
    live = {o.id: o for o in await account.get_live_orders(session)}
    assert live[working].status.value == "Cancelled"
    marketable = LimitOrder(
        legs=[leg(InstrumentType.EQUITY, "AAPL", OrderAction.BUY_TO_OPEN, 1)],
        price=Decimal("-300.10"),
    )
    filled = (await account.place_order(session, marketable, dry_run=False)).order.id
    await eventually(lambda: frozen.orders()[-1].status == "Filled")
    assert {working, filled} <= {o.id for o in await account.get_live_orders(session)}
    await advance(frozen, session, 2 * 86_400)  # two days on: today's orders were earlier
    later = {o.id for o in await account.get_live_orders(session)}
    assert working not in later and filled not in later
