"""A local stand-in for Discord: REST + gateway on 127.0.0.1 for the real discord.py client.

Used by the end-to-end tests and the offline console. See `bot.localdiscord.server` for the
lifecycle and driver API, `bot.localdiscord.world` for the world description and
`bot.localdiscord.render` for the text renderer.
"""

from bot.localdiscord.errors import DiscordApiError
from bot.localdiscord.interactions import SlashCommandError
from bot.localdiscord.records import (
    Attachment,
    Button,
    CallbackRecord,
    Embed,
    EmbedField,
    InteractionRecord,
    MessageRecord,
    MessageVersion,
    OutputEvent,
    RestCall,
)
from bot.localdiscord.render import render_message
from bot.localdiscord.rest import UnhandledRequest
from bot.localdiscord.server import LocalDiscord
from bot.localdiscord.snowflake import SnowflakeGenerator, snowflake_time
from bot.localdiscord.world import (
    STANDARD_GUILD,
    ChannelKind,
    ChannelSpec,
    GuildSpec,
    MemberSpec,
    Overwrite,
    Permission,
    RoleSpec,
    UserSpec,
    World,
    standard_world,
)

__all__ = [
    "STANDARD_GUILD",
    "Attachment",
    "Button",
    "CallbackRecord",
    "ChannelKind",
    "ChannelSpec",
    "DiscordApiError",
    "Embed",
    "EmbedField",
    "GuildSpec",
    "InteractionRecord",
    "LocalDiscord",
    "MemberSpec",
    "MessageRecord",
    "MessageVersion",
    "OutputEvent",
    "Overwrite",
    "Permission",
    "RestCall",
    "RoleSpec",
    "SlashCommandError",
    "SnowflakeGenerator",
    "UnhandledRequest",
    "UserSpec",
    "World",
    "render_message",
    "snowflake_time",
    "standard_world",
]
