"""Instruments, chains and market data through the SDK."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import httpx2
import pytest
from tastytrade import Session
from tastytrade.instruments import (
    Equity,
    Future,
    FutureOption,
    NestedFutureOptionChain,
    NestedOptionChain,
    Option,
    get_future_option_chain,
    get_option_chain,
)
from tastytrade.market_data import get_market_data, get_market_data_by_type
from tastytrade.order import InstrumentType
from tastytrade.utils import TastytradeError

from broker.paper import PaperExchange, calendar

from .conftest import START, frozen_config


async def test_equities(session: Session) -> None:
    spy = await Equity.get(session, "SPY")
    assert spy.is_etf and spy.streamer_symbol == "SPY"
    assert [(t.value, t.threshold) for t in spy.tick_sizes or []] == [
        (Decimal("0.0001"), Decimal(1)), (Decimal("0.01"), None),
    ]  # fmt: skip
    assert [t.value for t in spy.option_tick_sizes or []] == [Decimal("0.01")]
    gme = await Equity.get(session, "GME")
    assert [(t.value, t.threshold) for t in gme.option_tick_sizes or []] == [
        (Decimal("0.05"), Decimal(3)), (Decimal("0.10"), None),
    ]  # fmt: skip
    several = await Equity.get(session, ["SPY", "AAPL", "NOPE"])
    assert sorted(e.symbol for e in several) == ["AAPL", "SPY"]
    with pytest.raises(TastytradeError, match="not_found"):
        await Equity.get(session, "BRK/B")


async def test_option_chain_is_relative_to_the_exchange_date(session: Session) -> None:
    [chain] = await NestedOptionChain.get(session, "SPY")
    assert chain.root_symbol == "SPY" and chain.shares_per_contract == 100
    assert [t.value for t in chain.tick_sizes] == [Decimal("0.01")]
    days = [e.expiration_date for e in chain.expirations]
    today = START.date()
    assert days == sorted(days) and days[0] >= today
    assert all(calendar.is_trading_day(d) for d in days)
    monthlies = [e for e in chain.expirations if e.expiration_type == "Regular"]
    assert len(monthlies) == 6
    assert all(15 <= e.expiration_date.day <= 21 for e in monthlies)
    assert date(2026, 11, 27) in days  # day after Thanksgiving: a half day, still listed
    assert date(2026, 12, 24) in days  # Christmas Friday moves to Thursday
    strikes = [s.strike_price for s in chain.expirations[0].strikes]
    assert Decimal(765) in strikes and Decimal(766) in strikes  # $1 near the money
    assert Decimal(900) in strikes and Decimal(901) not in strikes  # $5 further out
    strike = chain.expirations[0].strikes[50]
    option = await Option.get(session, strike.call)
    assert option.streamer_symbol == strike.call_streamer_symbol
    assert option.strike_price == strike.strike_price
    assert option.days_to_expiration == (option.expiration_date - today).days
    flat = await get_option_chain(session, "IWM")
    assert sum(len(v) for v in flat.values()) > 500
    with pytest.raises(TastytradeError, match="not_found"):
        await Option.get(session, "SPY   261127C00001000")


async def test_futures(session: Session) -> None:
    front = await Future.get(session, "/ESZ6")
    assert front.active_month and not front.next_active_month
    assert front.tick_size == Decimal("0.25") and front.notional_multiplier == 50
    assert front.streamer_symbol == "/ESZ26:XCME"
    assert (await Future.get(session, "ESH7")).next_active_month
    es = await Future.get(session, product_codes=["ES"])
    assert [f.symbol for f in es] == ["/ESZ6", "/ESH7", "/ESM7", "/ESU7"]
    cl = await Future.get(session, product_codes=["CL"])
    assert [f.symbol for f in cl] == ["/CLF7", "/CLG7", "/CLH7", "/CLJ7"]
    assert cl[0].notional_multiplier == 1000 and cl[0].tick_size == Decimal("0.01")
    mes = await Future.get(session, ["/MESZ6", "/NQZ6"])
    assert {f.notional_multiplier for f in mes} == {Decimal(5), Decimal(20)}


async def test_future_options(session: Session) -> None:
    chain = await NestedFutureOptionChain.get(session, "/ES")
    assert chain.futures[0].symbol == "/ESZ6"
    [subchain] = chain.option_chains
    expiration = subchain.expirations[0]
    assert [(t.value, t.threshold) for t in expiration.tick_sizes] == [
        (Decimal("0.05"), Decimal(5)), (Decimal("0.25"), None),
    ]  # fmt: skip
    strike = expiration.strikes[5]
    option = await FutureOption.get(session, strike.call)
    assert option.streamer_symbol == strike.call_streamer_symbol
    assert option.symbol.startswith("./ESZ6 EW")
    assert option.streamer_symbol.endswith(":XCME")
    flat = await get_future_option_chain(session, "/ES")
    assert any(strike.call == o.symbol for group in flat.values() for o in group)
    with pytest.raises(TastytradeError, match="not_found"):
        await NestedFutureOptionChain.get(session, "/CL")


async def test_market_data_by_type(frozen: PaperExchange, session: Session) -> None:
    option = frozen.universe.options_of("AAPL")[300].symbol
    fop = frozen.universe.future_options_of("ES")[40].symbol
    items = await get_market_data_by_type(
        session,
        equities=["SPY", "AAPL"],
        options=[option],
        futures=["/ESZ6"],
        future_options=[fop],
        indices=["VIX"],
        cryptocurrencies=["BTC/USD"],
    )
    by_symbol = {i.symbol: i for i in items}
    assert set(by_symbol) == {"SPY", "AAPL", option, "/ESZ6", fop}
    for item in items:
        assert item.bid is not None and item.ask is not None and item.bid < item.ask
        assert item.mid == (item.bid + item.ask) / 2
    assert by_symbol[option].instrument_type == InstrumentType.EQUITY_OPTION
    assert by_symbol["/ESZ6"].bid % Decimal("0.25") == 0
    frozen.market.set_quote("SPY", Decimal("700.00"), Decimal("700.02"))
    spy = await get_market_data(session, "SPY", InstrumentType.EQUITY)
    assert (spy.bid, spy.ask, spy.mid) == (Decimal("700.00"), Decimal("700.02"), Decimal("700.01"))
    spy_option = await get_market_data(
        session, frozen.universe.options_of("SPY")[100].symbol, InstrumentType.EQUITY_OPTION
    )
    assert spy_option.mid is not None
    # the SDK sends these unencoded (`//ESZ6`, and `./` is dropped as a dot segment)
    future = await get_market_data(session, "/ESZ6", InstrumentType.FUTURE)
    assert future.symbol == "/ESZ6"
    future_option = await get_market_data(session, fop, InstrumentType.FUTURE_OPTION)
    assert future_option.symbol == fop


async def test_market_data_accepts_comma_lists_and_limits(
    frozen: PaperExchange, session: Session
) -> None:
    await session.refresh()
    headers = {"Authorization": f"Bearer {session.session_token}"}
    async with httpx2.AsyncClient(base_url=frozen.api_url, headers=headers) as client:
        commas = await client.get("/market-data/by-type", params={"equity": "SPY,QQQ,IWM"})
        too_many = await client.get("/market-data/by-type", params=[("equity", "SPY")] * 101)
    assert [i["symbol"] for i in commas.json()["data"]["items"]] == ["SPY", "QQQ", "IWM"]
    assert too_many.status_code == 400


async def test_option_quotes_follow_the_underlying_and_tick_schedule(
    frozen: PaperExchange,
) -> None:
    calls = [o for o in frozen.universe.options_of("AAPL") if o.option_type == "C"]
    for contract in calls[::40]:
        quote = frozen.market.quote(contract.symbol)
        tick = Decimal("0.01") if quote.ask < 3 else Decimal("0.05")
        assert quote.ask % tick == 0
        assert quote.bid >= 0 and quote.ask > quote.bid
    near = next(o for o in calls if o.strike == Decimal("312.5"))
    before = frozen.market.quote(near.symbol).mid
    frozen.market.set_quote("AAPL", Decimal("340.00"), Decimal("340.02"))
    assert frozen.market.quote(near.symbol).mid > before + 20


async def test_market_is_deterministic_for_a_seed() -> None:
    paths = []
    for _ in range(2):
        async with PaperExchange(frozen_config(seed=5)) as exchange:
            path = []
            for step in (1, 30, 3600, 86400 * 3):
                exchange.market.step(step)
                path.append(exchange.market.quote("TSLA"))
            paths.append(path)
    assert paths[0] == paths[1]
    assert len({q.mid for q in paths[0]}) == 4


async def test_market_path_does_not_depend_on_how_time_was_stepped() -> None:
    async with PaperExchange(frozen_config(seed=5)) as one_jump:
        one_jump.market.step(3600)
        jumped = one_jump.market.quote("QQQ")
    async with PaperExchange(frozen_config(seed=5)) as small_steps:
        for _ in range(45):
            small_steps.market.step(80)
        stepped = small_steps.market.quote("QQQ")
    assert jumped == stepped


async def test_raw_paths_with_encoded_symbols(frozen: PaperExchange, session: Session) -> None:
    await session.refresh()
    headers = {"Authorization": f"Bearer {session.session_token}"}
    fop = frozen.universe.future_options_of("ES")[12].symbol
    encoded_fop = fop.replace("/", "%2F").replace(" ", "%20")
    occ = frozen.universe.options_of("SPY")[7].symbol
    async with httpx2.AsyncClient(base_url=frozen.api_url, headers=headers) as client:
        for path, symbol in (
            ("/instruments/futures/%2FESZ6", "/ESZ6"),
            ("/instruments/futures/ESZ6", "/ESZ6"),
            (f"/instruments/future-options/{encoded_fop}", fop),
            (f"/instruments/equity-options/{occ.replace(' ', '%20')}", occ),
            (f"/market-data/Equity%20Option/{occ.replace(' ', '%20')}", occ),
            (f"/accounts/{frozen.account_number}", None),
        ):
            response = await client.get(path)
            assert response.status_code == 200, path
            if symbol is not None:
                assert response.json()["data"]["symbol"] == symbol
        assert (await client.get("/instruments/equities/BRK%2FB")).status_code == 404
        missing = await client.get("/no/such/route")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
