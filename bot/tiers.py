"""Permission tiers: who may run which `!tt` command.

Pure logic (no discord import) so it is trivially unit-testable. A member's tier is the
highest tier of any of their roles in the guild's role mapping; members with the Manage
Server permission are admins by default. Tiers are ordered: admin ⊃ trader ⊃ viewer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import IntEnum


class Tier(IntEnum):
    NONE = 0
    VIEWER = 1
    TRADER = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Tier:
        """Parse a user-typed tier name (viewer|trader|admin)."""
        try:
            tier = cls[text.strip().upper()]
        except KeyError:
            raise ValueError(
                f"unknown tier {text.strip()!r}: use viewer, trader or admin"
            ) from None
        if tier is cls.NONE:
            raise ValueError("unknown tier 'none': use viewer, trader or admin")
        return tier


# The minimum tier for every `!tt` subcommand (by qualified name below `tt`). A command
# missing here is refused for everyone — see `required_tier` — so forgetting an entry is
# safe rather than silently open.
COMMAND_TIERS: dict[str, Tier] = {
    "help": Tier.NONE,
    # viewer: read-only account views
    "status": Tier.VIEWER,
    "positions": Tier.VIEWER,
    "orders": Tier.VIEWER,
    "balance": Tier.VIEWER,
    "history": Tier.VIEWER,
    "quote": Tier.VIEWER,
    "accounts": Tier.VIEWER,  # listing; choosing the default needs admin (checked in the command)
    # trader: anything that places, changes or cancels orders, plus sync
    "buy": Tier.TRADER,
    "sell": Tier.TRADER,
    "bto": Tier.TRADER,
    "sto": Tier.TRADER,
    "btc": Tier.TRADER,
    "stc": Tier.TRADER,
    "close": Tier.TRADER,
    "cancel": Tier.TRADER,
    "replace": Tier.TRADER,
    "sync": Tier.TRADER,
    # admin: guild configuration, environments, credentials, kill switch
    "sandbox": Tier.ADMIN,
    "env": Tier.ADMIN,
    "halt": Tier.ADMIN,
    "resume": Tier.ADMIN,
    "channels": Tier.ADMIN,
    "roles": Tier.ADMIN,
    "limits": Tier.ADMIN,
    "link": Tier.ADMIN,
    "unlink": Tier.ADMIN,
    # bot owner only (checked separately): push the slash-command tree to Discord
    "slashsync": Tier.NONE,
}


def required_tier(command_path: str) -> Tier | None:
    """Tier needed for `tt <command_path>` (subgroups inherit their group's tier).

    Returns None for commands not in the table: callers refuse those.
    """
    head = command_path.split(" ", 1)[0]
    return COMMAND_TIERS.get(head)


def resolve_tier(
    *,
    role_ids: Iterable[int],
    role_tiers: Mapping[int, Tier],
    manage_guild: bool,
) -> Tier:
    """The member's effective tier from their roles and permissions."""
    best = Tier.ADMIN if manage_guild else Tier.NONE
    for role_id in role_ids:
        tier = role_tiers.get(role_id)
        if tier is not None and tier > best:
            best = tier
    return best
