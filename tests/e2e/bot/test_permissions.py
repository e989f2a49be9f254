"""Every command for every tier, the channel filter, and DMs."""

from __future__ import annotations

import pytest

from bot.localstack import LocalStack
from tests.e2e.bot.helpers import only, run

# (command, the lowest tier that may run it)
COMMANDS: list[tuple[str, str]] = [
    ("!tt help", "none"),
    ("!tt status", "viewer"),
    ("!tt quote SPY", "viewer"),
    ("!tt orders", "viewer"),
    ("!tt positions", "viewer"),
    ("!tt balance", "viewer"),
    ("!tt history", "viewer"),
    ("!tt accounts", "viewer"),
    ("!tt buy 1 SPY @ mid", "trader"),
    ("!tt sto 1 SPY @ mid", "trader"),
    ("!tt cancel all", "trader"),
    ("!tt replace 1 1.00", "trader"),
    ("!tt close SPY", "trader"),
    ("!tt sync", "trader"),
    ("!tt env", "admin"),
    ("!tt sandbox status", "admin"),
    ("!tt channels list", "admin"),
    ("!tt roles list", "admin"),
    ("!tt limits", "admin"),
    ("!tt resume", "admin"),
    ("!tt unlink live", "admin"),
]
RANK = {"none": 0, "viewer": 1, "trader": 2, "admin": 3}
USERS = {"outsider": 0, "viewer": 1, "trader": 2, "admin": 3}


async def test_every_command_for_every_tier(stack: LocalStack) -> None:
    problems = []
    for command, needed in COMMANDS:
        for user, rank in USERS.items():
            replies = await run(stack, user, command)
            text = "\n".join(m.text for m in replies)
            refused = f"needs the **{needed}** tier" in text
            if rank >= RANK[needed]:
                if not replies or "needs the **" in text or "Something went wrong" in text:
                    problems.append(f"{user} should run {command!r}: {text!r}")
            elif not refused or len(replies) != 1:
                problems.append(f"{user} should be refused {command!r}: {text!r}")
    assert problems == []
    assert stack.exchange.orders() == []  # previews only: nothing was ever placed


async def test_trader_cannot_switch_to_live_and_outsider_cannot_trade(stack: LocalStack) -> None:
    reply = only(await run(stack, "trader", "!tt env live"))
    assert "needs the **admin** tier" in reply.text
    reply = only(await run(stack, "outsider", "!tt buy 1 SPY @ mid"))
    assert "needs the **trader** tier" in reply.text
    settings = await stack.service.guild(stack.guild_id)
    assert settings.environment.value == "paper"


async def test_nothing_happens_in_a_channel_that_is_not_allowed(stack: LocalStack) -> None:
    for user in ("outsider", "viewer", "trader"):
        assert await run(stack, user, "!tt status", "#general") == []
        assert await run(stack, user, "!tt buy 1 SPY @ mid", "#general") == []
    # Admins get one hint, once.
    hint = only(await run(stack, "admin", "!tt status", "#general"))
    assert "isn't enabled in this channel" in hint.text
    assert "!tt channels add" in hint.text
    assert await run(stack, "admin", "!tt buy 1 SPY @ mid", "#general") == []
    assert stack.exchange.orders() == []


async def test_admin_enables_and_disables_a_channel(stack: LocalStack) -> None:
    general = stack.channel_id("general")
    reply = only(await run(stack, "admin", "!tt channels add", "#general"))
    assert f"<#{general}>" in reply.text
    assert only(await run(stack, "viewer", "!tt status", "#general")).embeds
    only(await run(stack, "admin", "!tt channels remove", "#general"))
    assert await run(stack, "viewer", "!tt status", "#general") == []


async def test_roles_map_to_tiers(stack: LocalStack) -> None:
    viewer_role = stack.role_id("Viewer")
    only(await run(stack, "admin", f"!tt roles add trader <@&{viewer_role}>"))
    preview = only(await run(stack, "viewer", "!tt buy 1 SPY @ mid"))
    assert "Preview" in preview.text
    only(await run(stack, "admin", f"!tt roles remove <@&{viewer_role}>"))
    refused = only(await run(stack, "viewer", "!tt status"))
    assert "no tt-bot role" in refused.text


async def test_dms_are_not_for_commands(stack: LocalStack) -> None:
    before = len(stack.discord.messages)
    await stack.discord.say_dm("trader", "!tt buy 1 SPY @ mid")
    await stack.settle()
    reply = only(stack.discord.messages[before:])
    assert reply.dm_recipient is not None
    assert "DMs are only used for linking credentials" in reply.text
    assert stack.exchange.orders() == []


@pytest.mark.parametrize("text", ["!tt frobnicate", "!tt"])
async def test_unknown_and_bare_commands(stack: LocalStack, text: str) -> None:
    reply = only(await run(stack, "viewer", text))
    if text == "!tt":
        assert "tt-bot commands" in reply.text
    else:
        assert "Unknown command `frobnicate`" in reply.text
