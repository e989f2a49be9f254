"""REST routes for users, gateway discovery, channels, messages, DMs, guilds and commands."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bot.localdiscord import errors
from bot.localdiscord.command_schema import validate_commands
from bot.localdiscord.errors import DiscordApiError
from bot.localdiscord.gateway import INTENT_GUILD_MEMBERS
from bot.localdiscord.limits import validate_message
from bot.localdiscord.payloads import (
    app_info_payload,
    channel_payload,
    command_echo,
    guild_payload,
    member_payload,
    role_payload,
    user_payload,
)
from bot.localdiscord.records import EPHEMERAL_FLAG, JSON, MessageRecord
from bot.localdiscord.rest import Reply, RestApi, RestRequest
from bot.localdiscord.state import DiscordState
from bot.localdiscord.world import ChannelKind, ChannelSpec, GuildSpec, Permission

_HISTORY_MAX = 100


class CoreRoutes:
    def __init__(self, state: DiscordState, gateway_url: Callable[[], str]) -> None:
        self._state = state
        self._world = state.world
        self._gateway_url = gateway_url

    def register(self, api: RestApi) -> None:
        r = api.route
        r("GET", "/users/@me", self.get_me)
        r("GET", "/users/{user_id}", self.get_user)
        r("GET", "/oauth2/applications/@me", self.get_app_info)
        r("GET", "/applications/@me", self.get_app_info)
        r("GET", "/gateway", self.get_gateway, bot_auth=False)
        r("GET", "/gateway/bot", self.get_gateway_bot)
        r("POST", "/users/@me/channels", self.open_dm)
        r("GET", "/channels/{channel_id}", self.get_channel)
        r("GET", "/channels/{channel_id}/messages", self.get_history)
        r("POST", "/channels/{channel_id}/messages", self.send_message)
        r("GET", "/channels/{channel_id}/messages/{message_id}", self.get_message)
        r("PATCH", "/channels/{channel_id}/messages/{message_id}", self.edit_message)
        r("DELETE", "/channels/{channel_id}/messages/{message_id}", self.delete_message)
        r("POST", "/channels/{channel_id}/typing", self.typing)
        reaction = "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me"
        r("PUT", reaction, self.add_reaction)
        r("DELETE", reaction, self.remove_reaction)
        r("GET", "/guilds/{guild_id}", self.get_guild)
        r("GET", "/guilds/{guild_id}/channels", self.get_guild_channels)
        r("GET", "/guilds/{guild_id}/roles", self.get_roles)
        r("GET", "/guilds/{guild_id}/members", self.list_members)
        r("GET", "/guilds/{guild_id}/members/{user_id}", self.get_member)
        r("GET", "/applications/{app_id}/commands", self.get_global_commands)
        r("PUT", "/applications/{app_id}/commands", self.put_global_commands)
        r("GET", "/applications/{app_id}/guilds/{guild_id}/commands", self.get_guild_commands)
        r("PUT", "/applications/{app_id}/guilds/{guild_id}/commands", self.put_guild_commands)

    # -- helpers --------------------------------------------------------------------------

    def _channel(self, req: RestRequest, *need: Permission) -> ChannelSpec:
        channel = self._world.channel_by_id(req.int_param("channel_id"))
        if channel is None:
            raise errors.unknown_channel()
        if channel.kind is ChannelKind.DM:
            return channel
        perms = self._world.permissions_for(channel, self._world.bot.id)
        if not perms & Permission.VIEW_CHANNEL:
            raise errors.missing_access()
        for permission in need:
            if not perms & permission:
                raise errors.missing_permissions()
        return channel

    def _guild(self, req: RestRequest) -> GuildSpec:
        try:
            return self._world.guild(req.int_param("guild_id"))
        except LookupError:
            raise errors.unknown_guild() from None

    def _check_app(self, req: RestRequest) -> None:
        if req.int_param("app_id") != self._world.application_id:
            raise errors.missing_access()

    # -- users, app, gateway --------------------------------------------------------------

    async def get_me(self, req: RestRequest) -> Reply:
        return user_payload(self._world.bot)

    async def get_user(self, req: RestRequest) -> Reply:
        try:
            return user_payload(self._world.user(req.int_param("user_id")))
        except LookupError:
            raise errors.unknown_user() from None

    async def get_app_info(self, req: RestRequest) -> Reply:
        return app_info_payload(self._world)

    async def get_gateway(self, req: RestRequest) -> Reply:
        return {"url": self._gateway_url()}

    async def get_gateway_bot(self, req: RestRequest) -> Reply:
        return {
            "url": self._gateway_url(),
            "shards": 1,
            "session_start_limit": {
                "total": 1000,
                "remaining": 1000,
                "reset_after": 0,
                "max_concurrency": 1,
            },
        }

    async def open_dm(self, req: RestRequest) -> Reply:
        recipient = req.json_object().get("recipient_id")
        try:
            user = self._world.user(int(str(recipient)))
        except (LookupError, ValueError):
            raise errors.unknown_user() from None
        return channel_payload(self._world.dm_channel(user), self._world)

    # -- channels and messages ------------------------------------------------------------

    async def get_channel(self, req: RestRequest) -> Reply:
        return channel_payload(self._channel(req), self._world)

    async def get_history(self, req: RestRequest) -> Reply:
        channel = self._channel(req, Permission.READ_MESSAGE_HISTORY)
        limit = min(int(req.query.get("limit", "50")), _HISTORY_MAX)
        before = int(req.query.get("before", "0")) or None
        after = int(req.query.get("after", "0")) or None
        visible = [
            m
            for m in self._state.all_messages
            if m.channel.id == channel.id
            and not m.deleted
            and not m.ephemeral
            and (before is None or m.id < before)
            and (after is None or m.id > after)
        ]
        newest_first = sorted(visible, key=lambda m: m.id, reverse=True)[:limit]
        return [
            self._state.payload(m, content_visible=self._content_visible(m)) for m in newest_first
        ]

    def _content_visible(self, record: MessageRecord) -> bool:
        return (
            record.author.id == self._world.bot.id
            or record.channel.kind is ChannelKind.DM
            or self._state.gateway.has_message_content_intent
            or f"user:{self._world.bot.id}" in record.pings
        )

    async def send_message(self, req: RestRequest) -> Reply:
        channel = self._channel(req, Permission.SEND_MESSAGES)
        body = dict(req.json_object())
        if req.files and channel.kind is ChannelKind.TEXT:
            perms = self._world.permissions_for(channel, self._world.bot.id)
            if not perms & Permission.ATTACH_FILES:
                raise errors.missing_permissions()
        if channel.kind is ChannelKind.DM:
            recipient = channel.dm_recipient
            if recipient is None or recipient.bot or not recipient.accepts_dms:
                raise errors.cannot_dm_user()
        validate_message(body, creating=True, has_files=bool(req.files))
        self._check_reference(body, channel)
        body["flags"] = int(body.get("flags") or 0) & ~EPHEMERAL_FLAG  # interactions only
        record = self._state.new_message(
            body, channel=channel, author=self._world.bot, files=req.files
        )
        record.received_monotonic = req.received_monotonic
        await self._state.publish_create(record)
        return self._state.payload(record)

    def _check_reference(self, body: JSON, channel: ChannelSpec) -> None:
        ref = body.get("message_reference")
        if not isinstance(ref, dict):
            return
        target = self._state.find_message(int(ref.get("message_id") or 0))
        exists = target is not None and not target.deleted and target.channel.id == channel.id
        if not exists and ref.get("fail_if_not_exists", True):
            raise DiscordApiError(
                400,
                50035,
                "Invalid Form Body",
                errors={
                    "message_reference": {
                        "_errors": [
                            {"code": "REPLIES_UNKNOWN_MESSAGE", "message": "Unknown message"}
                        ]
                    }
                },
            )
        if not exists:
            body.pop("message_reference")

    async def get_message(self, req: RestRequest) -> Reply:
        channel = self._channel(req, Permission.READ_MESSAGE_HISTORY)
        record = self._state.message(req.int_param("message_id"), channel)
        if record.ephemeral:
            raise errors.unknown_message()
        return self._state.payload(record, content_visible=self._content_visible(record))

    async def edit_message(self, req: RestRequest) -> Reply:
        channel = self._channel(req)
        record = self._state.message(req.int_param("message_id"), channel)
        if record.ephemeral:
            raise errors.unknown_message()
        body = req.json_object()
        if record.author.id != self._world.bot.id and set(body) - {"flags"}:
            raise errors.cannot_edit_others()
        validate_message(body, creating=False, has_files=bool(req.files))
        self._state.apply_edit(record, body, req.files)
        await self._state.publish_edit(record)
        return self._state.payload(record)

    async def delete_message(self, req: RestRequest) -> Reply:
        channel = self._channel(req)
        record = self._state.message(req.int_param("message_id"), channel)
        if record.ephemeral:
            raise errors.unknown_message()
        if record.author.id != self._world.bot.id and channel.kind is ChannelKind.TEXT:
            perms = self._world.permissions_for(channel, self._world.bot.id)
            if not perms & Permission.MANAGE_MESSAGES:
                raise errors.missing_permissions()
        await self._state.publish_delete(record)
        return None

    async def typing(self, req: RestRequest) -> Reply:
        channel = self._channel(req, Permission.SEND_MESSAGES)
        self._state.typing.append((channel.id, datetime.now(UTC)))
        return None

    async def add_reaction(self, req: RestRequest) -> Reply:
        channel = self._channel(req, Permission.ADD_REACTIONS, Permission.READ_MESSAGE_HISTORY)
        record = self._state.message(req.int_param("message_id"), channel)
        emoji = req.params["emoji"]
        if emoji not in record.reactions:
            record.reactions.append(emoji)
            await self._state.publish_edit(record, echo=False)
        return None

    async def remove_reaction(self, req: RestRequest) -> Reply:
        channel = self._channel(req, Permission.READ_MESSAGE_HISTORY)
        record = self._state.message(req.int_param("message_id"), channel)
        emoji = req.params["emoji"]
        if emoji in record.reactions:
            record.reactions.remove(emoji)
            await self._state.publish_edit(record, echo=False)
        return None

    # -- guilds ---------------------------------------------------------------------------

    async def get_guild(self, req: RestRequest) -> Reply:
        data = guild_payload(self._guild(req), self._world, with_members=False)
        for key in ("members", "channels", "threads", "voice_states", "presences"):
            data.pop(key, None)
        return data

    async def get_guild_channels(self, req: RestRequest) -> Reply:
        guild = self._guild(req)
        return [channel_payload(c, self._world) for c in guild.channels]

    async def get_roles(self, req: RestRequest) -> Reply:
        guild = self._guild(req)
        return [role_payload(guild, r.id) for r in guild.roles]

    async def list_members(self, req: RestRequest) -> Reply:
        guild = self._guild(req)
        if not (self._state.gateway.intents or 0) & INTENT_GUILD_MEMBERS:
            # Listing members is gated behind the privileged GUILD_MEMBERS intent.
            raise errors.missing_access()
        limit = min(int(req.query.get("limit", "1")), 1000)
        after = int(req.query.get("after", "0"))
        members = sorted(guild.members, key=lambda m: m.user.id)
        return [member_payload(m) for m in members if m.user.id > after][:limit]

    async def get_member(self, req: RestRequest) -> Reply:
        guild = self._guild(req)
        member = guild.member(req.int_param("user_id"))
        if member is None:
            raise errors.unknown_member()
        return member_payload(member)

    # -- application commands -------------------------------------------------------------

    async def get_global_commands(self, req: RestRequest) -> Reply:
        self._check_app(req)
        return self._state.global_commands

    async def put_global_commands(self, req: RestRequest) -> Reply:
        self._check_app(req)
        self._state.global_commands = self._sync(req.body, None)
        return self._state.global_commands

    async def get_guild_commands(self, req: RestRequest) -> Reply:
        self._check_app(req)
        return self._state.guild_commands.get(self._guild(req).id, [])

    async def put_guild_commands(self, req: RestRequest) -> Reply:
        self._check_app(req)
        guild = self._guild(req)
        self._state.guild_commands[guild.id] = self._sync(req.body, guild.id)
        return self._state.guild_commands[guild.id]

    def _sync(self, body: Any, guild_id: int | None) -> list[JSON]:
        validate_commands(body)
        echoed = []
        for command in body:
            key = (guild_id, str(command["name"]), int(command.get("type", 1)))
            # Discord keeps a command's id across syncs as long as its name and type match.
            command_id = self._state.command_ids.setdefault(key, self._world.ids.next())
            data = command_echo(
                command, command_id=command_id, application_id=self._world.application_id
            )
            if guild_id is not None:
                data["guild_id"] = str(guild_id)
            echoed.append(data)
        self._state.last_synced = echoed
        return echoed
