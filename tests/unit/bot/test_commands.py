"""Every `tt` command documents itself, has a tier, and the slash tree fits Discord's limits."""

from __future__ import annotations

from discord import app_commands
from discord.ext import commands

from bot.tiers import required_tier
from cogs.tt import TT


def _commands() -> list[commands.Command[object, ..., object]]:
    group = TT.tt
    assert isinstance(group, commands.Group)
    return list(group.walk_commands())


def test_every_command_has_help_examples_and_a_tier() -> None:
    missing = []
    for command in _commands():
        path = command.qualified_name.removeprefix("tt ")
        if command.hidden:
            continue
        if not command.short_doc:
            missing.append(f"{path}: no help text")
        if not command.extras.get("examples"):
            missing.append(f"{path}: no example")
        if required_tier(path) is None:
            missing.append(f"{path}: no tier")
        for example in command.extras.get("examples", []):
            if not example.startswith(f"!tt {command.qualified_name.split(' ', 1)[1]}"):
                missing.append(f"{path}: example {example!r} does not use the command")
    assert missing == []


def test_slash_tree_fits_discord_limits() -> None:
    app = TT.tt.app_command
    assert isinstance(app, app_commands.Group)
    children = app.commands
    assert len(children) <= 25
    names = {c.name for c in children}
    assert "help" not in names and "sandbox" not in names and "slashsync" not in names
    for command in app.walk_commands():
        assert 1 <= len(command.name) <= 32 and command.name == command.name.lower()
        assert 1 <= len(command.description) <= 100, command.qualified_name
