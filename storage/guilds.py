"""Per-guild settings: environment, permissions, limits, kill switch, chase parameters.

Invariants enforced here (and by CHECK constraints underneath):
- a new guild never starts in ``live`` (`create_default` refuses it);
- confirmation skipping is only possible in ``paper`` / ``sandbox``;
- chase ticks are 1-3, max steps 0-10, the interval positive; limits are non-negative.
`update` changes only the fields passed, validating the result in the same transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from storage import codec
from storage.errors import InvalidValueError, NotFoundError

if TYPE_CHECKING:
    from storage.database import Database

MAX_CHASE_STEPS: Final = 10


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


@dataclass(frozen=True, slots=True)
class GuildSettings:
    guild_id: int
    environment: str
    allowed_channel_ids: frozenset[int] = field(default_factory=frozenset)
    role_tiers: Mapping[int, str] = field(default_factory=dict)  # role id -> tier name
    max_quantity: Decimal | None = None
    max_notional: Decimal | None = None
    max_loss: Decimal | None = None
    notification_channel_id: int | None = None
    halted: bool = False
    skip_confirmation: bool = False
    default_account_paper: str | None = None
    default_account_sandbox: str | None = None
    default_account_live: str | None = None
    chase_interval_seconds: float = 20.0
    chase_ticks: int = 2
    chase_max_steps: int = 3
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def default_account(self, environment: str) -> str | None:
        """The default account number for `environment` (None when not chosen yet)."""
        env = codec.environment(environment)
        return {
            "paper": self.default_account_paper,
            "sandbox": self.default_account_sandbox,
            "live": self.default_account_live,
        }[env]

    def channel_allowed(self, channel_id: int) -> bool:
        """True when the guild allows trading commands there (no list: every channel)."""
        return not self.allowed_channel_ids or channel_id in self.allowed_channel_ids


_COLUMNS: Final = (
    "guild_id, environment, allowed_channel_ids, role_tiers, max_quantity, max_notional, "
    "max_loss, notification_channel_id, halted, skip_confirmation, default_account_paper, "
    "default_account_sandbox, default_account_live, chase_interval_seconds, chase_ticks, "
    "chase_max_steps, created_at, updated_at"
)


def _from_row(row: sqlite3.Row) -> GuildSettings:
    return GuildSettings(
        guild_id=row["guild_id"],
        environment=row["environment"],
        allowed_channel_ids=frozenset(json.loads(row["allowed_channel_ids"])),
        role_tiers={int(role): tier for role, tier in json.loads(row["role_tiers"]).items()},
        max_quantity=codec.to_dec_opt(row["max_quantity"]),
        max_notional=codec.to_dec_opt(row["max_notional"]),
        max_loss=codec.to_dec_opt(row["max_loss"]),
        notification_channel_id=row["notification_channel_id"],
        halted=bool(row["halted"]),
        skip_confirmation=bool(row["skip_confirmation"]),
        default_account_paper=row["default_account_paper"],
        default_account_sandbox=row["default_account_sandbox"],
        default_account_live=row["default_account_live"],
        chase_interval_seconds=float(row["chase_interval_seconds"]),
        chase_ticks=row["chase_ticks"],
        chase_max_steps=row["chase_max_steps"],
        created_at=codec.from_ts(row["created_at"]),
        updated_at=codec.from_ts(row["updated_at"]),
    )


def _validate(settings: GuildSettings) -> None:
    codec.environment(settings.environment)
    if settings.skip_confirmation and settings.environment == "live":
        raise InvalidValueError(
            "confirmation skipping is only allowed in paper or sandbox; turn it off before "
            "switching to live"
        )
    for name in ("max_quantity", "max_notional", "max_loss"):
        value = getattr(settings, name)
        if value is not None:
            codec.non_negative(value, name)
    for role, tier in settings.role_tiers.items():
        if tier not in codec.TIERS:
            raise InvalidValueError(
                f"role {role}: unknown tier {tier!r}; use one of {', '.join(codec.TIERS)}"
            )
    if not 1 <= settings.chase_ticks <= 3:
        raise InvalidValueError(f"chase ticks must be 1, 2 or 3 (got {settings.chase_ticks})")
    if not 0 <= settings.chase_max_steps <= MAX_CHASE_STEPS:
        raise InvalidValueError(
            f"chase max steps must be between 0 and {MAX_CHASE_STEPS} "
            f"(got {settings.chase_max_steps})"
        )
    if not settings.chase_interval_seconds > 0:
        raise InvalidValueError(
            f"chase interval must be a positive number of seconds "
            f"(got {settings.chase_interval_seconds})"
        )


def _params(settings: GuildSettings, now: str) -> tuple[Any, ...]:
    return (
        settings.guild_id,
        settings.environment,
        json.dumps(sorted(settings.allowed_channel_ids)),
        json.dumps({str(role): tier for role, tier in sorted(settings.role_tiers.items())}),
        codec.dec_opt(settings.max_quantity, "max_quantity"),
        codec.dec_opt(settings.max_notional, "max_notional"),
        codec.dec_opt(settings.max_loss, "max_loss"),
        settings.notification_channel_id,
        codec.flag(settings.halted),
        codec.flag(settings.skip_confirmation),
        settings.default_account_paper,
        settings.default_account_sandbox,
        settings.default_account_live,
        float(settings.chase_interval_seconds),
        settings.chase_ticks,
        settings.chase_max_steps,
        now,
        now,
    )


class GuildsRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, guild_id: int) -> GuildSettings | None:
        row = await self._db.fetch_one(
            f"SELECT {_COLUMNS} FROM guild_settings WHERE guild_id = ?", (guild_id,)
        )
        return None if row is None else _from_row(row)

    async def require(self, guild_id: int) -> GuildSettings:
        settings = await self.get(guild_id)
        if settings is None:
            raise NotFoundError(f"guild {guild_id} has no settings yet")
        return settings

    async def create_default(self, guild_id: int, environment: str) -> GuildSettings:
        """Insert default settings for a new guild (never ``live``); keep an existing row."""
        env = codec.environment(environment)
        if env == "live":
            raise InvalidValueError(
                "a new guild never starts in live; start in paper or sandbox and switch explicitly"
            )
        defaults = GuildSettings(guild_id=guild_id, environment=env)
        now = codec.ts(self._db.clock(), "now")
        async with self._db.transaction():
            await self._db.execute(
                f"INSERT INTO guild_settings ({_COLUMNS}) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (guild_id) DO NOTHING",
                _params(defaults, now),
            )
            return await self.require(guild_id)

    async def get_or_create(self, guild_id: int, default_environment: str) -> GuildSettings:
        """The guild's settings, creating defaults in `default_environment` (never live)."""
        existing = await self.get(guild_id)
        if existing is not None:
            return existing
        return await self.create_default(guild_id, default_environment)

    async def update(
        self,
        guild_id: int,
        *,
        environment: str | _Unset = UNSET,
        allowed_channel_ids: frozenset[int] | set[int] | _Unset = UNSET,
        role_tiers: Mapping[int, str] | _Unset = UNSET,
        max_quantity: Decimal | _Unset | None = UNSET,
        max_notional: Decimal | _Unset | None = UNSET,
        max_loss: Decimal | _Unset | None = UNSET,
        notification_channel_id: int | _Unset | None = UNSET,
        halted: bool | _Unset = UNSET,
        skip_confirmation: bool | _Unset = UNSET,
        default_account_paper: str | _Unset | None = UNSET,
        default_account_sandbox: str | _Unset | None = UNSET,
        default_account_live: str | _Unset | None = UNSET,
        chase_interval_seconds: float | _Unset = UNSET,
        chase_ticks: int | _Unset = UNSET,
        chase_max_steps: int | _Unset = UNSET,
    ) -> GuildSettings:
        """Change the given fields (others untouched) and return the stored result."""
        changes: dict[str, Any] = {
            name: value
            for name, value in {
                "environment": environment,
                "allowed_channel_ids": allowed_channel_ids,
                "role_tiers": role_tiers,
                "max_quantity": max_quantity,
                "max_notional": max_notional,
                "max_loss": max_loss,
                "notification_channel_id": notification_channel_id,
                "halted": halted,
                "skip_confirmation": skip_confirmation,
                "default_account_paper": default_account_paper,
                "default_account_sandbox": default_account_sandbox,
                "default_account_live": default_account_live,
                "chase_interval_seconds": chase_interval_seconds,
                "chase_ticks": chase_ticks,
                "chase_max_steps": chase_max_steps,
            }.items()
            if not isinstance(value, _Unset)
        }
        if "allowed_channel_ids" in changes:
            changes["allowed_channel_ids"] = frozenset(changes["allowed_channel_ids"])
        if "role_tiers" in changes:
            changes["role_tiers"] = dict(changes["role_tiers"])
        if "environment" in changes:
            changes["environment"] = codec.environment(changes["environment"])
        async with self._db.transaction():
            current = await self.require(guild_id)
            fields = {name: getattr(current, name) for name in current.__dataclass_fields__}
            fields.update(changes)
            updated = GuildSettings(**fields)
            _validate(updated)
            params = _params(updated, codec.ts(self._db.clock(), "now"))
            await self._db.execute(
                "UPDATE guild_settings SET environment = ?, allowed_channel_ids = ?, "
                "role_tiers = ?, max_quantity = ?, max_notional = ?, max_loss = ?, "
                "notification_channel_id = ?, halted = ?, skip_confirmation = ?, "
                "default_account_paper = ?, default_account_sandbox = ?, "
                "default_account_live = ?, chase_interval_seconds = ?, chase_ticks = ?, "
                "chase_max_steps = ?, updated_at = ? WHERE guild_id = ?",
                (*params[1:16], params[17], guild_id),
            )
            return await self.require(guild_id)
