"""Streaming quotes (DXLink) kept warm per symbol, for previews and chases.

``QuoteFeeds.feed_for(session)`` gives the session's ``QuoteFeed``; ``feed.want(symbols)``
keeps streamer symbols subscribed and ``feed.quote(symbol)`` returns a ``StreamedQuote`` only
when it is trusted (see ``broker.quotes.book``). Never imports discord.
"""

from broker.quotes.book import BookState, QuoteBook, StreamedQuote
from broker.quotes.feed import FeedSettings, FeedState, QuoteFeed, backoff_delay
from broker.quotes.registry import QuoteFeeds

__all__ = [
    "BookState",
    "FeedSettings",
    "FeedState",
    "QuoteBook",
    "QuoteFeed",
    "QuoteFeeds",
    "StreamedQuote",
    "backoff_delay",
]
