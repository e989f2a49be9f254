"""The `tt` extension: one cog composed from the feature mixins, so `!tt` / `/tt` is one group."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cogs.tt.account import AccountCommands
from cogs.tt.admin import AdminCommands
from cogs.tt.help import HelpCommands
from cogs.tt.orders import OrderCommands

if TYPE_CHECKING:
    from bot.client import TTBot


class TT(OrderCommands, AccountCommands, AdminCommands, HelpCommands):
    """tt-bot commands."""


async def setup(bot: TTBot) -> None:
    await bot.add_cog(TT(bot))
