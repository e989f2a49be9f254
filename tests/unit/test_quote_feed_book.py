"""The quote book's trust rule: current connection only, live only while answered recently,
two-sided only, withdrawn by a later one-sided event; wanted symbols bounded (LRU)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from broker.quotes import FeedSettings, QuoteBook, backoff_delay

D = Decimal
AT = datetime(2026, 3, 11, 15, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def book(clock: Clock, *, max_symbols: int = 10, stale_after_s: float = 10.0) -> QuoteBook:
    return QuoteBook(
        max_symbols=max_symbols, stale_after_s=stale_after_s, clock=clock, now=lambda: AT
    )


def test_a_quote_is_answered_only_on_a_live_connection_after_it_arrived() -> None:
    clock = Clock()
    b = book(clock)
    assert b.want(["SPY"]) is True
    assert b.quote("SPY") is None  # not connected
    b.received(1, "SPY", D("500.00"), D("500.10"))
    assert b.quote("SPY") is None  # no connection: ignored
    b.connected(1)
    assert b.live and b.quote("SPY") is None  # nothing arrived on this connection yet
    b.received(1, "SPY", D("500.00"), D("500.10"))
    quote = b.quote("SPY")
    assert quote is not None
    assert (quote.bid, quote.ask, quote.mid, quote.received_at) == (
        D("500.00"),
        D("500.10"),
        D("500.05"),
        AT,
    )


def test_a_disconnect_drops_every_quote_and_a_new_connection_starts_empty() -> None:
    clock = Clock()
    b = book(clock)
    b.want(["SPY"])
    b.connected(1)
    b.received(1, "SPY", D("500.00"), D("500.10"))
    b.disconnected(1)
    assert not b.live and b.quote("SPY") is None
    b.connected(2)
    assert b.quote("SPY") is None
    b.received(1, "SPY", D("1"), D("2"))  # a straggler from the old connection
    assert b.quote("SPY") is None
    b.received(2, "SPY", D("501.00"), D("501.10"))
    assert b.quote("SPY") is not None
    b.disconnected(1)  # the old connection's end does not end the new one
    assert b.quote("SPY") is not None


def test_without_a_recent_answer_the_book_is_not_live() -> None:
    clock = Clock()
    b = book(clock, stale_after_s=10.0)
    b.want(["SPY"])
    b.connected(1)
    b.received(1, "SPY", D("500.00"), D("500.10"))
    clock.t += 10.0
    assert b.quote("SPY") is not None
    clock.t += 0.01
    assert not b.live and b.quote("SPY") is None
    assert b.state().quoted == 0 and b.state().connected
    b.alive(2)  # a pong of another connection proves nothing
    assert not b.live
    b.alive(1)
    assert b.live and b.quote("SPY") is not None


def test_a_one_sided_or_non_finite_event_withdraws_the_quote() -> None:
    clock = Clock()
    b = book(clock)
    b.want(["SPY", "QQQ", "IWM"])
    b.connected(1)
    for symbol in ("SPY", "QQQ", "IWM"):
        b.received(1, symbol, D("10"), D("11"))
    b.received(1, "SPY", None, D("11"))
    b.received(1, "QQQ", D("10"), None)
    b.received(1, "IWM", D("NaN"), D("11"))
    assert [b.quote(s) for s in ("SPY", "QQQ", "IWM")] == [None, None, None]
    b.received(1, "SPY", D("10"), D("11"))
    assert b.quote("SPY") is not None


def test_events_for_symbols_not_wanted_are_ignored() -> None:
    clock = Clock()
    b = book(clock)
    b.connected(1)
    b.received(1, "SPY", D("10"), D("11"))
    assert b.quote("SPY") is None
    assert b.state().quoted == 0


def test_wanted_symbols_are_bounded_least_recently_used_first() -> None:
    clock = Clock()
    b = book(clock, max_symbols=2)
    b.connected(1)
    assert b.want(["A", "B"]) is True
    assert b.want(["A"]) is False  # already wanted: only refreshed
    b.received(1, "A", D("1"), D("2"))
    b.received(1, "B", D("1"), D("2"))
    assert b.quote("A") is not None  # asking counts as use: B is now the oldest
    assert b.want(["C"]) is True
    assert b.wanted() == {"A", "C"}
    assert b.quote("B") is None  # evicted with its quote
    b.received(1, "B", D("1"), D("2"))  # a late event for an evicted symbol
    assert b.quote("B") is None
    assert b.state().wanted == 2


def test_empty_symbols_are_not_wanted_and_settings_are_checked() -> None:
    clock = Clock()
    b = book(clock)
    assert b.want(["", "SPY"]) is True
    assert b.wanted() == {"SPY"}
    with pytest.raises(ValueError):
        book(clock, max_symbols=0)
    with pytest.raises(ValueError):
        FeedSettings(ping_interval_s=0)
    assert FeedSettings(ping_interval_s=2, pong_timeout_s=3).stale_after_s == 5


def test_backoff_grows_to_the_cap_with_equal_jitter() -> None:
    assert backoff_delay(0, 0.5, 30) == 0.5
    for failures, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (20, 30.0)):
        for _ in range(20):
            delay = backoff_delay(failures, 0.5, 30)
            assert ceiling / 2 <= delay <= ceiling
