"""`!tt help`: every command with a one-line description, grouped by tier, plus examples."""

from __future__ import annotations

from typing import Any

import discord
from discord.ext import commands

from bot.errors import reply
from bot.tiers import Tier, required_tier
from cogs.tt.base import Ctx, TTBase

SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Orders (trader)", ("buy", "sell", "bto", "sto", "btc", "stc", "close", "cancel", "replace")),
    (
        "Account (viewer; sync needs trader)",
        ("orders", "positions", "balance", "history", "quote", "accounts", "status", "sync"),
    ),
    (
        "Server (admin)",
        ("env", "sandbox", "halt", "resume", "channels", "roles", "limits", "link", "unlink"),
    ),
)

ORDER_LANGUAGE = (
    "`[qty] SYMBOL [expiry] [strike C|P | S1/S2C | IC P1/P2/C1/C2] [@ price|mid|mkt] [gtc]`\n"
    "e.g. `!tt buy 10 AAPL @ 185.50` · `!tt bto 2 SPY 12/18 590P @ 1.20` · "
    "`!tt buy 1 SPY 12/18 590/595C @ 1.20` · `!tt sell 1 SPY 12/18 IC 570/575/605/610 @ 2.10 cr` · "
    "`!tt buy 1 /ESZ6 @ mid`. No price means the mid; every order shows a preview to confirm."
)


class HelpCommands(TTBase):
    @TTBase.tt.command(name="help", with_app_command=False, extras={"examples": ["!tt help buy"]})
    async def tt_help(self, ctx: Ctx, command: str | None = None) -> None:
        """List the commands, or explain one (`!tt help buy`)."""
        await self.send_help(ctx, command)

    async def send_help(self, ctx: Ctx, topic: str | None) -> None:
        if topic:
            await self._command_help(ctx, topic.strip().lower())
            return
        embed = discord.Embed(title="tt-bot commands", colour=0x5865F2)
        embed.description = (
            "Use `!tt <command>` or `/tt <command>`. Your role decides what you can run: "
            "**viewer** (read), **trader** (orders, sync), **admin** (server settings)."
        )
        for title, names in SECTIONS:
            lines = []
            for name in names:
                command: commands.Command[Any, ..., Any] | None = self.tt.get_command(name)
                if command is None:
                    continue
                lines.append(f"`{name}` — {command.short_doc}")
            embed.add_field(name=title, value="\n".join(lines)[:1024], inline=False)
        embed.add_field(name="Order language", value=ORDER_LANGUAGE[:1024], inline=False)
        embed.set_footer(text="`!tt help <command>` shows details and examples.")
        await self.send(ctx, embed=embed)

    async def _command_help(self, ctx: Ctx, topic: str) -> None:
        command: commands.Command[Any, ..., Any] | None = self.tt.get_command(topic)
        if command is None or command.hidden:
            await reply(ctx, f"No command `{topic[:30]}`. `!tt help` lists them.")
            return
        embed = discord.Embed(title=f"!tt {command.name}", colour=0x5865F2)
        signature = f" {command.signature}" if command.signature else ""
        embed.description = f"`!{command.qualified_name}{signature}`\n{command.help or ''}"
        needed = required_tier(command.name)
        if needed is not None and needed is not Tier.NONE:
            embed.add_field(name="Needs", value=f"the **{needed.label}** tier")
        if isinstance(command, commands.Group):
            subs = [f"`{sub.name}` — {sub.short_doc}" for sub in command.commands]
            embed.add_field(name="Subcommands", value="\n".join(subs)[:1024], inline=False)
        examples = command.extras.get("examples", [])
        if examples:
            embed.add_field(
                name="Examples", value="\n".join(f"`{e}`" for e in examples), inline=False
            )
        await self.send(ctx, embed=embed)
