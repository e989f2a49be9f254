"""Operator commands for the storage layer.

    python -m storage generate-key [--key-id k2]
        Print a new ``<key id>:<base64 key>`` entry for TT_BOT_ENCRYPTION_KEYS.
    python -m storage rotate-keys --db PATH
        Re-encrypt every stored credential with the active (first) key in
        TT_BOT_ENCRYPTION_KEYS; afterwards the older keys can be removed.

Run rotation while the bot is stopped: a database file has one owner at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from storage.crypto import KEYS_ENV_VAR, Keyring, generate_key_entry
from storage.database import Database
from storage.errors import StorageError


async def _rotate(path: Path, keyring: Keyring) -> int:
    async with await Database.open(path, keyring=keyring) as db:
        return await db.credentials.rotate()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m storage", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate-key", help="print a new encryption key entry")
    generate.add_argument("--key-id", default="k1", help="identifier stored with each secret")
    rotate = commands.add_parser("rotate-keys", help="re-encrypt credentials with the active key")
    rotate.add_argument("--db", required=True, type=Path, help="path of the SQLite database")
    args = parser.parse_args(argv)
    try:
        if args.command == "generate-key":
            print(generate_key_entry(args.key_id))
            print(
                f"Put it first in {KEYS_ENV_VAR} (comma-separated, keep older keys after it "
                "until `rotate-keys` has run).",
                file=sys.stderr,
            )
            return 0
        if not args.db.exists():
            print(f"error: {args.db} does not exist", file=sys.stderr)
            return 2
        count = asyncio.run(_rotate(args.db, Keyring.from_environ()))
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"re-encrypted {count} credential(s) with the active key")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
