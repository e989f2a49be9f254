"""INTERACTION_CREATE payloads for the driver: button clicks, selects and slash commands.

Slash options are typed from the command tree the bot synced, when there is one, and checked
the way the Discord client checks them (unknown or missing options, choices, ranges); without a
synced tree the option type is inferred from the Python value.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bot.localdiscord.payloads import (
    ATTACHMENT_SIZE_LIMIT,
    channel_payload,
    member_payload,
    role_payload,
    user_payload,
)
from bot.localdiscord.records import JSON
from bot.localdiscord.world import ChannelKind, ChannelSpec, GuildSpec, RoleSpec, UserSpec, World

SUB_COMMAND = 1
SUB_COMMAND_GROUP = 2
STRING = 3
INTEGER = 4
BOOLEAN = 5
USER = 6
CHANNEL = 7
ROLE = 8
MENTIONABLE = 9
NUMBER = 10

OptionValue = str | int | float | bool | Decimal | UserSpec | RoleSpec | ChannelSpec


class SlashCommandError(ValueError):
    """The slash command cannot be sent as given (what the Discord client would refuse)."""


def interaction_base(
    world: World,
    *,
    interaction_id: int,
    token: str,
    interaction_type: int,
    user: UserSpec,
    channel: ChannelSpec,
) -> JSON:
    """The keys every interaction carries, for a guild channel or a DM."""
    data: JSON = {
        "id": str(interaction_id),
        "application_id": str(world.application_id),
        "type": interaction_type,
        "token": token,
        "version": 1,
        "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
        "locale": "en-US",
        "entitlements": [],
        "app_permissions": str(world.permissions_for(channel, world.bot.id)),
    }
    guild = world.guild_of(channel)
    if guild is None:
        data["context"] = 1
        data["authorizing_integration_owners"] = {"1": str(user.id)}
        data["user"] = user_payload(user)
        data["channel"] = channel_payload(channel, world)
        return data
    member = guild.member(user.id)
    if member is None:
        raise SlashCommandError(f"{user.name!r} is not a member of {guild.name!r}")
    permissions = world.permissions_for(channel, user.id)
    data["context"] = 0
    data["authorizing_integration_owners"] = {"0": str(guild.id)}
    data["guild_id"] = str(guild.id)
    data["guild_locale"] = "en-US"
    data["guild"] = {"id": str(guild.id), "locale": "en-US", "features": []}
    data["channel"] = {**channel_payload(channel, world), "permissions": str(permissions)}
    data["member"] = member_payload(member, permissions=permissions)
    return data


@dataclass(frozen=True, slots=True)
class CommandCall:
    """A resolved slash command: the interaction ``data`` plus a readable name."""

    data: JSON
    qualified_name: str
    options: dict[str, Any]


def build_command(
    world: World,
    guild: GuildSpec | None,
    synced: JSON | None,
    name: str,
    path: list[str],
    options: dict[str, OptionValue],
    command_id: int,
) -> CommandCall:
    """Build ``data`` for ``/name path... options``; ``synced`` is the synced command, if any."""
    leaf_defs: list[JSON] | None = None
    if synced is not None:
        node = synced
        for part in path:
            children = [
                o
                for o in node.get("options") or []
                if o.get("type") in (SUB_COMMAND, SUB_COMMAND_GROUP)
            ]
            found = next((o for o in children if o["name"] == part), None)
            if found is None:
                names = ", ".join(o["name"] for o in children) or "none"
                raise SlashCommandError(
                    f"/{name} has no subcommand {part!r} at this level (it has: {names})"
                )
            node = found
        if any(
            o.get("type") in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in node.get("options") or []
        ):
            raise SlashCommandError(f"/{' '.join([name, *path])} needs a subcommand")
        leaf_defs = list(node.get("options") or [])
    resolved: dict[str, dict[str, JSON]] = {}
    leaf = [
        _option(world, guild, name, path, key, value, leaf_defs, resolved)
        for key, value in options.items()
    ]
    if leaf_defs is not None:
        missing = [d["name"] for d in leaf_defs if d.get("required") and d["name"] not in options]
        if missing:
            raise SlashCommandError(
                f"/{' '.join([name, *path])} is missing required option(s): {', '.join(missing)}"
            )
    nested: list[JSON] = leaf
    for depth in range(len(path) - 1, -1, -1):
        kind = SUB_COMMAND if depth == len(path) - 1 else SUB_COMMAND_GROUP
        nested = [{"name": path[depth], "type": kind, "options": nested}]
    data: JSON = {"id": str(command_id), "name": name, "type": 1, "options": nested}
    if resolved:
        data["resolved"] = resolved
    if synced is not None and synced.get("guild_id"):
        data["guild_id"] = synced["guild_id"]
    return CommandCall(data, " ".join([name, *path]), dict(options))


def _option(
    world: World,
    guild: GuildSpec | None,
    name: str,
    path: list[str],
    key: str,
    value: OptionValue,
    defs: list[JSON] | None,
    resolved: dict[str, dict[str, JSON]],
) -> JSON:
    where = f"/{' '.join([name, *path])}"
    if defs is None:
        option_type = _infer_type(value, where, key)
        definition: JSON = {}
    else:
        definition = next((d for d in defs if d["name"] == key), {})
        if not definition:
            known = ", ".join(d["name"] for d in defs) or "none"
            raise SlashCommandError(f"{where} has no option {key!r} (it has: {known})")
        option_type = int(definition["type"])
    wire = _convert(world, guild, option_type, value, where, key, resolved)
    _check_constraints(definition, wire, where, key)
    return {"name": key, "type": option_type, "value": wire}


def _infer_type(value: OptionValue, where: str, key: str) -> int:
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        return INTEGER
    if isinstance(value, float | Decimal):
        return NUMBER
    if isinstance(value, str):
        return STRING
    if isinstance(value, UserSpec):
        return USER
    if isinstance(value, RoleSpec):
        return ROLE
    if isinstance(value, ChannelSpec):
        return CHANNEL
    raise SlashCommandError(
        f"{where} option {key!r}: unsupported value type {type(value).__name__}"
    )


def _convert(
    world: World,
    guild: GuildSpec | None,
    option_type: int,
    value: OptionValue,
    where: str,
    key: str,
    resolved: dict[str, dict[str, JSON]],
) -> Any:
    problem = f"{where} option {key!r}"
    if option_type == STRING:
        if isinstance(value, UserSpec | RoleSpec | ChannelSpec | bool):
            raise SlashCommandError(f"{problem} expects text, got {value!r}")
        return str(value)
    if option_type == INTEGER:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise SlashCommandError(f"{problem} expects an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise SlashCommandError(f"{problem} expects an integer, got {value!r}") from None
    if option_type == BOOLEAN:
        if not isinstance(value, bool):
            raise SlashCommandError(f"{problem} expects true/false, got {value!r}")
        return value
    if option_type == NUMBER:
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
            raise SlashCommandError(f"{problem} expects a number, got {value!r}")
        try:
            # Discord transmits NUMBER options as JSON (double) numbers.
            return float(Decimal(str(value)))
        except ArithmeticError:
            raise SlashCommandError(f"{problem} expects a number, got {value!r}") from None
    if option_type in (USER, MENTIONABLE) and not isinstance(value, RoleSpec):
        user = world.user(value) if isinstance(value, UserSpec | str | int) else None
        if user is None:
            raise SlashCommandError(f"{problem} expects a user, got {value!r}")
        resolved.setdefault("users", {})[str(user.id)] = user_payload(user)
        member = guild.member(user.id) if guild is not None else None
        if guild is not None and member is not None:
            permissions = world.guild_permissions(guild, user.id)
            resolved.setdefault("members", {})[str(user.id)] = member_payload(
                member, with_user=False, permissions=permissions
            )
        return str(user.id)
    if option_type in (ROLE, MENTIONABLE):
        if guild is None:
            raise SlashCommandError(f"{problem}: roles only exist in guilds")
        role = value if isinstance(value, RoleSpec) else guild.role(str(value))
        resolved.setdefault("roles", {})[str(role.id)] = role_payload(guild, role.id)
        return str(role.id)
    if option_type == CHANNEL:
        channel = world.channel(value) if isinstance(value, ChannelSpec | str | int) else None
        if channel is None or channel.kind is not ChannelKind.TEXT:
            raise SlashCommandError(f"{problem} expects a text channel, got {value!r}")
        resolved.setdefault("channels", {})[str(channel.id)] = {
            "id": str(channel.id),
            "type": int(channel.kind),
            "name": channel.name,
            "permissions": str(world.permissions_for(channel, world.bot.id)),
            "parent_id": None,
        }
        return str(channel.id)
    raise SlashCommandError(f"{problem}: option type {option_type} is not supported")


def _check_constraints(definition: JSON, wire: Any, where: str, key: str) -> None:
    problem = f"{where} option {key!r}"
    choices = definition.get("choices")
    if choices and wire not in [c["value"] for c in choices]:
        allowed = ", ".join(str(c["value"]) for c in choices)
        raise SlashCommandError(f"{problem} must be one of: {allowed}")
    if isinstance(wire, int | float) and not isinstance(wire, bool):
        low, high = definition.get("min_value"), definition.get("max_value")
        if low is not None and wire < low:
            raise SlashCommandError(f"{problem} must be at least {low}")
        if high is not None and wire > high:
            raise SlashCommandError(f"{problem} must be at most {high}")
    if isinstance(wire, str) and definition.get("type") == STRING:
        low, high = definition.get("min_length"), definition.get("max_length")
        if low is not None and len(wire) < low:
            raise SlashCommandError(f"{problem} must be at least {low} characters")
        if high is not None and len(wire) > high:
            raise SlashCommandError(f"{problem} must be at most {high} characters")
