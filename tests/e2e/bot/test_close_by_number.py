"""`!tt close <#N>` names a position from a listing that may have changed since it was
shown: it always asks for confirmation (showing the position it is now), even where the
server skips confirmations; `!tt close <symbol>` follows the server's setting."""

from __future__ import annotations

from bot.localstack import LocalStack
from tests.e2e.bot.helpers import click, run


async def test_close_by_number_always_confirms(stack: LocalStack) -> None:
    stack.exchange.market.set_quote("SPY", "500.00", "500.00")
    await run(stack, "trader", "!tt buy 1 SPY @ mid")
    await click(stack, "trader", "Confirm")
    await stack.advance(1)
    await run(stack, "trader", "!tt sync")
    await run(stack, "admin", "!tt limits set skip_confirm on")

    for target in ("1", "#1"):
        replies = await run(stack, "trader", f"!tt close {target}")
        preview = replies[0]
        assert "Sell to Close 1 SPY" in preview.text and preview.has_button("Confirm"), target
        assert len(stack.exchange.orders()) == 1  # nothing placed without the click

    replies = await run(stack, "trader", "!tt close SPY")
    assert not replies[0].buttons  # by symbol: the server's skip setting applies
    assert len(stack.exchange.orders()) == 2
