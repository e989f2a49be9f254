"""The live position book's rules (pure logic): seeding with buffered replay, Zero removal,
fills left unconfirmed until the stream (or a read) has caught up, not live when the
connection ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from broker.positions.live import LiveBook, LiveBooks, PositionUpdate

D = Decimal
T0 = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def update(symbol: str, quantity: str, seconds: float) -> PositionUpdate:
    return PositionUpdate(symbol, D(quantity), at(seconds))


def live_book(*positions: PositionUpdate) -> LiveBook:
    book = LiveBook("paper", "5WT00001", now=lambda: T0)
    assert book.seeded(positions, book.begin_seed())
    return book


def test_not_live_until_seeded_and_messages_before_the_seed_are_not_trusted() -> None:
    book = LiveBook("paper", "5WT00001")
    book.apply(update("SPY", "100", 1))  # no seed covers this connection yet
    assert not book.live and book.quantities(["SPY"]) is None
    token = book.begin_seed()
    assert book.seeded([], token)
    assert book.live and book.quantities(["SPY"]) == {}  # the snapshot said: nothing held


def test_messages_during_the_seed_read_are_replayed_after_it_in_order() -> None:
    book = LiveBook("paper", "5WT00001")
    token = book.begin_seed()
    book.apply(update("SPY", "100", 2))
    book.apply(update("SPY", "150", 3))
    book.apply(update("QQQ", "-5", 3))
    assert book.quantities(["SPY"]) is None  # still seeding
    # The read was served between the two SPY messages.
    assert book.seeded([update("SPY", "100", 2), update("AAPL", "10", 1)], token)
    assert book.quantities(["SPY", "AAPL"]) == {"SPY": D(150), "AAPL": D(10)}
    # QQQ was not in the snapshot: its message may predate the read, so it is not trusted
    # until a later message (or a read) vouches for it.
    assert book.quantities(["QQQ"]) is None
    book.apply(update("QQQ", "-5", 4))
    assert book.quantities(["QQQ"]) == {"QQQ": D(-5)}


def test_a_replayed_message_older_than_the_snapshot_does_not_undo_it() -> None:
    book = LiveBook("paper", "5WT00001")
    token = book.begin_seed()
    book.apply(update("SPY", "100", 2))  # sent before the position grew to 200 at t=5
    assert book.seeded([update("SPY", "200", 5)], token)
    assert book.quantities(["SPY"]) == {"SPY": D(200)}
    book.apply(update("SPY", "50", 4))  # out of date on arrival: ignored
    assert book.quantities(["SPY"]) == {"SPY": D(200)}


def test_an_outdated_seed_is_ignored() -> None:
    book = LiveBook("paper", "5WT00001")
    first = book.begin_seed()
    book.disconnected()
    assert not book.seeded([update("SPY", "1", 1)], first)
    second = book.begin_seed()
    third = book.begin_seed()  # a retry superseded the second read
    assert not book.seeded([update("SPY", "1", 1)], second)
    assert book.seeded([update("SPY", "2", 1)], third)
    assert book.quantities(["SPY"]) == {"SPY": D(2)}


def test_zero_removes_the_symbol() -> None:
    book = live_book(update("SPY", "100", 1), update("QQQ", "3", 1))
    book.apply(PositionUpdate("SPY", D(0), at(2)))
    assert book.quantities(["SPY", "QQQ"]) == {"QQQ": D(3)}
    assert book.state().symbols == 1


def test_a_short_position_is_negative() -> None:
    book = live_book(update("SPY   260116P00600000", "-2", 1))
    assert book.quantities(["SPY   260116P00600000"]) == {"SPY   260116P00600000": D(-2)}


def test_not_live_after_a_disconnect_until_reseeded() -> None:
    book = live_book(update("SPY", "100", 1))
    book.disconnected()
    assert not book.live and book.quantities(["SPY"]) is None
    book.apply(update("SPY", "0", 2))  # nobody seeded this connection: ignored
    assert book.seeded([update("SPY", "300", 3)], book.begin_seed())
    assert book.quantities(["SPY"]) == {"SPY": D(300)}


def test_seed_failure_leaves_the_book_not_live() -> None:
    book = live_book(update("SPY", "1", 1))
    token = book.begin_seed()  # a new connection
    book.seed_failed()
    assert not book.live
    assert not book.seeded([], token)


def test_a_fill_seen_by_the_stream_is_confirmed_by_the_position_that_follows() -> None:
    book = live_book(update("SPY", "100", 1))
    book.order_seen(7, {"SPY": at(5)})
    book.fill_reported(7, ["SPY"])  # the tracker got there before the position message
    assert book.quantities(["SPY"]) is None
    book.apply(update("SPY", "200", 5))
    assert book.quantities(["SPY"]) == {"SPY": D(200)}


def test_a_fill_reported_after_its_position_arrived_needs_nothing_more() -> None:
    book = live_book(update("SPY", "100", 1))
    book.order_seen(7, {"SPY": at(5)})
    book.apply(update("SPY", "200", 5))
    book.fill_reported(7, ["SPY"])
    assert book.quantities(["SPY"]) == {"SPY": D(200)}
    assert book.state().unconfirmed == 0


def test_same_timestamp_only_a_position_received_after_the_order_confirms() -> None:
    # An exchange clock that did not move between fills (or millisecond resolution).
    book = live_book(update("SPY", "100", 5))
    book.apply(update("SPY", "150", 5))  # an earlier fill's position, same stamp
    book.order_seen(8, {"SPY": at(5)})
    book.fill_reported(8, ["SPY"])
    assert book.quantities(["SPY"]) is None  # 150 may predate order 8's fill
    book.apply(update("SPY", "250", 5))
    assert book.quantities(["SPY"]) == {"SPY": D(250)}


def test_a_fill_only_the_poller_saw_stays_unconfirmed_whatever_the_book_receives() -> None:
    # The streamer died silently: no Order message for 9, so no position can vouch for it.
    book = live_book(update("SPY", "100", 1))
    book.fill_reported(9, ["SPY", "QQQ"])
    book.apply(update("SPY", "100", 30))  # a mark update, say
    assert book.quantities(["SPY"]) is None
    assert book.quantities(["QQQ"]) is None
    assert book.quantities(["AAPL"]) == {}  # other symbols still answer
    assert book.state().unconfirmed == 2


def test_a_read_sent_after_the_fill_confirms_it() -> None:
    book = live_book(update("SPY", "100", 1))
    book.fill_reported(9, ["SPY"])
    token = book.begin_read()
    book.read([update("SPY", "300", 6)], token)
    assert book.quantities(["SPY"]) == {"SPY": D(300)}


def test_a_read_sent_before_the_fill_was_reported_does_not_confirm_it() -> None:
    book = live_book(update("SPY", "100", 1))
    token = book.begin_read()
    book.fill_reported(9, ["SPY"])
    book.read([update("SPY", "100", 1)], token)
    assert book.quantities(["SPY"]) is None


def test_a_read_keeps_a_message_received_while_it_was_in_flight() -> None:
    book = live_book(update("SPY", "100", 1), update("QQQ", "1", 1))
    token = book.begin_read()
    book.apply(update("SPY", "0", 7))  # closed while the read was in flight
    book.read([update("SPY", "100", 1), update("QQQ", "1", 1)], token)
    assert book.quantities(["SPY", "QQQ"]) == {"QQQ": D(1)}


def test_a_read_removes_what_it_does_not_list() -> None:
    book = live_book(update("SPY", "100", 1))
    token = book.begin_read()
    book.read([], token)
    assert book.quantities(["SPY"]) == {}


def test_books_are_found_only_by_the_session_that_feeds_them() -> None:
    books = LiveBooks()
    ours, theirs = object(), object()
    book = books.open(ours, "paper", "5WT00001")
    assert books.find(ours, "paper", "5WT00001") is book
    assert books.find(theirs, "paper", "5WT00001") is None
    assert books.find(ours, "sandbox", "5WT00001") is None
    assert book.seeded([update("SPY", "1", 1)], book.begin_seed())
    books.fill_reported("paper", "5WT00001", 3, ["SPY"])
    assert book.quantities(["SPY"]) is None
    books.close(book)
    assert books.find(ours, "paper", "5WT00001") is None
    assert not book.live


def test_a_distrusted_symbol_waits_for_a_later_message_or_read() -> None:
    book = live_book(update("SPY", "1", 1), update("QQQ", "2", 1))
    book.distrust(["SPY"])  # the exchange said there is nothing to close
    assert book.quantities(["SPY"]) is None
    assert book.quantities(["QQQ"]) == {"QQQ": D(2)}
    token = book.begin_read()
    book.read([update("QQQ", "2", 1)], token)
    assert book.quantities(["SPY", "QQQ"]) == {"QQQ": D(2)}
    book.distrust(["QQQ"])
    book.apply(update("QQQ", "3", 2))
    assert book.quantities(["QQQ"]) == {"QQQ": D(3)}
