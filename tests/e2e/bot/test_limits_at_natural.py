"""Limits are checked at the price a chase may walk to (the natural), not only at the start."""

from __future__ import annotations

from bot.localstack import LocalStack
from tests.e2e.bot.helpers import only, run


async def test_notional_limit_is_checked_at_the_natural_when_chasing(stack: LocalStack) -> None:
    stack.exchange.market.set_quote("SPY", "100.00", "110.00")  # mid 105, natural 110
    only(await run(stack, "admin", "!tt limits set max_notional 107"))

    chased = only(await run(stack, "trader", "!tt buy 1 SPY @ mid"))
    assert "above this server's limit of $107" in chased.text
    assert not chased.has_button("Confirm")

    # Without a chase the order never pays more than its limit: within the limit.
    only(await run(stack, "admin", "!tt limits set chase_steps 0"))
    fixed = only(await run(stack, "trader", "!tt buy 1 SPY @ mid"))
    assert "above this server's limit" not in fixed.text
    assert fixed.has_button("Confirm")
