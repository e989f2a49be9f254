"""Account positions kept live from the account streamer (see ``broker.positions.live``)."""

from broker.positions.live import (
    BookState,
    LiveBook,
    LiveBooks,
    PositionUpdate,
    order_fill_times,
)

__all__ = [
    "BookState",
    "LiveBook",
    "LiveBooks",
    "PositionUpdate",
    "order_fill_times",
]
