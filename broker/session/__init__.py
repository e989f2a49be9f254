"""The managed Tastytrade session (shared contract 2 in docs/architecture.md).

```python
manager = SessionManager(timeouts=Timeouts())
broker = await manager.get(Credentials(environment=Environment.PAPER, provider_secret=Secret("x"),
                                       refresh_token=Secret("y"), api_url=..., streamer_url=...))
acct = await broker.read(lambda s: Account.get(s, "5WT00001"), kind="validate")
resp = await broker.submit(lambda s: acct.place_order(s, order))   # never retried
```
"""

from broker.secrets import Secret
from broker.session.broker_session import BrokerSession, SdkCall
from broker.session.errors import BrokerError, ErrorCategory
from broker.session.manager import SessionManager
from broker.session.types import (
    CallKind,
    Credentials,
    Environment,
    RefreshPolicy,
    RetryPolicy,
    SessionHealth,
    Timeouts,
)

__all__ = [
    "BrokerError",
    "BrokerSession",
    "CallKind",
    "Credentials",
    "Environment",
    "ErrorCategory",
    "RefreshPolicy",
    "RetryPolicy",
    "SdkCall",
    "Secret",
    "SessionHealth",
    "SessionManager",
    "Timeouts",
]
