"""Account sync (issue 4): transactions, order history, live orders, positions and balances
from Tastytrade into the database, page by page; plus the database-only account queries.

```python
from broker.sync import SyncService

sync = SyncService(db)
result = await sync.run(broker_session, "paper", "5WT00001", kind="auto", progress=callback)
groups = await sync.positions_by_underlying("paper", "5WT00001")
```

Modules: `service` (locking/attaching, rate limits, scheduler, queries), `runner` (one run,
page writes, watermarks), `pages` (fetching and walking paginated lists through the SDK),
`mapping` (SDK models → storage records), `models` (settings, progress, results).
"""

from broker.sync.models import (
    ProgressCallback,
    RequestedKind,
    Stage,
    SyncProgress,
    SyncRateLimited,
    SyncResult,
    SyncSettings,
    SyncTarget,
)
from broker.sync.service import SyncService

__all__ = [
    "ProgressCallback",
    "RequestedKind",
    "Stage",
    "SyncProgress",
    "SyncRateLimited",
    "SyncResult",
    "SyncService",
    "SyncSettings",
    "SyncTarget",
]
