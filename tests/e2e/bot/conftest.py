"""Fixtures: the real bot on the local Discord stand-in and the in-process paper exchange."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.localstack import LocalStack, StackOptions, local_stack
from broker.paper import FillModelConfig
from tests.e2e.bot.helpers import offline_config

# Resting orders inside the spread never fill by chance: tests decide when the market moves.
NO_LUCK = FillModelConfig(hazard_per_second=0.0)


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[LocalStack]:
    options = StackOptions(db_path=tmp_path / "tt.db", fills=NO_LUCK)
    async with local_stack(offline_config(), options) as st:
        yield st
        assert st.discord.unhandled == []
        assert st.discord.server_errors == []
