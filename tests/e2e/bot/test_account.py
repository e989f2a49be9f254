"""Sync with a live progress message, then paginated positions, history, balance, close."""

from __future__ import annotations

from pathlib import Path

from bot.localstack import StackOptions, local_stack
from tests.e2e.bot.conftest import NO_LUCK
from tests.e2e.bot.helpers import click, offline_config, only, run


async def test_sync_progress_then_positions_history_balance(tmp_path: Path) -> None:
    options = StackOptions(db_path=tmp_path / "tt.db", fills=NO_LUCK, progress_interval=0.0)
    async with local_stack(offline_config(), options) as st:
        st.exchange.seed_history(transactions=6000, orders=300, positions=25)
        message = only(await run(st, "trader", "!tt sync full"))
        versions = [v.embeds[0].title for v in message.history if v.embeds]
        assert versions and all("Sync running" in (t or "") for t in versions)
        assert any("row(s)" in (v.embeds[0].description or "") for v in message.history[1:])
        assert "Sync complete" in message.text and "25 position(s)" in message.text

        positions = only(await run(st, "viewer", "!tt positions"))
        assert "Positions (1/3)" in positions.text
        assert [b.label for b in positions.buttons] == ["Prev", "Next"]
        assert positions.button("Prev").disabled and not positions.button("Next").disabled
        assert positions.button("Next").custom_id == "tt:page:1"
        await click(st, "viewer", "Next")
        assert "Positions (2/3)" in positions.text
        stranger = await st.discord.click("trader", "Next", positions)
        assert stranger.ephemeral
        await click(st, "viewer", "Prev")
        assert "Positions (1/3)" in positions.text

        history = only(await run(st, "viewer", "!tt history"))
        assert "History (1/" in history.text and "When (UTC)" in history.text
        balance = only(await run(st, "viewer", "!tt balance"))
        assert "Net liquidating value" in balance.text and "🧪 PAPER" in balance.text

        # A second manual sync right away is rate-limited, with a clear answer.
        limited = only(await run(st, "trader", "!tt sync"))
        assert "try again in" in limited.text


async def test_close_a_position_by_number(tmp_path: Path) -> None:
    options = StackOptions(db_path=tmp_path / "tt.db", fills=NO_LUCK)
    async with local_stack(offline_config(), options) as st:
        st.exchange.market.set_quote("AAPL", "200.00", "200.00")
        await run(st, "trader", "!tt buy 10 AAPL @ mid")
        await click(st, "trader", "Confirm")
        await st.advance(1)
        positions = only(await run(st, "viewer", "!tt positions"))
        assert "AAPL" in positions.text
        assert "No position #7" in only(await run(st, "trader", "!tt close 7")).text
        preview = only(await run(st, "trader", "!tt close 1"))
        assert "Sell to Close 10 AAPL" in preview.text
        await click(st, "trader", "Confirm")
        await st.advance(1)
        assert "No open positions" in only(await run(st, "viewer", "!tt positions")).text
        assert "no open positions" in only(await run(st, "trader", "!tt close 1")).text


async def test_orders_quote_accounts_help_and_limits(tmp_path: Path) -> None:
    options = StackOptions(db_path=tmp_path / "tt.db", fills=NO_LUCK)
    async with local_stack(offline_config(), options) as st:
        st.exchange.market.set_quote("SPY", "500.00", "500.10")
        await run(st, "trader", "!tt buy 1 SPY @ mid")
        await click(st, "trader", "Confirm")
        orders = only(await run(st, "viewer", "!tt orders"))
        assert "Open orders" in orders.text and "↗" in orders.text  # being chased
        assert "Buy 1 SPY" in orders.text and "500.05 debit" in orders.text

        quote = only(await run(st, "viewer", "!tt quote SPY"))
        assert "Bid" in quote.text and "500.00" in quote.text and "500.10" in quote.text
        option = only(await run(st, "viewer", "!tt quote SPY 3DTE 765C"))
        assert "Quote: SPY " in option.text and "Equity Option" in option.text
        bad = only(await run(st, "viewer", "!tt quote NOTASYMBOL1"))
        assert "Quote:" not in bad.text and "Something went wrong" not in bad.text

        accounts = only(await run(st, "viewer", "!tt accounts"))
        assert "5WT00001" in accounts.text and "★" in accounts.text
        denied = only(await run(st, "viewer", "!tt accounts 1"))
        assert "admin" in denied.text
        chosen = only(await run(st, "admin", "!tt accounts 1"))
        assert "5WT00001" in chosen.text

        detail = only(await run(st, "viewer", "!tt help buy"))
        assert "!tt buy" in detail.text and "trader" in detail.text and "Examples" in detail.text

        ticks = only(await run(st, "admin", "!tt limits set chase_ticks 9"))
        assert "must be from 1 to 3" in ticks.text
        assert "Unknown setting" in only(await run(st, "admin", "!tt limits set colour red")).text
        only(await run(st, "admin", "!tt limits set max_quantity 2"))
        refused = only(await run(st, "trader", "!tt buy 5 SPY @ mid"))
        assert "would reject" in refused.text and not refused.buttons
        limits = only(await run(st, "admin", "!tt limits"))
        assert "max_quantity" in limits.text and "2" in limits.text
