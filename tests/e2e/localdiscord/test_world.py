"""World description, permissions, snowflakes, mention rules and limit validation."""

from __future__ import annotations

import time

import pytest

from bot.localdiscord import (
    DiscordApiError,
    Overwrite,
    Permission,
    SnowflakeGenerator,
    World,
    snowflake_time,
    standard_world,
)
from bot.localdiscord.command_schema import validate_commands
from bot.localdiscord.limits import validate_message
from bot.localdiscord.records import compute_pings
from bot.localdiscord.world import ALL_PERMISSIONS


def test_standard_world_shape() -> None:
    world = standard_world()
    (guild,) = world.guilds
    assert guild.name == "Trading Desk"
    assert [c.label for c in guild.channels] == ["#trading", "#general"]
    roles = {r.name: r for r in guild.roles}
    assert roles["Admin"].permissions == Permission.MANAGE_GUILD == 1 << 5
    assert roles["Admin"].position > roles["Trader"].position > roles["Viewer"].position
    assert guild.everyone.id == guild.id
    members = {m.user.name: [guild.role_by_id(r).name for r in m.role_ids] for m in guild.members}
    assert members["admin"] == ["Admin"]
    assert members["trader"] == ["Trader"]
    assert members["viewer"] == ["Viewer"]
    assert members["outsider"] == []
    assert members["tt-bot"] == ["tt-bot"]
    assert world.application_id == world.bot.id and world.bot.bot
    assert guild.owner_id == world.owner.id


def test_lookups_accept_names_ids_and_specs() -> None:
    world = standard_world()
    trader = world.user("@trader")
    assert world.user(trader.id) is trader and world.user(trader) is trader
    trading = world.channel("#trading")
    assert world.channel("trading") is trading and world.channel(trading.id) is trading
    with pytest.raises(LookupError):
        world.user("ghost")
    second = world.add_guild("Other Desk")
    world.add_text_channel(second, "trading")
    with pytest.raises(LookupError, match="ambiguous"):
        world.channel("#trading")
    with pytest.raises(ValueError, match="already exists"):
        world.add_user("trader")


def test_permissions_follow_roles_owner_and_overwrites() -> None:
    world = standard_world()
    guild = world.guilds[0]
    trading = world.channel("#trading")
    admin, outsider = world.user("admin"), world.user("outsider")
    assert world.guild_permissions(guild, admin.id) & Permission.MANAGE_GUILD
    assert not world.guild_permissions(guild, outsider.id) & Permission.MANAGE_GUILD
    assert world.guild_permissions(guild, world.owner.id) == ALL_PERMISSIONS
    assert world.permissions_for(trading, outsider.id) & Permission.SEND_MESSAGES
    # Read-only for @everyone, writable for Traders, hidden from one member.
    trader_role = guild.role("Trader")
    viewer = world.user("viewer")
    trading.overwrites = [
        Overwrite(guild.id, "role", deny=Permission.SEND_MESSAGES),
        Overwrite(trader_role.id, "role", allow=Permission.SEND_MESSAGES),
        Overwrite(viewer.id, "member", deny=Permission.VIEW_CHANNEL),
    ]
    assert not world.permissions_for(trading, outsider.id) & Permission.SEND_MESSAGES
    assert world.permissions_for(trading, world.user("trader").id) & Permission.SEND_MESSAGES
    assert world.permissions_for(trading, viewer.id) == 0


def test_snowflakes_are_time_based_unique_and_increasing() -> None:
    generator = SnowflakeGenerator()
    ids = [generator.next() for _ in range(1000)]
    assert ids == sorted(set(ids))
    assert abs(snowflake_time(ids[-1]).timestamp() - time.time()) < 2
    assert snowflake_time(ids[0]).tzinfo is not None


def test_pings_follow_allowed_mentions() -> None:
    text = "<@11> <@!12> <@&21> @everyone"
    assert compute_pings(text, None) == {"user:11", "user:12", "role:21", "everyone"}
    assert compute_pings(text, {"parse": []}) == frozenset()
    assert compute_pings(text, {"parse": [], "users": ["12"]}) == {"user:12"}
    assert compute_pings(text, {"parse": ["roles"]}) == {"role:21"}
    assert compute_pings("hi", {"parse": []}, replied_user_id=5) == frozenset()
    assert compute_pings("hi", {"parse": [], "replied_user": True}, replied_user_id=5) == {"user:5"}
    assert compute_pings("hi", None, replied_user_id=5) == {"user:5"}


def _form_error(body: dict[str, object], *, creating: bool = True) -> DiscordApiError:
    with pytest.raises(DiscordApiError) as info:
        validate_message(body, creating=creating)
    return info.value


def test_message_validation_matches_discord() -> None:
    error = _form_error({"content": "x" * 2001})
    assert (error.status, error.code) == (400, 50035)
    assert error.describe() == "Invalid Form Body: In content: Must be 2000 or fewer in length."
    assert _form_error({"content": ""}).code == 50006
    validate_message({"content": ""}, creating=False)  # an edit may clear the content
    fields = [{"name": "n", "value": "v"}] * 25
    validate_message({"embeds": [{"fields": fields}]}, creating=True)
    error = _form_error({"embeds": [{"fields": [{"name": "", "value": "v"}]}]})
    assert error.describe().endswith("In embeds.0.fields.0.name: This field is required")
    error = _form_error({"embeds": [{"footer": {"text": "f" * 2049}}]})
    assert "In embeds.0.footer.text: Must be 2048 or fewer" in error.describe()
    row = {"type": 1, "components": [{"type": 2, "style": 1, "label": "a", "custom_id": "x"}] * 2}
    assert "duplicated" in _form_error({"components": [row]}).describe()
    six = {
        "type": 1,
        "components": [
            {"type": 2, "style": 1, "label": str(i), "custom_id": str(i)} for i in range(6)
        ],
    }
    assert "Must be 5 or fewer" in _form_error({"components": [six]}).describe()
    link = {"type": 2, "style": 5, "label": "docs", "custom_id": "x", "url": "https://x.invalid"}
    assert (
        "link button" in _form_error({"components": [{"type": 1, "components": [link]}]}).describe()
    )
    error = _form_error({"content": "x", "allowed_mentions": {"parse": ["users"], "users": ["1"]}})
    assert "mutually exclusive" in error.message


def test_command_schema_rejects_what_discord_rejects() -> None:
    good = {
        "name": "tt",
        "description": "Trading",
        "options": [
            {
                "name": "buy",
                "description": "Buy",
                "type": 1,
                "options": [
                    {"name": "order", "description": "Order", "type": 3, "required": True},
                    {"name": "dry", "description": "Dry run", "type": 5},
                ],
            }
        ],
    }
    validate_commands([good])
    for broken, text in (
        ({**good, "name": "Trade"}, "invalid"),
        ({**good, "description": ""}, "between 1 and 100"),
        (
            {
                **good,
                "options": [
                    {"name": "a", "description": "a", "type": 3},
                    {"name": "b", "description": "b", "type": 3, "required": True},
                ],
            },
            "Required options must be placed before",
        ),
    ):
        with pytest.raises(DiscordApiError) as info:
            validate_commands([broken])
        assert text in info.value.describe(), info.value.describe()
    with pytest.raises(DiscordApiError, match="50035"):
        validate_commands([good, good])


def test_world_builder_for_custom_worlds() -> None:
    world = World(bot_name="paperbot")
    guild = world.add_guild("Desk")
    role = world.add_role(guild, "Trader", Permission.SEND_MESSAGES, mentionable=True)
    user = world.add_user("alice")
    world.add_member(guild, user, [role])
    with pytest.raises(ValueError, match="already a member"):
        world.add_member(guild, user)
    assert guild.member(user.id) is not None and role.mention == f"<@&{role.id}>"
    assert world.dm_channel(user) is world.dm_channel(user)
    assert world.dm_channel(user).label == "DM @alice"
