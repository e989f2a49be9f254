"""The application-service facade the Discord layer calls (no discord import here).

`TradingService` (in `facade`) composes guild settings, broker sessions, order previews,
the chase engine, fill notifications and sync; `cogs/` only ever talks to it and renders
the typed results in `broker.service.models`.
"""

from broker.service.account import Scoped
from broker.service.errors import ServiceError
from broker.service.facade import TradingService
from broker.service.orders import OrderRequest

__all__ = ["OrderRequest", "Scoped", "ServiceError", "TradingService"]
