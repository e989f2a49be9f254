"""Shared fixtures. `paper_exchange` and `sdk_session` belong to the paper exchange;
add other fixtures below them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from tastytrade import Session

from broker.paper import PaperConfig, PaperExchange


@pytest.fixture
async def paper_exchange() -> AsyncIterator[PaperExchange]:
    """A started paper exchange on 127.0.0.1 (any free port), seed 7."""
    async with PaperExchange(PaperConfig(seed=7)) as exchange:
        yield exchange


@pytest.fixture
async def sdk_session(paper_exchange: PaperExchange) -> AsyncIterator[Session]:
    """A real tastytrade Session pointed at `paper_exchange`."""
    session = Session("secret", "refresh", is_test=True)
    session._client.base_url = paper_exchange.api_url
    async with session:
        yield session
