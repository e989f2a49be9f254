"""Per-guild settings for the Discord layer: cached reads, validated writes.

Wraps `storage`'s guild repository with an in-memory cache (invalidated on every write) so
the permission gate can run on every command without a database round trip, and turns
admin input (`!tt limits set max_quantity 5`) into validated, typed updates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from broker.service.errors import ServiceError
from broker.service.models import GuildView
from broker.session import Environment
from storage.database import Database
from storage.errors import StorageError
from storage.guilds import MAX_CHASE_STEPS, GuildSettings

__all__ = ["LIMIT_NAMES", "GuildSettingsStore", "guild_view", "parse_limit"]

_ON = {"on", "yes", "true", "1", "enable", "enabled"}
_OFF = {"off", "no", "false", "0", "disable", "disabled"}


def _money(name: str) -> Callable[[str], dict[str, Any]]:
    def parse(text: str) -> dict[str, Any]:
        if text.lower() in {"none", "off", "unlimited"}:
            return {name: None}
        try:
            value = Decimal(text.replace(",", "").lstrip("$"))
        except InvalidOperation:
            raise ServiceError(f"`{name}` needs a number (or `none`), not {text[:20]!r}.") from None
        if not value.is_finite() or value < 0:
            raise ServiceError(f"`{name}` must be zero or more.")
        return {name: value}

    return parse


def _flag(name: str) -> Callable[[str], dict[str, Any]]:
    def parse(text: str) -> dict[str, Any]:
        lowered = text.lower()
        if lowered in _ON:
            return {name: True}
        if lowered in _OFF:
            return {name: False}
        raise ServiceError(f"`{name}` is `on` or `off`.")

    return parse


def _integer(name: str, low: int, high: int) -> Callable[[str], dict[str, Any]]:
    def parse(text: str) -> dict[str, Any]:
        try:
            value = int(text)
        except ValueError:
            raise ServiceError(f"`{name}` needs a whole number from {low} to {high}.") from None
        if not low <= value <= high:
            raise ServiceError(f"`{name}` must be from {low} to {high}.")
        return {name: value}

    return parse


def _seconds(name: str) -> Callable[[str], dict[str, Any]]:
    def parse(text: str) -> dict[str, Any]:
        try:
            value = float(text.rstrip("s"))
        except ValueError:
            raise ServiceError(f"`{name}` needs a number of seconds.") from None
        if not 0.1 <= value <= 3600:
            raise ServiceError(f"`{name}` must be between 0.1 and 3600 seconds.")
        return {name: value}

    return parse


# user-facing name -> parser producing `GuildsRepository.update` keyword arguments
_LIMIT_PARSERS: dict[str, Callable[[str], dict[str, Any]]] = {
    "max_quantity": _money("max_quantity"),
    "max_notional": _money("max_notional"),
    "max_loss": _money("max_loss"),
    "skip_confirm": lambda text: {"skip_confirmation": _flag("skip_confirm")(text)["skip_confirm"]},
    "chase_ticks": _integer("chase_ticks", 1, 3),
    "chase_steps": lambda text: {
        "chase_max_steps": _integer("chase_steps", 0, MAX_CHASE_STEPS)(text)["chase_steps"]
    },
    "chase_interval": lambda text: {
        "chase_interval_seconds": _seconds("chase_interval")(text)["chase_interval"]
    },
}
LIMIT_NAMES = tuple(_LIMIT_PARSERS)


def _show_money(value: Decimal | None, dollars: bool) -> str:
    if value is None:
        return "default"
    return f"${value:,.2f}" if dollars else f"{value.normalize():f}"


def guild_view(settings: GuildSettings) -> GuildView:
    return GuildView(
        guild_id=settings.guild_id,
        environment=Environment(settings.environment),
        allowed_channel_ids=frozenset(settings.allowed_channel_ids),
        role_tiers=dict(settings.role_tiers),
        notification_channel_id=settings.notification_channel_id,
        halted=settings.halted,
        skip_confirmation=settings.skip_confirmation,
        limits={
            "max_quantity": _show_money(settings.max_quantity, dollars=False),
            "max_notional": _show_money(settings.max_notional, dollars=True),
            "max_loss": _show_money(settings.max_loss, dollars=True),
            "skip_confirm": "on" if settings.skip_confirmation else "off",
            "chase_ticks": str(settings.chase_ticks),
            "chase_steps": str(settings.chase_max_steps),
            "chase_interval": f"{settings.chase_interval_seconds:g} s",
        },
    )


def parse_limit(name: str, value: str) -> dict[str, Any]:
    """`!tt limits set <name> <value>` as repository update fields (raises `ServiceError`)."""
    parser = _LIMIT_PARSERS.get(name)
    if parser is None:
        raise ServiceError(f"Unknown setting `{name[:30]}`. Settings: {', '.join(LIMIT_NAMES)}.")
    return parser(value)


class GuildSettingsStore:
    """Cached guild settings. New guilds start in `default_environment` (never live)."""

    def __init__(
        self,
        db: Database,
        default_environment: Environment,
        *,
        chase_defaults: dict[str, Any] | None = None,
    ) -> None:
        if default_environment is Environment.LIVE:
            raise ValueError("the default environment can never be live")
        self._db = db
        self._default = default_environment
        self._chase_defaults = chase_defaults or {}
        self._cache: dict[int, GuildSettings] = {}
        self._lock = asyncio.Lock()

    @property
    def default_environment(self) -> Environment:
        return self._default

    async def get(self, guild_id: int) -> GuildSettings:
        cached = self._cache.get(guild_id)
        if cached is not None:
            return cached
        async with self._lock:
            settings = await self._db.guilds.get(guild_id)
            if settings is None:
                settings = await self._db.guilds.create_default(guild_id, self._default.value)
                if self._chase_defaults:
                    settings = await self._db.guilds.update(guild_id, **self._chase_defaults)
            self._cache[guild_id] = settings
            return settings

    async def view(self, guild_id: int) -> GuildView:
        return guild_view(await self.get(guild_id))

    async def update(self, guild_id: int, **changes: Any) -> GuildSettings:
        await self.get(guild_id)  # creates defaults for a new guild
        try:
            settings = await self._db.guilds.update(guild_id, **changes)
        except StorageError as exc:
            raise ServiceError(str(exc)) from None
        finally:
            self._cache.pop(guild_id, None)
        self._cache[guild_id] = settings
        return settings

    async def allow_channel(self, guild_id: int, channel_id: int, allowed: bool) -> GuildView:
        current = await self.get(guild_id)
        channels = set(current.allowed_channel_ids)
        if allowed:
            channels.add(channel_id)
        else:
            channels.discard(channel_id)
            if current.notification_channel_id == channel_id:
                await self.update(guild_id, notification_channel_id=None)
        return guild_view(await self.update(guild_id, allowed_channel_ids=frozenset(channels)))

    async def set_role_tier(self, guild_id: int, role_id: int, tier: str | None) -> GuildView:
        current = await self.get(guild_id)
        tiers = dict(current.role_tiers)
        if tier is None:
            if role_id not in tiers:
                raise ServiceError("That role has no tier.")
            del tiers[role_id]
        else:
            tiers[role_id] = tier
        return guild_view(await self.update(guild_id, role_tiers=tiers))

    async def set_limit(self, guild_id: int, name: str, value: str) -> GuildView:
        parser = _LIMIT_PARSERS.get(name)
        if parser is None:
            raise ServiceError(
                f"Unknown setting `{name[:30]}`. Settings: {', '.join(LIMIT_NAMES)}."
            )
        changes = parser(value)
        if changes.get("skip_confirmation"):
            current = await self.get(guild_id)
            if current.environment == Environment.LIVE.value:
                raise ServiceError("Confirmation can never be skipped in live.")
        return guild_view(await self.update(guild_id, **changes))
