"""The live position book end to end: the real runtime (service, hub, streamer, poller, SDK)
against the paper exchange over loopback.

A plain buy/sell decides open vs close from what is held now. With the account streamer up
and its book seeded, that costs no request; whenever the book can't vouch for a symbol
(streamer down, a fill it has not caught up with) the service reads positions over REST.
Confirm re-checks the quantities the preview decided on and places nothing if they changed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

import pytest
from tastytrade import AlertStreamer
from tastytrade.account import CurrentPosition
from tastytrade.order import (
    InstrumentType,
    Leg,
    LimitOrder,
    OrderAction,
    OrderTimeInForce,
)

from bot.config import load_config
from bot.localstack import trading_start_time
from bot.runtime import Runtime, RuntimeOptions, open_runtime
from bot.simclock import ManualClock
from broker.paper import FillModelConfig, PaperConfig, PaperExchange
from broker.positions.live import LiveBook
from broker.service.brokers import BrokerContext, PaperEndpoints
from broker.service.errors import PreviewMismatch
from broker.service.models import Environment, PreviewSummary
from broker.service.orders import OrderRequest
from tests.integration.fills.support import eventually as wait_until

GUILD = 9100
CHANNEL = 9101
D = Decimal


class FreezableRelay:
    """A TCP relay in front of the exchange's websocket that can go silent without closing:
    a streamer behind it looks connected but receives nothing (a silently dead link)."""

    def __init__(self, port: int) -> None:
        self._target_port = port
        self.frozen = False
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
        self._writers += [writer, up_writer]
        await asyncio.gather(
            self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
        )

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if not self.frozen:
                    writer.write(data)
                    await writer.drain()
        finally:
            writer.close()

    async def close(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@dataclass
class Desk:
    runtime: Runtime
    exchange: PaperExchange
    clock: ManualClock
    relay: FreezableRelay | None
    keys: int = 0

    @property
    def account(self) -> str:
        return self.exchange.account_number

    async def preview(self, text: str) -> PreviewSummary:
        self.keys += 1
        request = OrderRequest(GUILD, CHANNEL, 1, "trader", text, key=f"cmd-{self.keys}")
        return await self.runtime.service.preview_order(request)

    async def start_tracking(self) -> None:
        """Place a resting QQQ order through the service (which starts the account streamer
        and the poller) and wait until the streamer's book is live."""
        self.exchange.market.set_quote("QQQ", "99.00", "101.00")
        await self.runtime.service.place(await self.preview("buy 1 QQQ @ mid"))
        await eventually(self.book_live, "a live book")

    async def hold_spy(self) -> LiveBook:
        """Buy 1 SPY through the service (it fills at once) and wait until the book has it
        from the stream."""
        reads_before = self.positions_reads()
        await self.runtime.service.place(await self.preview("buy 1 SPY @ mid"))
        book = self.book()
        assert book is not None
        await eventually(lambda: book.quantities(["SPY"]) == {"SPY": D(1)}, "SPY 1 in the book")
        # The service has seen the fill too (its post-fill sync reads positions): the book's
        # doubt about SPY is registered now, not in the middle of a later test step.
        await eventually(lambda: self.positions_reads() > reads_before, "the post-fill sync")
        await eventually(lambda: book.quantities(["SPY"]) == {"SPY": D(1)}, "SPY 1 confirmed")
        return book

    def book(self) -> LiveBook | None:
        watch = self.runtime.hub.watch_of("paper", self.account)
        return None if watch is None else watch.positions

    def book_live(self) -> bool:
        book = self.book()
        return book is not None and book.live

    async def quiet(self) -> None:
        """Let background work (the post-fill sync) finish, then start counting requests."""
        await self.runtime.service.idle()
        self.exchange.requests.clear()

    def positions_reads(self) -> int:
        return sum(
            1 for _, path in self.exchange.requests if path.split("?")[0].endswith("/positions")
        )

    async def context(self) -> BrokerContext:
        return await self.runtime.service.brokers.context(GUILD)

    async def trade_elsewhere(self, action: OrderAction, price: str) -> None:
        """An order placed outside the bot (the Tastytrade app, say), at a marketable price."""
        context = await self.context()
        signed = D(price) if action is OrderAction.SELL_TO_CLOSE else -D(price)
        order = LimitOrder(
            time_in_force=OrderTimeInForce.DAY,
            legs=[
                Leg(instrument_type=InstrumentType.EQUITY, symbol="SPY", action=action, quantity=1)
            ],
            price=signed,
        )
        account = context.account
        await context.session.submit(lambda s: account.place_order(s, order, dry_run=False))

    async def fill(self) -> None:
        """Let a second of market time pass: marketable orders fill."""
        await asyncio.sleep(0.05)  # Received -> Routed -> Live
        await self.clock.advance(1)


async def eventually(condition: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    await wait_until(condition, what, seconds)  # streamer reconnects take a while


@contextlib.asynccontextmanager
async def desk(tmp_path: Path, *, relay: bool = False) -> AsyncIterator[Desk]:
    config = PaperConfig(
        seed=7,
        start_time=trading_start_time(),
        real_time=False,
        fills=FillModelConfig(hazard_per_second=0.0),  # only marketable orders fill
    )
    async with PaperExchange(config) as exchange:
        exchange.market.set_quote("SPY", "500.00", "500.00")  # `@ mid` is marketable
        clock = ManualClock(exchange.clock.now, exchange.market.step)
        front = None
        options = RuntimeOptions(
            db_path=tmp_path / "tt.db",
            paper=exchange,
            clock=clock,
            poll_interval_s=0.1,
        )
        if relay:
            front = FreezableRelay(exchange.port)
            port = await front.start()
            endpoints = PaperEndpoints(exchange.api_url, f"ws://127.0.0.1:{port}/streamer")
            options = replace(options, endpoints={Environment.PAPER: endpoints})
        try:
            async with open_runtime(load_config(environ={}), options) as runtime:
                await runtime.service.set_environment(GUILD, Environment.PAPER)
                yield Desk(runtime, exchange, clock, front)
        finally:
            if front is not None:
                await front.close()


async def test_plain_buy_after_warm_up_reads_no_positions(tmp_path: Path) -> None:
    async with desk(tmp_path) as d:
        await d.start_tracking()
        d.exchange.market.set_quote("SPY", "499.00", "501.00")  # rests
        await d.quiet()
        summary = await d.preview("buy 1 SPY @ mid")
        assert [leg.action for leg in summary.legs] == ["Buy to Open"]
        orders_before = len(d.exchange.orders(d.account))
        await d.runtime.service.place(summary)
        await eventually(lambda: len(d.exchange.orders(d.account)) > orders_before, "the order")
        assert d.positions_reads() == 0, d.exchange.requests


async def test_a_fill_reaches_the_book_from_the_stream(tmp_path: Path) -> None:
    async with desk(tmp_path) as d:
        await d.start_tracking()
        await d.hold_spy()
        await d.quiet()
        summary = await d.preview("sell 1 SPY @ mid")
        assert [leg.action for leg in summary.legs] == ["Sell to Close"]
        assert d.positions_reads() == 0, d.exchange.requests


async def test_a_position_closed_outside_the_bot_is_seen_from_the_stream(tmp_path: Path) -> None:
    async with desk(tmp_path) as d:
        await d.start_tracking()
        book = await d.hold_spy()
        await d.trade_elsewhere(OrderAction.SELL_TO_CLOSE, "500.00")
        await d.fill()
        await eventually(lambda: book.quantities(["SPY"]) == {}, "SPY closed in the book")
        await d.quiet()
        summary = await d.preview("sell 1 SPY @ mid")
        assert [leg.action for leg in summary.legs] == ["Sell to Open"]
        assert d.positions_reads() == 0


async def test_a_close_the_exchange_disputes_is_decided_again_from_rest(tmp_path: Path) -> None:
    async with desk(tmp_path) as d:
        await d.start_tracking()
        book = await d.hold_spy()
        # The position vanishes without a message reaching the book (a missed message).
        del d.exchange.engine.accounts[d.account].positions["SPY"]
        await d.quiet()
        summary = await d.preview("sell 1 SPY @ mid")
        # The dry run of "Sell to Close" failed (nothing to close): decided again over REST.
        assert [leg.action for leg in summary.legs] == ["Sell to Open"]
        assert not any("position to close" in error for error in summary.errors)
        assert d.positions_reads() == 1
        assert book.quantities(["SPY"]) == {}  # the read corrected the book


async def test_with_the_streamer_down_a_preview_reads_positions_once(tmp_path: Path) -> None:
    async with desk(tmp_path) as d:
        await d.start_tracking()
        await d.hold_spy()
        d.exchange.faults.streamer_error("down", times=10_000)  # reconnects are refused
        await d.exchange.close_streamers()
        await eventually(lambda: not d.book_live(), "the book to stop being live")
        await d.quiet()
        summary = await d.preview("sell 1 SPY @ mid")
        assert [leg.action for leg in summary.legs] == ["Sell to Close"]
        assert d.positions_reads() == 1, d.exchange.requests

        # Back up: re-seeded, and the order path stops reading again.
        d.exchange.faults.clear()
        await eventually(d.book_live, "the book to be re-seeded", seconds=20)
        await d.quiet()
        await d.preview("sell 1 SPY @ mid")
        assert d.positions_reads() == 0


async def test_a_fill_only_the_poller_saw_is_read_over_rest(tmp_path: Path) -> None:
    async with desk(tmp_path, relay=True) as d:
        assert d.relay is not None
        await d.start_tracking()
        d.relay.frozen = True  # the streamer's link dies silently: it still looks connected
        await d.runtime.service.place(await d.preview("buy 1 SPY @ mid"))  # fills at once
        book = d.book()
        assert book is not None
        await eventually(lambda: book.state().unconfirmed == 1, "the poller's fill report")
        assert book.live  # nothing told the book its stream is dead
        assert book.quantities(["QQQ"]) == {}  # other symbols still answer

        await d.quiet()
        summary = await d.preview("sell 1 SPY @ mid")
        assert [leg.action for leg in summary.legs] == ["Sell to Close"]
        assert d.positions_reads() == 1
        # That read brought the book up to date: the next preview needs none.
        await d.quiet()
        await d.preview("sell 1 SPY @ mid")
        assert d.positions_reads() == 0
        d.relay.frozen = False


@pytest.mark.parametrize("streaming", [True, False], ids=["live-book", "rest"])
async def test_confirm_refuses_when_the_position_changed_since_the_preview(
    tmp_path: Path, streaming: bool
) -> None:
    async with desk(tmp_path) as d:
        await d.start_tracking()
        book = await d.hold_spy()
        summary = await d.preview("sell 1 SPY @ mid")
        assert [leg.action for leg in summary.legs] == ["Sell to Close"]
        if not streaming:
            d.exchange.faults.streamer_error("down", times=10_000)
            await d.exchange.close_streamers()
            await eventually(lambda: not d.book_live(), "the book to stop being live")

        # Closed in the Tastytrade app between the preview and the Confirm click.
        await d.trade_elsewhere(OrderAction.SELL_TO_CLOSE, "500.00")
        await d.fill()
        if streaming:
            await eventually(lambda: book.quantities(["SPY"]) == {}, "SPY closed in the book")
        orders_before = len(d.exchange.orders(d.account))
        await d.quiet()
        with pytest.raises(PreviewMismatch) as refused:
            await d.runtime.service.place(summary)
        assert str(refused.value) == (
            "Your SPY position changed since the preview (was 1, now 0); nothing was placed. "
            "Send the command again."
        )
        assert len(d.exchange.orders(d.account)) == orders_before
        assert not any(method == "POST" for method, _ in d.exchange.requests)
        assert d.positions_reads() == (0 if streaming else 1)


async def test_confirm_places_when_the_position_is_unchanged(tmp_path: Path) -> None:
    async with desk(tmp_path) as d:
        await d.start_tracking()
        await d.hold_spy()
        d.exchange.market.set_quote("SPY", "499.00", "501.00")
        summary = await d.preview("sell 1 SPY @ mid")
        orders_before = len(d.exchange.orders(d.account))
        await d.quiet()
        outcome = await d.runtime.service.place(summary)
        assert not outcome.duplicate
        await eventually(lambda: len(d.exchange.orders(d.account)) > orders_before, "the order")
        assert d.positions_reads() == 0
        placed = d.exchange.orders(d.account)[-1]
        assert [leg.action for leg in placed.legs] == ["Sell to Close"]


async def test_explicit_open_close_is_not_rechecked(tmp_path: Path) -> None:
    async with desk(tmp_path) as d:
        await d.start_tracking()
        book = await d.hold_spy()
        summary = await d.preview("bto 1 SPY @ 499")
        await d.trade_elsewhere(OrderAction.BUY_TO_OPEN, "500.00")
        await d.fill()
        await eventually(lambda: book.quantities(["SPY"]) == {"SPY": D(2)}, "SPY 2 in the book")
        orders_before = len(d.exchange.orders(d.account))
        await d.runtime.service.place(summary)
        await eventually(lambda: len(d.exchange.orders(d.account)) > orders_before, "the order")


async def test_the_exchange_streams_zero_when_a_position_closes(tmp_path: Path) -> None:
    async with desk(tmp_path) as d:
        context = await d.context()
        streamer: AlertStreamer = context.session.alert_streamer()
        async with streamer:
            await streamer.subscribe_accounts([context.account])
            await d.trade_elsewhere(OrderAction.BUY_TO_OPEN, "500.00")
            await d.fill()
            await d.trade_elsewhere(OrderAction.SELL_TO_CLOSE, "500.00")
            await d.fill()
            seen: list[CurrentPosition] = []
            async with asyncio.timeout(5):
                async for position in streamer.listen(CurrentPosition):
                    seen.append(position)
                    if len(seen) == 2:
                        break
        opened, closed = seen
        assert (opened.symbol, opened.quantity, opened.quantity_direction) == ("SPY", 1, "Long")
        assert (closed.symbol, closed.quantity, closed.quantity_direction) == ("SPY", 0, "Zero")
        assert closed.updated_at >= opened.updated_at
