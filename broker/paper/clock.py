"""The exchange clock: wall time (optionally frozen) plus an advanceable offset."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class SimClock:
    """Timezone-aware UTC clock used for tokens, timestamps and the market simulation.

    `advance()` moves the clock forward and synchronously notifies listeners, so the
    market and the order book catch up before `advance()` returns.
    """

    def __init__(self, start: datetime | None = None, real_time: bool = True) -> None:
        self._start = (start or datetime.now(UTC)).astimezone(UTC)
        self._mono_start = time.monotonic()
        self._real_time = real_time
        self._offset = 0.0
        self._listeners: list[Callable[[], None]] = []

    @property
    def start(self) -> datetime:
        return self._start

    @property
    def real_time(self) -> bool:
        return self._real_time

    def elapsed(self) -> float:
        """Seconds of exchange time since the clock started."""
        wall = time.monotonic() - self._mono_start if self._real_time else 0.0
        return wall + self._offset

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.elapsed())

    def timestamp(self) -> float:
        return self._start.timestamp() + self.elapsed()

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward by `seconds` (>= 0) and let the exchange catch up."""
        if seconds < 0:
            raise ValueError("the exchange clock cannot go backwards")
        self._offset += seconds
        for listener in list(self._listeners):
            listener()
        return self.now()

    def add_listener(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)
