"""Fill notices are acknowledged only once posted: one that Discord refused until the bot
stopped is posted after the restart, and one already posted is never posted again."""

from __future__ import annotations

from pathlib import Path

from bot.localdiscord import LocalDiscord, standard_world
from bot.localstack import StackOptions, local_stack
from broker import calendar
from tests.e2e.bot.conftest import NO_LUCK
from tests.e2e.bot.helpers import click, offline_config, run


def _fills(discord: LocalDiscord) -> list[str]:
    return [m.text for m in discord.messages_in("#trading") if "Filled: SPY" in m.text]


async def test_a_notice_not_posted_is_posted_after_a_restart(tmp_path: Path) -> None:
    async with LocalDiscord(standard_world()) as discord:  # Discord outlives the bot
        options = StackOptions(
            db_path=tmp_path / "tt.db",
            fills=NO_LUCK,
            discord=discord,
            bot_options={"notice_retry_delay": 0.01},
        )
        async with local_stack(offline_config(), options) as first:
            first.exchange.market.set_quote("SPY", "500.00", "500.00")
            await run(first, "trader", "!tt buy 1 SPY @ mid")
            channel = first.channel_id("trading")
            # Every attempt to post the notice fails: it stays unacknowledged.
            discord.inject_error("POST", f"/channels/{channel}/messages", 400, times=3)
            await click(first, "trader", "Confirm")
            await first.advance(1)
            assert [o.status for o in first.exchange.orders()] == ["Filled"]
            assert _fills(discord) == []

        async with local_stack(offline_config(), options) as second:
            await second.settle()
            assert len(_fills(discord)) == 1  # re-sent once, now posted

        async with local_stack(offline_config(), options) as third:
            await third.settle()
            assert len(_fills(discord)) == 1  # acknowledged: never posted twice


async def test_the_trading_calendar_is_loaded_at_start(tmp_path: Path) -> None:
    options = StackOptions(db_path=tmp_path / "tt.db", fills=NO_LUCK)
    calendar._trading_days_of_year.cache_clear()
    async with local_stack(offline_config(), options):
        # Warmed off the loop at start: the first 0DTE lookup is a cache hit.
        assert calendar._trading_days_of_year.cache_info().currsize >= 2
