"""A plain `sell`/`buy` is opening or closing depending on what the account holds *now*,
read from the broker, never from a snapshot that may be stale."""

from __future__ import annotations

from bot.localstack import LocalStack
from tests.e2e.bot.helpers import click, only, run


async def test_plain_sell_reads_positions_from_the_broker(stack: LocalStack) -> None:
    stack.exchange.market.set_quote("SPY", "500.00", "500.00")
    await run(stack, "trader", "!tt buy 1 SPY @ mid")
    await click(stack, "trader", "Confirm")
    await stack.advance(1)
    await run(stack, "trader", "!tt sync")
    await stack.settle()
    assert "SPY" in only(await run(stack, "viewer", "!tt positions")).text

    # Closed outside the bot (in the Tastytrade app, say): the synced snapshot still has it.
    account = stack.exchange.engine.accounts[stack.exchange.account_number]
    del account.positions["SPY"]

    preview = only(await run(stack, "trader", "!tt sell 1 SPY @ mid"))
    assert "Sell to Open" in preview.text
    assert "Sell to Close" not in preview.text
