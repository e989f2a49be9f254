"""The guild trades the account it chose, never silently another one (accounts[0])."""

from __future__ import annotations

import asyncio

from bot.localdiscord import MessageRecord
from bot.localstack import LocalStack
from tests.e2e.bot.helpers import only


async def run(stack: LocalStack, user: str, text: str) -> list[MessageRecord]:
    """Like helpers.run, but waits (bounded) for the reply: a refusal on this path can land
    just after the stack settles."""
    before = len(stack.discord.messages)
    await stack.discord.say(user, "#trading", text)
    for _ in range(100):
        await stack.settle()
        if len(stack.discord.messages) > before:
            break
        await asyncio.sleep(0.02)
    return stack.discord.messages[before:]


async def test_several_accounts_need_a_choice(stack: LocalStack) -> None:
    stack.exchange.open_account("5WT00002")
    stack.service.brokers.forget_accounts()
    stack.exchange.market.set_quote("SPY", "500.00", "500.10")

    refused = only(await run(stack, "trader", "!tt buy 1 SPY @ mid"))
    assert "2 accounts" in refused.text and "!tt accounts" in refused.text
    listing = only(await run(stack, "viewer", "!tt accounts"))
    assert "5WT00001" in listing.text and "5WT00002" in listing.text

    only(await run(stack, "admin", "!tt accounts 2"))
    preview = only(await run(stack, "trader", "!tt buy 1 SPY @ mid"))
    assert "Preview" in preview.text and "0002" in preview.text


async def test_a_chosen_account_that_is_gone_is_an_error(stack: LocalStack) -> None:
    await stack.service.guilds.update(stack.guild_id, default_account_paper="5WT09999")
    stack.exchange.market.set_quote("SPY", "500.00", "500.10")
    refused = only(await run(stack, "trader", "!tt buy 1 SPY @ mid"))
    assert "no longer open" in refused.text and "!tt accounts" in refused.text
    assert stack.exchange.orders() == []
