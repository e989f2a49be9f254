"""The account streamer keeps the live position book: seeded after the subscription ack
(retried while the seed read fails, not live meanwhile), fed by the stream, not live once the
connection ends, closed with the watch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from broker.notify import NotificationHub
from broker.positions.live import LiveBooks
from tests.integration.fills.support import D, Rig, rig
from tests.integration.fills.support import eventually as wait_until


async def eventually(condition: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    await wait_until(condition, what, seconds)  # streamer reconnects take a while


def positions_reads(r: Rig) -> int:
    return sum(1 for _, path in r.exchange.requests if path.split("?")[0].endswith("/positions"))


def fast_hub(r: Rig, books: LiveBooks) -> NotificationHub:
    return NotificationHub(
        r.tracker,
        r.bus,
        poll_interval_s=60.0,
        heartbeat_s=None,
        reconnect_base_s=0.02,
        reconnect_cap_s=0.05,
        positions=books,
    )


async def test_seed_failures_leave_the_book_not_live_until_a_retry_succeeds(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        books = LiveBooks()
        r.exchange.faults.fail("GET", "/accounts/*/positions", 503, times=10_000)
        hub = fast_hub(r, books)
        watch = await hub.watch(r.session, "paper", r.account, r.context())
        assert watch.streamer is not None and watch.positions is not None
        book = watch.positions
        assert books.find(r.session, "paper", r.account) is book
        await eventually(lambda: positions_reads(r) >= 6, "two failed seed reads")
        assert watch.streamer.connected.is_set() and not book.live
        assert book.quantities(["SPY"]) is None

        r.exchange.faults.clear()
        await eventually(lambda: book.live, "the seed to succeed")
        assert book.quantities(["SPY"]) == {}
        assert watch.streamer.connections == 1  # the connection itself was never dropped
        await hub.close()
        assert books.find(r.session, "paper", r.account) is None
        assert not book.live


async def test_the_stream_feeds_the_book_and_a_disconnect_stops_trusting_it(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        books = LiveBooks()
        hub = fast_hub(r, books)
        watch = await hub.watch(r.session, "paper", r.account, r.context())
        book = watch.positions
        assert book is not None
        await eventually(lambda: book.live, "a live book")

        order = r.equity_order("SPY", "100.00", "100.00")  # marketable: fills at once
        await (await r.engine.submit(r.request(order, "live-1"))).wait()
        await eventually(lambda: book.quantities(["SPY"]) == {"SPY": D(1)}, "SPY 1 streamed")
        assert book.seeded_at is not None and book.state().symbols == 1

        connections = watch.streamer.connections if watch.streamer else 0
        await r.exchange.close_streamers()
        await eventually(lambda: not book.live, "the book to stop being live")
        await eventually(
            lambda: watch.streamer is not None and watch.streamer.connections > connections,
            "the reconnect",
        )
        await eventually(lambda: book.live, "the re-seed")
        assert book.quantities(["SPY"]) == {"SPY": D(1)}
        await hub.close()
