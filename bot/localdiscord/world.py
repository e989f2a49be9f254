"""The world the local Discord serves: users, guilds, roles, channels and members.

A `World` is plain data plus lookups. The stand-in turns it into gateway and REST payloads;
tests and the console build it with `standard_world()` or the ``add_*`` helpers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum, IntFlag
from typing import Literal

from bot.localdiscord.snowflake import process_snowflakes


class Permission(IntFlag):
    """Discord permission bits the stand-in reasons about (values from the Discord API)."""

    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    MANAGE_ROLES = 1 << 28
    USE_APPLICATION_COMMANDS = 1 << 31


# What Discord reports for owners and administrators: every bit set.
ALL_PERMISSIONS = (1 << 52) - 1

EVERYONE_PERMISSIONS = (
    Permission.VIEW_CHANNEL
    | Permission.SEND_MESSAGES
    | Permission.EMBED_LINKS
    | Permission.ATTACH_FILES
    | Permission.ADD_REACTIONS
    | Permission.READ_MESSAGE_HISTORY
    | Permission.USE_EXTERNAL_EMOJIS
    | Permission.USE_APPLICATION_COMMANDS
)


class ChannelKind(IntEnum):
    """Discord channel types the stand-in supports."""

    TEXT = 0
    DM = 1


@dataclass(frozen=True, slots=True)
class UserSpec:
    """A Discord user. ``accepts_dms=False`` makes DMs to them fail like closed DMs (50007)."""

    id: int
    name: str
    bot: bool = False
    accepts_dms: bool = True

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"


@dataclass(slots=True)
class RoleSpec:
    id: int
    name: str
    permissions: int = 0
    position: int = 0
    mentionable: bool = False
    managed_by_bot: int | None = None  # the bot user id for a bot's integration role

    @property
    def mention(self) -> str:
        return f"<@&{self.id}>"


@dataclass(frozen=True, slots=True)
class Overwrite:
    """A channel permission overwrite for a role or a member."""

    target_id: int
    kind: Literal["role", "member"]
    allow: int = 0
    deny: int = 0


@dataclass(slots=True)
class ChannelSpec:
    id: int
    name: str
    kind: ChannelKind = ChannelKind.TEXT
    guild_id: int | None = None
    position: int = 0
    topic: str | None = None
    overwrites: list[Overwrite] = field(default_factory=list)
    dm_recipient: UserSpec | None = None

    @property
    def label(self) -> str:
        """How a person would name the channel: ``#trading`` or ``DM @trader``."""
        if self.kind is ChannelKind.DM and self.dm_recipient is not None:
            return f"DM @{self.dm_recipient.name}"
        return f"#{self.name}"

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"


@dataclass(slots=True)
class MemberSpec:
    user: UserSpec
    role_ids: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(slots=True)
class GuildSpec:
    id: int
    name: str
    owner_id: int
    roles: list[RoleSpec] = field(default_factory=list)
    channels: list[ChannelSpec] = field(default_factory=list)
    members: list[MemberSpec] = field(default_factory=list)

    @property
    def everyone(self) -> RoleSpec:
        """The @everyone role (Discord gives it the guild's id)."""
        return self.role_by_id(self.id)

    def role_by_id(self, role_id: int) -> RoleSpec:
        for role in self.roles:
            if role.id == role_id:
                return role
        raise LookupError(f"guild {self.name!r} has no role with id {role_id}")

    def role(self, name: str) -> RoleSpec:
        wanted = name.removeprefix("@").casefold()
        for role in self.roles:
            if role.name.casefold().removeprefix("@") == wanted:
                return role
        raise LookupError(f"guild {self.name!r} has no role named {name!r}")

    def channel(self, name: str) -> ChannelSpec:
        wanted = name.removeprefix("#").casefold()
        for channel in self.channels:
            if channel.name.casefold() == wanted:
                return channel
        raise LookupError(f"guild {self.name!r} has no channel named {name!r}")

    def member(self, user_id: int) -> MemberSpec | None:
        for member in self.members:
            if member.user.id == user_id:
                return member
        return None


class World:
    """Everything the local Discord knows about: the bot, its owner, users and guilds."""

    def __init__(self, *, bot_name: str = "tt-bot", owner_name: str = "owner") -> None:
        self.ids = process_snowflakes
        self.bot = UserSpec(self.ids.next(), bot_name, bot=True)
        self.owner = UserSpec(self.ids.next(), owner_name)
        # Discord gives a bot's application the same id as its bot user.
        self.application_id = self.bot.id
        self.guilds: list[GuildSpec] = []
        self._users: dict[int, UserSpec] = {self.bot.id: self.bot, self.owner.id: self.owner}
        self._dm_channels: dict[int, ChannelSpec] = {}

    # -- building -------------------------------------------------------------------------

    def add_user(self, name: str, *, bot: bool = False, accepts_dms: bool = True) -> UserSpec:
        if any(u.name.casefold() == name.casefold() for u in self._users.values()):
            raise ValueError(f"a user named {name!r} already exists")
        user = UserSpec(self.ids.next(), name, bot=bot, accepts_dms=accepts_dms)
        self._users[user.id] = user
        return user

    def add_guild(self, name: str, *, owner: UserSpec | None = None) -> GuildSpec:
        """A guild with its @everyone role and the bot (with its integration role) as member."""
        guild_id = self.ids.next()
        owner = owner or self.owner
        guild = GuildSpec(id=guild_id, name=name, owner_id=owner.id)
        guild.roles.append(RoleSpec(guild_id, "@everyone", int(EVERYONE_PERMISSIONS)))
        bot_role = RoleSpec(
            self.ids.next(), self.bot.name, int(EVERYONE_PERMISSIONS), 1, managed_by_bot=self.bot.id
        )
        guild.roles.append(bot_role)
        guild.members.append(MemberSpec(self.bot, [bot_role.id]))
        if owner.id != self.bot.id:
            guild.members.append(MemberSpec(owner))
        self.guilds.append(guild)
        return guild

    def add_role(
        self, guild: GuildSpec, name: str, permissions: int = 0, *, mentionable: bool = False
    ) -> RoleSpec:
        position = max((r.position for r in guild.roles), default=0) + 1
        role = RoleSpec(self.ids.next(), name, int(permissions), position, mentionable)
        guild.roles.append(role)
        return role

    def add_text_channel(
        self,
        guild: GuildSpec,
        name: str,
        *,
        topic: str | None = None,
        overwrites: list[Overwrite] | None = None,
    ) -> ChannelSpec:
        channel = ChannelSpec(
            self.ids.next(),
            name,
            ChannelKind.TEXT,
            guild.id,
            position=len(guild.channels),
            topic=topic,
            overwrites=list(overwrites or []),
        )
        guild.channels.append(channel)
        return channel

    def add_member(
        self, guild: GuildSpec, user: UserSpec, roles: list[RoleSpec] | None = None
    ) -> MemberSpec:
        if guild.member(user.id) is not None:
            raise ValueError(f"{user.name!r} is already a member of {guild.name!r}")
        member = MemberSpec(user, [r.id for r in roles or []])
        guild.members.append(member)
        return member

    # -- lookups --------------------------------------------------------------------------

    @property
    def users(self) -> list[UserSpec]:
        return list(self._users.values())

    def user(self, ref: UserSpec | int | str) -> UserSpec:
        """A user by spec, id, or name (``"trader"`` or ``"@trader"``)."""
        if isinstance(ref, UserSpec):
            return ref
        if isinstance(ref, int):
            try:
                return self._users[ref]
            except KeyError:
                raise LookupError(f"no user with id {ref}") from None
        wanted = ref.removeprefix("@").casefold()
        for user in self._users.values():
            if user.name.casefold() == wanted:
                return user
        raise LookupError(f"no user named {ref!r}")

    def guild(self, ref: GuildSpec | int | str) -> GuildSpec:
        if isinstance(ref, GuildSpec):
            return ref
        for guild in self.guilds:
            if guild.id == ref or (
                isinstance(ref, str) and guild.name.casefold() == ref.casefold()
            ):
                return guild
        raise LookupError(f"no guild {ref!r}")

    def channel(self, ref: ChannelSpec | int | str) -> ChannelSpec:
        """A guild or DM channel by spec, id, or name (``"#trading"``; must be unambiguous)."""
        if isinstance(ref, ChannelSpec):
            return ref
        if isinstance(ref, int):
            found = self.channel_by_id(ref)
            if found is None:
                raise LookupError(f"no channel with id {ref}")
            return found
        matches = []
        for guild in self.guilds:
            try:
                matches.append(guild.channel(ref))
            except LookupError:
                continue
        if not matches:
            raise LookupError(f"no channel named {ref!r}")
        if len(matches) > 1:
            raise LookupError(f"channel name {ref!r} is ambiguous; pass the ChannelSpec")
        return matches[0]

    def channel_by_id(self, channel_id: int) -> ChannelSpec | None:
        for guild in self.guilds:
            for channel in guild.channels:
                if channel.id == channel_id:
                    return channel
        for channel in self._dm_channels.values():
            if channel.id == channel_id:
                return channel
        return None

    def guild_of(self, channel: ChannelSpec) -> GuildSpec | None:
        if channel.guild_id is None:
            return None
        return self.guild(channel.guild_id)

    def dm_channel(self, user: UserSpec) -> ChannelSpec:
        """The DM channel between the bot and ``user`` (created on first use, like Discord)."""
        channel = self._dm_channels.get(user.id)
        if channel is None:
            channel = ChannelSpec(self.ids.next(), user.name, ChannelKind.DM, dm_recipient=user)
            self._dm_channels[user.id] = channel
        return channel

    # -- permissions ----------------------------------------------------------------------

    def guild_permissions(self, guild: GuildSpec, user_id: int) -> int:
        if user_id == guild.owner_id:
            return ALL_PERMISSIONS
        member = guild.member(user_id)
        perms = guild.everyone.permissions
        if member is not None:
            for role_id in member.role_ids:
                perms |= guild.role_by_id(role_id).permissions
        if perms & Permission.ADMINISTRATOR:
            return ALL_PERMISSIONS
        return perms

    def permissions_for(self, channel: ChannelSpec, user_id: int) -> int:
        """Discord's permission algorithm: base role permissions, then channel overwrites."""
        guild = self.guild_of(channel)
        if guild is None:  # DMs: everything a DM allows
            return int(EVERYONE_PERMISSIONS)
        perms = self.guild_permissions(guild, user_id)
        if perms == ALL_PERMISSIONS:
            return perms
        member = guild.member(user_id)
        role_ids = set(member.role_ids) if member else set()
        by_target = {(o.kind, o.target_id): o for o in channel.overwrites}
        everyone = by_target.get(("role", guild.id))
        if everyone is not None:
            perms = (perms & ~everyone.deny) | everyone.allow
        allow = deny = 0
        for ow in channel.overwrites:
            if ow.kind == "role" and ow.target_id in role_ids:
                allow |= ow.allow
                deny |= ow.deny
        perms = (perms & ~deny) | allow
        own = by_target.get(("member", user_id))
        if own is not None:
            perms = (perms & ~own.deny) | own.allow
        if not perms & Permission.VIEW_CHANNEL:
            return 0
        return perms


# Names used by the standard console/e2e world.
STANDARD_GUILD = "Trading Desk"


def standard_world() -> World:
    """The console/e2e world: guild "Trading Desk", #trading and #general, roles Admin
    (Manage Server), Trader and Viewer, users admin/trader/viewer/outsider (outsider has no
    role). The application owner ``owner`` also owns the guild."""
    world = World()
    guild = world.add_guild(STANDARD_GUILD)
    world.add_text_channel(guild, "trading", topic="Orders and fills")
    world.add_text_channel(guild, "general")
    # Created lowest first so Admin sits highest in the role hierarchy.
    viewer_role = world.add_role(guild, "Viewer")
    trader_role = world.add_role(guild, "Trader")
    admin_role = world.add_role(guild, "Admin", Permission.MANAGE_GUILD)
    for name, roles in (
        ("admin", [admin_role]),
        ("trader", [trader_role]),
        ("viewer", [viewer_role]),
        ("outsider", []),
    ):
        world.add_member(guild, world.add_user(name), roles)
    return world
