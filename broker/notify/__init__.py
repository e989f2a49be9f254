"""Fill notifications: exactly-once fill/terminal events from the account streamer, a polling
reconciliation loop and the chase engine (see ``broker.notify.tracker``)."""

from broker.notify.hub import AccountWatch, NotificationHub
from broker.notify.poller import OrderPoller
from broker.notify.streamer import StreamerListener
from broker.notify.tracker import FillTracker

__all__ = ["AccountWatch", "FillTracker", "NotificationHub", "OrderPoller", "StreamerListener"]
