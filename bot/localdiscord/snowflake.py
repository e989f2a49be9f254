"""Time-based Discord snowflakes.

Real snowflakes carry their creation time (milliseconds since the Discord epoch, shifted left
by 22 bits). discord.py derives ``created_at`` from them and uses it to decide whether an
interaction token has expired, so every id the stand-in hands out must be realistic.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

DISCORD_EPOCH_MS = 1_420_070_400_000
_TIMESTAMP_SHIFT = 22


def snowflake_time(snowflake: int) -> datetime:
    """The UTC creation time encoded in ``snowflake``."""
    ms = (snowflake >> _TIMESTAMP_SHIFT) + DISCORD_EPOCH_MS
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class SnowflakeGenerator:
    """Hands out unique, strictly increasing snowflakes stamped with the current time.

    Use the shared `process_snowflakes` so ids stay unique across worlds in one process.
    """

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        now_ms = time.time_ns() // 1_000_000
        candidate = (now_ms - DISCORD_EPOCH_MS) << _TIMESTAMP_SHIFT
        # Several ids in the same millisecond differ in the low (increment) bits.
        self._last = max(candidate, self._last + 1)
        return self._last


process_snowflakes = SnowflakeGenerator()
