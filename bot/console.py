"""The offline console: `python -m bot --console`.

Runs the real bot against the local Discord stand-in and the in-process paper exchange,
one input line per message. Lines are `!tt …` messages (or anything else a user could type)
or directives:

    /as <user>           speak as admin | trader | viewer | outsider
    /in <channel>        speak in #trading | #general
    /click <label>       press a button on the latest bot message that has it
    /wait <seconds>      let simulated time pass (the market moves, chases step, orders fill)
    /slash tt <sub> …    run a slash command instead of a message
    /help                this list
    /quit                exit

Every bot message is printed as it appears or changes. Works from a terminal or a pipe, and
exits 0 at the end of input once pending work has settled.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shlex
import sys
from collections.abc import Callable
from typing import Any, TextIO

from bot.config import Config
from bot.localdiscord import LocalDiscord, OutputEvent, SlashCommandError, render_message
from bot.localstack import LocalStack, StackOptions, local_stack

__all__ = ["BANNER", "Console", "run_console"]

BANNER = """\
tt-bot offline console — the real bot, running offline on the built-in paper exchange.
No Discord connection and no credentials are used. To connect to Discord instead, set
DISCORD_TOKEN in .env (copy config.example.env) and run `make run` again.

Server "Trading Desk": #trading (enabled) and #general (not enabled).
Users: admin, trader, viewer, outsider. You are admin in #trading.
Type `!tt help` for commands, /help for console directives.
"""

DIRECTIVES = """\
/as <user>          speak as admin, trader, viewer or outsider
/in <channel>       speak in #trading or #general
/click <label>      press a button (Confirm, Cancel, Next, Prev) on the latest bot message
/wait <seconds>     let simulated time pass: the market moves, chases step, orders fill
/slash tt <sub> …   send a slash command, e.g. /slash tt buy 1 SPY @ mid
/quit               exit"""

MAX_WAIT_SECONDS = 3600.0


class Console:
    def __init__(self, stack: LocalStack, out: TextIO) -> None:
        self.stack = stack
        self.discord: LocalDiscord = stack.discord
        self.out = out
        self.user = "admin"
        self.channel = "#trading"
        self._printed_versions: dict[int, int] = {}

    # -- output ----------------------------------------------------------------------------

    def show(self, event: OutputEvent) -> None:
        record = event.message
        if event.kind == "delete":
            return
        if record.loading:  # a deferred slash reply: the real answer follows as an edit
            return
        version = len(record.history)
        if self._printed_versions.get(record.id) == version:
            return
        self._printed_versions[record.id] = version
        self.write(render_message(record) + "\n")

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    # -- input -----------------------------------------------------------------------------

    async def handle(self, line: str) -> bool:
        """Run one input line; False means quit."""
        text = line.strip()
        if not text:
            return True
        if text.startswith("/"):
            return await self._directive(text)
        try:
            await self.discord.say(self.user, self.channel, self.as_discord_client(text))
        except (ValueError, LookupError) as exc:
            self.write(f"! {exc}\n")
        await self.stack.settle()
        return True

    def as_discord_client(self, text: str) -> str:
        """Turn `#channel` and `@Role`/`@user` into mentions, as the Discord client does."""
        guild = self.discord.world.guilds[0]

        def channel(match: re.Match[str]) -> str:
            try:
                return guild.channel(match.group(1)).mention
            except LookupError:
                return match.group(0)

        def role_or_user(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in ("everyone", "here"):
                return match.group(0)  # sent as typed; the bot must never ping them
            try:
                return guild.role(name).mention
            except LookupError:
                pass
            try:
                return self.discord.world.user(name).mention
            except LookupError:
                return match.group(0)

        text = re.sub(r"(?<![<\w])#([\w-]+)", channel, text)
        return re.sub(r"(?<![<\w])@([A-Za-z][\w-]*)", role_or_user, text)

    async def _directive(self, text: str) -> bool:
        name, _, rest = text.partition(" ")
        rest = rest.strip()
        handlers: dict[str, Callable[[str], Any]] = {
            "/as": self._as,
            "/in": self._in,
            "/click": self._click,
            "/wait": self._wait,
            "/slash": self._slash,
        }
        if name in ("/quit", "/exit"):
            return False
        if name == "/help":
            self.write(DIRECTIVES + "\n")
            return True
        handler = handlers.get(name)
        if handler is None:
            self.write(f"! unknown directive {name}; /help lists them\n")
            return True
        try:
            await handler(rest)
        except (ValueError, LookupError, SlashCommandError) as exc:
            self.write(f"! {exc}\n")
        await self.stack.settle()
        return True

    async def _as(self, rest: str) -> None:
        user = self.discord.world.user(rest.lstrip("@"))
        self.user = user.name
        self.write(f"(you are now {user.name})\n")

    async def _in(self, rest: str) -> None:
        channel = self.discord.world.channel("#" + rest.lstrip("#"))
        self.channel = channel.label
        self.write(f"(you are now in {channel.label})\n")

    async def _click(self, rest: str) -> None:
        if not rest:
            raise ValueError("which button? e.g. /click Confirm")
        interaction = await self.discord.click(self.user, rest, channel=self.channel)
        if interaction.failed:
            self.write("! the bot did not answer that click (interaction failed)\n")

    async def _wait(self, rest: str) -> None:
        try:
            seconds = float(rest.rstrip("s"))
        except ValueError:
            raise ValueError("how long? e.g. /wait 30") from None
        if not 0 < seconds <= MAX_WAIT_SECONDS:
            raise ValueError(f"wait between 0 and {MAX_WAIT_SECONDS:g} seconds")
        self.write(f"(… {seconds:g} s pass)\n")
        await self.stack.advance(seconds)

    async def _slash(self, rest: str) -> None:
        parts = rest.split(maxsplit=2)
        if len(parts) < 2 or parts[0] != "tt":
            raise ValueError("use /slash tt <command> [arguments], e.g. /slash tt quote SPY")
        command = parts[1]
        argument_text = parts[2] if len(parts) > 2 else ""
        subcommand, options = self._slash_options(command, argument_text)
        interaction = await self.discord.slash(self.user, self.channel, "tt", subcommand, options)
        if interaction.failed:
            self.write("! the bot did not answer (interaction failed)\n")

    def _slash_options(self, command: str, text: str) -> tuple[str, dict[str, Any]]:
        """Map `buy 1 SPY @ mid` onto the slash command's parameters (the last takes the rest)."""
        group = self.stack.bot.tree.get_command("tt")
        if group is None:
            raise LookupError("the bot has no /tt command")
        node: Any = group
        path = [command]
        node = node.get_command(command) if hasattr(node, "get_command") else None
        if node is None:
            raise LookupError(f"/tt has no subcommand {command!r}")
        words = shlex.split(text) if text else []
        if hasattr(node, "get_command") and words:  # a subgroup: channels add …
            sub = node.get_command(words[0])
            if sub is None:
                raise LookupError(f"/tt {command} has no subcommand {words[0]!r}")
            node = sub
            path.append(words.pop(0))
        parameters = list(getattr(node, "parameters", []))
        options: dict[str, Any] = {}
        for index, parameter in enumerate(parameters):
            if not words:
                break
            if index == len(parameters) - 1:
                value: Any = " ".join(words)
                words = []
            else:
                value = words.pop(0)
            options[parameter.name] = self._option_value(parameter, value)
        return " ".join(path), options

    def _option_value(self, parameter: Any, value: str) -> Any:
        kind = getattr(getattr(parameter, "type", None), "name", "")
        world = self.discord.world
        if kind == "integer":
            return int(value)
        if kind == "boolean":
            return value.lower() in ("1", "true", "yes", "on")
        if kind == "channel":
            return world.channel("#" + value.lstrip("#"))
        if kind == "role":
            return world.guilds[0].role(value.lstrip("@"))
        if kind == "user":
            return world.user(value.lstrip("@"))
        return value


async def _lines(stream: TextIO) -> Any:
    while True:
        line = await asyncio.to_thread(stream.readline)
        if not line:
            return
        yield line


async def run_console(
    config: Config,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    options: StackOptions | None = None,
) -> int:
    """Run the console until /quit or end of input; returns the exit status."""
    source = stdin or sys.stdin
    out = stdout or sys.stdout
    out.write(BANNER + "\n")
    out.flush()
    # discord.py warns about optional voice libraries on every start; irrelevant here.
    logging.getLogger("discord.client").setLevel(logging.ERROR)
    async with local_stack(config, options or StackOptions(seed=config.paper_seed)) as stack:
        console = Console(stack, out)
        unsubscribe = stack.discord.on_output(console.show)
        try:
            async for line in _lines(source):
                if source.isatty() is False:
                    out.write(f"> {line.rstrip()}\n")
                if not await console.handle(line):
                    break
            await stack.settle()
        finally:
            unsubscribe()
    return 0
