import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from bot.simclock import ManualClock


class Market:
    """The smallest real thing that has a time: seconds stepped so far."""

    def __init__(self) -> None:
        self.start = datetime(2025, 1, 2, 15, tzinfo=UTC)
        self.seconds = 0.0
        self.steps: list[float] = []

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.seconds)

    def step(self, seconds: float) -> None:
        self.seconds += seconds
        self.steps.append(seconds)


async def test_sleepers_wake_only_when_simulated_time_passes() -> None:
    market = Market()
    clock = ManualClock(market.now, market.step, step_seconds=1.0)
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(f"{name}@{market.seconds:g}")

    tasks = [asyncio.create_task(sleeper("a", 2.5)), asyncio.create_task(sleeper("b", 1))]
    await asyncio.sleep(0.05)
    assert woke == []  # real time alone does nothing
    await clock.advance(3)
    await asyncio.gather(*tasks)
    assert woke == ["b@1", "a@3"]
    assert market.steps == [1.0, 1.0, 1.0]
    assert clock.now() == market.start + timedelta(seconds=3)


async def test_partial_steps_and_zero_sleep() -> None:
    market = Market()
    clock = ManualClock(market.now, market.step, step_seconds=2.0)
    await clock.sleep(0)
    await clock.advance(5)
    assert market.steps == [2.0, 2.0, 1.0]
    assert clock.elapsed == pytest.approx(5)
    with pytest.raises(ValueError):
        await clock.advance(-1)


async def test_async_market_step_is_awaited() -> None:
    stepped: list[float] = []

    async def step(seconds: float) -> None:
        await asyncio.sleep(0)
        stepped.append(seconds)

    clock = ManualClock(lambda: datetime.now(UTC), step, step_seconds=0.5)
    await clock.advance(1)
    assert stepped == [0.5, 0.5]
