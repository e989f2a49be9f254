"""Discord-layer latency over loopback: real bot, local Discord stand-in, paper exchange.

Two intervals per order, each split into bot-side time and exchange time:

* preview — from the `!tt buy` message being handed to the bot's gateway connection to the
  preview reaching Discord (the stand-in's HTTP handler receives the bot's POST, before it
  parses anything);
* submit  — from the Confirm click being handed to the bot's gateway connection to the
  order's arrival at the exchange (its POST /accounts/…/orders reaches the exchange's front
  door).

Discord's own work (building and sending the gateway frame, parsing the bot's request) is
outside both intervals, as it would run on Discord's machines.

The bot runs alone on the main event loop, exactly as in production. The paper exchange
runs in a separate process (as a real exchange would), and the local Discord stand-in runs
on a second event loop in its own thread, so their work does not queue behind (or in front
of) the bot's. The exchange reports every API request it served (`PaperExchange.on_served`:
when its handler got it and had the answer ready). Exchange time is the union of those
intervals inside the measured interval; bot-side time is the rest. The same reports count
HTTP round trips per order, from the message to the order's POST inclusive.

Caches are warmed first (instruments, accounts, trading status, one sync), then orders are
measured one at a time. Each order rests (the fill model never fills it by chance) and its
chase waits on a clock nobody advances, so no background traffic pollutes the counts.

The last line is: `bot overhead p50 X ms p99 Y ms, round trips N`.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import logging
import multiprocessing
import statistics
import sys
import tempfile
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.client import TTBot  # noqa: E402
from bot.config import load_config  # noqa: E402
from bot.localdiscord import (  # noqa: E402
    InteractionRecord,
    LocalDiscord,
    MessageRecord,
    OutputEvent,
    standard_world,
)
from bot.localstack import bot_busy, configure_standard_guild, trading_start_time  # noqa: E402
from bot.logging import configure_logging  # noqa: E402
from bot.runtime import RuntimeOptions, open_runtime  # noqa: E402
from bot.simclock import ManualClock  # noqa: E402
from broker.paper import FillModelConfig, PaperConfig, PaperExchange  # noqa: E402
from broker.service.brokers import PaperEndpoints  # noqa: E402
from broker.service.models import Environment  # noqa: E402

TARGET_P50_MS = 5.0
TARGET_P99_MS = 20.0
TARGET_ROUND_TRIPS = 3
T = TypeVar("T")


@dataclass
class Hit:
    method: str
    path: str
    start: float
    end: float


def exchange_process(conn: Connection, start_iso: str) -> None:
    """Child process: the paper exchange.

    Reports ("ready", api url, streamer url), then ("hit", method, path, start, end) for
    every API request served. Monotonic clocks are system-wide on Linux, so the parent can
    compare the stamps with its own.
    """

    async def serve() -> None:
        exchange = PaperExchange(
            PaperConfig(
                seed=7,
                start_time=datetime.fromisoformat(start_iso),
                real_time=False,
                fills=FillModelConfig(hazard_per_second=0.0),
            )
        )
        await exchange.start()
        exchange.market.set_quote("SPY", "10.00", "10.40")  # wide: orders rest
        exchange.on_served = lambda method, path, start, end: conn.send(
            ("hit", method, path, start, end)
        )
        conn.send(("ready", exchange.api_url, exchange.streamer_url))
        await asyncio.to_thread(conn.recv)  # any message means stop
        await exchange.stop()

    asyncio.run(serve())


class Infra:
    """The stand-in on its own event loop and thread; the exchange in its own process."""

    def __init__(self, main_loop: asyncio.AbstractEventLoop) -> None:
        self._main = main_loop
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="infra", daemon=True)
        self._thread.start()
        self.previews: dict[int, float] = {}  # message id -> when the stand-in received it
        self.order_arrivals: list[float] = []
        self.hits: list[Hit] = []
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._waiters_lock = threading.Lock()
        self.start_time = trading_start_time()
        self.discord: LocalDiscord
        self.api_url = ""
        self.streamer_url = ""
        self._conn, child = multiprocessing.Pipe()
        self._process = multiprocessing.get_context("spawn").Process(
            target=exchange_process, args=(child, self.start_time.isoformat()), daemon=True
        )

    async def call(self, factory: Callable[[], Awaitable[T]]) -> T:
        """Run `factory()` on the infra loop and await its result from the main loop."""

        async def run() -> T:
            return await factory()

        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(run(), self.loop)
        return await asyncio.wrap_future(future)

    async def start(self) -> None:
        self._process.start()
        ready = await asyncio.to_thread(self._conn.recv)
        _, self.api_url, self.streamer_url = ready

        async def setup() -> None:
            self.discord = LocalDiscord(standard_world())
            await self.discord.start()
            self.discord.on_output(self._output)
            # The exchange's reports are read here, off the bot's loop: the bot's loop only
            # wakes when a condition the benchmark waits for is met.
            self.loop.add_reader(self._conn.fileno(), self._from_exchange)

        await self.call(setup)

    async def stop(self) -> None:
        async def teardown() -> None:
            self.loop.remove_reader(self._conn.fileno())
            await self.discord.stop()

        await self.call(teardown)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self._conn.send("stop")
        await asyncio.to_thread(self._process.join, 10)

    def _from_exchange(self) -> None:
        while self._conn.poll():
            message = self._conn.recv()
            if message[0] == "hit":
                hit = Hit(*message[1:])
                self.hits.append(hit)
                if hit.method == "POST" and hit.path.split("?")[0].endswith("/orders"):
                    self.order_arrivals.append(hit.start)
        self._check()

    def between(self, start: float, end: float) -> list[Hit]:
        return [h for h in self.hits if start <= h.start <= end]

    # -- signals from the infra thread to the main loop ------------------------------------
    # Conditions are checked on the infra thread, where the records change; the main loop is
    # woken only to resolve a met condition, so no benchmark bookkeeping runs on the bot's
    # loop inside a measured interval.

    def _output(self, event: OutputEvent) -> None:
        record = event.message
        if event.kind == "create" and record.id not in self.previews and "Preview" in record.text:
            assert record.received_monotonic is not None  # the bot posted it over REST
            self.previews[record.id] = record.received_monotonic
        self._check()

    def _check(self) -> None:
        with self._waiters_lock:
            met = [waiter for waiter in self._waiters if waiter[0]()]
            for waiter in met:
                self._waiters.remove(waiter)
        for _, future in met:
            future.get_loop().call_soon_threadsafe(_resolve, future)

    async def until(self, condition: Callable[[], bool], limit_s: float = 10.0) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._waiters_lock:
            self._waiters.append((condition, future))
        self.loop.call_soon_threadsafe(self._check)  # it may hold already (checked there)
        try:
            await asyncio.wait_for(future, limit_s)
        finally:
            with self._waiters_lock:
                if (condition, future) in self._waiters:
                    self._waiters.remove((condition, future))

    async def quiet(self, *, for_s: float = 0.03) -> None:
        """Wait until neither Discord nor the exchange has seen a request for a moment."""
        while True:
            before = (len(self.hits), len(self.discord.rest_log))
            await asyncio.sleep(for_s)
            if (len(self.hits), len(self.discord.rest_log)) == before:
                return


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def until_idle(bot: TTBot) -> None:
    """Wait until the bot is handling no message, click or slash command."""
    while True:
        if not bot_busy(bot):
            return
        await asyncio.sleep(0.001)


def busy_time(hits: list[Hit], start: float, end: float) -> float:
    """Length of the union of the hits' intervals, clipped to [start, end]."""
    total, cursor = 0.0, start
    for lo, hi in sorted((max(h.start, start), min(h.end, end)) for h in hits):
        lo = max(lo, cursor)
        if hi > lo:
            total += hi - lo
            cursor = hi
    return total


@dataclass
class Sample:
    preview_total: float
    preview_exchange: float
    submit_total: float
    submit_exchange: float
    round_trips: int

    @property
    def preview_bot(self) -> float:
        return self.preview_total - self.preview_exchange

    @property
    def submit_bot(self) -> float:
        return self.submit_total - self.submit_exchange


async def one_order(infra: Infra, bot: TTBot) -> Sample:
    discord = infra.discord
    known = set(infra.previews)

    # Each step runs on the infra loop from the user's action until the awaited result, so
    # the benchmark itself never runs on the bot's loop inside a measured interval.
    async def say_and_wait() -> MessageRecord:
        said = await discord.say("trader", "#trading", "!tt buy 1 SPY @ mid")
        await infra.until(lambda: bool(set(infra.previews) - known))
        return said

    said = await infra.call(say_and_wait)
    assert said.dispatched_monotonic is not None  # the bot is connected
    start = said.dispatched_monotonic
    (preview_id,) = set(infra.previews) - known
    posted = infra.previews[preview_id]
    preview = next(m for m in discord.messages if m.id == preview_id)
    # A person sees the preview only after Discord answered the bot's send, by which time the
    # bot has registered its buttons; wait for the same before clicking.
    await until_idle(bot)

    arrivals = len(infra.order_arrivals)

    async def click_and_wait() -> InteractionRecord:
        interaction = await discord.click("trader", "Confirm", preview, wait=False)
        try:
            await infra.until(lambda: len(infra.order_arrivals) > arrivals)
        except TimeoutError:
            raise RuntimeError(
                f"the order never reached the exchange; the preview now reads:\n{preview.text}"
            ) from None
        return interaction

    interaction = await infra.call(click_and_wait)
    # The stand-in lets a message be "seen" for a moment before a click, like a person;
    # the interval starts when Discord sends the interaction to the bot.
    assert interaction.dispatched_monotonic is not None
    click_at = interaction.dispatched_monotonic
    arrived = infra.order_arrivals[arrivals]
    await infra.quiet()  # the order's aftermath (progress edit, tracker read) is not the next's
    return Sample(
        preview_total=posted - start,
        preview_exchange=busy_time(infra.between(start, posted), start, posted),
        submit_total=arrived - click_at,
        submit_exchange=busy_time(infra.between(click_at, arrived), click_at, arrived),
        round_trips=len(infra.between(start, arrived)),  # up to and including the POST
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def describe(name: str, totals: list[float], exchange: list[float], bot: list[float]) -> str:
    def ms(values: list[float], q: float) -> str:
        return f"{percentile(values, q) * 1000:6.2f}"

    return (
        f"{name:8s} total p50 {ms(totals, 0.5)} p99 {ms(totals, 0.99)} ms | "
        f"exchange p50 {ms(exchange, 0.5)} p99 {ms(exchange, 0.99)} ms | "
        f"bot p50 {ms(bot, 0.5)} p99 {ms(bot, 0.99)} ms"
    )


async def run(orders: int, warmup: int) -> list[Sample]:
    # The production log pipeline (JSON, redaction, INFO), to stderr: its cost is part of
    # the bot's overhead, and stdout stays for the figures.
    configure_logging("json", "INFO", stream=sys.stderr)
    logging.getLogger("discord").setLevel(logging.ERROR)
    infra = Infra(asyncio.get_running_loop())
    await infra.start()
    try:
        start_time = infra.start_time
        clock = ManualClock(lambda: start_time, lambda _seconds: None)  # nobody advances it
        with tempfile.TemporaryDirectory(prefix="tt-bench-") as workdir:
            options = RuntimeOptions(
                db_path=Path(workdir) / "bench.db",
                clock=clock,
                poll_interval_s=3600.0,  # no background polling inside the measured windows
                endpoints={Environment.PAPER: PaperEndpoints(infra.api_url, infra.streamer_url)},
            )
            async with open_runtime(load_config(environ={}), options) as runtime:
                world = infra.discord.world
                await configure_standard_guild(runtime.service, world)
                infra.discord.install()
                bot = TTBot(
                    service=runtime.service, owner_ids=[world.owner.id], guild_ready_timeout=0.05
                )
                task = asyncio.create_task(bot.start("benchmark-token"))
                try:
                    await infra.call(infra.discord.wait_until_identified)
                    await asyncio.wait_for(bot.wait_until_ready(), 10)
                    await runtime.service.sync(world.guilds[0].id, kind="full", progress=None)
                    samples = []
                    for n in range(warmup + orders):
                        sample = await one_order(infra, bot)
                        if n >= warmup:
                            samples.append(sample)
                    return samples
                finally:
                    await bot.close()
                    await asyncio.gather(task, return_exceptions=True)
                    infra.discord.uninstall()
    finally:
        await infra.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    samples: list[Sample] = asyncio.run(run(args.orders, args.warmup))
    print(f"{len(samples)} single-leg orders (after {args.warmup} warm-up orders)")
    print(
        describe(
            "preview",
            [s.preview_total for s in samples],
            [s.preview_exchange for s in samples],
            [s.preview_bot for s in samples],
        )
    )
    print(
        describe(
            "submit",
            [s.submit_total for s in samples],
            [s.submit_exchange for s in samples],
            [s.submit_bot for s in samples],
        )
    )
    bot = [s.preview_bot for s in samples] + [s.submit_bot for s in samples]
    trips = [s.round_trips for s in samples]
    print(
        f"round trips per order: median {statistics.median_high(trips)}, max {max(trips)} "
        "(quote, dry-run, place)"
    )
    p50, p99 = percentile(bot, 0.5) * 1000, percentile(bot, 0.99) * 1000
    met = p50 <= TARGET_P50_MS and p99 <= TARGET_P99_MS and max(trips) <= TARGET_ROUND_TRIPS
    print(
        f"targets: bot p50 <= {TARGET_P50_MS:g} ms, p99 <= {TARGET_P99_MS:g} ms, "
        f"round trips <= {TARGET_ROUND_TRIPS}: {'met' if met else 'NOT met'}"
    )
    print(f"bot overhead p50 {p50:.2f} ms p99 {p99:.2f} ms, round trips {max(trips)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
