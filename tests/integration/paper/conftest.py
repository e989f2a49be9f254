"""Fixtures for the paper-exchange tests: a frozen-clock exchange and SDK handles."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from tastytrade import Account, Session
from tastytrade.order import InstrumentType, Leg, OrderAction

from broker.paper import PaperConfig, PaperExchange

# Tuesday 2026-11-24, 10:00 New York: a normal trading day.
START = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def frozen_config(**overrides: object) -> PaperConfig:
    """An exchange whose clock only moves through advance()/step(): deterministic."""
    values: dict[str, object] = {"seed": 11, "real_time": False, "start_time": START}
    values.update(overrides)
    return PaperConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
async def frozen() -> AsyncIterator[PaperExchange]:
    async with PaperExchange(frozen_config()) as exchange:
        yield exchange


@pytest.fixture
async def session(frozen: PaperExchange) -> AsyncIterator[Session]:
    sdk = Session("secret", "refresh", is_test=True)
    sdk._client.base_url = frozen.api_url
    async with sdk:
        yield sdk


@pytest.fixture
async def account(session: Session, frozen: PaperExchange) -> Account:
    return await Account.get(session, frozen.account_number)


def leg(kind: InstrumentType, symbol: str, action: OrderAction, quantity: int = 1) -> Leg:
    return Leg(instrument_type=kind, symbol=symbol, action=action, quantity=quantity)


async def eventually(check: Callable[[], bool], within: float = 2.0) -> None:
    """Wait (in real time) until `check()` holds; the exchange's Live transition and
    cancel confirmation are scheduled a few milliseconds after the request."""
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def advance(exchange: PaperExchange, session: Session, seconds: float) -> None:
    """Move the exchange clock; long jumps outlive the access token, so re-grant one."""
    exchange.clock.advance(seconds)
    await session.refresh(force=True)
