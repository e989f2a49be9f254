"""A local, Tastytrade-compatible paper exchange (aiohttp HTTP + account streamer).

async with PaperExchange(PaperConfig(seed=7)) as ex:
    session = Session("secret", "refresh", is_test=True)
    session._client.base_url = ex.api_url
"""

from broker.paper.config import FillModelConfig, MarketConfig, PaperConfig
from broker.paper.exchange import PaperExchange
from broker.paper.market import Quote
from broker.paper.orders import Order

__all__ = ["FillModelConfig", "MarketConfig", "Order", "PaperConfig", "PaperExchange", "Quote"]
