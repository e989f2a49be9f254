"""`python -m bot` / `tt-bot`: run the bot on Discord, or the offline console without a token.

python -m bot              # Discord if DISCORD_TOKEN is set, else the offline console
python -m bot --console    # always the offline console (paper exchange, no network)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

from bot.config import Config, ConfigError, load_config
from bot.logging import configure_logging
from broker.secrets import redact

EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tt-bot", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--console",
        action="store_true",
        help="run the offline console (local Discord stand-in + paper exchange)",
    )
    parser.add_argument("--seed", type=int, default=None, help="paper market seed (console)")
    return parser


async def run_discord(config: Config) -> int:
    """Connect to Discord; SIGTERM/SIGINT close the bot and every service cleanly."""
    from bot.client import TTBot
    from bot.runtime import open_runtime

    assert config.discord_token is not None
    async with open_runtime(config) as runtime:
        bot = TTBot(
            service=runtime.service,
            owner_ids=sorted(config.discord_owner_ids),
            dev_guild_id=config.discord_dev_guild_id,
        )
        loop = asyncio.get_running_loop()
        stopping: list[asyncio.Task[None]] = []

        def stop() -> None:
            if not stopping:
                stopping.append(loop.create_task(bot.close()))

        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):  # not on Windows
                loop.add_signal_handler(signum, stop)
        async with bot:
            await bot.start(config.discord_token.reveal())
        if stopping:
            await stopping[0]
    return 0


async def run_offline(config: Config, seed: int | None) -> int:
    from bot.console import run_console
    from bot.localstack import StackOptions

    return await run_console(
        config, options=StackOptions(seed=config.paper_seed if seed is None else seed)
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config()
    except ConfigError as exc:
        print(f"tt-bot: configuration problem:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    offline = args.console or config.discord_token is None
    # The console owns the terminal: keep logs on stderr and quiet unless asked.
    level = config.log_level if not offline else "WARNING"
    configure_logging(config.log_format if not offline else "console", level, config.secrets())
    try:
        if offline:
            return asyncio.run(run_offline(config, args.seed))
        return asyncio.run(run_discord(config))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # last resort: a short message, the details in the log
        logging.getLogger("bot").exception("tt-bot stopped on an error")
        print(f"tt-bot stopped: {type(exc).__name__}: {redact(str(exc))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
