"""Exponential backoff with full jitter (AWS architecture blog: "full jitter")."""

from __future__ import annotations

import asyncio
import random

from broker.session.types import RetryPolicy


def full_jitter_delay(policy: RetryPolicy, retry_index: int, rng: random.Random) -> float:
    """A delay drawn uniformly from [0, min(max_delay, base_delay * 2**retry_index)]."""
    return rng.uniform(0.0, policy.backoff_ceiling(retry_index))


async def sleep_before_retry(policy: RetryPolicy, retry_index: int, rng: random.Random) -> float:
    delay = full_jitter_delay(policy, retry_index, rng)
    await asyncio.sleep(delay)
    return delay
