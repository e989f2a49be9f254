"""Two servers on one bot: neither can cancel, replace or see the fill notices of the
other's orders, even when both trade the same (shared) account."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.localdiscord import Permission, World, standard_world
from bot.localdiscord.world import ChannelSpec
from bot.localstack import LocalStack, StackOptions, local_stack
from tests.e2e.bot.conftest import NO_LUCK
from tests.e2e.bot.helpers import click, offline_config


@dataclass
class TwoGuilds:
    stack: LocalStack
    other_channel: ChannelSpec
    other_guild_id: int


def _add_other_guild(world: World) -> ChannelSpec:
    guild = world.add_guild("Other Desk")
    channel = world.add_text_channel(guild, "other-trading")
    trader = world.add_role(guild, "Trader")
    admin = world.add_role(guild, "Admin", Permission.MANAGE_GUILD)
    world.add_member(guild, world.add_user("trader2"), [trader])
    world.add_member(guild, world.add_user("admin2"), [admin])
    return channel


@pytest.fixture
async def two(tmp_path: Path) -> AsyncIterator[TwoGuilds]:
    world = standard_world()
    channel = _add_other_guild(world)
    other = world.guilds[1]
    options = StackOptions(db_path=tmp_path / "tt.db", fills=NO_LUCK, world=world)
    async with local_stack(offline_config(), options) as st:
        service = st.service
        await service.allow_channel(other.id, channel.id, allowed=True)
        await service.set_role_tier(other.id, other.role("Trader").id, "trader")
        await service.set_role_tier(other.id, other.role("Admin").id, "admin")
        yield TwoGuilds(st, channel, other.id)


async def _say(st: LocalStack, user: str, channel: ChannelSpec | str, text: str) -> list[str]:
    before = len(st.discord.messages)
    await st.discord.say(user, channel, text)
    await st.settle()
    return [m.text for m in st.discord.messages[before:]]


async def test_another_server_cannot_cancel_or_replace_our_orders(two: TwoGuilds) -> None:
    st = two.stack
    st.exchange.market.set_quote("SPY", "500.00", "500.10")
    await _say(st, "trader", "#trading", "!tt buy 1 SPY @ mid")
    await click(st, "trader", "Confirm")
    (order,) = st.exchange.orders()

    (by_id,) = await _say(st, "trader2", two.other_channel, f"!tt cancel {order.id}")
    assert "placed from another server" in by_id
    (replace,) = await _say(st, "trader2", two.other_channel, f"!tt replace {order.id} 499.00")
    assert "placed from another server" in replace
    await _say(st, "trader2", two.other_channel, "!tt cancel all")
    await _say(st, "admin2", two.other_channel, "!tt halt")
    assert [o.status for o in st.exchange.orders()] == ["Live"]

    # Our own server still can, and its fill notices stay in our channel.
    texts = await _say(st, "trader", "#trading", f"!tt cancel {order.id}")
    assert any(f"Cancelled order #{order.id}" in t for t in texts)
    assert not [m for m in st.discord.messages_in(two.other_channel) if "SPY" in m.text]


async def test_fill_notices_follow_the_chase_guild(two: TwoGuilds) -> None:
    st = two.stack
    st.exchange.market.set_quote("SPY", "500.00", "500.00")
    await _say(st, "trader", "#trading", "!tt buy 1 SPY @ mid")
    await click(st, "trader", "Confirm")
    # The other server trades afterwards (it becomes the account's last-set context).
    await _say(st, "trader2", two.other_channel, "!tt buy 1 SPY @ mid")
    await click(st, "trader2", "Confirm")
    await st.advance(1)
    ours = [m.text for m in st.discord.messages_in("#trading") if "Filled: SPY" in m.text]
    theirs = [m.text for m in st.discord.messages_in(two.other_channel) if "Filled: SPY" in m.text]
    assert len(ours) == 1 and len(theirs) == 1
