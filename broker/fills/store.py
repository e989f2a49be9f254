"""Persistence port of the fill-retry engine.

The engine talks to :class:`ChaseStore`; :class:`SqliteChaseStore` implements it over the
project's SQLite repositories (``storage``). Keeping the port narrow keeps SQL out of the
engine and makes the persisted state explicit: a chase row is written *before* anything is
sent to the exchange, and every link of the replace chain is written as soon as it is known.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from broker.fills.model import ChaseRecord, ChaseStatus

__all__ = ["ChaseStore", "KeyStatus"]

KeyStatus = str  # "pending" | "submitted" | "placed" | "not_placed" | "failed"


class ChaseStore(Protocol):
    async def claim_key(
        self,
        key: str,
        *,
        guild_id: int,
        user_id: int,
        command_text: str,
        environment: str,
        account_number: str,
    ) -> bool:
        """Atomically claim an idempotency key; False if it was claimed before."""
        ...

    async def mark_key(
        self, key: str, status: KeyStatus, *, order_id: int | None = None, detail: str = ""
    ) -> None: ...

    async def create(self, record: ChaseRecord) -> int:
        """Insert a new chase (``record.id`` is ignored) and return its id."""
        ...

    async def save(self, record: ChaseRecord) -> None:
        """Persist the mutable fields: status, current order, steps, prices, message."""
        ...

    async def add_link(
        self,
        chase_id: int,
        *,
        order_id: int,
        replaces_order_id: int | None,
        step: int,
        price: Decimal,
    ) -> None:
        """Record one order of the replace chain (idempotent per order id)."""
        ...

    async def get(self, chase_id: int) -> ChaseRecord | None: ...

    async def by_key(self, key: str) -> ChaseRecord | None: ...

    async def by_order(self, environment: str, order_id: int) -> ChaseRecord | None:
        """The chase that owns ``order_id`` (any link of its chain)."""
        ...

    async def with_status(
        self, statuses: frozenset[ChaseStatus], *, guild_id: int | None = None
    ) -> list[ChaseRecord]: ...

    async def audit(self, record: ChaseRecord, event: str, details: dict[str, object]) -> None: ...
