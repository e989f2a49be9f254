"""A manually advanced clock for the offline console and end-to-end tests.

The chase engine and other timed broker work call `sleep(seconds)`; with this clock they
wait until *simulated* time has moved past their deadline. `advance(seconds)` moves it, in
small steps, stepping the paper exchange's market along (so fills can happen mid-wait) and
letting woken sleepers run before the next step. Real Discord deployments never use it.
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import itertools
from collections.abc import Awaitable, Callable
from datetime import datetime

__all__ = ["ManualClock"]


class ManualClock:
    """Satisfies the engine's `Clock` protocol (`now()`, `async sleep()`)."""

    def __init__(
        self,
        now: Callable[[], datetime],
        step_market: Callable[[float], Awaitable[object] | object],
        *,
        step_seconds: float = 1.0,
        settle: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._now = now
        self._step_market = step_market
        self._step = step_seconds
        self._settle = settle or _yield_a_little
        self._elapsed = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._ids = itertools.count()
        self._lock = asyncio.Lock()

    def now(self) -> datetime:
        return self._now()

    @property
    def elapsed(self) -> float:
        """Simulated seconds advanced so far."""
        return self._elapsed

    @property
    def sleepers(self) -> int:
        return sum(1 for _, _, fut in self._sleepers if not fut.done())

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._elapsed + seconds, next(self._ids), future))
        await future

    async def advance(self, seconds: float) -> None:
        """Let `seconds` of simulated time pass, step by step."""
        if seconds < 0:
            raise ValueError("time cannot go backwards")
        async with self._lock:
            remaining = seconds
            await self._settle()
            while remaining > 1e-9:
                step = min(self._step, remaining)
                result = self._step_market(step)
                if inspect.isawaitable(result):
                    await result
                self._elapsed += step
                remaining -= step
                self._wake_due()
                await self._settle()

    def _wake_due(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self._elapsed + 1e-9:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)


async def _yield_a_little() -> None:
    # A few loop iterations plus a short real pause: enough for woken tasks to make their
    # loopback HTTP calls to the in-process exchange and react to the answer.
    for _ in range(3):
        await asyncio.sleep(0)
    await asyncio.sleep(0.02)
