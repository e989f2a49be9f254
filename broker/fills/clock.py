"""Injected time for the fill-retry engine.

Production uses :class:`RealClock` (UTC wall time + ``asyncio.sleep``). Tests, the benchmark and
the offline console use :class:`SimulatedClock`, whose ``sleep`` advances a simulated market
(e.g. the paper exchange's clock) instead of waiting, so a chase with 5-second intervals runs in
milliseconds and deterministically.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "RealClock", "SimulatedClock"]


class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, timezone-aware."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Let ``seconds`` of (real or simulated) time pass."""
        ...


class RealClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class SimulatedClock:
    """``sleep(s)`` calls ``advance(s)`` (sync or async) and yields to the event loop.

    ``settle_s`` is a short *real* pause after each advance so that work triggered by the
    advance (the exchange evaluating fills, streamer messages) gets to run first.
    """

    def __init__(
        self,
        now: Callable[[], datetime],
        advance: Callable[[float], Awaitable[object] | object],
        *,
        settle_s: float = 0.0,
    ) -> None:
        self._now = now
        self._advance = advance
        self._settle_s = settle_s

    def now(self) -> datetime:
        value = self._now()
        if value.tzinfo is None:
            raise ValueError("SimulatedClock.now() must return a timezone-aware datetime")
        return value

    async def sleep(self, seconds: float) -> None:
        result = self._advance(seconds)
        if inspect.isawaitable(result):
            await result
        await asyncio.sleep(self._settle_s)
