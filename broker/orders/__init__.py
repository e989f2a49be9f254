"""The order builder: resolve instruments, price legs, and build SDK orders.

```python
builder = OrderBuilder()                       # one per environment (it owns the caches)
built = await builder.build(broker, ticket, positions, external_identifier=key)
built.order                                    # tastytrade LimitOrder / MarketOrder
built.fingerprint()                            # sha256 a confirmation binds to
```
`pricing.signed_price(magnitude, effect)` is the one place the debit/credit sign is decided.
"""

from broker.orders.build import (
    AccountPositions,
    BuilderConfig,
    BuiltLeg,
    BuiltOrder,
    OrderBuilder,
    PositionSource,
)
from broker.orders.errors import BuildError, BuildRefusal
from broker.orders.pricing import PositionEffect, signed_price, split_signed_price
from broker.orders.resolve import CachePolicy, InstrumentResolver, ResolvedInstrument

__all__ = [
    "AccountPositions",
    "BuildError",
    "BuildRefusal",
    "BuilderConfig",
    "BuiltLeg",
    "BuiltOrder",
    "CachePolicy",
    "InstrumentResolver",
    "OrderBuilder",
    "PositionEffect",
    "PositionSource",
    "ResolvedInstrument",
    "signed_price",
    "split_signed_price",
]
