"""One quote feed per broker session, created on first use and closed with the runtime."""

from __future__ import annotations

import asyncio

from broker.quotes.feed import FeedSettings, QuoteFeed
from broker.session import BrokerSession

__all__ = ["QuoteFeeds"]


class QuoteFeeds:
    """The feeds of every session that asked for quotes, found by the session itself.

    A feed is tied to one session (one OAuth grant of one environment): a re-linked guild
    gets a new session and so a new feed, and the old one stops by itself once its session
    is closed (it is then dropped from here on the next lookup).
    """

    def __init__(self, settings: FeedSettings | None = None) -> None:
        self.settings = settings or FeedSettings()
        self._feeds: dict[BrokerSession, QuoteFeed] = {}

    def feed_for(self, session: BrokerSession) -> QuoteFeed | None:
        """The session's feed, started on first use (None once the session is closed or its
        refresh token revoked)."""
        self._forget_stopped()
        if session.closed or session.health().token_revoked:
            return None
        feed = self._feeds.get(session)
        if feed is None:
            feed = self._feeds[session] = QuoteFeed(session, self.settings)
            feed.start()
        return feed

    def find(self, session: BrokerSession) -> QuoteFeed | None:
        """The session's feed if one was started (no side effect)."""
        return self._feeds.get(session)

    def describe(self, session: BrokerSession) -> str:
        """One line for ``!tt status``: whether the session's quotes stream, or why not."""
        feed = self.find(session)
        if feed is None:
            return "quotes from the API (the stream starts with the first preview)"
        state = feed.state()
        if state.stop_reason is not None:
            return f"quotes from the API (stream stopped: {state.stop_reason})"
        if not state.book.live:
            what = "reconnecting" if state.connections else "connecting"
            return f"quotes from the API (stream {what})"
        symbols = f"{state.book.wanted} symbol{'s' if state.book.wanted != 1 else ''}"
        if feed.refuses_delayed:
            return f"quotes from the API (the stream is delayed; {symbols})"
        delayed = ", delayed" if state.delayed else ""
        return f"quotes streaming ({symbols}{delayed})"

    def __len__(self) -> int:
        return len(self._feeds)

    async def close(self) -> None:
        feeds = list(self._feeds.values())
        self._feeds.clear()
        await asyncio.gather(*(feed.close() for feed in feeds))

    def _forget_stopped(self) -> None:
        for key, feed in list(self._feeds.items()):
            if not feed.running:
                del self._feeds[key]
