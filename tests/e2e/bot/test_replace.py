"""`!tt replace <id> <price>`: plain decimals only, the order's own debit/credit, the tick
check with the nearest valid prices, refused while halted, idempotent on the message, and a
replace whose answer was lost is reconciled (and recorded in the chase's chain)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.localstack import LocalStack
from broker.service.errors import ServiceError
from tests.e2e.bot.helpers import click, only, run


async def _left_working(stack: LocalStack) -> int:
    """A chased order that finished its steps and is left working (not being chased)."""
    stack.exchange.market.set_quote("SPY", "500.00", "501.00")
    await run(stack, "trader", "!tt buy 1 SPY @ mid")
    await click(stack, "trader", "Confirm")
    await stack.advance(30)
    (order,) = [o for o in stack.exchange.orders() if o.status == "Live"]
    return int(order.id)


def _live(stack: LocalStack) -> list[str]:
    return [str(o.id) for o in stack.exchange.orders() if o.status == "Live"]


async def test_replace_parses_checks_and_is_idempotent(stack: LocalStack) -> None:
    order_id = await _left_working(stack)
    for bad in ("1e2", "1_0", "-500", "500,10", "500.1234567"):
        reply = only(await run(stack, "trader", f"!tt replace {order_id} {bad}"))
        assert "Replaced" not in reply.text, bad
    assert _live(stack) == [str(order_id)]

    off_tick = only(await run(stack, "trader", f"!tt replace {order_id} 500.605"))
    assert "nearest valid: 500.60 or 500.61" in off_tick.text
    assert _live(stack) == [str(order_id)]

    message = await stack.discord.say("trader", "#trading", f"!tt replace {order_id} 500.60")
    await stack.settle()
    (new_id,) = _live(stack)
    assert new_id != str(order_id)
    replaced = stack.discord.messages[-1].text
    assert f"Replaced order #{order_id} with #{new_id} at" in replaced and "500.60" in replaced
    (new_order,) = [o for o in stack.exchange.orders() if str(o.id) == new_id]
    assert new_order.price < 0  # still a debit

    # The same message delivered again replaces nothing more.
    before = len(stack.discord.messages)
    await stack.discord.redeliver(message)
    await stack.settle()
    assert not [m for m in stack.discord.messages[before:] if "Replaced" in m.text]
    # Also after a restart (the service remembers the message id, not just the gateway).
    with pytest.raises(ServiceError, match="already handled"):
        await stack.service.replace(stack.guild_id, new_id, Decimal("500.70"), key=str(message.id))
    assert _live(stack) == [new_id]

    # Halted: refused before anything reaches the exchange.
    await run(stack, "admin", "!tt halt")
    refused = only(await run(stack, "trader", f"!tt replace {new_id} 500.70"))
    assert "halted" in refused.text


async def test_a_replace_whose_answer_was_lost_is_reconciled(stack: LocalStack) -> None:
    order_id = await _left_working(stack)
    stack.exchange.faults.drop_after_accept("PUT", "/accounts/*/orders/*", times=1)
    reply = only(await run(stack, "trader", f"!tt replace {order_id} 500.60"))
    (new_id,) = _live(stack)
    assert f"#{new_id}" in reply.text and "Replaced" in reply.text
    record = await stack.runtime.engine.store.by_order("paper", int(new_id))
    assert record is not None and int(new_id) in record.chain
