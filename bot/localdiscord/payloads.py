"""JSON payloads in the shapes discord.py 2.7.1 parses (snowflakes as strings)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.localdiscord.records import JSON, MessageRecord
from bot.localdiscord.world import ChannelKind, ChannelSpec, GuildSpec, MemberSpec, UserSpec, World

ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024
_VERIFY_KEY = "0" * 64


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def user_payload(user: UserSpec) -> JSON:
    data: JSON = {
        "id": str(user.id),
        "username": user.name,
        "discriminator": "0",
        "global_name": None,
        "avatar": None,
    }
    if user.bot:
        data["bot"] = True
    return data


def role_payload(guild: GuildSpec, role_id: int) -> JSON:
    role = guild.role_by_id(role_id)
    data: JSON = {
        "id": str(role.id),
        "name": role.name,
        "permissions": str(role.permissions),
        "position": role.position,
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "managed": role.managed_by_bot is not None,
        "mentionable": role.mentionable,
        "flags": 0,
    }
    if role.managed_by_bot is not None:
        data["tags"] = {"bot_id": str(role.managed_by_bot)}
    return data


def channel_payload(channel: ChannelSpec, world: World) -> JSON:
    if channel.kind is ChannelKind.DM:
        recipients = [user_payload(channel.dm_recipient)] if channel.dm_recipient else []
        return {
            "id": str(channel.id),
            "type": int(ChannelKind.DM),
            "recipients": recipients,
            "last_message_id": None,
            "flags": 0,
        }
    return {
        "id": str(channel.id),
        "type": int(channel.kind),
        "guild_id": str(channel.guild_id),
        "name": channel.name,
        "position": channel.position,
        "topic": channel.topic,
        "nsfw": False,
        "parent_id": None,
        "rate_limit_per_user": 0,
        "last_message_id": None,
        "flags": 0,
        "permission_overwrites": [
            {
                "id": str(o.target_id),
                "type": 0 if o.kind == "role" else 1,
                "allow": str(o.allow),
                "deny": str(o.deny),
            }
            for o in channel.overwrites
        ],
    }


def member_payload(
    member: MemberSpec, *, with_user: bool = True, permissions: int | None = None
) -> JSON:
    data: JSON = {
        "roles": [str(r) for r in member.role_ids],
        "nick": member.nick,
        "joined_at": iso(member.joined_at),
        "deaf": False,
        "mute": False,
        "pending": False,
        "flags": 0,
        "avatar": None,
        "premium_since": None,
    }
    if with_user:
        data["user"] = user_payload(member.user)
    if permissions is not None:
        data["permissions"] = str(permissions)
    return data


def guild_payload(guild: GuildSpec, world: World, *, with_members: bool) -> JSON:
    """A GUILD_CREATE / GET guild payload.

    Without the members intent Discord only sends the bot's own member; with it, every
    member, and ``member_count == len(members)`` keeps discord.py from chunking.
    """
    members = (
        guild.members if with_members else [m for m in guild.members if m.user.id == world.bot.id]
    )
    return {
        "id": str(guild.id),
        "name": guild.name,
        "owner_id": str(guild.owner_id),
        "icon": None,
        "description": None,
        "features": [],
        "verification_level": 0,
        "default_message_notifications": 1,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "premium_tier": 0,
        "preferred_locale": "en-US",
        "nsfw_level": 0,
        "large": False,
        "unavailable": False,
        "member_count": len(guild.members),
        "joined_at": iso(guild.members[0].joined_at) if guild.members else None,
        "roles": [role_payload(guild, r.id) for r in guild.roles],
        "emojis": [],
        "stickers": [],
        "channels": [channel_payload(c, world) for c in guild.channels],
        "threads": [],
        "members": [member_payload(m) for m in members],
        "voice_states": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
    }


def app_info_payload(world: World) -> JSON:
    return {
        "id": str(world.application_id),
        "name": world.bot.name,
        "description": "",
        "icon": None,
        "bot_public": False,
        "bot_require_code_grant": False,
        "owner": user_payload(world.owner),
        "verify_key": _VERIFY_KEY,
        "flags": 0,
        "bot": user_payload(world.bot),
    }


def attachment_payloads(record: MessageRecord) -> list[JSON]:
    return [
        {
            "id": str(a.id),
            "filename": a.filename,
            "size": a.size,
            "url": f"https://cdn.invalid/attachments/{record.channel.id}/{a.id}/{a.filename}",
            "proxy_url": f"https://media.invalid/attachments/{record.channel.id}/{a.id}/{a.filename}",
            "content_type": a.content_type,
        }
        for a in record.attachments
    ]


def message_payload(
    record: MessageRecord,
    world: World,
    *,
    content_visible: bool = True,
    referenced: MessageRecord | None = None,
) -> JSON:
    """A message object; ``content_visible=False`` blanks what the content intent hides."""
    data: JSON = {
        "id": str(record.id),
        "channel_id": str(record.channel.id),
        "type": 19 if record.reference_id is not None else 0,
        "content": record.content if content_visible else "",
        "author": user_payload(record.author),
        "timestamp": iso(record.created_at),
        "edited_timestamp": iso(record.edited_at),
        "tts": record.tts,
        "mention_everyone": "everyone" in record.pings,
        "mentions": _mentioned_users(record, world),
        "mention_roles": [
            p.split(":", 1)[1] for p in sorted(record.pings) if p.startswith("role:")
        ],
        "attachments": attachment_payloads(record) if content_visible else [],
        "embeds": [e.raw for e in record.embeds] if content_visible else [],
        "components": record.components if content_visible else [],
        "pinned": False,
        "flags": record.flags,
        "reactions": [
            {"emoji": {"id": None, "name": e}, "count": 1, "me": True} for e in record.reactions
        ],
    }
    if record.nonce is not None:
        data["nonce"] = record.nonce
    if record.author.id == world.bot.id and record.interaction_id is not None:
        data["application_id"] = str(world.application_id)
        data["webhook_id"] = str(world.application_id)
    guild = world.guild_of(record.channel)
    if guild is not None:
        data["guild_id"] = str(guild.id)
        member = guild.member(record.author.id)
        if member is not None:
            data["member"] = member_payload(member, with_user=False)
    if record.reference_id is not None:
        data["message_reference"] = {
            "type": 0,
            "message_id": str(record.reference_id),
            "channel_id": str(record.channel.id),
            **({"guild_id": str(guild.id)} if guild else {}),
        }
        if referenced is not None:
            data["referenced_message"] = message_payload(referenced, world)
    return data


def _mentioned_users(record: MessageRecord, world: World) -> list[JSON]:
    users = []
    for ping in sorted(record.pings):
        if ping.startswith("user:"):
            try:
                users.append(user_payload(world.user(int(ping.split(":", 1)[1]))))
            except LookupError:
                continue
    return users


def command_echo(command: dict[str, Any], *, command_id: int, application_id: int) -> JSON:
    """What Discord returns for a synced command: the posted command plus ids and defaults."""
    data = dict(command)
    data["id"] = str(command_id)
    data["application_id"] = str(application_id)
    data["version"] = str(command_id)
    data.setdefault("type", 1)
    data.setdefault("description", "")
    data.setdefault("default_member_permissions", None)
    data.setdefault("nsfw", False)
    return data
