"""The standalone server and the real-time (wall-clock) mode."""

from __future__ import annotations

import asyncio
import signal
import sys
from decimal import Decimal

import httpx2
from tastytrade import Account, Session
from tastytrade.order import InstrumentType, LimitOrder, OrderAction

from broker.paper import FillModelConfig, PaperConfig, PaperExchange

from .conftest import eventually, leg


async def test_standalone_server_prints_urls_and_stops_on_sigterm() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "broker.paper", "--port", "0", "--seed", "3", "--token-ttl", "120",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        api = (await asyncio.wait_for(process.stdout.readline(), 30)).decode().strip()
        streamer = (await asyncio.wait_for(process.stdout.readline(), 5)).decode().strip()
        assert api.startswith("api: http://127.0.0.1:")
        port = api.rsplit(":", 1)[1]
        assert streamer == f"streamer: ws://127.0.0.1:{port}/streamer"
        async with httpx2.AsyncClient(base_url=api.removeprefix("api: ")) as client:
            token = await client.post(
                "/oauth/token",
                json={"grant_type": "refresh_token", "client_secret": "s", "refresh_token": "r"},
            )
            assert token.json()["expires_in"] == 120
            stats = await client.get("/_admin/stats")
            assert stats.json()["oauth-grants"] == 1
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 10)
    assert code == 0


async def test_standalone_server_rejects_bad_arguments() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "broker.paper", "--token-ttl", "10",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert b"--token-ttl must be at least 60" in stderr


async def test_real_time_mode_fills_resting_orders_without_clock_steps() -> None:
    config = PaperConfig(
        seed=4, fills=FillModelConfig(hazard_per_second=50.0, evaluation_interval=0.02)
    )
    async with PaperExchange(config) as exchange:
        session = Session("secret", "refresh", is_test=True)
        session._client.base_url = exchange.api_url
        async with session:
            account = await Account.get(session, exchange.account_number)
            exchange.market.set_quote("QQQ", Decimal("600.00"), Decimal("600.10"))
            order = LimitOrder(legs=[leg(InstrumentType.EQUITY, "QQQ", OrderAction.BUY_TO_OPEN)],
                               price=Decimal("-600.09"))  # fmt: skip
            placed = await account.place_order(session, order, dry_run=False)
            await eventually(lambda: exchange.orders()[0].status == "Filled", within=5)
            filled = await account.get_order(session, placed.order.id)
            assert filled.legs[0].fills and filled.legs[0].fills[0].fill_price == Decimal("600.09")
            before = exchange.clock.now()
            await asyncio.sleep(0.05)
            assert exchange.clock.now() > before  # the clock follows wall time


async def test_shared_fixtures(paper_exchange: PaperExchange, sdk_session: Session) -> None:
    [account] = await Account.get(sdk_session)
    assert account.account_number == paper_exchange.account_number
    assert paper_exchange.clock.real_time
    assert paper_exchange.streamer_url == f"ws://127.0.0.1:{paper_exchange.port}/streamer"
