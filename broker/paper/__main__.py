"""Standalone exchange: `python -m broker.paper --port P --seed S [--token-ttl SECONDS]`."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from broker.paper.config import MIN_TOKEN_TTL, PaperConfig
from broker.paper.exchange import PaperExchange


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m broker.paper", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = any free)")
    parser.add_argument("--seed", type=int, default=0, help="market simulation seed")
    parser.add_argument(
        "--token-ttl", type=int, default=900, help=f"access-token lifetime (>= {MIN_TOKEN_TTL})"
    )
    args = parser.parse_args(argv)
    if args.token_ttl < MIN_TOKEN_TTL:
        parser.error(f"--token-ttl must be at least {MIN_TOKEN_TTL}")
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    return args


async def _serve(config: PaperConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with PaperExchange(config) as exchange:
        print(f"api: {exchange.api_url}", flush=True)
        print(f"streamer: {exchange.streamer_url}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    config = PaperConfig(seed=args.seed, token_ttl=args.token_ttl, port=args.port)
    try:
        asyncio.run(_serve(config))
    except OSError as error:
        print(f"cannot start the paper exchange: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
